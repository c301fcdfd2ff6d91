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
