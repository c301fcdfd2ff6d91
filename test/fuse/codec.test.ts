// Protocol codec without a mount: requests built byte by byte as the kernel lays them out
// (include/uapi/linux/fuse.h), decoded; replies encoded and read back at the documented offsets.
import { describe, expect, it } from 'vitest';
import { InitFlag, Op } from '../../src/fuse/abi.js';
import * as out from '../../src/fuse/replies.js';
import { decodeRequest } from '../../src/fuse/requests.js';

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}
function u64(n: number | bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}
function str(s: string): Buffer {
  return Buffer.concat([Buffer.from(s, 'latin1'), Buffer.from([0])]);
}
/** A request as the kernel sends it: fuse_in_header (40 bytes) + body. */
function request(opcode: number, nodeid: number, ...body: Buffer[]): Buffer {
  const b = Buffer.concat(body);
  const h = Buffer.alloc(40);
  h.writeUInt32LE(40 + b.length, 0);
  h.writeUInt32LE(opcode, 4);
  h.writeBigUInt64LE(77n, 8);
  h.writeBigUInt64LE(BigInt(nodeid), 16);
  h.writeUInt32LE(1000, 24);
  h.writeUInt32LE(100, 28);
  h.writeUInt32LE(4242, 32);
  return Buffer.concat([h, b]);
}

