// Plain file-system workloads run from the benchmark process against any directory: a
// mount under test or the disk itself. Each returns the seconds it took. The FUSE-layer
// ones check their own result; the union workloads (workloads.ts) return what they saw and
// check it separately, so a test can spoil a result between the two and see the check fail.

import { spawnSync } from 'node:child_process';
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
export function pattern(size: number): Buffer {
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

/** A recursive walk: readdir, then lstat of every entry. Returns the entries it saw. */
export function walkTree(root: string): { seconds: number; entries: number } {
  let entries = 0;
  const t = seconds(() => {
    const stack = [root];
    while (stack.length > 0) {
      const dir = stack.pop()!;
      for (const name of fs.readdirSync(dir)) {
        const p = `${dir}/${name}`;
        entries++;
        if (fs.lstatSync(p).isDirectory()) stack.push(p);
      }
    }
  });
  return { seconds: t, entries };
}

/** lstat of every path given, in order. Returns the sizes of the regular files added up. */
export function statPaths(root: string, paths: string[]): { seconds: number; fileBytes: number; files: number } {
  let fileBytes = 0;
  let files = 0;
  const t = seconds(() => {
    for (const p of paths) {
      const st = fs.lstatSync(`${root}/${p}`);
      if (st.isFile()) {
        files++;
        fileBytes += st.size;
      }
    }
  });
  return { seconds: t, fileBytes, files };
}

/**
 * lstat of each path, `rounds` times over, counting those that do not exist (asked without
 * an exception: a thrown ENOENT costs the caller more than some drivers take to answer).
 */
export function statMissing(root: string, paths: string[], rounds: number): { seconds: number; missing: number } {
  let missing = 0;
  const t = seconds(() => {
    for (let r = 0; r < rounds; r++) for (const p of paths) if (fs.lstatSync(`${root}/${p}`, { throwIfNoEntry: false }) === undefined) missing++;
  });
  return { seconds: t, missing };
}

/** Reads every file whole. Returns the bytes read. */
export function readFiles(root: string, files: string[]): { seconds: number; bytes: number } {
  let bytes = 0;
  const t = seconds(() => {
    for (const p of files) bytes += fs.readFileSync(`${root}/${p}`).length;
  });
  return { seconds: t, bytes };
}

/**
 * Appends one byte to each file (open O_APPEND, write, close). The latency of a file is its
 * open and first write, i.e. until the copy-up is done and the write has landed.
 */
export function appendByte(root: string, files: string[]): { seconds: number; latencies: number[] } {
  const one = Buffer.from(APPENDED);
  const latencies: number[] = [];
  const t = seconds(() => {
    for (const p of files) {
      const t0 = process.hrtime.bigint();
      const fd = fs.openSync(`${root}/${p}`, 'a');
      fs.writeSync(fd, one);
      latencies.push(Number(process.hrtime.bigint() - t0) / 1e9);
      fs.closeSync(fd);
    }
  });
  return { seconds: t, latencies };
}

/** The byte appendByte writes. */
export const APPENDED = '+';

export function chmodFiles(root: string, files: string[], mode: number): number {
  return seconds(() => {
    for (const p of files) fs.chmodSync(`${root}/${p}`, mode);
  });
}

/** rm -rf of a directory. */
export function removeTree(dir: string): number {
  return seconds(() => fs.rmSync(dir, { recursive: true }));
}

/** Renames each file to its name plus `suffix` in the same dir. */
export function renameFiles(root: string, files: string[], suffix: string): number {
  return seconds(() => {
    for (const p of files) fs.renameSync(`${root}/${p}`, `${root}/${p}${suffix}`);
  });
}

/** Extracts a tarball into dir with the system's tar, as a user would. */
export function untar(tarball: string, dir: string): number {
  fs.mkdirSync(dir, { recursive: true });
  return seconds(() => {
    const r = spawnSync('tar', ['-xf', tarball, '-C', dir], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`tar -xf ${tarball} -C ${dir}: ${r.stderr.trim() || `exit ${r.status ?? r.signal}`}`);
  });
}
