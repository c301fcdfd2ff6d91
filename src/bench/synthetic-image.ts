// A synthetic container image for the union-mount benchmark: three layers in the overlay
// on-disk format, made deterministically (fixed-seed PRNG) so every run and every driver
// sees the same tree, with the expected merged view computed alongside.
//
//   bottom  ~9,000 small files in ~1,000 dirs, a 3,000-entry tree (rmtree/), symlinks,
//           hard links, a few files of 100 KiB-2 MiB
//   middle  modifies 1,000 bottom files, deletes 500 files and 2 dirs (whiteouts: char 0/0),
//           adds ~3,500 files in ~420 new dirs and in existing ones
//   top     one big file (big/blob), written with the pattern seqRead checks

import * as fs from 'node:fs';
import * as path from 'node:path';
import { native } from '../native/binding.js';
import { seqWrite } from './file-workloads.js';
import { prng } from '../util/prng.js';

interface Entry {
  kind: 'file' | 'dir' | 'link';
  size: number;
  /** A name of a file with several links: kept out of the write workloads. */
  linked?: boolean;
}

export interface SyntheticImage {
  /** Layer dirs, top first (the order of overlayfs's lowerdir). */
  layers: string[];
  /** Entries of the merged view below its root, by relative path. */
  merged: Map<string, Entry>;
  /** Regular files other than the big one, with their merged sizes. */
  smallFiles: Array<[string, number]>;
  smallBytes: number;
  bigFile: string;
  bigBytes: number;
  /** A lower directory holding `rmTreeEntries` entries below it. */
  rmTree: string;
  rmTreeEntries: number;
  /** Small single-link lower files outside rmTree, in a fixed random order. */
  candidates: Array<[string, number]>;
}


