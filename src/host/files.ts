// Operations on files of the host filesystem that every FileSystem backed by real
// directories needs (the loopback and the union): I/O on open handles, applying setattr,
// giving new objects to their creator. One home, so the two cannot drift apart.

import * as fs from 'node:fs';
import { promisify } from 'node:util';
import type { Context, SetAttr, TimeSpec } from '../fs/api.js';
import { native } from '../native/binding.js';

const C = fs.constants;
// Not exported by Node's fs.constants.
export const O_ACCMODE = 3;
/** open(2)'s O_TMPFILE (__O_TMPFILE | O_DIRECTORY on Linux); Node's fs.constants lacks it. */
export const O_TMPFILE = 0o20000000 | C.O_DIRECTORY;
const S_ISGID = 0o2000;
const fsyncAsync = promisify(fs.fsync);
const fdatasyncAsync = promisify(fs.fdatasync);

/** An open host file behind a FUSE file handle. */
export interface FdHandle {
  fd: number;
}

export type HostPath = string | Buffer;

/**
 * Runs a creating syscall under the caller's umask when the request carries one
 * (Context.umask): the host filesystem then applies the new object's parent's default ACL
 * if it has one, else this umask, as it would for the caller. The daemon's own umask is 0
 * (serve.ts) and is put back at once: copy-up's objects get exactly the mode they ask for.
 */
export function withCallerUmask<T>(ctx: Context, make: () => T): T {
  if (ctx.umask === undefined) return make();
  const own = process.umask(ctx.umask);
  try {
    return make();
  } finally {
    process.umask(own);
  }
}

/**
 * The daemon creates as root; the new object must belong to the caller. In a setgid
 * directory the group was already inherited from it. chown clears set-id bits, which the
 * caller may have asked for, so they are put back.
 */
export function giveToCaller(ctx: Context, p: HostPath | { fd: number }, parentDir: HostPath, mode: number): void {
  if (process.getuid?.() !== 0 || (ctx.uid === 0 && ctx.gid === 0)) return;
  const parentSetgid = (fs.statSync(parentDir).mode & S_ISGID) !== 0;
  const gid = parentSetgid ? -1 : ctx.gid;
  const fd = typeof p === 'object' && 'fd' in p ? p.fd : undefined;
  if (fd !== undefined) fs.fchownSync(fd, ctx.uid, gid);
  else fs.lchownSync(p as HostPath, ctx.uid, gid);
  if ((mode & 0o6000) === 0 || (mode & C.S_IFMT) === C.S_IFLNK) return;
  // Under the caller's umask when the kernel left it to us (a default ACL's permissions
  // give way to it here: set-id objects in directories with default ACLs are rare).
  const back = mode & ~(ctx.umask ?? 0) & 0o7777;
  if (fd !== undefined) fs.fchmodSync(fd, back);
  else fs.chmodSync(p as HostPath, back);
}

/**
 * What a set-group-ID directory gives an object made in it (its group, and to a directory
 * the bit too), for an object made elsewhere (the scratch dir) and then moved in.
 */
export function inheritSetgid(p: HostPath, parentDir: HostPath, isDir: boolean): void {
  const parent = fs.statSync(parentDir);
  if ((parent.mode & S_ISGID) === 0) return;
  fs.lchownSync(p, -1, parent.gid);
  if (isDir) fs.chmodSync(p, (fs.lstatSync(p).mode | S_ISGID) & 0o7777);
}

/** utimensat arguments for one time: a value, the current time, or left alone. */
export function timeArgs(t: TimeSpec | undefined): [number, number] {
  if (t === undefined) return [0, native.UTIME_OMIT];
  if (t === 'now') return [0, native.UTIME_NOW];
  return [t.sec, t.nsec];
}

/** Applies a SETATTR to a host object, through its open fd when there is one. */
export function applySetAttr(p: HostPath, isSymlink: boolean, s: SetAttr, fh: FdHandle | undefined): void {
  if (s.mode !== undefined && !isSymlink) {
    if (fh) fs.fchmodSync(fh.fd, s.mode & 0o7777);
    else fs.chmodSync(p, s.mode & 0o7777);
  }
  if (s.uid !== undefined || s.gid !== undefined) {
    if (fh) fs.fchownSync(fh.fd, s.uid ?? -1, s.gid ?? -1);
    else native.lchown(p, s.uid ?? -1, s.gid ?? -1);
  }
  if (s.size !== undefined) {
    if (fh) fs.ftruncateSync(fh.fd, s.size);
    else fs.truncateSync(p, s.size);
  }
  if (s.atime !== undefined || s.mtime !== undefined) {
    const [as, an] = timeArgs(s.atime);
    const [ms, mn] = timeArgs(s.mtime);
    if (fh) native.futimens(fh.fd, as, an, ms, mn);
    else native.utimens(p, as, an, ms, mn, true);
  }
}

/**
 * Opens a host file for a FUSE open. O_APPEND stays with the kernel (it sends the append
 * offset), since a passthrough backing file is shared by every open of the inode. With
 * `preferRdwr` the fd is opened read-write where the file allows it, so a later write-open
 * of the same inode can share it as backing file.
 */
export function openHost(p: HostPath, flags: number, preferRdwr: boolean, mode?: number): { fd: number; writable: boolean } {
  const base = flags & ~(C.O_APPEND | C.O_NOCTTY | O_ACCMODE);
  const acc = flags & O_ACCMODE;
  if (preferRdwr && acc !== C.O_RDWR) {
    try {
      return { fd: fs.openSync(p, base | C.O_RDWR, mode), writable: true };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EROFS' && code !== 'ETXTBSY' && code !== 'EACCES' && code !== 'EPERM') throw e;
    }
  }
  return { fd: fs.openSync(p, base | acc, mode), writable: acc !== C.O_RDONLY };
}

/**
 * An fd that keeps a regular file reachable once it has no name, or its inode none
 * (UNode.anon): read-only, so it can be held on any file, and never blocking.
 */
export function openToKeep(p: HostPath): number {
  return fs.openSync(p, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
}

export function readFd(h: FdHandle, offset: number, size: number): Buffer {
  const buf = Buffer.allocUnsafe(size);
  const n = fs.readSync(h.fd, buf, 0, size, offset);
  return buf.subarray(0, n);
}

export function writeFd(h: FdHandle, offset: number, data: Buffer): number {
  return fs.writeSync(h.fd, data, 0, data.length, offset);
}

/** Off the event loop: a flush to disk can take long, and other requests keep flowing. */
export function fsyncFd(fd: number, datasync: boolean): Promise<void> {
  return datasync ? fdatasyncAsync(fd) : fsyncAsync(fd);
}

export async function fsyncDir(p: HostPath, datasync: boolean): Promise<void> {
  const fd = fs.openSync(p, C.O_RDONLY | C.O_DIRECTORY);
  try {
    await fsyncFd(fd, datasync);
  } finally {
    fs.closeSync(fd);
  }
}

export function statfsOf(dir: string): { blocks: number; bfree: number; bavail: number; files: number; ffree: number; bsize: number; namelen: number; frsize: number } {
  const s = fs.statfsSync(dir);
  return { blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, bsize: s.bsize, namelen: 255, frsize: s.bsize };
}
