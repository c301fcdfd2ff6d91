import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  RENAME_EXCHANGE,
  RENAME_NOREPLACE,
  RENAME_WHITEOUT,
  SEEK_DATA,
  SEEK_END,
  SEEK_HOLE,
  SEEK_SET,
  UTIME_NOW,
  UTIME_OMIT,
  native,
  type NativeError,
} from '../../src/native/binding.js';

const { S_IFCHR, S_IFIFO } = fs.constants;
const KiB = 1024;
const MiB = 1024 * KiB;

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stratafs-native-sys-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Runs fn, which must throw, and returns what it threw. */
function thrown(fn: () => unknown): NativeError {
  try {
    fn();
  } catch (e) {
    return e as NativeError;
  }
  throw new Error('expected the call to throw');
}

function writeSparse(p: string): void {
  // 64 KiB extents: aligned to any block size ext4/xfs/btrfs/tmpfs use.
  const fd = fs.openSync(p, 'w');
  fs.writeSync(fd, Buffer.alloc(64 * KiB, 'a'), 0, 64 * KiB, 0);
  fs.writeSync(fd, Buffer.alloc(64 * KiB, 'b'), 0, 64 * KiB, 1 * MiB);
  fs.ftruncateSync(fd, 4 * MiB);
  fs.closeSync(fd);
}

describe('mknod', () => {
  it('creates a 0/0 character device (a whiteout)', () => {
    const p = path.join(dir, 'wh');
    native.mknod(p, S_IFCHR | 0o000, 0, 0);
    const st = fs.lstatSync(p);
    expect(st.isCharacterDevice()).toBe(true);
    expect(st.rdev).toBe(0);
  });

  it('encodes major/minor with makedev', () => {
    const p = path.join(dir, 'null');
    native.mknod(p, S_IFCHR | 0o600, 1, 3);
    const st = fs.lstatSync(p);
    expect(st.isCharacterDevice()).toBe(true);
    expect(st.rdev).toBe((1 << 8) | 3);
  });

  it('creates a fifo', () => {
    const p = path.join(dir, 'fifo');
    native.mknod(p, S_IFIFO | 0o644, 0, 0);
    const st = fs.lstatSync(p);
    expect(st.isFIFO()).toBe(true);
    expect(st.mode & 0o777).toBe(0o644 & ~process.umask());
  });

  it('accepts a Buffer path with bytes that are not UTF-8', () => {
    const name = Buffer.from([0x66, 0xff, 0xfe, 0x6f]);
    const p = Buffer.concat([Buffer.from(dir + '/'), name]);
    native.mknod(p, S_IFIFO | 0o600, 0, 0);
    const names = fs.readdirSync(dir, { encoding: 'buffer' });
    expect(names.some((n) => n.equals(name))).toBe(true);
  });

  it('throws EEXIST with path', () => {
    const p = path.join(dir, 'x');
    fs.writeFileSync(p, '');
    const e = thrown(() => native.mknod(p, S_IFIFO | 0o600, 0, 0));
    expect(e.code).toBe('EEXIST');
    expect(e.errno).toBe(-17);
    expect(e.syscall).toBe('mknod');
    expect(e.path).toBe(p);
  });
});