export function makeSyntheticImage(root: string, opts: { bigBytes: number; seed?: number }): SyntheticImage {
  const rnd = prng(opts.seed ?? 0x5742a7a);
  const int = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const noise = Buffer.allocUnsafe(2 << 20);
  for (let i = 0; i < noise.length; i += 4) noise.writeUInt32LE((rnd() * 4294967296) >>> 0, i);
  const size = (): number => (rnd() < 0.004 ? int(100 << 10, 2 << 20) : int(1 << 10, 16 << 10));

  const [top, middle, bottom] = ['top', 'middle', 'bottom'].map((n) => path.join(root, n)) as [string, string, string];
  const merged = new Map<string, Entry>();
  const mkdir = (layer: string, rel: string): void => {
    fs.mkdirSync(path.join(layer, rel), { recursive: true });
    for (let p = rel; p !== '.' && !merged.has(p); p = path.dirname(p)) merged.set(p, { kind: 'dir', size: 0 });
  };
  const write = (layer: string, rel: string, n: number): void => {
    mkdir(layer, path.dirname(rel));
    const off = int(0, noise.length - n);
    fs.writeFileSync(path.join(layer, rel), noise.subarray(off, off + n));
    merged.set(rel, { kind: 'file', size: n });
  };
  const whiteout = (layer: string, rel: string): void => {
    mkdir(layer, path.dirname(rel));
    fs.rmSync(path.join(layer, rel), { recursive: true, force: true });
    native.mknod(path.join(layer, rel), 0o020000, 0, 0);
    for (const k of [...merged.keys()]) if (k === rel || k.startsWith(`${rel}/`)) merged.delete(k);
  };
  for (const l of [top, middle, bottom]) fs.mkdirSync(l, { recursive: true });

  // Bottom layer: 40 dirs of 24 subdirs, 9,000 files spread over them.
  const bottomDirs: string[] = [];
  for (let i = 0; i < 40; i++) {
    const d = `b${String(i).padStart(2, '0')}`;
    bottomDirs.push(d);
    for (let j = 0; j < 24; j++) bottomDirs.push(`${d}/s${String(j).padStart(2, '0')}`);
  }
  for (const d of bottomDirs) mkdir(bottom, d);
  const bottomFiles: string[] = [];
  for (let i = 0; i < 9000; i++) {
    const rel = `${pick(bottomDirs)}/f${i}`;
    write(bottom, rel, size());
    bottomFiles.push(rel);
  }
  // rmtree/: 30 dirs of 99 files = 3,000 entries below it.
  const rmTree = 'rmtree';
  for (let i = 0; i < 30; i++) for (let j = 0; j < 99; j++) write(bottom, `${rmTree}/s${i}/f${j}`, int(1 << 10, 16 << 10));
  // 200 relative symlinks to files of the same dir, 100 extra hard links.
  for (let i = 0; i < 200; i++) {
    const target = pick(bottomFiles);
    const rel = `${path.dirname(target)}/sym${i}`;
    fs.symlinkSync(path.basename(target), path.join(bottom, rel));
    merged.set(rel, { kind: 'link', size: path.basename(target).length });
  }
  const linkedFiles = new Set<string>();
  for (let i = 0; i < 100; i++) {
    const target = pick(bottomFiles);
    const rel = `${pick(bottomDirs)}/hl${i}`;
    fs.linkSync(path.join(bottom, target), path.join(bottom, rel));
    linkedFiles.add(target).add(rel);
    merged.set(rel, { kind: 'file', size: merged.get(target)!.size });
  }
  for (const f of linkedFiles) merged.get(f)!.linked = true;

  // Middle layer: modify, delete (files and whole dirs), add.
  const plain = bottomFiles.filter((f) => !linkedFiles.has(f));
  const shuffled = plain.map((f) => [rnd(), f] as const).sort((a, b) => a[0] - b[0]).map(([, f]) => f);
  for (const f of shuffled.slice(0, 1000)) write(middle, f, size());
  for (const f of shuffled.slice(1000, 1500)) whiteout(middle, f);
  for (const d of ['b07/s03', 'b21/s17']) whiteout(middle, d);
  const middleDirs: string[] = [];
  for (let i = 0; i < 20; i++) for (let j = 0; j < 20; j++) middleDirs.push(`m${String(i).padStart(2, '0')}/t${String(j).padStart(2, '0')}`);
  const liveBottomDirs = bottomDirs.filter((d) => merged.has(d));
  for (let i = 0; i < 3500; i++) write(middle, `${i % 5 === 0 ? pick(liveBottomDirs) : pick(middleDirs)}/n${i}`, size());
  for (let i = 0; i < 50; i++) {
    const d = pick(middleDirs);
    fs.symlinkSync(`../../${rmTree}/s0/f${i}`, path.join(middle, d, `msym${i}`));
    merged.set(`${d}/msym${i}`, { kind: 'link', size: `../../${rmTree}/s0/f${i}`.length });
  }

  // Top layer: the big file.
  const bigFile = 'big/blob';
  mkdir(top, 'big');
  seqWrite(path.join(top, bigFile), opts.bigBytes);
  merged.set(bigFile, { kind: 'file', size: opts.bigBytes });

  const smallFiles = [...merged].filter(([k, e]) => e.kind === 'file' && k !== bigFile).map(([k, e]) => [k, e.size] as [string, number]);
  const candidates = smallFiles
    .filter(([k, s]) => !merged.get(k)!.linked && s <= 16 << 10 && !k.startsWith(`${rmTree}/`))
    .map((x) => [rnd(), x] as const)
    .sort((a, b) => a[0] - b[0])
    .map(([, x]) => x);
  let rmTreeEntries = 0;
  for (const k of merged.keys()) if (k.startsWith(`${rmTree}/`)) rmTreeEntries++;
  return {
    layers: [top, middle, bottom],
    merged,
    smallFiles,
    smallBytes: smallFiles.reduce((a, [, s]) => a + s, 0),
    bigFile,
    bigBytes: opts.bigBytes,
    rmTree,
    rmTreeEntries,
    candidates,
  };
}
