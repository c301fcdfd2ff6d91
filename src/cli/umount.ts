// strata umount [-l] MNT: unmount a stratafs mount; its daemon then exits by itself.

import { parseArgs } from 'node:util';
import { mountAt, mountpointPath, unmount } from '../fuse/mount.js';

export async function umountCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: { lazy: { type: 'boolean', short: 'l' } }, allowPositionals: true });
  if (positionals.length !== 1) throw new Error('usage: strata umount [-l|--lazy] MNT');
  const mnt = mountpointPath(positionals[0]!);
  const m = mountAt(mnt);
  if (!m) throw new Error(`${mnt}: not mounted`);
  if (!m.fstype.startsWith('fuse')) throw new Error(`${mnt}: not a FUSE mount (${m.fstype})`);
  unmount(mnt, values.lazy ?? false);
  return 0;
}
