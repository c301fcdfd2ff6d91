// Finding a name: upper first, then the lower dirs merged into the parent, top-down,
// honouring whiteouts, opaque dirs and redirects in both on-disk formats. This probes the
// layers one by one; the SQLite path index (issue 4) will answer lower lookups instead.

import type { BigIntStats } from 'node:fs';
import { ENOENT_ERROR } from '../fuse/errors.js';
import type { Inode } from '../fs/inode.js';
import { lstatOrUndefined } from '../host/files.js';
import { isMetacopy, isOpaqueDir, isWhiteout, OCI_WHITEOUT_PREFIX, originIno, redirectOf } from './markers.js';
import type { UNode } from './node.js';
import type { LayerStack, LowerRef } from './stack.js';

export interface Resolved {
  data: UNode;
  /** The object the union shows: the upper one when it exists, else the top lower one. */
  st: BigIntStats;
  /** For a metacopy: the lower object holding the data (its size and blocks count). */
  dataSt?: BigIntStats;
  ino: bigint;
}

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const isDir = (st: BigIntStats): boolean => (Number(st.mode) & S_IFMT) === S_IFDIR;

function join(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}

/** `.wh.NAME` beside where NAME would be, in an OCI-format layer. */
function ociWhiteout(stack: LayerStack, ref: LowerRef): boolean {
  const slash = ref.path.lastIndexOf('/');
  const dir = slash < 0 ? '' : ref.path.slice(0, slash);
  const name = ref.path.slice(slash + 1);
  return lstatOrUndefined(stack.lowerPath({ layer: ref.layer, path: join(dir, OCI_WHITEOUT_PREFIX + name) })) !== undefined;
}

/**
 * Whether a directory found in a layer hides the same path in the layers below: it is
 * opaque, or the layer also whites the name out (an OCI layer that replaces a directory
 * carries both `.wh.NAME` and the new NAME).
 */
function hidesBelow(stack: LayerStack, ref: LowerRef): boolean {
  return isOpaqueDir(stack.lowerPath(ref), stack.lowerPathString(ref)) || ociWhiteout(stack, ref);
}

/** The lower directories to search for children of a dir whose upper copy redirects. */
function redirected(stack: LayerStack, parentLowers: LowerRef[], redirect: string): LowerRef[] {
  if (redirect.startsWith('/')) {
    const p = redirect.replace(/^\/+/, '');
    return stack.lowers.map((_, layer) => ({ layer, path: p }));
  }
  return parentLowers.map((r) => ({ layer: r.layer, path: join(r.path.slice(0, Math.max(0, r.path.lastIndexOf('/'))), redirect) }));
}

/**
 * Walks candidate lower objects top-down. `below` describes what was found above (nothing,
 * an upper dir, or an upper metacopy file); returns the lower refs that take part.
 */
function searchLowers(stack: LayerStack, candidates: LowerRef[], below: 'none' | 'dir' | 'metacopy'): { refs: LowerRef[]; top?: BigIntStats } {
  const refs: LowerRef[] = [];
  let top: BigIntStats | undefined;
  for (const ref of candidates) {
    const st = lstatOrUndefined(stack.lowerPath(ref));
    if (!st) {
      if (ociWhiteout(stack, ref)) break;
      continue;
    }
    if (isWhiteout(st)) break;
    const dir = isDir(st);
    if (below === 'metacopy') {
      if (!dir) {
        refs.push(ref);
        top = st;
      }
      break;
    }
    if (below === 'none' && refs.length === 0) {
      refs.push(ref);
      top = st;
      if (!dir || hidesBelow(stack, ref)) break;
      continue;
    }
    // Merging below a directory: anything but a directory down here is hidden by it.
    if (!dir) break;
    refs.push(ref);
    if (hidesBelow(stack, ref)) break;
  }
  return { refs, top };
}

/** The union inode number of a host object (see LayerStack.unionIno and XATTR_ORIGIN_INO). */
export function inoOf(stack: LayerStack, st: BigIntStats, upperPath?: string | Buffer): bigint {
  if (upperPath !== undefined) {
    const o = originIno(upperPath);
    if (o !== undefined) return o;
  }
  return stack.unionIno(st.dev, st.ino);
}

export function resolveRoot(stack: LayerStack): Resolved {
  const all = stack.lowers.map((_, layer) => ({ layer, path: '' }));
  if (stack.upper) {
    const st = lstatOrUndefined(stack.upper)!;
    const up = stack.upperPath('');
    const opaque = isOpaqueDir(up, stack.upper);
    const { refs } = opaque ? { refs: [] } : searchLowers(stack, all, 'dir');
    return { data: { upper: true, metacopy: false, lowers: refs }, st, ino: inoOf(stack, st, up) };
  }
  const { refs, top } = searchLowers(stack, all, 'none');
  return { data: { upper: false, metacopy: false, lowers: refs }, st: top!, ino: inoOf(stack, top!) };
}

export function resolveChild(stack: LayerStack, parent: Inode<UNode>, name: string): Resolved {
  const pd = parent.data;
  // In lower layers `.wh.` names are markers, never objects; in the upper dir (overlay
  // format) such a name is an ordinary file someone made through the mount.
  let candidates = name.startsWith(OCI_WHITEOUT_PREFIX) ? [] : pd.lowers.map((r) => ({ layer: r.layer, path: join(r.path, name) }));
  if (pd.upper && stack.upper) {
    const rel = parent.childPath(name);
    const up = stack.upperPath(rel);
    const st = lstatOrUndefined(up);
    if (st) {
      if (isWhiteout(st)) throw ENOENT_ERROR;
      const ino = inoOf(stack, st, up);
      if (isDir(st)) {
        if (isOpaqueDir(up, stack.upperPathString(rel))) candidates = [];
        else {
          const r = redirectOf(up);
          if (r !== undefined) candidates = redirected(stack, pd.lowers, r);
        }
        return { data: { upper: true, metacopy: false, lowers: searchLowers(stack, candidates, 'dir').refs }, st, ino };
      }
      if ((Number(st.mode) & S_IFMT) === S_IFREG && isMetacopy(up)) {
        const r = redirectOf(up);
        if (r !== undefined) candidates = redirected(stack, pd.lowers, r);
        const found = searchLowers(stack, candidates, 'metacopy');
        return { data: { upper: true, metacopy: found.refs.length > 0, lowers: found.refs }, st, dataSt: found.top, ino };
      }
      return { data: { upper: true, metacopy: false, lowers: [] }, st, ino };
    }
  }
  const { refs, top } = searchLowers(stack, candidates, 'none');
  if (!top) throw ENOENT_ERROR;
  return { data: { upper: false, metacopy: false, lowers: refs }, st: top, ino: inoOf(stack, top) };
}

/** Whether some lower layer still shows this name below the parent (a delete must then leave a whiteout). */
export function lowerHasName(stack: LayerStack, parent: Inode<UNode>, name: string): boolean {
  const candidates = parent.data.lowers.map((r) => ({ layer: r.layer, path: join(r.path, name) }));
  return searchLowers(stack, candidates, 'none').top !== undefined;
}

