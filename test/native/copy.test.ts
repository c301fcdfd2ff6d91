import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SEEK_DATA, SEEK_HOLE, native, type NativeError } from '../../src/native/binding.js';

const KiB = 1024;
const MiB = 1024 * KiB;

let dir: string;
const fds: number[] = [];
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stratafs-native-copy-'));
});
afterEach(() => {
  for (const fd of fds.splice(0)) fs.closeSync(fd);
  fs.rmSync(dir, { recursive: true, force: true });
});

function open(p: string, flags: string): number {
  const fd = fs.openSync(p, flags);
  fds.push(fd);
  return fd;
}

describe('copyData', () => {
  it('copies a sparse file and keeps its holes, including a trailing one', async () => {
    const src = path.join(dir, 'src');
    const fd = fs.openSync(src, 'w');
    fs.writeSync(fd, Buffer.alloc(64 * KiB, 'a'), 0, 64 * KiB, 0);
    fs.writeSync(fd, Buffer.alloc(64 * KiB, 'b'), 0, 64 * KiB, 2 * MiB);
    fs.ftruncateSync(fd, 8 * MiB);
    fs.closeSync(fd);

    const dst = path.join(dir, 'dst');
    const r = await native.copyData(open(src, 'r'), open(dst, 'w'));
    expect(['clone', 'copy_file_range', 'readwrite']).toContain(r.method);
    expect(r.bytes).toBe(r.method === 'clone' ? 8 * MiB : 128 * KiB);

    const a = fs.statSync(src);
    const b = fs.statSync(dst);
    expect(b.size).toBe(a.size);
    expect(b.blocks).toBeLessThanOrEqual(a.blocks);
    expect(fs.readFileSync(dst).equals(fs.readFileSync(src))).toBe(true);
    const dfd = open(dst, 'r');
    expect(native.lseek(dfd, 0, SEEK_HOLE)).toBe(64 * KiB);
    expect(native.lseek(dfd, 64 * KiB, SEEK_DATA)).toBe(2 * MiB);
  });

  it('replaces whatever the destination held', async () => {
    const src = path.join(dir, 'src');
    const dst = path.join(dir, 'dst');
    fs.writeFileSync(src, 'short');
    fs.writeFileSync(dst, Buffer.alloc(1 * MiB, 'z'));
    const r = await native.copyData(open(src, 'r'), open(dst, 'r+'));
    expect(r.bytes).toBe(5);
    expect(fs.readFileSync(dst, 'utf8')).toBe('short');
  });

  it('copies an empty file', async () => {
    const src = path.join(dir, 'src');
    const dst = path.join(dir, 'dst');
    fs.writeFileSync(src, '');
    const r = await native.copyData(open(src, 'r'), open(dst, 'w'));
    expect(r.bytes).toBe(0);
    expect(fs.statSync(dst).size).toBe(0);
  });

  it('does not block the event loop while copying 64 MiB', async () => {
    const src = path.join(dir, 'big');
    const chunk = Buffer.alloc(1 * MiB);
    for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE((i * 2654435761) >>> 0, i);
    const wfd = fs.openSync(src, 'w');
    for (let i = 0; i < 64; i++) {
      chunk.writeUInt32LE(i, 0); // every MiB differs
      fs.writeSync(wfd, chunk, 0, chunk.length, i * MiB);
    }
    fs.closeSync(wfd);
    const dst = path.join(dir, 'copy');
    const sfd = open(src, 'r');
    const dfd = open(dst, 'w');

    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const t0 = process.hrtime.bigint();
    const promise = native.copyData(sfd, dfd);
    const callMs = Number(process.hrtime.bigint() - t0) / 1e6;
    let r;
    try {
      r = await promise;
    } finally {
      clearInterval(timer);
    }
    const totalMs = Number(process.hrtime.bigint() - t0) / 1e6;

    expect(r.bytes).toBe(64 * MiB);
    expect(fs.readFileSync(dst).equals(fs.readFileSync(src))).toBe(true);
    // The call itself only queues work; the copy happens on the thread pool.
    expect(callMs).toBeLessThan(Math.max(5, totalMs / 2));
    // A reflink can finish before the first 1 ms tick; a real copy cannot.
    if (r.method !== 'clone') expect(ticks).toBeGreaterThan(0);
  });

  it('rejects with a Node-style error', async () => {
    const err = (await native.copyData(1_000_000, 1_000_001).then(
      () => {
        throw new Error('expected a rejection');
      },
      (e: unknown) => e,
    )) as NativeError;
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe('EBADF');
    expect(err.errno).toBe(-9);
    expect(err.syscall).toBe('fstat');
  });

  it('rejects when the destination is not writable', async () => {
    const src = path.join(dir, 'src');
    fs.writeFileSync(src, 'data');
    const dst = path.join(dir, 'dst');
    fs.writeFileSync(dst, '');
    const err = (await native.copyData(open(src, 'r'), open(dst, 'r')).catch((e: unknown) => e)) as NativeError;
    expect(err.code).toMatch(/^E/);
    expect(err.errno).toBeLessThan(0);
    expect(typeof err.syscall).toBe('string');
  });
});

describe('copySmall', () => {
  // Bigger than its 64 KiB buffer, so the read/write fallback goes round more than once.
  const data = Buffer.alloc(150 * KiB);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 10)) & 0xff;

  for (const tryRange of [true, false]) {
    it(`copies a file's bytes at their offsets (copy_file_range ${tryRange ? 'tried' : 'skipped'})`, () => {
      const src = path.join(dir, 'src');
      const dst = path.join(dir, 'dst');
      fs.writeFileSync(src, data);
      expect(native.copySmall(open(src, 'r'), open(dst, 'w'), data.length, tryRange)).toBe(data.length);
      expect(fs.readFileSync(dst).equals(data)).toBe(true);
    });
  }

  it('stops at the end of a source shorter than asked, and names the syscall that failed', () => {
    const src = path.join(dir, 'src');
    fs.writeFileSync(src, 'short');
    expect(native.copySmall(open(src, 'r'), open(path.join(dir, 'dst'), 'w'), 1000, false)).toBe(5);
    // A destination opened read-only: the write fails, with its errno.
    fs.writeFileSync(path.join(dir, 'ro'), '');
    let err: NativeError | undefined;
    try {
      native.copySmall(open(src, 'r'), open(path.join(dir, 'ro'), 'r'), 5, false);
    } catch (e) {
      err = e as NativeError;
    }
    expect(err?.code).toBe('EBADF');
    expect(err?.syscall).toBe('write');
  });
});
