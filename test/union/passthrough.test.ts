// Lower files through FUSE passthrough in a writable union, and what happens when one is
// copied up while open. The kernel keeps a passthrough inode on its backing file while any
// open of it lasts, so a read-only open made before a copy-up keeps reading the lower data;
// the bridge moves the object to a fresh nodeid (ESTALE -> the kernel walks the path again)
// so that every later open, read or write, gets the upper copy. -o follow_copyup gives
// overlayfs's own behaviour instead (reads through the daemon follow the copy-up); the
// differential suite checks that one against the kernel.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cleanupsAfterEach, type Mounted, mountWith, tmpdir } from '../helpers/mount.js';

describe('lower files passed through in a writable union', () => {
  const cleanups = cleanupsAfterEach();

  function setup(name: string, extraO?: string): { base: string; lower: string; upper: string; mnt: string; m: Mounted } {
    const base = tmpdir(name);
    cleanups.push(() => fs.rmSync(base, { recursive: true, force: true }));
    const [lower, upper, work, mnt] = ['lower', 'upper', 'work', 'mnt'].map((d) => path.join(base, d)) as [string, string, string, string];
    for (const d of [lower, upper, work, mnt]) fs.mkdirSync(d);
    fs.mkdirSync(`${lower}/d`);
    fs.writeFileSync(`${lower}/d/f`, 'lower data\n');
    fs.writeFileSync(`${lower}/d/g`, 'lower g\n');
    fs.writeFileSync(`${lower}/d/one`, 'linked\n');
    fs.linkSync(`${lower}/d/one`, `${lower}/d/two`);
    fs.writeFileSync(`${lower}/big`, Buffer.alloc(4 << 20, 7));
    const m = mountWith(['mount', '--lower', lower, '--upper', upper, '--work', work, ...(extraO ? ['-o', extraO] : [])], mnt);
    cleanups.push(() => m.cleanup());
    return { base, lower, upper, mnt, m };
  }

  /**
   * Reads up to 64 KiB from an fd of this process in a child while the daemon is stopped,
   * within 5 s; null if the read blocked (it needed the daemon).
   */
  function readWithDaemonStopped(m: Mounted, fd: number): string | null {
    process.kill(m.pid, 'SIGSTOP');
    try {
      const r = spawnSync('head', ['-c', '65536'], { stdio: [fd, 'pipe', 'pipe'], timeout: 5000, killSignal: 'SIGKILL' });
      return r.status === 0 ? r.stdout.toString() : null;
    } finally {
      process.kill(m.pid, 'SIGCONT');
    }
  }

  it('reads of a lower file need no daemon: they are passed through to the layer', () => {
    const s = setup('pt-lower');
    const fd = fs.openSync(`${s.mnt}/d/f`, 'r');
    const got = readWithDaemonStopped(s.m, fd);
    fs.closeSync(fd);
    expect(got).toBe('lower data\n');
  });

  it('with -o follow_copyup the same read goes through the daemon', () => {
    const s = setup('pt-follow', 'follow_copyup');
    // Page cache from an earlier open would answer without the daemon: none here.
    const fd = fs.openSync(`${s.mnt}/d/f`, 'r');
    expect(readWithDaemonStopped(s.m, fd)).toBeNull();
    const b = Buffer.alloc(64);
    const before = fs.readSync(fd, b, 0, 64, 0);
    fs.writeFileSync(`${s.mnt}/d/f`, 'new\n');
    const n = fs.readSync(fd, b, 0, 64, 0);
    fs.closeSync(fd);
    expect([before, b.subarray(0, n).toString()]).toEqual([11, 'new\n']);
  });

  it('a copy-up while a lower file is open: the open keeps the lower data, every later open gets the copy', () => {
    const s = setup('pt-copyup');
    const ino = fs.statSync(`${s.mnt}/d/f`).ino;
    const reader = fs.openSync(`${s.mnt}/d/f`, 'r');
    const mid = fs.openSync(`${s.mnt}/d/f`, 'r'); // a second open shares the backing file
    // The write-open copies up; its inode is still attached to the lower file, so it is
    // served on a fresh one (no EIO, no EBUSY).
    fs.writeFileSync(`${s.mnt}/d/f`, 'changed through another fd\n');
    const b = Buffer.alloc(64);
    const n = fs.readSync(reader, b, 0, 64, 0);
    expect(b.subarray(0, n).toString()).toBe('lower data\n');
    expect(fs.readFileSync(`${s.mnt}/d/f`, 'utf8')).toBe('changed through another fd\n');
    fs.appendFileSync(`${s.mnt}/d/f`, 'more\n');
    expect(fs.readFileSync(`${s.mnt}/d/f`, 'utf8')).toBe('changed through another fd\nmore\n');
    // The object is one: same inode number, metadata of the copy through the old fd too.
    expect(fs.statSync(`${s.mnt}/d/f`).ino).toBe(ino);
    expect(fs.fstatSync(reader).size).toBe(32);
    fs.fchmodSync(reader, 0o640);
    expect(fs.statSync(`${s.mnt}/d/f`).mode & 0o777).toBe(0o640);
    fs.closeSync(mid);
    fs.closeSync(reader);
    expect(fs.readFileSync(`${s.mnt}/d/f`, 'utf8')).toBe('changed through another fd\nmore\n');
    expect(fs.readFileSync(`${s.upper}/d/f`, 'utf8')).toBe('changed through another fd\nmore\n');
    expect(fs.readFileSync(`${s.lower}/d/f`, 'utf8')).toBe('lower data\n');
  });

  it('truncate by path while the lower file is open, then reopen and mmap-free reads', () => {
    const s = setup('pt-trunc');
    const reader = fs.openSync(`${s.mnt}/d/g`, 'r');
    fs.truncateSync(`${s.mnt}/d/g`, 3);
    expect(fs.readFileSync(`${s.mnt}/d/g`, 'utf8')).toBe('low');
    const b = Buffer.alloc(64);
    expect(b.subarray(0, fs.readSync(reader, b, 0, 64, 0)).toString()).toBe('lower g\n');
    fs.closeSync(reader);
    // Opens for reading and writing alternate on the copied-up file: one backing file.
    for (let i = 0; i < 20; i++) {
      const r = fs.openSync(`${s.mnt}/d/g`, 'r');
      fs.appendFileSync(`${s.mnt}/d/g`, String(i % 10));
      expect(b.subarray(0, fs.readSync(r, b, 0, 64, 0)).toString()).toBe('low' + '0123456789012345678901'.slice(0, i + 1));
      fs.closeSync(r);
    }
  });

  it('a hard-link set: a reader on one name, a write through the other; the names stay one inode', () => {
    const s = setup('pt-links');
    const reader = fs.openSync(`${s.mnt}/d/one`, 'r');
    fs.appendFileSync(`${s.mnt}/d/two`, 'more\n');
    const b = Buffer.alloc(64);
    expect(b.subarray(0, fs.readSync(reader, b, 0, 64, 0)).toString()).toBe('linked\n');
    // `one` is still cached by the kernel on the old inode: its open is sent on again.
    expect(fs.readFileSync(`${s.mnt}/d/one`, 'utf8')).toBe('linked\nmore\n');
    expect(fs.statSync(`${s.mnt}/d/one`).ino).toBe(fs.statSync(`${s.mnt}/d/two`).ino);
    expect(fs.statSync(`${s.mnt}/d/one`).nlink).toBe(2);
    fs.closeSync(reader);
    expect(fs.statSync(`${s.upper}/d/one`).ino).toBe(fs.statSync(`${s.upper}/d/two`).ino);
  });

  it('a big lower file read through passthrough while it is copied up by a writer', () => {
    const s = setup('pt-big');
    const reader = fs.openSync(`${s.mnt}/big`, 'r');
    const w = fs.openSync(`${s.mnt}/big`, 'r+');
    fs.writeSync(w, Buffer.from('X'), 0, 1, 0);
    fs.closeSync(w);
    const all = Buffer.alloc(4 << 20);
    expect(fs.readSync(reader, all, 0, all.length, 0)).toBe(4 << 20);
    expect(all.every((v) => v === 7)).toBe(true);
    fs.closeSync(reader);
    const now = fs.readFileSync(`${s.mnt}/big`);
    expect([now.length, now[0], now[1]]).toEqual([4 << 20, 'X'.charCodeAt(0), 7]);
  });
});
