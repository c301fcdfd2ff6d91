// What the random campaign looks at after each op and at the end (test/union/campaign.ts):
// snapshots of the paths and fds an op touched, and field-by-field differences between the
// kernel's mount and stratafs's, as data, so that each difference can be matched against the
// documented ones (campaign-known.ts) before it counts as a finding.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { native } from '../../src/native/binding.js';
import { snapshotEntry, type TreeEntry } from '../../src/util/tree.js';
import { nowed, type MergedView } from './harness.js';
import { parentOf, pathsOf, type FdTable, type Op } from './campaign-ops.js';

/** An entry as snapshotTree shows it (with ino and dir nlink), or the errno its lstat/fstat gave. */
export type Snap = TreeEntry | { error: string };

/** Labels: a path of the mount as the script names it, or `fd#N` for slot N. */
export const fdLabel = (n: number): string => `fd#${n}`;

/** What to look at after `op`: its paths, their parents, its fd and the path that fd was opened by. */
export function labelsOf(op: Op, fds: FdTable): string[] {
  const out: string[] = [];
  for (const [p] of pathsOf(op)) out.push(p, parentOf(p));
  if ('fd' in op) {
    out.push(fdLabel(op.fd));
    const f = fds.get(op.fd);
    if (f) out.push(f.path);
  }
  return [...new Set(out)];
}

/** The errno and the call that gave it (an entry's snapshot makes several). */
function code(e: unknown): string {
  const x = e as NodeJS.ErrnoException;
  return x.code ? `${x.code} (${x.syscall ?? '?'})` : String(e);
}

function typeOfMode(mode: number): TreeEntry['type'] {
  switch (mode & 0o170000) {
    case 0o100000:
      return 'file';
    case 0o040000:
      return 'dir';
    case 0o120000:
      return 'symlink';
    case 0o010000:
      return 'fifo';
    case 0o140000:
      return 'socket';
    case 0o020000:
      return 'chardev';
    default:
      return 'blockdev';
  }
}

/** fstat and the xattrs through an fd, shaped as snapshotEntry shapes a path (no content: reads are ops of their own). */
function fdEntry(fd: number): TreeEntry {
  const st = fs.fstatSync(fd, { bigint: true });
  const e: TreeEntry = { type: typeOfMode(Number(st.mode)), mode: Number(st.mode) & 0o7777, uid: Number(st.uid), gid: Number(st.gid) };
  if (e.type === 'file') e.size = Number(st.size);
  e.nlink = Number(st.nlink);
  if (e.type !== 'symlink') e.mtimeNs = st.mtimeNs.toString();
  e.ino = st.ino.toString();
  const names = native.flistxattr(fd).sort();
  if (names.length) e.xattrs = Object.fromEntries(names.map((n) => [n, native.fgetxattr(fd, n).toString('base64')]));
  return e;
}

export interface Snaps {
  /** entries with mtimes at or after t0 read 'now', inode numbers taken out */
  entries: Record<string, Snap>;
  /** st_ino by label: numbers differ between drivers, but stratafs's identify its objects for the known classes */
  inos: Record<string, string>;
}

/** Snapshots of labels on one mount (content digested, times 'now' from t0 on). */
export function snapLabels(root: string, fds: FdTable, labels: string[], t0: bigint): Snaps {
  const raw: Record<string, Snap> = {};
  for (const l of labels) {
    try {
      if (l.startsWith('fd#')) {
        const f = fds.get(Number(l.slice(3)));
        raw[l] = f ? fdEntry(f.fd) : { error: 'EBADF' };
      } else raw[l] = snapshotEntry(path.join(root, l), { mtime: true, nlink: true, dirNlink: true, ino: true });
    } catch (e) {
      raw[l] = { error: code(e) };
    }
  }
  return splitInos(raw, t0);
}

/** Takes the inode numbers out of a tree of snapshots and reads times from t0 on as 'now'. */
export function splitInos(tree: Record<string, Snap>, t0: bigint): Snaps {
  const inos: Record<string, string> = {};
  for (const [l, e] of Object.entries(tree)) {
    if ('ino' in e && e.ino !== undefined) {
      inos[l] = e.ino;
      delete e.ino;
    }
  }
  const entries = nowed({ tree: tree as Record<string, TreeEntry>, inoGroups: [] }, t0).tree as Record<string, Snap>;
  return { entries, inos };
}

/** The st_ino of every path of a merged view (mergedView keeps only which paths share one). */
export function inosOf(mnt: string, view: MergedView): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of Object.keys(view.tree)) {
    try {
      out[p] = fs.lstatSync(path.join(mnt, p), { bigint: true }).ino.toString();
    } catch {
      /* gone since: no class can use it */
    }
  }
  return out;
}

/** One field of one label that differs: the kernel's value first. */
export interface FieldDiff {
  label: string;
  /** a TreeEntry field, 'error' (an errno on one side or different ones), 'exists', or 'inode groups' */
  field: string;
  kernel: unknown;
  strata: unknown;
}

export function entryDiffs(label: string, a: Snap | undefined, b: Snap | undefined): FieldDiff[] {
  if (!a && !b) return [];
  if (!a || !b) return [{ label, field: 'exists', kernel: !!a, strata: !!b }];
  if ('error' in a || 'error' in b) {
    const ea = 'error' in a ? a.error : undefined;
    const eb = 'error' in b ? b.error : undefined;
    return ea === eb ? [] : [{ label, field: 'error', kernel: ea ?? '(none)', strata: eb ?? '(none)' }];
  }
  const x = a as unknown as Record<string, unknown>;
  const y = b as unknown as Record<string, unknown>;
  return [...new Set([...Object.keys(x), ...Object.keys(y)])]
    .sort()
    .filter((k) => JSON.stringify(x[k]) !== JSON.stringify(y[k]))
    .map((field) => ({ label, field, kernel: x[field], strata: y[field] }));
}

/** Field differences between two sets of snapshots (or two merged trees). */
export function snapDiffs(a: Record<string, Snap>, b: Record<string, Snap>): FieldDiff[] {
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].sort().flatMap((l) => entryDiffs(l, a[l], b[l]));
}

/** Field differences between two merged views, inode identity included. */
export function viewDiffs(a: MergedView, b: MergedView): FieldDiff[] {
  const diffs = snapDiffs(a.tree, b.tree);
  const ga = JSON.stringify(a.inoGroups);
  const gb = JSON.stringify(b.inoGroups);
  if (ga !== gb) diffs.push({ label: '(all)', field: 'inode groups', kernel: a.inoGroups, strata: b.inoGroups });
  return diffs;
}

/** `~ label: field kernel != strata`, as diffFields prints a tree difference. */
export function showDiff(d: FieldDiff): string {
  const show = (v: unknown): string => (v === undefined ? '(none)' : JSON.stringify(v));
  return `~ ${d.label}: ${d.field} ${show(d.kernel)} != ${show(d.strata)}`;
}