describe('request decoding', () => {
  it('decodes the header with caller identity', () => {
    const r = decodeRequest(request(Op.LOOKUP, 5, str('name')));
    expect(r.h).toMatchObject({ opcode: Op.LOOKUP, unique: 77, nodeid: 5, uid: 1000, gid: 100, pid: 4242 });
    expect(r.body).toEqual({ name: 'name' });
  });

  it('keeps non-UTF-8 names byte for byte', () => {
    const raw = Buffer.from([0x66, 0xff, 0xfe, 0x80]);
    const r = decodeRequest(request(Op.LOOKUP, 1, raw, Buffer.from([0])));
    expect(Buffer.from((r.body as { name: string }).name, 'latin1')).toEqual(raw);
  });

  it('decodes INIT with flags2 into one 64-bit set', () => {
    const flags = Number(InitFlag.ASYNC_READ | InitFlag.INIT_EXT);
    const flags2 = Number(InitFlag.PASSTHROUGH >> 32n);
    const r = decodeRequest(request(Op.INIT, 0, u32(7), u32(44), u32(131072), u32(flags), u32(flags2), Buffer.alloc(44)));
    expect(r.op).toBe(Op.INIT);
    const b = r.body as { major: number; minor: number; maxReadahead: number; flags: bigint };
    expect(b.major).toBe(7);
    expect(b.minor).toBe(44);
    expect(b.maxReadahead).toBe(131072);
    expect(b.flags & InitFlag.PASSTHROUGH).toBe(InitFlag.PASSTHROUGH);
    expect(b.flags & InitFlag.INIT_EXT).toBe(InitFlag.INIT_EXT);
    expect(b.flags & InitFlag.WRITEBACK_CACHE).toBe(0n);
  });

  it('decodes SETATTR with nanosecond times', () => {
    const body = Buffer.alloc(88);
    body.writeUInt32LE(0x1 | 0x20, 0); // MODE | MTIME
    body.writeBigUInt64LE(9n, 8); // fh
    body.writeBigUInt64LE(4096n, 16); // size
    body.writeBigInt64LE(1700000000n, 40); // mtime
    body.writeUInt32LE(123456789, 60); // mtimensec
    body.writeUInt32LE(0o100644, 68); // mode
    body.writeUInt32LE(1001, 76); // uid
    body.writeUInt32LE(1002, 80); // gid
    const r = decodeRequest(request(Op.SETATTR, 3, body));
    expect(r.body).toMatchObject({ valid: 0x21, fh: 9, size: 4096, mtime: 1700000000, mtimensec: 123456789, mode: 0o100644, uid: 1001, gid: 1002 });
  });

  it('decodes RENAME and RENAME2 with both names and flags', () => {
    const r1 = decodeRequest(request(Op.RENAME, 2, u64(9), str('a'), str('b')));
    expect(r1.body).toEqual({ newdir: 9, flags: 0, oldname: 'a', newname: 'b' });
    const r2 = decodeRequest(request(Op.RENAME2, 2, u64(9), u32(2), u32(0), str('x'), str('y')));
    expect(r2.body).toEqual({ newdir: 9, flags: 2, oldname: 'x', newname: 'y' });
  });

  it('decodes WRITE data without copying past its size', () => {
    const data = Buffer.from('hello world');
    const r = decodeRequest(request(Op.WRITE, 4, u64(3), u64(1 << 20), u32(5), u32(0), u64(0), u32(0o2), u32(0), data));
    const b = r.body as { fh: number; offset: number; size: number; data: Buffer; flags: number };
    expect(b).toMatchObject({ fh: 3, offset: 1 << 20, size: 5, flags: 2 });
    expect(b.data.toString()).toBe('hello');
  });

  it('decodes SYMLINK (name, then target), MKNOD, MKDIR, CREATE, LINK', () => {
    expect(decodeRequest(request(Op.SYMLINK, 1, str('ln'), str('../target'))).body).toMatchObject({ name: 'ln' });
    expect((decodeRequest(request(Op.SYMLINK, 1, str('ln'), str('../target'))).body as { target: Buffer }).target.toString()).toBe('../target');
    expect(decodeRequest(request(Op.MKNOD, 1, u32(0o20644), u32(0x0103), u32(0o22), u32(0), str('dev'))).body).toEqual({ mode: 0o20644, rdev: 0x103, umask: 0o22, name: 'dev' });
    expect(decodeRequest(request(Op.MKDIR, 1, u32(0o755), u32(0o22), str('d'))).body).toEqual({ mode: 0o755, umask: 0o22, name: 'd' });
    expect(decodeRequest(request(Op.CREATE, 1, u32(0o1101), u32(0o100600), u32(0o22), u32(0), str('f'))).body).toEqual({ flags: 0o1101, mode: 0o100600, umask: 0o22, openFlags: 0, name: 'f' });
    expect(decodeRequest(request(Op.LINK, 7, u64(12), str('hard'))).body).toEqual({ oldnodeid: 12, newname: 'hard' });
  });

  it('decodes BATCH_FORGET, xattr, lock, lseek, fallocate and copy_file_range bodies', () => {
    expect(decodeRequest(request(Op.BATCH_FORGET, 0, u32(2), u32(0), u64(5), u64(1), u64(6), u64(3))).body).toEqual({
      forgets: [{ nodeid: 5, nlookup: 1 }, { nodeid: 6, nlookup: 3 }],
    });
    const sx = decodeRequest(request(Op.SETXATTR, 1, u32(3), u32(1), str('user.k'), Buffer.from('abc')));
    expect(sx.body).toMatchObject({ size: 3, flags: 1, name: 'user.k' });
    expect((sx.body as { value: Buffer }).value.toString()).toBe('abc');
    expect(decodeRequest(request(Op.GETXATTR, 1, u32(0), u32(0), str('user.k'))).body).toEqual({ size: 0, name: 'user.k' });
    expect(decodeRequest(request(Op.LISTXATTR, 1, u32(64), u32(0))).body).toEqual({ size: 64 });
    const lk = decodeRequest(request(Op.SETLKW, 1, u64(4), u64(0xdeadbeefcafen), u64(10), u64(20), u32(1), u32(99), u32(0), u32(0)));
    expect(lk.op).toBe(Op.SETLKW);
    expect(lk.body).toEqual({ fh: 4, owner: 0xdeadbeefcafen, lk: { start: 10, end: 20, type: 1, pid: 99 }, lkFlags: 0 });
    expect(decodeRequest(request(Op.LSEEK, 1, u64(4), u64(8192), u32(3), u32(0))).body).toEqual({ fh: 4, offset: 8192, whence: 3 });
    expect(decodeRequest(request(Op.FALLOCATE, 1, u64(4), u64(0), u64(1 << 20), u32(1), u32(0))).body).toEqual({ fh: 4, offset: 0, length: 1 << 20, mode: 1 });
    expect(decodeRequest(request(Op.COPY_FILE_RANGE, 1, u64(1), u64(2), u64(3), u64(4), u64(5), u64(6), u64(0))).body).toEqual({
      fhIn: 1, offIn: 2, nodeidOut: 3, fhOut: 4, offOut: 5, len: 6, flags: 0,
    });
    expect(decodeRequest(request(Op.INTERRUPT, 0, u64(1234))).body).toEqual({ unique: 1234 });
    expect(decodeRequest(request(Op.ACCESS, 1, u32(4), u32(0))).body).toEqual({ mask: 4 });
  });

  it('decodes an unknown opcode as op -1 and refuses a truncated body', () => {
    expect(decodeRequest(request(4095, 1)).op).toBe(-1);
    expect(() => decodeRequest(request(Op.SETATTR, 1, Buffer.alloc(10)))).toThrow(/SETATTR/);
    expect(() => decodeRequest(Buffer.alloc(12))).toThrow(/short request/);
  });
});

const attr: out.Attr = {
  ino: 0x1_0000_0002n, size: 5000, blocks: 16, atime: 1, atimensec: 2, mtime: 1700000000, mtimensec: 999999999, ctime: 3, ctimensec: 4,
  mode: 0o100644, nlink: 2, uid: 1000, gid: 1001, rdev: 0, blksize: 4096,
};

