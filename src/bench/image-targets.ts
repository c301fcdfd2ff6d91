// What the workloads need to know about the image under test, read off its merged tree on
// plain disk: the small files, the big file, the tree for rm -rf, and the files the write
// workloads touch. The same rules serve the synthetic image and a store image.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TreeEntry } from '../util/tree.js';
import { seededData } from './seeded-data.js';

export type Snapshot = Record<string, TreeEntry>;

export interface ImageTargets {
  /** Entries below the root of the merged view. */
  entries: number;
  /** Regular files other than the big one, with their sizes, in path order. */
  smallFiles: Array<[string, number]>;
  smallBytes: number;
  bigFile: string;
  bigBytes: number;
  rmTree: string;
  rmTreeEntries: number;
  /**
   * Lower files for copy-up, chmod and rename, in a fixed random order: single-link regular
   * files of at most 16 KiB outside rmTree, with printable ASCII names (snapshots name
   * entries in latin1, so only those paths mean the same to every call).
   */
  candidates: Array<[string, number]>;
}

/** Entries below each directory of the snapshot. */
function subtreeSizes(ref: Snapshot): Map<string, number> {
  const n = new Map<string, number>();
  for (const k of Object.keys(ref)) {
    for (let d = path.posix.dirname(k); d !== '.'; d = path.posix.dirname(d)) n.set(d, (n.get(d) ?? 0) + 1);
  }
  return n;
}

/** The directory whose subtree is closest to `want` entries (first in path order on a tie). */
export function closestTree(ref: Snapshot, want: number, exclude: string): string {
  let best: [string, number] | undefined;
  for (const [d, n] of [...subtreeSizes(ref)].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    if (d === exclude || exclude.startsWith(`${d}/`)) continue;
    if (!best || Math.abs(n - want) < Math.abs(best[1] - want)) best = [d, n];
  }
  if (!best) throw new Error('the image has no directory to remove');
  return best[0];
}

export function imageTargets(ref: Snapshot, nativeBase: string, o: { bigFile: string; rmTree?: string; rmTreeEntries: number }): ImageTargets {
  const rmTree = o.rmTree ?? closestTree(ref, o.rmTreeEntries, o.bigFile);
  const inRmTree = (k: string): boolean => k === rmTree || k.startsWith(`${rmTree}/`);
  const smallFiles = Object.entries(ref)
    .filter(([k, e]) => e.type === 'file' && k !== o.bigFile)
    .map(([k, e]) => [k, e.size!] as [string, number])
    .sort((a, b) => (a[0] < b[0] ? -1 : 1));
  const candidates = smallFiles.filter(([k, s]) => s <= 16 << 10 && !inRmTree(k) && /^[\x21-\x7e/]+$/.test(k) && fs.lstatSync(path.join(nativeBase, k)).nlink === 1);
  return {
    entries: Object.keys(ref).length,
    smallFiles,
    smallBytes: smallFiles.reduce((a, [, s]) => a + s, 0),
    bigFile: o.bigFile,
    bigBytes: ref[o.bigFile]!.size!,
    rmTree,
    rmTreeEntries: Object.keys(ref).filter((k) => k.startsWith(`${rmTree}/`)).length,
    candidates: seededData(0xc0b1).shuffle(candidates),
  };
}
