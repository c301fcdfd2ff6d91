// lstat and fstat of host objects as the kernel's fuse_attr (nanoseconds, 64-bit inode
// numbers) plus the device, through the addon; and device-number encodings. Node's
// fs.lstatSync(p, { bigint: true }) builds 18 BigInts per call and turning them into a
// fuse_attr costs more BigInt arithmetic: in the daemon that was about half of the JS time
// of a LOOKUP (docs/benchmarks.md). The addon fills a Float64Array instead and returns the
// inode number as the one BigInt.

import { constants } from 'node:os';
import { ENOENT_ERROR, FsError } from '../fuse/errors.js';
import type { Attr } from '../fuse/replies.js';
import { native, type NativePath } from '../native/binding.js';

/** glibc's 64-bit dev_t (st_rdev) -> major, minor. */
export function splitDev(rdev: number): { major: number; minor: number } {
  return { major: ((rdev >>> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff), minor: (rdev & 0xff) | ((rdev >>> 12) & ~0xff) };
}

/** major, minor -> the kernel's new_encode_dev() form. */
export function encodeDevParts(major: number, minor: number): number {
  return ((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

/** The kernel's new_decode_dev(): FUSE's 32-bit rdev -> major, minor. */
export function decodeDev(rdev: number): { major: number; minor: number } {
  return { major: (rdev & 0xfff00) >>> 8, minor: (rdev & 0xff) | ((rdev >>> 12) & 0xfff00) };
}

/** An object's attributes as the kernel wants them, and the filesystem it lives on. */
export interface HostStat extends Attr {
  /** st_dev as glibc encodes it (exact for every device number below 2^53). */
  dev: number;
}

// Slot order of native-bindings/src/stat.c.
const DEV = 0, SIZE = 1, BLOCKS = 2, ATIME = 3, ATIME_NS = 4, MTIME = 5, MTIME_NS = 6, CTIME = 7;
const CTIME_NS = 8, MODE = 9, NLINK = 10, UID = 11, GID = 12, RDEV_MAJOR = 13, RDEV_MINOR = 14, BLKSIZE = 15;
/** One buffer for every call: the daemon is single-threaded and reads it right away. */
const slots = new Float64Array(16);

const ENOENT = constants.errno.ENOENT;
const codeOf = new Map(Object.entries(constants.errno).map(([k, v]) => [v, k]));

function hostStat(ino: bigint): HostStat {
  const s = slots;
  return {
    ino,
    size: s[SIZE]!,
    blocks: s[BLOCKS]!,
    atime: s[ATIME]!,
    atimensec: s[ATIME_NS]!,
    mtime: s[MTIME]!,
    mtimensec: s[MTIME_NS]!,
    ctime: s[CTIME]!,
    ctimensec: s[CTIME_NS]!,
    mode: s[MODE]!,
    nlink: s[NLINK]!,
    uid: s[UID]!,
    gid: s[GID]!,
    rdev: encodeDevParts(s[RDEV_MAJOR]!, s[RDEV_MINOR]!),
    blksize: s[BLKSIZE]!,
    dev: s[DEV]!,
  };
}

function failure(errno: number, syscall: string, what: NativePath | number): FsError {
  const code = codeOf.get(errno) ?? 'EIO';
  const e = new FsError(code, `${code}: ${syscall} ${typeof what === 'number' ? `fd ${what}` : String(what)}`);
  return Object.assign(e, { errno: -errno, syscall });
}

/** lstat, or undefined when nothing is there (ENOENT is an ordinary answer on lookups). */
export function lstatHost(p: NativePath): HostStat | undefined {
  const r = native.lstat(p, slots);
  if (typeof r === 'bigint') return hostStat(r);
  if (r === ENOENT) return undefined;
  throw failure(r, 'lstat', p);
}

/** lstat that fails with ENOENT when nothing is there. */
export function lstatHostOrThrow(p: NativePath): HostStat {
  const st = lstatHost(p);
  if (!st) throw ENOENT_ERROR;
  return st;
}

export function fstatHost(fd: number): HostStat {
  const r = native.fstat(fd, slots);
  if (typeof r === 'bigint') return hostStat(r);
  throw failure(r, 'fstat', fd);
}
