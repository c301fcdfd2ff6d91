// Encoders for reply bodies and notifications. A reply is fuse_out_header + body; the session
// prepends the header, so encoders here return the body only.

import { NotifyCode, SIZE } from './abi.js';
import { align8, putI64, putU64 } from './wire.js';

/** Attributes as the kernel wants them (fuse_attr). Times are seconds + nanoseconds. */
export interface Attr {
  ino: bigint;
  size: number;
  blocks: number;
  atime: number;
  atimensec: number;
  mtime: number;
  mtimensec: number;
  ctime: number;
  ctimensec: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  /** Device number in the kernel's new_encode_dev form, as glibc's dev_t is for 32-bit values. */
  rdev: number;
  blksize: number;
}

export interface EntryOut {
  /** 0 with a positive entryValid caches a negative lookup. */
  nodeid: number;
  generation: number;
  /** Seconds (fractions allowed) the kernel may cache the name and the attributes. */
  entryValid: number;
  attrValid: number;
  attr: Attr;
}

export interface StatfsOut {
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  bsize: number;
  namelen: number;
  frsize: number;
}

export interface InitOut {
  major: number;
  minor: number;
  maxReadahead: number;
  flags: bigint;
  maxBackground: number;
  congestionThreshold: number;
  maxWrite: number;
  timeGran: number;
  maxPages: number;
  maxStackDepth: number;
}

function putTimeout(b: Buffer, off: number, nsecOff: number, seconds: number): void {
  const s = Math.floor(seconds);
  putU64(b, off, s);
  b.writeUInt32LE(Math.round((seconds - s) * 1e9) % 1e9, nsecOff);
}

export function putAttr(b: Buffer, o: number, a: Attr): void {
  b.writeBigUInt64LE(a.ino, o);
  putU64(b, o + 8, a.size);
  putU64(b, o + 16, a.blocks);
  putI64(b, o + 24, a.atime);
  putI64(b, o + 32, a.mtime);
  putI64(b, o + 40, a.ctime);
  b.writeUInt32LE(a.atimensec, o + 48);
  b.writeUInt32LE(a.mtimensec, o + 52);
  b.writeUInt32LE(a.ctimensec, o + 56);
  b.writeUInt32LE(a.mode >>> 0, o + 60);
  b.writeUInt32LE(a.nlink >>> 0, o + 64);
  b.writeUInt32LE(a.uid >>> 0, o + 68);
  b.writeUInt32LE(a.gid >>> 0, o + 72);
  b.writeUInt32LE(a.rdev >>> 0, o + 76);
  b.writeUInt32LE(a.blksize >>> 0, o + 80);
  b.writeUInt32LE(0, o + 84);
}

function putEntry(b: Buffer, o: number, e: EntryOut): void {
  putU64(b, o, e.nodeid);
  putU64(b, o + 8, e.generation);
  putTimeout(b, o + 16, o + 32, e.entryValid);
  putTimeout(b, o + 24, o + 36, e.attrValid);
  putAttr(b, o + 40, e.attr);
}

export function entryOut(e: EntryOut): Buffer {
  const b = Buffer.alloc(SIZE.entryOut);
  putEntry(b, 0, e);
  return b;
}

export function attrOut(attr: Attr, attrValid: number): Buffer {
  const b = Buffer.alloc(SIZE.attrOut);
  putTimeout(b, 0, 8, attrValid);
  putAttr(b, 16, attr);
  return b;
}

export function openOut(fh: number, openFlags: number, backingId = 0): Buffer {
  const b = Buffer.alloc(SIZE.openOut);
  putU64(b, 0, fh);
  b.writeUInt32LE(openFlags >>> 0, 8);
  b.writeInt32LE(backingId, 12);
  return b;
}

export function createOut(e: EntryOut, fh: number, openFlags: number, backingId = 0): Buffer {
  const b = Buffer.alloc(SIZE.entryOut + SIZE.openOut);
  putEntry(b, 0, e);
  putU64(b, SIZE.entryOut, fh);
  b.writeUInt32LE(openFlags >>> 0, SIZE.entryOut + 8);
  b.writeInt32LE(backingId, SIZE.entryOut + 12);
  return b;
}

export function writeOut(size: number): Buffer {
  const b = Buffer.alloc(SIZE.writeOut);
  b.writeUInt32LE(size, 0);
  return b;
}

export function statfsOut(s: StatfsOut): Buffer {
  const b = Buffer.alloc(SIZE.statfsOut);
  putU64(b, 0, s.blocks);
  putU64(b, 8, s.bfree);
  putU64(b, 16, s.bavail);
  putU64(b, 24, s.files);
  putU64(b, 32, s.ffree);
  b.writeUInt32LE(s.bsize, 40);
  b.writeUInt32LE(s.namelen, 44);
  b.writeUInt32LE(s.frsize, 48);
  return b;
}

