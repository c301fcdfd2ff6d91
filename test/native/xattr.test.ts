import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { XATTR_CREATE, XATTR_REPLACE, native, type NativeError } from '../../src/native/binding.js';

let dir: string;
let file: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stratafs-native-xattr-'));
  file = path.join(dir, 'f');
  fs.writeFileSync(file, 'data');
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function thrown(fn: () => unknown): NativeError {
  try {
    fn();
  } catch (e) {
    return e as NativeError;
  }
  throw new Error('expected the call to throw');
}

describe('path xattrs (l*)', () => {
  it('sets, gets, lists and removes user.* and trusted.*', () => {
    native.lsetxattr(file, 'user.color', Buffer.from('blue'), 0);
    native.lsetxattr(file, 'trusted.overlay.opaque', Buffer.from('y'), 0);
    expect(native.lgetxattr(file, 'user.color').toString()).toBe('blue');
    expect(native.lgetxattr(file, 'trusted.overlay.opaque').toString()).toBe('y');
    expect(native.llistxattr(file).sort()).toEqual(['trusted.overlay.opaque', 'user.color']);

    native.lremovexattr(file, 'user.color');
    expect(native.llistxattr(file)).toEqual(['trusted.overlay.opaque']);
  });

  it('throws ENODATA for a missing attribute', () => {
    const e = thrown(() => native.lgetxattr(file, 'user.missing'));
    expect(e.code).toBe('ENODATA');
    expect(e.errno).toBe(-61);
    expect(e.syscall).toBe('lgetxattr');
    expect(e.path).toBe(file);
    const r = thrown(() => native.lremovexattr(file, 'user.missing'));
    expect([r.code, r.syscall]).toEqual(['ENODATA', 'lremovexattr']);
  });

  it('lgetxattrOrErrno returns the value, or the errno instead of throwing', () => {
    native.lsetxattr(file, 'user.color', Buffer.from('blue'), 0);
    expect(native.lgetxattrOrErrno(file, 'user.color')).toEqual(Buffer.from('blue'));
    expect(native.lgetxattrOrErrno(file, 'user.missing')).toBe(os.constants.errno.ENODATA);
    expect(native.lgetxattrOrErrno(path.join(dir, 'nothing'), 'user.color')).toBe(os.constants.errno.ENOENT);
  });

  it('honours XATTR_CREATE and XATTR_REPLACE', () => {
    const e1 = thrown(() => native.lsetxattr(file, 'user.a', Buffer.from('1'), XATTR_REPLACE));
    expect([e1.code, e1.errno, e1.syscall]).toEqual(['ENODATA', -61, 'lsetxattr']);
    native.lsetxattr(file, 'user.a', Buffer.from('1'), XATTR_CREATE);
    const e2 = thrown(() => native.lsetxattr(file, 'user.a', Buffer.from('2'), XATTR_CREATE));
    expect([e2.code, e2.errno]).toEqual(['EEXIST', -17]);
    native.lsetxattr(file, 'user.a', Buffer.from('3'), XATTR_REPLACE);
    expect(native.lgetxattr(file, 'user.a').toString()).toBe('3');
  });

  it('handles empty and large values (past the first read buffer)', () => {
    native.lsetxattr(file, 'user.empty', Buffer.alloc(0), 0);
    expect(native.lgetxattr(file, 'user.empty').length).toBe(0);
    // ext4 fits values up to a block in the inode's xattr block.
    const big = Buffer.from(Array.from({ length: 3900 }, (_, i) => i % 256));
    native.lsetxattr(file, 'user.big', big, 0);
    expect(native.lgetxattr(file, 'user.big').equals(big)).toBe(true);
  });

  it('lists many names (past the first read buffer)', () => {
    const names = Array.from({ length: 60 }, (_, i) => `user.${'n'.repeat(70)}${i}`);
    let stored = 0;
    for (const n of names) {
      try {
        native.lsetxattr(file, n, Buffer.alloc(0), 0);
        stored++;
      } catch (e) {
        // The block may fill up; ENOSPC is the filesystem's limit, not ours.
        expect((e as NativeError).code).toBe('ENOSPC');
        break;
      }
    }
    expect(native.llistxattr(file).length).toBe(stored);
    expect(stored).toBeGreaterThan(0);
  });

  it('does not follow symlinks', () => {
    const link = path.join(dir, 'l');
    fs.symlinkSync(file, link);
    native.lsetxattr(link, 'trusted.overlay.redirect', Buffer.from('/x'), 0);
    expect(native.lgetxattr(link, 'trusted.overlay.redirect').toString()).toBe('/x');
    expect(native.llistxattr(file)).toEqual([]);
    // user.* is not allowed on symlinks at all.
    expect(thrown(() => native.lsetxattr(link, 'user.x', Buffer.from('1'), 0)).code).toBe('EPERM');
  });

  it('accepts Buffer paths and Uint8Array values', () => {
    const raw = Buffer.concat([Buffer.from(dir + '/'), Buffer.from([0xc3, 0x28])]);
    fs.writeFileSync(raw, '');
    native.lsetxattr(raw, 'user.k', new Uint8Array([1, 2, 3]), 0);
    expect([...native.lgetxattr(raw, 'user.k')]).toEqual([1, 2, 3]);
    expect(native.llistxattr(raw)).toEqual(['user.k']);
  });
});