describe('renameat2', () => {
  it('NOREPLACE fails with EEXIST and leaves both files', () => {
    const a = path.join(dir, 'a');
    const b = path.join(dir, 'b');
    fs.writeFileSync(a, 'A');
    fs.writeFileSync(b, 'B');
    const e = thrown(() => native.renameat2(a, b, RENAME_NOREPLACE));
    expect(e.code).toBe('EEXIST');
    expect(e.errno).toBe(-17);
    expect(e.syscall).toBe('renameat2');
    expect(e.path).toBe(a);
    expect(e.dest).toBe(b);
    expect(e.message).toBe(`EEXIST: file already exists, renameat2 '${a}' -> '${b}'`);
    expect(fs.readFileSync(a, 'utf8')).toBe('A');
    expect(fs.readFileSync(b, 'utf8')).toBe('B');
  });

  it('NOREPLACE renames onto a free name', () => {
    const a = path.join(dir, 'a');
    fs.writeFileSync(a, 'A');
    native.renameat2(a, path.join(dir, 'c'), RENAME_NOREPLACE);
    expect(fs.existsSync(a)).toBe(false);
    expect(fs.readFileSync(path.join(dir, 'c'), 'utf8')).toBe('A');
  });

  it('EXCHANGE swaps two entries atomically', () => {
    const a = path.join(dir, 'a');
    const b = path.join(dir, 'b');
    fs.writeFileSync(a, 'A');
    fs.mkdirSync(b);
    fs.writeFileSync(path.join(b, 'inner'), 'I');
    native.renameat2(a, b, RENAME_EXCHANGE);
    expect(fs.lstatSync(a).isDirectory()).toBe(true);
    expect(fs.readFileSync(path.join(a, 'inner'), 'utf8')).toBe('I');
    expect(fs.readFileSync(b, 'utf8')).toBe('A');
  });

  it('WHITEOUT leaves a 0/0 character device at the old name', () => {
    const a = path.join(dir, 'a');
    const b = path.join(dir, 'b');
    fs.writeFileSync(a, 'A');
    native.renameat2(a, b, RENAME_WHITEOUT);
    const st = fs.lstatSync(a);
    expect(st.isCharacterDevice()).toBe(true);
    expect(st.rdev).toBe(0);
    expect(fs.readFileSync(b, 'utf8')).toBe('A');
  });

  it('plain rename with flags 0', () => {
    const a = path.join(dir, 'a');
    fs.writeFileSync(a, 'A');
    native.renameat2(a, path.join(dir, 'z'), 0);
    expect(fs.readFileSync(path.join(dir, 'z'), 'utf8')).toBe('A');
  });
});

describe('utimens / futimens', () => {
  it('sets nanosecond times, including seconds beyond 2^31', () => {
    const p = path.join(dir, 'f');
    fs.writeFileSync(p, 'x');
    const mSec = 2 ** 32 + 5; // year 2106
    native.utimens(p, 1_700_000_000, 123_456_789, mSec, 987_654_321, false);
    const st = fs.lstatSync(p, { bigint: true });
    expect(st.atimeNs).toBe(1_700_000_000n * 1_000_000_000n + 123_456_789n);
    expect(st.mtimeNs).toBe(BigInt(mSec) * 1_000_000_000n + 987_654_321n);
  });

  it('honours UTIME_OMIT and UTIME_NOW', () => {
    const p = path.join(dir, 'f');
    fs.writeFileSync(p, 'x');
    native.utimens(p, 1000, 1, 2000, 2, false);
    native.utimens(p, 0, UTIME_OMIT, 0, UTIME_NOW, false);
    const st = fs.lstatSync(p, { bigint: true });
    expect(st.atimeNs).toBe(1000n * 1_000_000_000n + 1n);
    const nowSec = BigInt(Math.floor(Date.now() / 1000));
    expect(st.mtimeNs / 1_000_000_000n >= nowSec - 5n).toBe(true);
  });

  it('nofollow changes the symlink, not its target', () => {
    const target = path.join(dir, 't');
    const link = path.join(dir, 'l');
    fs.writeFileSync(target, 'x');
    fs.symlinkSync(target, link);
    const before = fs.lstatSync(target, { bigint: true }).mtimeNs;
    native.utimens(link, 500, 0, 600, 700, true);
    expect(fs.lstatSync(link, { bigint: true }).mtimeNs).toBe(600n * 1_000_000_000n + 700n);
    expect(fs.lstatSync(target, { bigint: true }).mtimeNs).toBe(before);
    native.utimens(link, 500, 0, 800, 0, false);
    expect(fs.lstatSync(target, { bigint: true }).mtimeNs).toBe(800n * 1_000_000_000n);
  });

  it('futimens works on an fd', () => {
    const p = path.join(dir, 'f');
    const fd = fs.openSync(p, 'w');
    try {
      native.futimens(fd, 10, 20, 30, 40);
    } finally {
      fs.closeSync(fd);
    }
    const st = fs.lstatSync(p, { bigint: true });
    expect(st.atimeNs).toBe(10n * 1_000_000_000n + 20n);
    expect(st.mtimeNs).toBe(30n * 1_000_000_000n + 40n);
  });

  it('rejects a bad nanosecond value with EINVAL', () => {
    const p = path.join(dir, 'f');
    fs.writeFileSync(p, 'x');
    const e = thrown(() => native.utimens(p, 0, 2_000_000_000, 0, 0, false));
    expect(e.code).toBe('EINVAL');
    expect(e.errno).toBe(-22);
    expect(e.syscall).toBe('utimensat');
  });
});

