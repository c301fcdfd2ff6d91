// Mounting and unmounting a FUSE filesystem with mount(2), and recognising the mounts a
// killed daemon leaves behind ("Transport endpoint is not connected").

import * as fs from 'node:fs';
import { native } from '../native/binding.js';
import { log } from '../util/log.js';

export interface FuseMountOptions {
  fsname?: string;
  subtype?: string;
  allowOther?: boolean;
  readOnly?: boolean;
}

export class MountError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

/** Opens /dev/fuse and mounts it on target; returns the device fd of the new connection. */
export function mountFuse(target: string, opts: FuseMountOptions = {}): number {
  let st: fs.Stats;
  try {
    st = fs.statSync(target);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTCONN') throw new MountError(`${target}: a stale FUSE mount is still there (clear it first)`, code);
    throw new MountError(`${target}: cannot use as mount point: ${code}`, code);
  }
  if (!st.isDirectory()) throw new MountError(`${target}: mount point is not a directory`, 'ENOTDIR');
  let fd: number;
  try {
    fd = native.openDevice();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new MountError('/dev/fuse is missing: load the fuse module (modprobe fuse) or run with --device /dev/fuse', code);
    if (code === 'EACCES' || code === 'EPERM') throw new MountError('/dev/fuse: permission denied (run as root)', code);
    throw new MountError(`/dev/fuse: ${code}`, code);
  }
  try {
    native.mount(fd, target, {
      rootMode: st.mode & 0o170000,
      uid: process.getuid?.() ?? 0,
      gid: process.getgid?.() ?? 0,
      defaultPermissions: true,
      allowOther: opts.allowOther ?? false,
      fsname: opts.fsname ?? 'stratafs',
      subtype: opts.subtype ?? 'stratafs',
      readOnly: opts.readOnly ?? false,
    });
  } catch (e) {
    fs.closeSync(fd);
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EPERM') throw new MountError(`mount ${target}: permission denied: mounting needs CAP_SYS_ADMIN (run as root)`, code);
    throw new MountError(`mount ${target}: ${code}`, code);
  }
  return fd;
}

/** The mount entry at exactly this path, from /proc/self/mountinfo, if any. */
export function mountAt(target: string): { fstype: string; source: string } | undefined {
  const want = fs.existsSync(target) || isStale(target) ? resolveQuiet(target) : target;
  let found: { fstype: string; source: string } | undefined;
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    if (!line) continue;
    const [left, right] = line.split(' - ');
    const mp = unescape(left!.split(' ')[4]!);
    if (mp !== want) continue;
    const [fstype, source] = right!.split(' ');
    found = { fstype: fstype!, source: unescape(source!) };
  }
  return found;
}

function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

function resolveQuiet(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    // A dead FUSE mount cannot be resolved; resolve its parent instead.
    const parent = p.replace(/\/+$/, '').replace(/\/[^/]+$/, '') || '/';
    return `${fs.realpathSync(parent)}/${p.replace(/\/+$/, '').split('/').pop()}`.replace(/^\/\//, '/');
  }
}

/** A FUSE mount whose daemon died answers every access with ENOTCONN. */
export function isStale(target: string): boolean {
  try {
    fs.statSync(target);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOTCONN';
  }
}

/** Detaches a dead mount so the path can be mounted again. Returns whether one was cleared. */
export function clearStale(target: string): boolean {
  if (!isStale(target)) return false;
  native.umount(target, native.MNT_DETACH);
  log.warn({ path: target }, 'cleared a stale FUSE mount left by a dead daemon');
  return true;
}

/** Unmounts target; `lazy` detaches it even while busy. */
export function unmount(target: string, lazy = false): void {
  try {
    native.umount(target, lazy ? native.MNT_DETACH : 0);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EINVAL') throw new MountError(`${target}: not a mount point`, code);
    if (code === 'EBUSY') throw new MountError(`${target}: mount is busy (files open or a process inside it); try --lazy`, code);
    if (code === 'EPERM') throw new MountError(`${target}: permission denied: unmounting needs root`, code);
    throw new MountError(`umount ${target}: ${code}`, code);
  }
}