// ext4 caps all xattrs of an inode at one block, so values and lists larger than the
// addon's first 4 KiB read are only possible on a filesystem like tmpfs.
const shm = fs.existsSync('/dev/shm') && fs.statfsSync('/dev/shm').type === 0x01021994;
describe.skipIf(!shm)('large xattrs on tmpfs (ERANGE, size probe)', () => {
  let shmDir: string;
  beforeEach(() => {
    shmDir = fs.mkdtempSync('/dev/shm/stratafs-native-xattr-');
  });
  afterEach(() => {
    fs.rmSync(shmDir, { recursive: true, force: true });
  });

  it('reads a 60 KiB value and a 100-name list', () => {
    const f = path.join(shmDir, 'f');
    fs.writeFileSync(f, '');
    const big = Buffer.from(Array.from({ length: 60 * 1024 }, (_, i) => (i * 7) % 256));
    native.lsetxattr(f, 'trusted.big', big, 0);
    expect(native.lgetxattr(f, 'trusted.big').equals(big)).toBe(true);
    const fd = fs.openSync(f, 'r');
    try {
      expect(native.fgetxattr(fd, 'trusted.big').equals(big)).toBe(true);
    } finally {
      fs.closeSync(fd);
    }
    const names = Array.from({ length: 100 }, (_, i) => `trusted.${'n'.repeat(100)}${i}`);
    for (const n of names) native.lsetxattr(f, n, Buffer.from('1'), 0);
    expect(native.llistxattr(f).sort()).toEqual([...names, 'trusted.big'].sort());
  });
});

describe('fd xattrs (f*)', () => {
  it('sets, gets, lists and removes on an open fd', () => {
    const fd = fs.openSync(file, 'r');
    try {
      native.fsetxattr(fd, 'user.x', Buffer.from('v'), 0);
      native.fsetxattr(fd, 'trusted.t', Buffer.from('w'), 0);
      expect(native.fgetxattr(fd, 'user.x').toString()).toBe('v');
      expect(native.flistxattr(fd).sort()).toEqual(['trusted.t', 'user.x']);
      native.fremovexattr(fd, 'user.x');
      const e = thrown(() => native.fgetxattr(fd, 'user.x'));
      expect([e.code, e.errno, e.syscall, e.path]).toEqual(['ENODATA', -61, 'fgetxattr', undefined]);
      expect(native.lgetxattr(file, 'trusted.t').toString()).toBe('w');
    } finally {
      fs.closeSync(fd);
    }
  });
});
