// Plain file-system workloads run from the benchmark process against any directory: a
// mount under test or the disk itself. Each returns the seconds it took and checks its
// own result, so a driver that answers wrongly fails instead of looking fast.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { seconds } from './measure.js';

/** A tree of n small files in dirs of 100, for the stat workloads. Returns relative paths. */
export function makeFileTree(root: string, n: number): string[] {
  const paths: string[] = [];
  for (let i = 0; i < n; i++) {
    const dir = `d${Math.floor(i / 100)}`;
    if (i % 100 === 0) fs.mkdirSync(path.join(root, dir), { recursive: true });
    const rel = `${dir}/f${i}`;
    fs.writeFileSync(path.join(root, rel), String(i));
    paths.push(rel);
  }
  return paths;
}

export function statAll(root: string, paths: string[]): number {
  let size = 0;
  const t = seconds(() => {
    for (const p of paths) size += fs.lstatSync(`${root}/${p}`).size;
  });
  const expected = paths.reduce((a, p) => a + String(Number(p.slice(p.lastIndexOf('f') + 1))).length, 0);
  if (size !== expected) throw new Error(`stat under ${root}: sizes add up to ${size}, expected ${expected}`);
  return t;
}

/** Deterministic content, so a read can be checked without keeping a copy. */
function pattern(size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i += 4) b.writeUInt32LE((i * 2654435761) >>> 0, i);
  return b;
}

export function seqWrite(file: string, totalBytes: number, blockSize = 1 << 20): number {
  const block = pattern(blockSize);
  const fd = fs.openSync(file, 'w');
  const t = seconds(() => {
    for (let off = 0; off < totalBytes; off += blockSize) fs.writeSync(fd, block, 0, blockSize, off);
  });
  fs.closeSync(fd);
  if (fs.statSync(file).size !== totalBytes) throw new Error(`${file}: wrote ${fs.statSync(file).size} bytes, expected ${totalBytes}`);
  return t;
}

export function seqRead(file: string, blockSize = 1 << 20): number {
  const buf = Buffer.allocUnsafe(blockSize);
  const expected = pattern(blockSize);
  const fd = fs.openSync(file, 'r');
  let total = 0;
  let firstBlockOk = false;
  const t = seconds(() => {
    for (;;) {
      const n = fs.readSync(fd, buf, 0, blockSize, total);
      if (n === 0) break;
      if (total === 0) firstBlockOk = n === blockSize && buf.equals(expected);
      total += n;
    }
  });
  fs.closeSync(fd);
  if (!firstBlockOk || total !== fs.statSync(file).size) throw new Error(`${file}: read back wrong data (${total} bytes)`);
  return t;
}

export function createFiles(dir: string, n: number): number {
  fs.mkdirSync(dir, { recursive: true });
  const t = seconds(() => {
    for (let i = 0; i < n; i++) fs.closeSync(fs.openSync(`${dir}/new-${i}`, 'wx'));
  });
  if (fs.readdirSync(dir).length !== n) throw new Error(`${dir}: ${fs.readdirSync(dir).length} files, expected ${n}`);
  return t;
}

/** A recursive lstat walk (readdir, then lstat of every entry); the count must match. */
export function walkTree(root: string, expectedEntries: number): number {
  let count = 0;
  const t = seconds(() => {
    const stack = [root];
    while (stack.length > 0) {
      const dir = stack.pop()!;
      for (const name of fs.readdirSync(dir)) {
        const p = `${dir}/${name}`;
        count++;
        if (fs.lstatSync(p).isDirectory()) stack.push(p);
      }
    }
  });
  if (count !== expectedEntries) throw new Error(`walk of ${root}: ${count} entries, expected ${expectedEntries}`);
  return t;
}

/** Reads every file whole; the bytes read must add up to the sizes given. */
export function readFiles(root: string, files: Array<[string, number]>): number {
  let total = 0;
  let expected = 0;
  for (const [, s] of files) expected += s;
  const t = seconds(() => {
    for (const [p] of files) total += fs.readFileSync(`${root}/${p}`).length;
  });
  if (total !== expected) throw new Error(`read under ${root}: ${total} bytes, expected ${expected}`);
  return t;
}

/** Appends one byte to each file (open O_APPEND, write, close), timing each one. */
export function appendByte(root: string, files: Array<[string, number]>): { seconds: number; latencies: number[] } {
  const one = Buffer.from('+');
  const latencies: number[] = [];
  const t = seconds(() => {
    for (const [p] of files) {
      const t0 = process.hrtime.bigint();
      const fd = fs.openSync(`${root}/${p}`, 'a');
      fs.writeSync(fd, one);
      fs.closeSync(fd);
      latencies.push(Number(process.hrtime.bigint() - t0) / 1e9);
    }
  });
  for (const [p, s] of files) {
    const got = fs.lstatSync(`${root}/${p}`).size;
    if (got !== s + 1) throw new Error(`${root}/${p}: ${got} bytes after appending one, expected ${s + 1}`);
  }
  return { seconds: t, latencies };
}

export function chmodFiles(root: string, files: string[], mode: number): number {
  const t = seconds(() => {
    for (const p of files) fs.chmodSync(`${root}/${p}`, mode);
  });
  for (const p of files) {
    const got = fs.lstatSync(`${root}/${p}`).mode & 0o7777;
    if (got !== mode) throw new Error(`${root}/${p}: mode ${got.toString(8)} after chmod, expected ${mode.toString(8)}`);
  }
  return t;
}

/** rm -rf of a directory; it must be gone from its parent's listing. */
export function removeTree(dir: string): number {
  const t = seconds(() => fs.rmSync(dir, { recursive: true }));
  if (fs.existsSync(dir) || fs.readdirSync(path.dirname(dir)).includes(path.basename(dir))) throw new Error(`${dir}: still there after rm -rf`);
  return t;
}

/** Renames each file to its name plus `suffix` in the same dir; sizes must follow. */
export function renameFiles(root: string, files: Array<[string, number]>, suffix: string): number {
  const t = seconds(() => {
    for (const [p] of files) fs.renameSync(`${root}/${p}`, `${root}/${p}${suffix}`);
  });
  for (const [p, s] of files) {
    if (fs.existsSync(`${root}/${p}`)) throw new Error(`${root}/${p}: still there after rename`);
    const got = fs.lstatSync(`${root}/${p}${suffix}`).size;
    if (got !== s) throw new Error(`${root}/${p}${suffix}: ${got} bytes after rename, expected ${s}`);
  }
  return t;
}
