// strata mount: the union of read-only layers and a writable upper dir at MNT.
//   strata mount --lower L1:L2 --upper U --work W MNT        (leftmost lower = top layer)
//   strata mount -o lowerdir=L1:L2,upperdir=U,workdir=W MNT  (fuse-overlayfs's syntax)
// Without an upper dir the mount is read-only.

import { parseArgs } from 'node:util';
import { mountpointPath } from '../fuse/mount.js';
import { UnionFs } from '../union/union-fs.js';
import { spawnDaemon } from './daemon.js';
import { childArgs, mountOptionSpec, serveOptions, splitO, type MountFlags } from './mount-options.js';
import { serveForeground } from './serve.js';

export const usage = 'strata mount [-f] (--lower L1:L2 [--upper U --work W] | -o lowerdir=L1:L2[,upperdir=U,workdir=W][,...]) [--no-passthrough] [--log-file F] MNT';

/** overlayfs's lowerdir list: colon separated, `\:` for a colon inside a path. */
export function splitLowers(s: string): string[] {
  return s.split(/(?<!\\):/).map((p) => p.replace(/\\:/g, ':')).filter((p) => p !== '');
}

export async function mountCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { ...mountOptionSpec, lower: { type: 'string' }, upper: { type: 'string' }, work: { type: 'string' } },
    allowPositionals: true,
  });
  const flags = values as MountFlags & { lower?: string; upper?: string; work?: string };
  if (positionals.length !== 1) throw new Error(`usage: ${usage}`);
  const o = splitO(flags.o);
  const lowerSpec = flags.lower ?? o.get('lowerdir');
  if (!lowerSpec) throw new Error(`no lower layers given (--lower or -o lowerdir=)\nusage: ${usage}`);
  const lowers = splitLowers(lowerSpec);
  const upper = flags.upper ?? o.get('upperdir');
  const work = flags.work ?? o.get('workdir');
  const mnt = mountpointPath(positionals[0]!);
  // Check the layers before forking, so the caller sees what is wrong.
  const fsys = new UnionFs({ lowers, upper, work, passthrough: !flags['no-passthrough'] });
  if (!flags.foreground) {
    const pid = await spawnDaemon(['mount', ...childArgs(argv)], flags['log-file']);
    process.stderr.write(`mounted ${lowers.length} layer${lowers.length === 1 ? '' : 's'}${upper ? ' + upper' : ' (read-only)'} at ${mnt} (daemon pid ${pid})\n`);
    return 0;
  }
  const opts = serveOptions(flags, { timeout: 1 });
  await serveForeground(mnt, fsys, {
    ...opts,
    readOnly: opts.readOnly || upper === undefined,
    fsname: upper ? `stratafs:${upper}` : 'stratafs',
    subtype: 'stratafs',
  });
  return 0;
}
