// Where a container lives on disk, beside the image store's layers (same filesystem, so a
// committed layer can be renamed into layers/ and copy-up can rename within the upper):
//
//   <root>/containers/<id>/upper/       the writable layer, in the kernel overlayfs format
//   <root>/containers/<id>/work/        the union's work dir (scratch for copy-up, deletes)
//   <root>/containers/<id>/mount.json   where it is mounted and by which daemon (mount-state.ts)
//   <root>/containers/<id>/daemon.log   the mount daemon's log
//
// docs/on-disk-format.md mirrors this; every path into a container dir goes through here.

import * as path from 'node:path';
import type { StorePaths } from '../store/paths.js';

export class ContainerDirs {
  constructor(
    readonly storePaths: StorePaths,
    readonly id: string,
  ) {
    if (!/^[0-9a-f]{64}$/.test(id)) throw new Error(`invalid container id '${id}'`);
  }

  static base(storePaths: StorePaths): string {
    return path.join(storePaths.root, 'containers');
  }

  get dir(): string {
    return path.join(ContainerDirs.base(this.storePaths), this.id);
  }

  get upper(): string {
    return path.join(this.dir, 'upper');
  }

  get work(): string {
    return path.join(this.dir, 'work');
  }

  get mountRecord(): string {
    return path.join(this.dir, 'mount.json');
  }

  get daemonLog(): string {
    return path.join(this.dir, 'daemon.log');
  }
}