export function initOut(i: InitOut): Buffer {
  const b = Buffer.alloc(SIZE.initOut);
  b.writeUInt32LE(i.major, 0);
  b.writeUInt32LE(i.minor, 4);
  b.writeUInt32LE(i.maxReadahead, 8);
  b.writeUInt32LE(Number(i.flags & 0xffffffffn), 12);
  b.writeUInt16LE(i.maxBackground, 16);
  b.writeUInt16LE(i.congestionThreshold, 18);
  b.writeUInt32LE(i.maxWrite, 20);
  b.writeUInt32LE(i.timeGran, 24);
  b.writeUInt16LE(i.maxPages, 28);
  b.writeUInt16LE(0, 30); // map_alignment (DAX only)
  b.writeUInt32LE(Number((i.flags >> 32n) & 0xffffffffn), 32);
  b.writeUInt32LE(i.maxStackDepth, 36);
  return b;
}

/** GETXATTR/LISTXATTR with size 0: the kernel asks only how large the value is. */
export function xattrSizeOut(size: number): Buffer {
  const b = Buffer.alloc(SIZE.getxattrOut);
  b.writeUInt32LE(size, 0);
  return b;
}

export function lseekOut(offset: number): Buffer {
  const b = Buffer.alloc(SIZE.lseekOut);
  putU64(b, 0, offset);
  return b;
}

export function lkOut(start: number, end: number, type: number, pid: number): Buffer {
  const b = Buffer.alloc(SIZE.lkOut);
  putU64(b, 0, start);
  putU64(b, 8, end);
  b.writeUInt32LE(type, 16);
  b.writeUInt32LE(pid, 20);
  return b;
}

/**
 * Packs fuse_dirent / fuse_direntplus records into a buffer no larger than the kernel asked
 * for. add*() returns false when the record does not fit; the caller stops there and resumes
 * from that entry's offset on the next READDIR.
 */
export class DirentBuffer {
  private readonly buf: Buffer;
  private used = 0;

  constructor(readonly maxSize: number) {
    this.buf = Buffer.allocUnsafe(maxSize);
  }

  /** Bytes the next record of this name would take. */
  static recordSize(name: string, plus: boolean): number {
    return align8((plus ? SIZE.direntplus : SIZE.dirent) + Buffer.byteLength(name, 'latin1'));
  }

  fits(name: string, plus: boolean): boolean {
    return this.used + DirentBuffer.recordSize(name, plus) <= this.maxSize;
  }

  /** d_type is the S_IFMT bits of the mode shifted down, as the kernel expects. */
  add(name: string, ino: bigint, mode: number, nextOffset: number): boolean {
    return this.put(name, ino, mode, nextOffset, null);
  }

  /** Entries with nodeid 0 (".", "..") carry no lookup reference for the kernel to count. */
  addPlus(name: string, entry: EntryOut, nextOffset: number): boolean {
    return this.put(name, entry.attr.ino, entry.attr.mode, nextOffset, entry);
  }

  private put(name: string, ino: bigint, mode: number, nextOffset: number, entry: EntryOut | null): boolean {
    const size = DirentBuffer.recordSize(name, entry !== null);
    if (this.used + size > this.maxSize) return false;
    const b = this.buf;
    let o = this.used;
    b.fill(0, o, o + size);
    if (entry) {
      putEntry(b, o, entry);
      o += SIZE.entryOut;
    }
    b.writeBigUInt64LE(ino, o);
    putU64(b, o + 8, nextOffset);
    const n = b.write(name, o + SIZE.dirent, 'latin1');
    b.writeUInt32LE(n, o + 16);
    b.writeUInt32LE((mode >>> 12) & 0xf, o + 20);
    this.used += size;
    return true;
  }

  get length(): number {
    return this.used;
  }

  finish(): Buffer {
    return this.buf.subarray(0, this.used);
  }
}

/** Notifications go out as unsolicited replies: unique 0, the notify code in the error field. */
export function notification(code: NotifyCode, body: Buffer): Buffer {
  const b = Buffer.allocUnsafe(SIZE.outHeader + body.length);
  b.writeUInt32LE(b.length, 0);
  b.writeInt32LE(code, 4);
  putU64(b, 8, 0);
  body.copy(b, SIZE.outHeader);
  return b;
}

export function notifyInvalEntry(parent: number, name: string): Buffer {
  const n = Buffer.byteLength(name, 'latin1');
  const body = Buffer.alloc(16 + n + 1);
  putU64(body, 0, parent);
  body.writeUInt32LE(n, 8);
  body.write(name, 16, 'latin1');
  return notification(NotifyCode.INVAL_ENTRY, body);
}

export function notifyInvalInode(nodeid: number, offset: number, length: number): Buffer {
  const body = Buffer.alloc(24);
  putU64(body, 0, nodeid);
  putI64(body, 8, offset);
  putI64(body, 16, length);
  return notification(NotifyCode.INVAL_INODE, body);
}

export function notifyDelete(parent: number, child: number, name: string): Buffer {
  const n = Buffer.byteLength(name, 'latin1');
  const body = Buffer.alloc(24 + n + 1);
  putU64(body, 0, parent);
  putU64(body, 8, child);
  body.writeUInt32LE(n, 16);
  body.write(name, 24, 'latin1');
  return notification(NotifyCode.DELETE, body);
}
