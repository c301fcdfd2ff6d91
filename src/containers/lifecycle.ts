// Mounting, unmounting and removing containers. A container is mounted by the same union
// daemon as `strata mount --lower ... --upper ... --work ...` (one union core); the CLI
// hands in how to start that daemon, since nothing below cli/ may import it. At most one
// mount point per container; a mount whose daemon died is detected (mount-state.ts) and
// detached before anything else is done with the container.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { clearStale, isStale, mountAt, unmount, MountError } from '../fuse/mount.js';
import { PathIndex } from '../index/path-index.js';
import type { ContainerRecord, ImageStore } from '../store/images.js';
import { removeTree } from '../store/paths.js';
import { log } from '../util/log.js';
import { mountpointPath } from '../util/os-path.js';
import { waitForExit } from '../util/process.js';
import { ContainerDirs } from './layout.js';
import { mountStatus, removeMountRecord, withContainerLock, writeMountRecord, type MountRecord } from './mount-state.js';

/** Starts `strata <args...> --foreground` detached; resolves with its pid once the mount answers. */
export type DaemonSpawner = (args: string[], logFile: string) => Promise<number>;

export interface MountContainerOptions {
  /** Mount flags passed on to the union daemon (-o allow_other, --no-passthrough, ...). */
  daemonFlags?: string[];
  logFile?: string;
  /** The path index file, for `-o index=` (issue 4). */
  indexFile?: string;
  /** Runs before the daemon starts, with the lower dirs (top first): the CLI indexes new layers there, with progress. */
  beforeSpawn?: (lowers: string[]) => void;
}

export interface MountedContainer {
  container: ContainerRecord;
  layers: number;
  record: MountRecord;
}

/** overlayfs's lowerdir list separator is ':', so a ':' inside a path is written '\:'. */
function lowerList(dirs: string[]): string {
  return dirs.map((d) => d.replace(/:/g, '\\:')).join(':');
}

/** Detaches a dead daemon's mount (lazily, if the kernel has not noticed the death yet). */
function detachStale(record: MountRecord): void {
  try {
    if (!clearStale(record.path)) unmount(record.path, true);
  } catch (e) {
    if (!(e instanceof MountError && e.code === 'EINVAL')) throw e;
  }
  log.warn({ path: record.path, pid: record.pid }, 'cleared the stale mount of a container whose daemon died');
}

export async function mountContainer(store: ImageStore, ref: string, target: string, spawn: DaemonSpawner, opts: MountContainerOptions = {}): Promise<MountedContainer> {
  const container = store.resolveContainer(ref);
  const image = store.image(container.imageId);
  if (!image) throw new Error(`container ${container.name}: its image ${container.imageId} is gone from the store`);
  const dirs = new ContainerDirs(store.paths, container.id);
  const mnt = mountpointPath(target);
  return withContainerLock(dirs, async () => {
    const status = mountStatus(dirs);
    if (status.state === 'mounted') {
      const at = status.record!.path;
      if (at === mnt) throw new Error(`container ${container.name} is already mounted at ${at}`);
      throw new Error(`container ${container.name} is already mounted at ${at}: a container is mounted at one path at a time (strata umount ${container.name} first)`);
    }
    if (status.state === 'stale') detachStale(status.record!);
    removeMountRecord(dirs);
    // Mounting over a live mount would hide it, and the mount table would then show only
    // ours at that path. A dead one is cleared by the daemon before it mounts.
    const there = mountAt(mnt);
    if (there && !isStale(mnt)) throw new Error(`${mnt}: already a mount point (${there.fstype} ${there.source}); unmount it first (EBUSY)`);
    const lowers = store.lowerDirs(image);
    opts.beforeSpawn?.(lowers);
    const args = ['mount', '--lower', lowerList(lowers), '--upper', dirs.upper, '--work', dirs.work];
    if (opts.indexFile) args.push('-o', `index=${opts.indexFile}`);
    args.push(...(opts.daemonFlags ?? []), mnt);
    const pid = await spawn(args, opts.logFile ?? dirs.daemonLog);
    const record: MountRecord = { path: mnt, pid, since: new Date().toISOString() };
    writeMountRecord(dirs, record);
    return { container, layers: lowers.length, record };
  });
}

export type UmountOutcome = 'unmounted' | 'cleared-stale';

/** strata umount CONTAINER: unmounts (or clears the stale mount of) a container. */
export async function umountContainer(store: ImageStore, ref: string, lazy = false): Promise<{ container: ContainerRecord; path: string; outcome: UmountOutcome }> {
  const container = store.resolveContainer(ref);
  const dirs = new ContainerDirs(store.paths, container.id);
  return withContainerLock(dirs, async () => {
    const status = mountStatus(dirs);
    if (status.state === 'unmounted') {
      removeMountRecord(dirs);
      throw new Error(`container ${container.name} is not mounted`);
    }
    const record = status.record!;
    if (status.state === 'stale') {
      detachStale(record);
      removeMountRecord(dirs);
      return { container, path: record.path, outcome: 'cleared-stale' as const };
    }
    unmount(record.path, lazy);
    removeMountRecord(dirs);
    await waitForExit([record.pid]);
    return { container, path: record.path, outcome: 'unmounted' as const };
  });
}

/**
 * strata rm: refused while mounted unless `force`, which unmounts first (lazily if busy).
 * A stale mount is cleared without asking: its daemon is already gone. The row goes
 * first, then the dir (renamed out of containers/ at once, then deleted).
 */
export async function removeContainer(store: ImageStore, ref: string, force = false): Promise<ContainerRecord> {
  const container = store.resolveContainer(ref);
  const dirs = new ContainerDirs(store.paths, container.id);
  await withContainerLock(dirs, async () => {
    const status = mountStatus(dirs);
    const record = status.record;
    if (status.state === 'mounted') {
      if (!force) throw new Error(`you cannot remove a mounted container ${container.name}: it is mounted at ${record!.path}. Unmount it (strata umount ${container.name}) or use rm -f`);
      try {
        unmount(record!.path, false);
      } catch (e) {
        if (!(e instanceof MountError && e.code === 'EBUSY')) throw e;
        log.warn({ path: record!.path }, 'mount is busy; detaching it lazily');
        unmount(record!.path, true);
      }
      await waitForExit([record!.pid]);
    } else if (status.state === 'stale') detachStale(record!);
    store.removeContainer(container.id);
    // Its journal goes with it, so `strata index check` does not report a missing upper dir.
    if (fs.existsSync(store.paths.indexFile)) {
      const index = PathIndex.open(store.paths.indexFile);
      try {
        index.forgetUpper(dirs.upper);
      } finally {
        index.close();
      }
    }
  });
  // Outside the lock: the lock file lives in the dir being removed.
  const trash = path.join(store.paths.tmpDir, `deleted-container-${container.id}-${process.pid}`);
  try {
    fs.renameSync(dirs.dir, trash);
  } catch (e) {
    throw new Error(`${dirs.dir}: cannot remove container dir: ${(e as NodeJS.ErrnoException).code}`);
  }
  removeTree(trash);
  return container;
}
