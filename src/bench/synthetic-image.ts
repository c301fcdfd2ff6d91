// The synthetic container image of `strata bench`: two lower layers in the overlay on-disk
// format, made deterministically (fixed-seed PRNG) so every run and every driver sees the
// same tree, with a model of the merged view written alongside (staging checks the merged
// tree against it before anything is measured). The top layer, one big file of a known
// pattern, is cheap to write and is made per run by writeBigLayer().
//
//   bottom  files of 1-16 KiB (a few of 100 KiB-2 MiB) in a two-level tree, a tree for
//           rm -rf (rmtree/), relative symlinks, hard links
//   middle  rewrites files, deletes files and whole dirs (whiteouts: char 0/0), adds files
//           in new dirs and in existing ones, symlinks into rmtree/
//   top     big/blob, written with the pattern seqRead checks
// Sizes: sizes.ts (full: ~16,700 merged entries in ~1,500 dirs).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { native } from '../native/binding.js';
import { seqWrite } from './file-workloads.js';
import { seededData } from './seeded-data.js';
import type { ImageShape } from './sizes.js';

export type ModelKind = 'file' | 'dir' | 'symlink';
/** The merged view below the root: [relative path, kind, size (files: bytes, symlinks: target length)]. */
export type ImageModel = Array<[string, ModelKind, number]>;

export const SYNTHETIC_SEED = 0x5742a7a;
export const RM_TREE = 'rmtree';
export const BIG_FILE = 'big/blob';

/** Writes layers `bottom` and `middle` under root; returns the model of their merged view. */
export function makeSyntheticLayers(root: string, shape: ImageShape, seed = SYNTHETIC_SEED): ImageModel {
  const { int, pick, shuffle, bytes, fileSize: size } = seededData(seed);
  const pad = (i: number): string => String(i).padStart(2, '0');

  const [middle, bottom] = ['middle', 'bottom'].map((n) => path.join(root, n)) as [string, string];
  const merged = new Map<string, { kind: ModelKind; size: number }>();
  const mkdir = (layer: string, rel: string): void => {
    fs.mkdirSync(path.join(layer, rel), { recursive: true });
    for (let p = rel; p !== '.' && !merged.has(p); p = path.dirname(p)) merged.set(p, { kind: 'dir', size: 0 });
  };
  const write = (layer: string, rel: string, n: number): void => {
    mkdir(layer, path.dirname(rel));
    fs.writeFileSync(path.join(layer, rel), bytes(n));
    merged.set(rel, { kind: 'file', size: n });
  };
  const symlink = (layer: string, rel: string, target: string): void => {
    fs.symlinkSync(target, path.join(layer, rel));
    merged.set(rel, { kind: 'symlink', size: Buffer.byteLength(target) });
  };
  const whiteout = (layer: string, rel: string): void => {
    mkdir(layer, path.dirname(rel));
    // A dir removed here may hold files this layer rewrote: the whiteout replaces them too.
    fs.rmSync(path.join(layer, rel), { recursive: true, force: true });
    native.mknod(path.join(layer, rel), 0o020000, 0, 0);
    for (const k of [...merged.keys()]) if (k === rel || k.startsWith(`${rel}/`)) merged.delete(k);
  };
  for (const l of [middle, bottom]) fs.mkdirSync(l, { recursive: true });

  const bottomDirs: string[] = [];
  for (let i = 0; i < shape.topDirs; i++) {
    bottomDirs.push(`b${pad(i)}`);
    for (let j = 0; j < shape.subDirs; j++) bottomDirs.push(`b${pad(i)}/s${pad(j)}`);
  }
  for (const d of bottomDirs) mkdir(bottom, d);
  const bottomFiles: string[] = [];
  for (let i = 0; i < shape.files; i++) {
    const rel = `${pick(bottomDirs)}/f${i}`;
    write(bottom, rel, size());
    bottomFiles.push(rel);
  }
  for (let i = 0; i < shape.rmDirs; i++) for (let j = 0; j < shape.rmFiles; j++) write(bottom, `${RM_TREE}/s${i}/f${j}`, int(1 << 10, 16 << 10));
  for (let i = 0; i < shape.symlinks; i++) {
    const target = pick(bottomFiles);
    symlink(bottom, `${path.dirname(target)}/sym${i}`, path.basename(target));
  }
  const linked = new Set<string>();
  for (let i = 0; i < shape.hardLinks; i++) {
    const target = pick(bottomFiles);
    const rel = `${pick(bottomDirs)}/hl${i}`;
    fs.linkSync(path.join(bottom, target), path.join(bottom, rel));
    linked.add(target).add(rel);
    merged.set(rel, { kind: 'file', size: merged.get(target)!.size });
  }

  // Middle layer. Hard-linked files are left alone: rewriting one name of a link set in a
  // layer above would split the set, which is legal but not what this image is about.
  const plain = shuffle(bottomFiles.filter((f) => !linked.has(f)));
  for (const f of plain.slice(0, shape.modify)) write(middle, f, size());
  for (const f of plain.slice(shape.modify, shape.modify + shape.remove)) whiteout(middle, f);
  const subDirs = bottomDirs.filter((d) => d.includes('/'));
  for (const d of shuffle(subDirs).slice(0, shape.removeDirs)) whiteout(middle, d);
  const middleDirs: string[] = [];
  for (let i = 0; i < shape.addDirs; i++) for (let j = 0; j < shape.addDirs; j++) middleDirs.push(`m${pad(i)}/t${pad(j)}`);
  const liveBottomDirs = bottomDirs.filter((d) => merged.has(d));
  for (let i = 0; i < shape.add; i++) write(middle, `${i % 5 === 0 ? pick(liveBottomDirs) : pick(middleDirs)}/n${i}`, size());
  for (let i = 0; i < shape.middleSymlinks; i++) {
    const d = pick(middleDirs);
    mkdir(middle, d);
    symlink(middle, `${d}/msym${i}`, `../../${RM_TREE}/s0/f${i % shape.rmFiles}`);
  }
  return [...merged].map(([k, e]) => [k, e.kind, e.size]);
}

/** The top layer: BIG_FILE of `bytes` bytes in the pattern seqRead checks. */
export function writeBigLayer(dir: string, bytes: number): void {
  fs.mkdirSync(path.join(dir, path.dirname(BIG_FILE)), { recursive: true });
  seqWrite(path.join(dir, BIG_FILE), bytes);
}