describe('lchown', () => {
  it('changes the symlink itself; -1 leaves a field alone', () => {
    const target = path.join(dir, 't');
    const link = path.join(dir, 'l');
    fs.writeFileSync(target, 'x');
    fs.symlinkSync(target, link);
    native.lchown(link, 1234, 5678);
    let st = fs.lstatSync(link);
    expect([st.uid, st.gid]).toEqual([1234, 5678]);
    const t = fs.lstatSync(target);
    expect([t.uid, t.gid]).toEqual([process.getuid!(), process.getgid!()]);
    native.lchown(link, -1, 999);
    st = fs.lstatSync(link);
    expect([st.uid, st.gid]).toEqual([1234, 999]);
  });
});

describe('lseek', () => {
  it('finds data and holes in a sparse file', () => {
    const p = path.join(dir, 'sparse');
    writeSparse(p);
    const fd = fs.openSync(p, 'r');
    try {
      expect(native.lseek(fd, 0, SEEK_DATA)).toBe(0);
      expect(native.lseek(fd, 0, SEEK_HOLE)).toBe(64 * KiB);
      expect(native.lseek(fd, 64 * KiB, SEEK_DATA)).toBe(1 * MiB);
      expect(native.lseek(fd, 1 * MiB, SEEK_HOLE)).toBe(1 * MiB + 64 * KiB);
      // Trailing hole: there is no more data, and EOF counts as a hole.
      expect(native.lseek(fd, 2 * MiB, SEEK_HOLE)).toBe(2 * MiB);
      const e = thrown(() => native.lseek(fd, 2 * MiB, SEEK_DATA));
      expect(e.code).toBe('ENXIO');
      expect(e.errno).toBe(-6);
      expect(e.syscall).toBe('lseek');
      expect(e.path).toBeUndefined();
      expect(native.lseek(fd, 0, SEEK_END)).toBe(4 * MiB);
      expect(native.lseek(fd, 2 ** 40, SEEK_SET)).toBe(2 ** 40);
    } finally {
      fs.closeSync(fd);
    }
  });
});

describe('fallocate', () => {
  it('PUNCH_HOLE deallocates a range and keeps the size', () => {
    const p = path.join(dir, 'f');
    fs.writeFileSync(p, Buffer.alloc(256 * KiB, 'x'));
    const fd = fs.openSync(p, 'r+');
    try {
      const blocksBefore = fs.fstatSync(fd).blocks;
      native.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 64 * KiB, 64 * KiB);
      const st = fs.fstatSync(fd);
      expect(st.size).toBe(256 * KiB);
      expect(st.blocks).toBeLessThan(blocksBefore);
      expect(native.lseek(fd, 0, SEEK_HOLE)).toBe(64 * KiB);
      const buf = Buffer.alloc(64 * KiB);
      fs.readSync(fd, buf, 0, buf.length, 64 * KiB);
      expect(buf.every((b) => b === 0)).toBe(true);
    } finally {
      fs.closeSync(fd);
    }
  });

  it('mode 0 allocates and extends', () => {
    const p = path.join(dir, 'f');
    const fd = fs.openSync(p, 'w');
    try {
      native.fallocate(fd, 0, 0, 1 * MiB);
      expect(fs.fstatSync(fd).size).toBe(1 * MiB);
    } finally {
      fs.closeSync(fd);
    }
  });

  it('PUNCH_HOLE without KEEP_SIZE is EOPNOTSUPP', () => {
    const fd = fs.openSync(path.join(dir, 'f'), 'w');
    try {
      const e = thrown(() => native.fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 4096));
      expect(e.errno).toBe(-95);
      expect(e.syscall).toBe('fallocate');
    } finally {
      fs.closeSync(fd);
    }
  });
});

