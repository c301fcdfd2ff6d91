// lstatHost/fstatHost (the addon's lstat into a Float64Array) against Node's own
// BigIntStats of the same objects: every fuse_attr field, nanosecond times, 64-bit
// inode numbers, device numbers, and ENOENT as an answer rather than a throw.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decodeDev, fstatHost, lstatHost, lstatHostOrThrow, splitDev, type HostStat } from '../../src/fs/attr.js';
import { native } from '../../src/native/binding.js';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stratafs-attr-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const GIGA = 1_000_000_000n;

/** What Node says, in HostStat's shape. */
function expected(p: string): HostStat {
  const st = fs.lstatSync(p, { bigint: true });
  const { major, minor } = splitDev(Number(st.rdev));
  const t = (ns: bigint): [number, number] => [Number(ns / GIGA), Number(ns % GIGA)];
  const [atime, atimensec] = t(st.atimeNs);
  const [mtime, mtimensec] = t(st.mtimeNs);
  const [ctime, ctimensec] = t(st.ctimeNs);
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
    rdev: ((minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)) >>> 0,
    blksize: Number(st.blksize),
    dev: Number(st.dev),
  };
}

describe('lstatHost / fstatHost', () => {
  it('match Node for a file, a dir, a symlink, a fifo and a device, nanoseconds included', () => {
    const file = path.join(dir, 'f');
    fs.writeFileSync(file, 'x'.repeat(5000));
    native.utimens(file, 1_600_000_000, 123_456_789, 1_700_000_000, 987_654_321, true);
    fs.chownSync(file, 1234, 5678);
    fs.linkSync(file, path.join(dir, 'f2'));
    fs.symlinkSync('f', path.join(dir, 'l'));
    native.mknod(path.join(dir, 'p'), fs.constants.S_IFIFO | 0o640, 0, 0);
    native.mknod(path.join(dir, 'c'), fs.constants.S_IFCHR | 0o600, 259, 70_000);
    native.mknod(path.join(dir, 'w'), fs.constants.S_IFCHR, 0, 0);
    for (const n of ['f', 'l', 'p', 'c', 'w', '']) expect(lstatHost(path.join(dir, n)), n).toEqual(expected(path.join(dir, n)));
    const st = lstatHost(file)!;
    expect([st.atime, st.atimensec, st.mtime, st.mtimensec, st.nlink, st.uid, st.gid]).toEqual([1_600_000_000, 123_456_789, 1_700_000_000, 987_654_321, 2, 1234, 5678]);
    expect(decodeDev(lstatHost(path.join(dir, 'c'))!.rdev)).toEqual({ major: 259, minor: 70_000 });
    const fd = fs.openSync(file, 'r');
    try {
      expect(fstatHost(fd)).toEqual(expected(file));
    } finally {
      fs.closeSync(fd);
    }
  });

  it('answer ENOENT with undefined, throw other errors with the errno and the path', () => {
    expect(lstatHost(path.join(dir, 'missing'))).toBeUndefined();
    expect(() => lstatHostOrThrow(path.join(dir, 'missing'))).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    fs.writeFileSync(path.join(dir, 'f'), '');
    expect(() => lstatHost(path.join(dir, 'f', 'below'))).toThrow(expect.objectContaining({ code: 'ENOTDIR', syscall: 'lstat', errno: -20 }));
    expect(() => fstatHost(987_654)).toThrow(expect.objectContaining({ code: 'EBADF', syscall: 'fstat' }));
  });

  it('take names as raw bytes', () => {
    const name = Buffer.from([0x66, 0xff, 0xfe]);
    const p = Buffer.concat([Buffer.from(`${dir}/`), name]);
    fs.writeFileSync(p, 'abc');
    expect(lstatHost(p)?.size).toBe(3);
  });

  it('reject a slot array of the wrong type or size', () => {
    expect(() => native.lstat(dir, new Float64Array(4))).toThrow(TypeError);
    expect(() => native.lstat(dir, new Uint8Array(128) as unknown as Float64Array)).toThrow(TypeError);
  });
});
