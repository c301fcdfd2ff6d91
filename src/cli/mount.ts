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
import { mountpointPath } from '../util/os-path.js';
import { spawnDaemon } from './daemon.js';
import { childArgs, mountOptionSpec, splitO, type MountFlags } from './mount-options.js';

export const usage = 'strata mount [-f] (--lower L1:L2 [--upper U --work W] | -o lowerdir=L1:L2[,upperdir=U,workdir=W][,...]) [-o index=FILE|off] [-o noacl] [-o follow_copyup] [-o journal_delay_ms=N] [-o volatile|fsync=0] [-o sync_copyup] [-o timeout=S] [--entry-timeout S] [--attr-timeout S] [--negative-timeout S] [--no-passthrough] [--log-file F] MNT';
export const containerUsage = 'strata mount [--root DIR] [-o allow_other] [--no-passthrough] [--log-file F] CONTAINER PATH';

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
  if (flags.foreground) {
    await (await import('./mount-serve.js')).serveUnion(flags, o, { lowers, upper, work, mnt, indexFile: indexFileOf(o, work) });
    return 0;
  }
  // Everything else (checking the layers and dirs, indexing, mounting) is the daemon's: it
  // reports what went wrong, and this command loads none of it.
  // A daemon started by a mount program (podman) has nobody reading its stderr: without
  // --log-file its log goes next to its index in the work dir, as a container's does.
  const logFile = flags['log-file'] ?? (work ? path.join(path.resolve(work), 'stratafs-daemon.log') : undefined);
  const pid = await spawnDaemon(['mount', ...childArgs(argv)], logFile);
  process.stderr.write(`mounted ${lowers.length} layer${lowers.length === 1 ? '' : 's'}${upper ? ' + upper' : ' (read-only)'} at ${mnt} (daemon pid ${pid})\n`);
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
  const [{ mountContainer }, { withStore }, { indexLayers }] = await Promise.all([import('../containers/lifecycle.js'), import('./store-args.js'), import('./index-layers.js')]);
  const m = await withStore(flags.root, (s) => mountContainer(s, ref, target, spawnDaemon, {
      daemonFlags: daemonFlags(flags),
      logFile: flags['log-file'],
      indexFile: s.paths.indexFile,
      beforeSpawn: (lowers) => indexLayers(s.paths.indexFile, lowers),
    }));
  process.stderr.write(`mounted container ${m.container.name} (${m.layers} layer${m.layers === 1 ? '' : 's'} + its own) at ${m.record.path} (daemon pid ${m.record.pid})\n`);
  return 0;
}
