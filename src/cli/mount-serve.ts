// strata mount's daemon side (and `strata mount -f`): checks the layers and dirs, indexes
// what is not indexed yet, and serves the union until it is unmounted. Loaded only by the
// process that serves, so that the background command stays light (mount.ts).

import { UnionFs, CACHE_TIMEOUT_S } from '../union/union-fs.js';
import { log } from '../util/log.js';
import { progressLine, reportReady } from './daemon.js';
import { indexingProgress } from './index-layers.js';
import { millis, serveOptions, type MountFlags } from './mount-options.js';
import { serveForeground } from './serve.js';

export interface UnionMount {
  lowers: string[];
  upper: string | undefined;
  work: string | undefined;
  mnt: string;
  indexFile: string | undefined;
}

/** -o volatile (overlayfs) or -o fsync=0 (fuse-overlayfs's spelling of it). */
function volatileOf(o: Map<string, string>): boolean {
  const f = o.get('fsync');
  if (f !== undefined && f !== '0' && f !== '1') throw new Error(`-o fsync=${f}: want 0 or 1`);
  return o.has('volatile') || f === '0';
}

/** Serves the union at `m.mnt` in this process until it is unmounted; any failure before that is reported to a waiting parent. */
export async function serveUnion(flags: MountFlags, o: Map<string, string>, m: UnionMount): Promise<void> {
  let fsys: UnionFs | undefined;
  try {
    // Every user may use a union mount made by root, as with overlayfs and fuse-overlayfs (a
    // container's rootfs serves processes of many uids: apt's _apt, daemons' own users); the
    // kernel checks their permissions (default_permissions). Others need user_allow_other.
    // POSIX ACLs are enforced, as overlayfs does (its layers' and the caller's: the
    // permission checks are the kernel's, default_permissions).
    const opts = serveOptions(flags, { timeout: CACHE_TIMEOUT_S, allowOther: process.getuid?.() === 0, posixAcl: true, namesOnlyThroughMount: true });
    fsys = new UnionFs({
      lowers: m.lowers,
      upper: m.upper,
      work: m.work,
      passthrough: !flags['no-passthrough'],
      followCopyUp: o.has('follow_copyup'),
      journalDelayMs: millis(o.get('journal_delay_ms'), '-o journal_delay_ms'),
      volatile: volatileOf(o),
      syncCopyUp: o.has('sync_copyup'),
      keepListings: (opts.timeouts?.entry ?? 0) >= CACHE_TIMEOUT_S && (opts.timeouts?.attr ?? 0) >= CACHE_TIMEOUT_S,
    });
    if (m.indexFile) {
      const draw = progressLine();
      try {
        fsys.attachIndex(m.indexFile, indexingProgress(draw));
      } finally {
        draw?.('');
      }
    }
    fsys.starting();
    await serveForeground(m.mnt, fsys, {
      ...opts,
      readOnly: opts.readOnly || m.upper === undefined,
      fsname: m.upper ? `stratafs:${m.upper}` : 'stratafs',
      subtype: 'stratafs',
    });
  } catch (e) {
    reportReady((e as Error).message);
    throw e;
  } finally {
    // The daemon finishes its writes (copies landing, the journal): a signal now would
    // kill it half-way, as a crash.
    const finishing = (sig: string): void => void log.info({ signal: sig }, 'finishing the upper dir before exiting');
    for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, finishing);
    await fsys?.unmounted();
  }
}
