// Walks a directory tree into a comparable snapshot: type, mode, owner, size, link target,
// content digest, xattrs, and (optionally) times and inode identity. One helper serves the
// tests' differential checks, `strata index check` and the benchmark's result checks.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { native } from '../native/binding.js';
import { osPath } from './os-path.js';

export interface TreeEntry {
  type: 'file' | 'dir' | 'symlink' | 'fifo' | 'socket' | 'chardev' | 'blockdev';
  mode: number;
  uid: number;
  gid: number;
  size?: number;
  nlink?: number;
  target?: string;
  sha256?: string;
  rdev?: number;
  xattrs?: Record<string, string>;
  mtimeNs?: string;
  atimeNs?: string;
  ino?: string;
}

export interface SnapshotOptions {
  /** Include mtime (nanoseconds). Off where two trees were written at different moments. */
  mtime?: boolean;
  atime?: boolean;
  /** Include st_ino, to compare inode identity across two views of one tree. */
  ino?: boolean;
  /** Include nlink (hard-link counts). */
  nlink?: boolean;
  /** Directories' nlink too (a union shows 1 for a merged directory, a plain copy its own count). */
  dirNlink?: boolean;
  /** Digest file contents (default true). Off for a quick check of names, types and sizes of a large tree. */
  content?: boolean;
  /** xattr names to leave out (e.g. trusted.overlay.* records). */
  skipXattr?: (name: string) => boolean;
}

function typeOf(st: fs.BigIntStats): TreeEntry['type'] {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'chardev';
  return 'blockdev';
}

function xattrsOf(p: string | Buffer, skip?: (n: string) => boolean): Record<string, string> | undefined {
  let names: string[];
  try {
    names = native.llistxattr(p);
  } catch {
    return undefined;
  }
  const out: Record<string, string> = {};
  for (const n of names.sort()) {
    if (skip?.(n)) continue;
    out[n] = native.lgetxattr(p, n).toString('base64');
  }
  return Object.keys(out).length ? out : undefined;
}

/** Snapshot of one entry (root-relative path ''), or every entry below root. */
export function snapshotEntry(p: string, opts: SnapshotOptions = {}): TreeEntry {
  const op = osPath(p);
  const st = fs.lstatSync(op, { bigint: true });
  const e: TreeEntry = { type: typeOf(st), mode: Number(st.mode) & 0o7777, uid: Number(st.uid), gid: Number(st.gid) };
  if (e.type === 'file') {
    e.size = Number(st.size);
    if (opts.content !== false) e.sha256 = createHash('sha256').update(fs.readFileSync(op)).digest('hex');
  }
  if (e.type === 'symlink') e.target = fs.readlinkSync(op, { encoding: 'latin1' });
  if (e.type === 'chardev' || e.type === 'blockdev') e.rdev = Number(st.rdev);
  if (opts.nlink && (e.type !== 'dir' || opts.dirNlink)) e.nlink = Number(st.nlink);
  if (opts.mtime && e.type !== 'symlink') e.mtimeNs = st.mtimeNs.toString();
  if (opts.atime) e.atimeNs = st.atimeNs.toString();
  if (opts.ino) e.ino = st.ino.toString();
  const x = xattrsOf(op, opts.skipXattr);
  if (x) e.xattrs = x;
  return e;
}

export function snapshotTree(root: string, opts: SnapshotOptions = {}): Record<string, TreeEntry> {
  const out: Record<string, TreeEntry> = {};
  const walk = (rel: string): void => {
    const abs = rel ? `${root}/${rel}` : root;
    const e = snapshotEntry(abs, opts);
    out[rel || '.'] = e;
    if (e.type !== 'dir') return;
    for (const name of fs.readdirSync(osPath(abs), { encoding: 'latin1' }).sort()) walk(rel ? `${rel}/${name}` : name);
  };
  walk('');
  return out;
}

/** Human-readable differences between two snapshots ([] when equal); `names` says which is which. */
export function diffTrees(a: Record<string, TreeEntry>, b: Record<string, TreeEntry>, names: [string, string] = ['first', 'second']): string[] {
  const diffs: string[] = [];
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const x = a[k];
    const y = b[k];
    if (!x) diffs.push(`+ ${k} only in ${names[1]}`);
    else if (!y) diffs.push(`- ${k} only in ${names[0]}`);
    else {
      const xs = JSON.stringify(x);
      const ys = JSON.stringify(y);
      if (xs !== ys) diffs.push(`~ ${k}: ${xs} != ${ys}`);
    }
  }
  return diffs.sort();
}

/**
 * diffTrees with changed entries spelled out field by field, so a message names what differs:
 * `~ a/b: mode 384 != 420; xattrs (none) != {...}` (first snapshot's value first).
 */
export function diffTreeFields(a: Record<string, TreeEntry>, b: Record<string, TreeEntry>, names: [string, string] = ['first', 'second']): string[] {
  const show = (v: unknown): string => (v === undefined ? '(none)' : JSON.stringify(v));
  return diffTrees(a, b, names).map((line) => {
    const m = /^~ (.*?): \{/.exec(line);
    if (!m) return line;
    const x = a[m[1]!] as unknown as Record<string, unknown>;
    const y = b[m[1]!] as unknown as Record<string, unknown>;
    const fields = [...new Set([...Object.keys(x), ...Object.keys(y)])].sort().filter((k) => JSON.stringify(x[k]) !== JSON.stringify(y[k]));
    return `~ ${m[1]}: ${fields.map((k) => `${k} ${show(x[k])} != ${show(y[k])}`).join('; ')}`;
  });
}
