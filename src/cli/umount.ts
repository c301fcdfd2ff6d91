// strata umount [-l] MNT: unmount a stratafs mount and wait for its daemon to finish.
// strata umount [-l] [--root DIR] CONTAINER: the same for a container's mount, found from
// its record; a container whose daemon died has its stale mount cleared. A path that is a
// mount point wins over a container of the same name.

import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { umountContainer } from '../containers/lifecycle.js';
import { mountAt, servingPids, unmount } from '../fuse/mount.js';
import { defaultStoreRoot, StorePaths } from '../store/paths.js';
import { mountpointPath } from '../util/os-path.js';
import { waitForExit } from '../util/process.js';
import { withStore } from './store-args.js';

const usage = 'usage: strata umount [-l|--lazy] [--root DIR] MNT|CONTAINER';

export async function umountCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: { lazy: { type: 'boolean', short: 'l' }, root: { type: 'string' } }, allowPositionals: true });
  if (positionals.length !== 1) throw new Error(usage);
  const arg = positionals[0]!;
  const mnt = mountpointPath(arg);
  const m = mountAt(mnt);
  if (!m) {
    // Not a mount point: a container name or ID, if there is a store to look in (never
    // create one just to find nothing).
    const root = values.root ?? defaultStoreRoot();
    if (!arg.includes('/') && fs.existsSync(new StorePaths(root).db)) {
      const r = await withStore(root, (s) => umountContainer(s, arg, values.lazy ?? false)).catch((e: Error) => {
        if (/^No such container/.test(e.message)) throw new Error(`${mnt}: not mounted, and no container is named ${arg}`);
        throw e;
      });
      if (r.outcome === 'cleared-stale') process.stderr.write(`container ${r.container.name}: cleared the stale mount at ${r.path} (its daemon had died)\n`);
      return 0;
    }
    throw new Error(`${mnt}: not mounted`);
  }
  if (!m.fstype.startsWith('fuse')) throw new Error(`${mnt}: not a FUSE mount (${m.fstype})`);
  // The daemon finishes its writes after the unmount (copy-ups still landing, the path
  // index): return when it has, so the upper dir may be used at once (say, by overlayfs).
  const daemons = servingPids(mnt);
  unmount(mnt, values.lazy ?? false);
  if (!values.lazy) await waitForExit(daemons);
  return 0;
}
