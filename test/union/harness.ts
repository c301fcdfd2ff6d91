// The differential harness: one "side" per driver (its own copy of the lower layers, its own
// upper and work dirs, its own mount point), merged-view snapshots that can be compared
// across mounts made at different moments and with different inode numbering, and the
// helpers scripted operations use to report what they saw.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { native } from '../../src/native/binding.js';
import { diffTrees, snapshotEntry, snapshotTree, type TreeEntry } from '../../src/util/tree.js';
import { buildStack, toOverlayFormat, type BuiltStack, type LayerFormat, type LayerSpec } from '../helpers/layers.js';
import type { UnionDriver, UnionMount } from './overlay.js';

export interface Side {
  driver: UnionDriver;
  base: string;
  /** the lower layers as this driver reads them (converted to overlay format if it cannot read OCI) */
  stack: BuiltStack;
  upper?: string;
  work?: string;
  mnt: string;
  mount?: UnionMount;
}

/** Builds a driver's private copy of the stack, and upper/work dirs when rw. */
export function prepareSide(driver: UnionDriver, base: string, specs: LayerSpec[], format: LayerFormat, rw: boolean): Side {
  fs.mkdirSync(base, { recursive: true, mode: 0o755 });
  const stack = buildStack(path.join(base, 'lowers'), specs, format);
  if (format === 'oci' && !driver.readsOciLowers) {
    for (const l of stack.layers) toOverlayFormat(l);
    stack.format = 'overlay';
  }
  const side: Side = { driver, base, stack, mnt: path.join(base, 'mnt') };
  if (rw) {
    side.upper = path.join(base, 'upper');
    side.work = path.join(base, 'work');
    fs.mkdirSync(side.upper, { mode: 0o755 });
    fs.chmodSync(side.upper, 0o755);
    fs.mkdirSync(side.work, { mode: 0o755 });
  }
  fs.mkdirSync(side.mnt, { mode: 0o755 });
  return side;
}

/** `extraO`: more -o options for stratafs (the kernel driver takes none). */
export function mountSide(side: Side, extraO?: string): UnionMount {
  side.mount = extraO ? side.driver.mountO(side.stack.lowers, side.upper, side.work, side.mnt, extraO) : side.driver.mount(side.stack.lowers, side.upper, side.work, side.mnt);
  return side.mount;
}

/** Every lower layer, exactly (times, links, inode numbers, all xattrs); atime left out. */
export function snapshotLowers(side: Side): Record<string, TreeEntry> {
  const out: Record<string, TreeEntry> = {};
  side.stack.layers.forEach((l, i) => {
    for (const [k, v] of Object.entries(snapshotTree(l, { mtime: true, nlink: true, ino: true }))) out[`layer${i}:${k}`] = v;
  });
  return out;
}

export interface MergedView {
  tree: Record<string, TreeEntry>;
  /** paths sharing one st_ino (groups of two or more), sorted: inode identity without the numbers */
  inoGroups: string[][];
}

/** The tree with directories' link counts left out (a model or a plain copy has none of a union's). */
export function withoutDirNlink(t: Record<string, TreeEntry>): Record<string, TreeEntry> {
  const out: Record<string, TreeEntry> = {};
  for (const [k, e] of Object.entries(t)) {
    out[k] = { ...e };
    if (e.type === 'dir') delete out[k].nlink;
  }
  return out;
}

/**
 * Snapshot of a merged view with nlink and mtime. Inode numbers are replaced by the groups
 * of paths that share one: numbers differ between drivers, identity must not.
 */
export function mergedView(mnt: string): MergedView {
  // trusted.stratafs.* is stratafs's record of a copied-up object's inode number
  // (docs/union.md): hidden through stratafs, but a kernel overlayfs mount of our upper dir
  // shows it to root. That one difference is documented; everything else must match.
  const tree = snapshotTree(mnt, { mtime: true, nlink: true, dirNlink: true, ino: true, skipXattr: (n) => n.startsWith('trusted.stratafs.') });
  const byIno = new Map<string, string[]>();
  for (const [p, e] of Object.entries(tree)) {
    const list = byIno.get(e.ino!) ?? [];
    list.push(p);
    byIno.set(e.ino!, list);
    delete e.ino;
  }
  const inoGroups = [...byIno.values()].filter((g) => g.length > 1).map((g) => g.sort()).sort((a, b) => (a[0]! < b[0]! ? -1 : 1));
  return { tree, inoGroups };
}

/**
 * A copy of a view where mtimes at or after t0 (ns) read 'now': two mounts wrote them "now",
 * at different moments. Every time in the past (layer times, times a script sets) stays exact.
 */
export function nowed(v: MergedView, t0: bigint): MergedView {
  const tree = JSON.parse(JSON.stringify(v.tree)) as MergedView['tree'];
  for (const e of Object.values(tree)) if (e.mtimeNs !== undefined && BigInt(e.mtimeNs) >= t0) e.mtimeNs = 'now';
  return { tree, inoGroups: v.inoGroups };
}

