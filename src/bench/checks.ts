// Result checks of the union workloads, built on the tree snapshot/compare helper
// (src/util/tree.ts) that the tests and the index check use too. Each returns what is wrong
// as lines ([] = the driver gave the right answer); the runner turns them into FAIL.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { diffTreeFields, snapshotEntry, snapshotTree, type SnapshotOptions, type TreeEntry } from '../util/tree.js';
import type { Snapshot } from './image-targets.js';

/** xattrs the drivers keep for themselves (overlayfs's records, stratafs's inode numbers); never part of a result. */
export const driverXattr = (name: string): boolean => /^(trusted|user)\.(overlay|fuseoverlayfs|stratafs)\./.test(name);

const base: SnapshotOptions = { skipXattr: driverXattr };

/** Markers some drivers keep in upper dirs (fuse-overlayfs: `.wh..wh..opq` in new dirs). */
const isMarker = (rel: string): boolean => path.basename(rel).startsWith('.wh.');

/** Snapshot of the tree at dir, '.' and whiteout markers left out; undefined if dir is missing. */
export function snapshotBelow(dir: string, opts: SnapshotOptions = {}): Snapshot | undefined {
  if (!fs.existsSync(dir)) return undefined;
  const s = snapshotTree(dir, { ...base, ...opts });
  return Object.fromEntries(Object.entries(s).filter(([k]) => k !== '.' && !isMarker(k)));
}

/** The tree at dir against the expected snapshot; `where` names it in the lines. */
export function treeDiff(dir: string, expected: Snapshot, where: string, opts: SnapshotOptions = {}): string[] {
  const got = snapshotBelow(dir, opts);
  if (!got) return [`${where}: ${dir} is missing`];
  return diffTreeFields(expected, got, ['expected', where]).map((l) => `${where}: ${l}`);
}

/** The entry rel below dir against its expected snapshot (with contents). */
export function entryDiff(dir: string, rel: string, expected: TreeEntry, where: string): string[] {
  let got: TreeEntry;
  try {
    got = snapshotEntry(path.join(dir, rel), base);
  } catch (e) {
    return [`${where}: ${rel}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`];
  }
  return diffTreeFields({ [rel]: expected }, { [rel]: got }, ['expected', where]).map((l) => `${where}: ${l}`);
}

export function entryOf(p: string): TreeEntry {
  return snapshotEntry(p, base);
}

/** The snapshot of a file after `extra` is appended to it. */
export function appendedEntry(p: string, extra: string): TreeEntry {
  const data = Buffer.concat([fs.readFileSync(p), Buffer.from(extra)]);
  return { ...entryOf(p), size: data.length, sha256: createHash('sha256').update(data).digest('hex') };
}

/** rel is hidden in the upper dir: a 0/0 character device, or a `.wh.NAME` file beside it. */
export function isWhiteout(upper: string, rel: string): boolean {
  try {
    const st = fs.lstatSync(path.join(upper, rel));
    if (st.isCharacterDevice() && st.rdev === 0) return true;
  } catch {
    // not there as a device; maybe as a .wh. file
  }
  return fs.existsSync(path.join(upper, path.dirname(rel), `.wh.${path.basename(rel)}`));
}

export function gone(p: string): boolean {
  try {
    fs.lstatSync(p);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

/** The expected snapshot without rel and what is below it. */
export function without(s: Snapshot, rel: string): Snapshot {
  return Object.fromEntries(Object.entries(s).filter(([k]) => k !== rel && !k.startsWith(`${rel}/`)));
}
