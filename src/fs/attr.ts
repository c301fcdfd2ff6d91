// Node's BigIntStats -> the kernel's fuse_attr, keeping nanoseconds and 64-bit inodes.

import type { BigIntStats } from 'node:fs';
import type { Attr } from '../fuse/replies.js';

const GIGA = 1_000_000_000n;

function split(ns: bigint): [number, number] {
  let s = ns / GIGA;
  let r = ns % GIGA;
  // Times before 1970 keep a non-negative nanosecond part, as struct timespec does.
  if (r < 0n) {
    s -= 1n;
    r += GIGA;
  }
  return [Number(s), Number(r)];
}

/** glibc's 64-bit dev_t (st_rdev) -> major, minor. */
export function splitDev(rdev: number): { major: number; minor: number } {
  return { major: ((rdev >>> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff), minor: (rdev & 0xff) | ((rdev >>> 12) & ~0xff) };
}

/** glibc's 64-bit dev_t -> the kernel's 32-bit new_encode_dev() form used by FUSE. */
export function encodeDev(rdev: number): number {
  const { major, minor } = splitDev(rdev);
  return ((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

/** The kernel's new_decode_dev(): FUSE's 32-bit rdev -> major, minor. */
export function decodeDev(rdev: number): { major: number; minor: number } {
  return { major: (rdev & 0xfff00) >>> 8, minor: (rdev & 0xff) | ((rdev >>> 12) & 0xfff00) };
}

export function attrFromStats(st: BigIntStats): Attr {
  const [atime, atimensec] = split(st.atimeNs);
  const [mtime, mtimensec] = split(st.mtimeNs);
  const [ctime, ctimensec] = split(st.ctimeNs);
  return {
    ino: st.ino,
    size: Number(st.size),
    blocks: Number(st.blocks),
    atime,
    atimensec,
    mtime,
    mtimensec,
    ctime,
    ctimensec,
    mode: Number(st.mode),
    nlink: Number(st.nlink),
    uid: Number(st.uid),
    gid: Number(st.gid),
    rdev: encodeDev(Number(st.rdev)),
    blksize: Number(st.blksize),
  };
}