/** Same entry shape with sorted keys, so trees built by different code compare by content. */
export function canonTree(t: Record<string, TreeEntry>): Record<string, TreeEntry> {
  const out: Record<string, TreeEntry> = {};
  for (const [k, e] of Object.entries(t)) {
    out[k] = Object.fromEntries(Object.entries(e).sort(([a], [b]) => (a < b ? -1 : 1))) as unknown as TreeEntry;
  }
  return out;
}

/**
 * Differences between two trees, one line per path, naming only the fields that differ:
 * `~ data: mtimeNs 1500000000100000001 != now`, `+ x only in second`, `- y only in first`.
 */
export function diffFields(a: Record<string, TreeEntry>, b: Record<string, TreeEntry>): string[] {
  return diffTrees(a, b).map((line) => {
    const m = /^~ (.*?): \{/.exec(line);
    if (!m) return line;
    const p = m[1]!;
    const x = a[p] as unknown as Record<string, unknown>;
    const y = b[p] as unknown as Record<string, unknown>;
    const fields = [...new Set([...Object.keys(x), ...Object.keys(y)])].sort();
    const parts = fields
      .filter((k) => JSON.stringify(x[k]) !== JSON.stringify(y[k]))
      .map((k) => `${k} ${x[k] === undefined ? '(none)' : JSON.stringify(x[k])} != ${y[k] === undefined ? '(none)' : JSON.stringify(y[k])}`);
    return `~ ${p}: ${parts.join('; ')}`;
  });
}

/** Differences between two merged views ([] when equal). */
export function diffViews(a: MergedView, b: MergedView): string[] {
  const diffs = diffFields(canonTree(a.tree), canonTree(b.tree));
  const ga = JSON.stringify(a.inoGroups);
  const gb = JSON.stringify(b.inoGroups);
  if (ga !== gb) diffs.push(`~ inode groups: ${ga} != ${gb}`);
  return diffs;
}

/** Nanoseconds since the epoch, a little in the past (file times come from a coarse clock). */
export function nowNs(slackMs = 2000): bigint {
  return BigInt(Date.now() - slackMs) * 1000000n;
}

export type Outcome = { ok: unknown } | { error: string };

/** Runs an operation on a root; what it returned or the errno code it threw. */
export function capture(op: (r: string) => unknown, root: string): Outcome {
  try {
    return { ok: op(root) };
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return { error: err.code ? `${err.code} (${err.syscall ?? '?'} ${err.path ? path.basename(String(err.path)) : ''})` : String(e) };
  }
}

// ---------------------------------------------------------------------------------------
// What scripted operations report. Nothing here may depend on the mount's location, on
// inode numbers, or on "now".

export interface StatOf {
  type: TreeEntry['type'];
  mode: number;
  uid: number;
  gid: number;
  size?: number;
  nlink?: number;
  rdev?: number;
}

/** lstat, reduced to what two mounts must agree on (no times, no inode numbers, no dir nlink). */
export function statOf(p: string): StatOf {
  const e = snapshotEntry(p, { nlink: true });
  const s: StatOf = { type: e.type, mode: e.mode, uid: e.uid, gid: e.gid };
  if (e.size !== undefined) s.size = e.size;
  if (e.nlink !== undefined) s.nlink = e.nlink;
  if (e.rdev !== undefined) s.rdev = e.rdev;
  return s;
}

export function ino(p: string): bigint {
  return fs.lstatSync(p, { bigint: true }).ino;
}

export function mtimeNs(p: string): string {
  return fs.lstatSync(p, { bigint: true }).mtimeNs.toString();
}

export function read(p: string): string {
  return fs.readFileSync(p, 'utf8');
}

export function ls(p: string): string[] {
  return fs.readdirSync(p).sort();
}

/** readdir one entry per call (bufferSize 1, so offsets are used), with types; sorted, duplicates kept. */
export function lsTyped(p: string): string[] {
  const dir = fs.opendirSync(p, { bufferSize: 1 });
  const out: string[] = [];
  try {
    for (let e = dir.readSync(); e; e = dir.readSync()) {
      const t = e.isDirectory() ? 'd' : e.isFile() ? 'f' : e.isSymbolicLink() ? 'l' : e.isFIFO() ? 'p' : e.isCharacterDevice() ? 'c' : '?';
      out.push(`${t}:${e.name}`);
    }
  } finally {
    dir.closeSync();
  }
  return out.sort();
}

export function xattrList(p: string): string[] {
  return native.llistxattr(p).sort();
}

export function xget(p: string, name: string): string {
  return native.lgetxattr(p, name).toString();
}

/**
 * truncate(2) by path: Node's truncateSync opens the file for writing and ftruncates the fd,
 * so the kernel sends a SETATTR with the fd's handle; this one comes with none. 'OK' or the
 * errno's name.
 */
export function truncatePath(p: string, size: number): string {
  return execFileSync('python3', ['-c', 'import errno, os, sys\ntry:\n os.truncate(sys.argv[1], int(sys.argv[2])); print("OK")\nexcept OSError as e:\n print(errno.errorcode[e.errno])', p, String(size)], { encoding: 'utf8' }).trim();
}