describe('copyFileRange / ficlone', () => {
  it('copies one range at explicit offsets', () => {
    const src = path.join(dir, 's');
    const dst = path.join(dir, 'd');
    const data = Buffer.from(Array.from({ length: 100_000 }, (_, i) => i % 251));
    fs.writeFileSync(src, data);
    const fi = fs.openSync(src, 'r');
    const fo = fs.openSync(dst, 'w');
    try {
      const n = native.copyFileRange(fi, 10, fo, 5, 1000);
      expect(n).toBe(1000);
      // Explicit offsets: the file positions are untouched.
      expect(native.lseek(fi, 0, 1)).toBe(0);
      expect(native.copyFileRange(fi, 100_000, fo, 0, 10)).toBe(0); // at EOF
    } finally {
      fs.closeSync(fi);
      fs.closeSync(fo);
    }
    const out = fs.readFileSync(dst);
    expect(out.length).toBe(1005);
    expect(out.subarray(5).equals(data.subarray(10, 1010))).toBe(true);
  });

  it('ficlone clones or fails with a Node-style error', () => {
    const src = path.join(dir, 's');
    fs.writeFileSync(src, 'hello');
    const fi = fs.openSync(src, 'r');
    const fo = fs.openSync(path.join(dir, 'd'), 'w');
    try {
      native.ficlone(fo, fi);
      expect(fs.readFileSync(path.join(dir, 'd'), 'utf8')).toBe('hello');
    } catch (e) {
      // ext4 and tmpfs cannot reflink.
      const err = e as NativeError;
      expect([-95, -18, -22]).toContain(err.errno);
      expect(err.syscall).toBe('ficlone');
    } finally {
      fs.closeSync(fi);
      fs.closeSync(fo);
    }
  });
});

describe('errors', () => {
  it('carry code, negative errno, syscall, path and a Node-like message', () => {
    const p = path.join(dir, 'missing', 'x');
    const e = thrown(() => native.lgetxattr(p, 'user.x'));
    expect(e).toBeInstanceOf(Error);
    expect(e.code).toBe('ENOENT');
    expect(e.errno).toBe(-2);
    expect(e.syscall).toBe('lgetxattr');
    expect(e.path).toBe(p);
    expect(e.message).toBe(`ENOENT: no such file or directory, lgetxattr '${p}'`);
    // Same shape as Node's own fs errors.
    const ne = thrown(() => fs.lstatSync(p)) as NativeError;
    expect([ne.code, ne.errno]).toEqual([e.code, e.errno]);
  });

  it('fd calls have no path', () => {
    const e = thrown(() => native.fgetxattr(1_000_000, 'user.x'));
    expect(e.code).toBe('EBADF');
    expect(e.errno).toBe(-9);
    expect(e.syscall).toBe('fgetxattr');
    expect('path' in e).toBe(false);
  });

  it('bad arguments are TypeErrors/RangeErrors, not errno errors', () => {
    expect(() => native.mknod(42 as unknown as string, 0, 0, 0)).toThrow(TypeError);
    expect(() => native.mknod(`${dir}/a\0b`, S_IFIFO, 0, 0)).toThrow(/null bytes/);
    expect(() => native.lseek(0, 1.5, SEEK_SET)).toThrow(RangeError);
    expect(() => native.lseek(-1, 0, SEEK_SET)).toThrow(RangeError);
    expect(() => (native.lchown as unknown as (p: string) => void)(dir)).toThrow(TypeError);
  });

  it('path errors keep non-UTF-8 names readable', () => {
    const p = Buffer.concat([Buffer.from(dir + '/nope/'), Buffer.from([0xff])]);
    const e = thrown(() => native.llistxattr(p));
    expect(e.code).toBe('ENOENT');
    expect(e.path).toBe(`${dir}/nope/\ufffd`);
  });
});

describe('capSysAdmin', () => {
  it('matches CapEff bit 21 in /proc/self/status', () => {
    const line = fs.readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith('CapEff:'))!;
    const eff = BigInt('0x' + line.split(/\s+/)[1]);
    expect(native.capSysAdmin()).toBe((eff & (1n << 21n)) !== 0n);
  });
});
