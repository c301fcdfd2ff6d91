// strata mount: the union of read-only layers and a writable upper dir at MNT.
//   strata mount --lower L1:L2 --upper U --work W MNT        (leftmost lower = top layer)
//   strata mount -o lowerdir=L1:L2,upperdir=U,workdir=W MNT  (fuse-overlayfs's syntax)
// Without an upper dir the mount is read-only.
//   strata mount CONTAINER PATH                              (a container: its image's layers + its own)
// -o index=FILE keeps the path index there (default: WORK/stratafs-index.db when there is a
// work dir); -o index=off probes the layers on disk instead. -o follow_copyup: read-only
// opens of lower files see a later copy-up's data, as overlayfs's do (reads go through the
// daemon instead of passthrough). -o journal_delay_ms=N: how long the path index's record
// of a change may wait to share a transaction (default 100). -o volatile (or fuse-overlayfs's
// -o fsync=0): nothing written through the mount is fsynced (src/union/volatile.ts).
// -o sync_copyup: a copy-up's data is fsynced before the request that made it is answered
// (by default it lands behind it: src/union/landing.ts).

import { parseArgs } from 'node:util';
import * as path from 'node:path';
import { mountContainer } from '../containers/lifecycle.js';
import { mountpointPath } from '../fuse/mount.js';
import { UnionFs, CACHE_TIMEOUT_S } from '../union/union-fs.js';
import { log } from '../util/log.js';
import { reportReady, spawnDaemon } from './daemon.js';
import { indexLayers } from './index-layers.js';
import { childArgs, mountOptionSpec, serveOptions, splitO, type MountFlags } from './mount-options.js';
import { serveForeground } from './serve.js';
import { withStore } from './store-args.js';

export const usage = 'strata mount [-f] (--lower L1:L2 [--upper U --work W] | -o lowerdir=L1:L2[,upperdir=U,workdir=W][,...]) [-o index=FILE|off] [-o noacl] [-o follow_copyup] [-o journal_delay_ms=N] [-o volatile|fsync=0] [-o sync_copyup] [--no-passthrough] [--log-file F] MNT';
export const containerUsage = 'strata mount [--root DIR] [-o allow_other] [--no-passthrough] [--log-file F] CONTAINER PATH';

/** -o journal_delay_ms=N as a number, or undefined. */
function journalDelayOf(o: Map<string, string>): number | undefined {
  const v = o.get('journal_delay_ms');
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`-o journal_delay_ms=${v}: want a whole number of milliseconds`);
  return n;
}

/** -o volatile (overlayfs) or -o fsync=0 (fuse-overlayfs's spelling of it). */
function volatileOf(o: Map<string, string>): boolean {
  const f = o.get('fsync');
  if (f !== undefined && f !== '0' && f !== '1') throw new Error(`-o fsync=${f}: want 0 or 1`);
  return o.has('volatile') || f === '0';
}

/** Where the mount keeps its path index, or undefined for none. */
export function indexFileOf(o: Map<string, string>, work: string | undefined): string | undefined {
  const v = o.get('index');
  if (v === 'off') return undefined;
  if (v) return path.resolve(v);
  return work ? path.join(path.resolve(work), 'stratafs-index.db') : undefined;
}

/** overlayfs's lowerdir list: colon separated, `\:` for a colon inside a path. */
export function splitLowers(s: string): string[] {
  return s.split(/(?<!\\):/).map((p) => p.replace(/\\:/g, ':')).filter((p) => p !== '');
}

