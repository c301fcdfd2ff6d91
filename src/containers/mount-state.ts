// Where a container is mounted, kept as a small record beside its layer (mount.json) and
// checked against the kernel's mount table whenever it is read, so the record can never
// lie for long: a daemon that died leaves a mount answering ENOTCONN (stale), a mount
// someone removed with plain umount(8) leaves a record naming nothing (unmounted).
// A per-container lock file serialises mount, umount and rm of one container.

import * as fs from 'node:fs';
import { pidAlive } from '../util/process.js';
import { isStale, mountAt } from '../fuse/mount.js';
import { log } from '../util/log.js';
import type { ContainerDirs } from './layout.js';

export type MountState = 'mounted' | 'unmounted' | 'stale';

export interface MountRecord {
  /** The mount point, canonical (as /proc/self/mountinfo shows it). */
  path: string;
  /** The daemon serving it. */
  pid: number;
  /** When it was mounted (ISO 8601). */
  since: string;
}

export interface MountStatus {
  state: MountState;
  /** The record, for a mounted or stale container. */
  record?: MountRecord;
}

export function readMountRecord(dirs: ContainerDirs): MountRecord | undefined {
  let text: string;
  try {
    text = fs.readFileSync(dirs.mountRecord, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`${dirs.mountRecord}: cannot read mount record: ${(e as NodeJS.ErrnoException).code}`);
  }
  try {
    const r = JSON.parse(text) as MountRecord;
    if (typeof r.path === 'string' && Number.isInteger(r.pid)) return r;
  } catch {
    /* fall through: a torn write from a crash counts as no record */
  }
  log.warn({ file: dirs.mountRecord }, 'ignoring a malformed mount record');
  return undefined;
}

/** Written to a temp name and renamed, so a reader never sees half a record. */
export function writeMountRecord(dirs: ContainerDirs, r: MountRecord): void {
  const tmp = `${dirs.mountRecord}.${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(r) + '\n', { mode: 0o600 });
  fs.renameSync(tmp, dirs.mountRecord);
}

export function removeMountRecord(dirs: ContainerDirs): void {
  fs.rmSync(dirs.mountRecord, { force: true });
}

/**
 * The container's mount as the kernel sees it now. The mount at the recorded path must be
 * ours: a stratafs mount of this container's upper dir (its fsname is "stratafs:<upper>").
 */
export function mountStatus(dirs: ContainerDirs): MountStatus {
  const record = readMountRecord(dirs);
  if (!record) return { state: 'unmounted' };
  const m = mountAt(record.path);
  if (!m || m.source !== `stratafs:${dirs.upper}`) return { state: 'unmounted' };
  // A dead daemon's mount answers ENOTCONN; the pid check covers a daemon that is gone
  // while the kernel has not noticed yet.
  if (!pidAlive(record.pid) || isStale(record.path)) return { state: 'stale', record };
  return { state: 'mounted', record };
}

const LOCK_WAIT_MS = 30_000;

/**
 * Runs fn holding the container's lock (an O_EXCL file with the holder's pid). A lock
 * whose holder died is broken; a live holder is waited for, up to 30 s.
 */
export async function withContainerLock<R>(dirs: ContainerDirs, fn: () => Promise<R> | R): Promise<R> {
  const lock = `${dirs.dir}/lock`;
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      fs.writeFileSync(lock, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      break;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new Error(`${dirs.dir}: container directory is missing (ENOENT)`);
      if (code !== 'EEXIST') throw new Error(`${lock}: cannot take the container lock: ${code}`);
    }
    let text: string;
    try {
      text = fs.readFileSync(lock, 'utf8').trim();
    } catch {
      continue; // released meanwhile
    }
    const holder = Number(text);
    // An empty file is a lock being written this very moment, not a dead one.
    if (text !== '' && (!Number.isInteger(holder) || holder <= 0 || !pidAlive(holder))) {
      log.warn({ lock, holder }, 'breaking a container lock left by a dead process');
      fs.rmSync(lock, { force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`${lock}: container is busy (locked by pid ${holder})`);
    await new Promise((r) => setTimeout(r, 50));
  }
  try {
    return await fn();
  } finally {
    fs.rmSync(lock, { force: true });
  }
}

/**
 * Has the daemon serving the union mount at `mnt` settle its upper dir: land the copy-ups
 * under way and write its pending journal records (an fsync of the mount's root directory,
 * FSYNCDIR). Before reading the upper dir or the journal of a mounted container.
 */
export function settleMount(mnt: string): void {
  const fd = fs.openSync(mnt, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