describe('reply encoding', () => {
  it('lays out fuse_entry_out with timeouts split into seconds and nanoseconds', () => {
    const b = out.entryOut({ nodeid: 42, generation: 0, entryValid: 1.5, attrValid: 86400, attr });
    expect(b.length).toBe(128);
    expect(b.readBigUInt64LE(0)).toBe(42n);
    expect(b.readBigUInt64LE(16)).toBe(1n);
    expect(b.readUInt32LE(32)).toBe(500_000_000);
    expect(b.readBigUInt64LE(24)).toBe(86400n);
    expect(b.readBigUInt64LE(40)).toBe(0x1_0000_0002n); // 64-bit inode number survives
    expect(b.readBigUInt64LE(40 + 32)).toBe(1700000000n);
    expect(b.readUInt32LE(40 + 52)).toBe(999999999);
    expect(b.readUInt32LE(40 + 60)).toBe(0o100644);
    expect(b.readUInt32LE(40 + 68)).toBe(1000);
  });


  it('writes times before 1970 and past 2^32 seconds as signed 64-bit seconds', () => {
    for (const t of [-1, -(2 ** 32) - 5, 2 ** 40 + 3, 0]) {
      const b = out.attrOut({ ...attr, atime: t, mtime: t, ctime: t }, 0);
      expect([b.readBigInt64LE(16 + 24), b.readBigInt64LE(16 + 32), b.readBigInt64LE(16 + 40)]).toEqual([BigInt(t), BigInt(t), BigInt(t)]);
    }
  });
  it('lays out fuse_attr_out, fuse_open_out with a backing id, and create = entry + open', () => {
    const a = out.attrOut(attr, 2);
    expect(a.length).toBe(104);
    expect(a.readBigUInt64LE(0)).toBe(2n);
    expect(a.readBigUInt64LE(16)).toBe(attr.ino);
    const o = out.openOut(7, 1 << 7, 3);
    expect([o.readBigUInt64LE(0), o.readUInt32LE(8), o.readInt32LE(12)]).toEqual([7n, 128, 3]);
    const c = out.createOut({ nodeid: 9, generation: 0, entryValid: 1, attrValid: 1, attr }, 11, 0, 0);
    expect(c.length).toBe(144);
    expect(c.readBigUInt64LE(128)).toBe(11n);
  });

  it('puts flags2 and max_stack_depth where 7.40 expects them in fuse_init_out', () => {
    const b = out.initOut({ major: 7, minor: 40, maxReadahead: 131072, flags: InitFlag.PASSTHROUGH | InitFlag.INIT_EXT | InitFlag.MAX_PAGES, maxBackground: 64, congestionThreshold: 48, maxWrite: 1 << 20, timeGran: 1, maxPages: 256, maxStackDepth: 1 });
    expect(b.length).toBe(64);
    expect(b.readUInt32LE(12)).toBe(Number(InitFlag.INIT_EXT | InitFlag.MAX_PAGES));
    expect(b.readUInt32LE(20)).toBe(1 << 20);
    expect(b.readUInt16LE(28)).toBe(256);
    expect(b.readUInt32LE(32)).toBe(1 << 5); // passthrough is flags2 bit 5
    expect(b.readUInt32LE(36)).toBe(1);
  });

  it('packs dirents 8-byte aligned and stops when the next one does not fit', () => {
    const d = new out.DirentBuffer(80);
    expect(d.add('a', 5n, 0o100644, 1)).toBe(true); // 24 + 1 -> 32
    expect(d.add('abcdefghi', 6n, 0o040755, 2)).toBe(true); // 24 + 9 -> 40
    expect(d.add('zz', 7n, 0o120777, 3)).toBe(false); // 72 + 32 > 80
    const b = d.finish();
    expect(b.length).toBe(72);
    expect(b.readBigUInt64LE(0)).toBe(5n);
    expect(b.readBigUInt64LE(8)).toBe(1n);
    expect(b.readUInt32LE(16)).toBe(1);
    expect(b.readUInt32LE(20)).toBe(8); // DT_REG
    expect(b.readUInt32LE(32 + 20)).toBe(4); // DT_DIR
    expect(b.subarray(32 + 24, 32 + 33).toString()).toBe('abcdefghi');
  });

  it('packs direntplus as entry_out followed by the dirent', () => {
    const d = new out.DirentBuffer(4096);
    d.addPlus('f', { nodeid: 3, generation: 0, entryValid: 1, attrValid: 1, attr }, 1);
    const b = d.finish();
    expect(b.length).toBe(160);
    expect(b.readBigUInt64LE(0)).toBe(3n);
    expect(b.readBigUInt64LE(128)).toBe(attr.ino);
    expect(b.readUInt32LE(128 + 16)).toBe(1);
    expect(String.fromCharCode(b[152]!)).toBe('f');
  });

  it('encodes notifications with unique 0 and the code in the error field', () => {
    const n = out.notifyInvalEntry(5, 'x');
    expect(n.readUInt32LE(0)).toBe(n.length);
    expect(n.readInt32LE(4)).toBe(3);
    expect(n.readBigUInt64LE(8)).toBe(0n);
    expect(n.readBigUInt64LE(16)).toBe(5n);
    expect(n.readUInt32LE(24)).toBe(1);
    const i = out.notifyInvalInode(9, 0, -1);
    expect(i.readBigInt64LE(32)).toBe(-1n);
  });
});