export async function mountCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { ...mountOptionSpec, lower: { type: 'string' }, upper: { type: 'string' }, work: { type: 'string' }, root: { type: 'string' } },
    allowPositionals: true,
  });
  const flags = values as MountFlags & { lower?: string; upper?: string; work?: string; root?: string };
  const o = splitO(flags.o);
  const lowerSpec = flags.lower ?? o.get('lowerdir');
  if (positionals.length === 2 && !lowerSpec) return mountContainerCommand(flags, positionals[0]!, positionals[1]!);
  if (positionals.length !== 1) throw new Error(`usage: ${usage}\n       ${containerUsage}`);
  if (!lowerSpec) throw new Error(`no lower layers given (--lower or -o lowerdir=)\nusage: ${usage}`);
  const lowers = splitLowers(lowerSpec);
  const upper = flags.upper ?? o.get('upperdir');
  const work = flags.work ?? o.get('workdir');
  const mnt = mountpointPath(positionals[0]!);
  // Every user may use a union mount made by root, as with overlayfs and fuse-overlayfs (a
  // container's rootfs serves processes of many uids: apt's _apt, daemons' own users); the
  // kernel checks their permissions (default_permissions). Others need user_allow_other.
  // POSIX ACLs are enforced, as overlayfs does (its layers' and the caller's: the
  // permission checks are the kernel's, default_permissions).
  const opts = serveOptions(flags, { timeout: CACHE_TIMEOUT_S, allowOther: process.getuid?.() === 0, posixAcl: true });
  // Check the layers before forking, so the caller sees what is wrong.
  const fsys = new UnionFs({
    lowers,
    upper,
    work,
    passthrough: !flags['no-passthrough'],
    followCopyUp: o.has('follow_copyup'),
    journalDelayMs: journalDelayOf(o),
    volatile: volatileOf(o),
    syncCopyUp: o.has('sync_copyup'),
  });
  const indexFile = indexFileOf(o, work);
  if (!flags.foreground) {
    if (indexFile) indexLayers(indexFile, fsys.stack.lowers);
    // The daemon takes the upper and work dirs; this check only showed they are free.
    fsys.stack.release();
    // A daemon started by a mount program (podman) has nobody reading its stderr: without
    // --log-file its log goes next to its index in the work dir, as a container's does.
    const logFile = flags['log-file'] ?? (work ? path.join(path.resolve(work), 'stratafs-daemon.log') : undefined);
    const pid = await spawnDaemon(['mount', ...childArgs(argv)], logFile);
    process.stderr.write(`mounted ${lowers.length} layer${lowers.length === 1 ? '' : 's'}${upper ? ' + upper' : ' (read-only)'} at ${mnt} (daemon pid ${pid})\n`);
    return 0;
  }
  try {
    if (indexFile) fsys.attachIndex(indexFile);
    fsys.starting();
    await serveForeground(mnt, fsys, {
      ...opts,
      readOnly: opts.readOnly || upper === undefined,
      fsname: upper ? `stratafs:${upper}` : 'stratafs',
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
    await fsys.unmounted();
  }
  return 0;
}

/** The flags a container mount passes on to its union daemon. */
function daemonFlags(f: MountFlags): string[] {
  const args: string[] = [];
  for (const o of f.o ?? []) args.push('-o', o);
  if (f['no-passthrough']) args.push('--no-passthrough');
  for (const k of ['entry-timeout', 'attr-timeout', 'negative-timeout'] as const) if (f[k] !== undefined) args.push(`--${k}`, f[k]!);
  return args;
}

/** strata mount CONTAINER PATH: the same union daemon, fed the container's layers. */
async function mountContainerCommand(flags: MountFlags & { upper?: string; work?: string; root?: string }, ref: string, target: string): Promise<number> {
  if (flags.foreground) throw new Error('strata mount -f: a container is always mounted by a background daemon (its state is kept for strata ps)');
  if (flags.upper || flags.work) throw new Error(`a container brings its own upper and work dirs\nusage: ${containerUsage}`);
  const m = await withStore(flags.root, (s) => mountContainer(s, ref, target, spawnDaemon, {
      daemonFlags: daemonFlags(flags),
      logFile: flags['log-file'],
      indexFile: s.paths.indexFile,
      beforeSpawn: (lowers) => indexLayers(s.paths.indexFile, lowers),
    }));
  process.stderr.write(`mounted container ${m.container.name} (${m.layers} layer${m.layers === 1 ? '' : 's'} + its own) at ${m.record.path} (daemon pid ${m.record.pid})\n`);
  return 0;
}
