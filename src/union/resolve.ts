// Finding a name: upper first, then the lower dirs merged into the parent, top-down,
// honouring whiteouts, opaque dirs and redirects in both on-disk formats. When the stack is
// indexed, the lower side is answered by the path index (src/index) from the rows of the
// one path, attributes included (lower layers never change, so no lstat is needed: a cold
// lookup reads no inode of the layers); otherwise (no index, or below a redirect) each
// layer is probed on disk. Both apply the rule in src/index/resolution.ts.

import { ENOENT_ERROR } from '../fuse/errors.js';
import type { Inode } from '../fs/inode.js';
import { encodeDevParts, lstatHost, splitDev, type HostStat } from '../fs/attr.js';
import { mergeDown, type Probe } from '../index/resolution.js';
import { ROOT_IX } from '../index/schema.js';
import { probeOf, type LowerRow, type StackView } from '../index/stack-view.js';
import { isOciMarker as isMarkerName, isMetacopy, isOpaqueDir, isWhiteout, OCI_WHITEOUT_PREFIX, originIno, redirectOf } from './markers.js';
import type { UNode } from './node.js';
import type { LayerStack, LowerRef } from './stack.js';

export interface Resolved {
  data: UNode;
  /** The object the union shows: the upper one when it exists, else the top lower one. */
  st: HostStat;
  ino: bigint;
}

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const isDir = (st: HostStat): boolean => (st.mode & S_IFMT) === S_IFDIR;

function join(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}

/** `.wh.NAME` beside where NAME would be, in an OCI-format layer. */
function ociWhiteout(stack: LayerStack, ref: LowerRef): boolean {
  const slash = ref.path.lastIndexOf('/');
  const dir = slash < 0 ? '' : ref.path.slice(0, slash);
  const name = ref.path.slice(slash + 1);
  return lstatHost(stack.lowerPath({ layer: ref.layer, path: join(dir, OCI_WHITEOUT_PREFIX + name) })) !== undefined;
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
  // A bare name (overlayfs's record of a rename within one directory): in the parent's lower dirs.
  return parentLowers.map((r) => ({ layer: r.layer, path: join(r.path, redirect) }));
}

/** Looks at one candidate on disk: what is there, and the stats when something is. */
function diskProbe(stack: LayerStack, sts: Map<LowerRef, HostStat>): (ref: LowerRef) => Probe {
  return (ref) => {
    const st = lstatHost(stack.lowerPath(ref));
    if (!st) return { found: ociWhiteout(stack, ref) ? 'whiteout' : 'none', hides: false };
    if (isWhiteout(st)) return { found: 'whiteout', hides: true };
    sts.set(ref, st);
    const dir = isDir(st);
    return { found: dir ? 'dir' : 'other', hides: dir && hidesBelow(stack, ref) };
  };
}

/**
 * Walks candidate lower objects top-down on disk (the rule is src/index/resolution.ts).
 * `below` describes what was found above (nothing, an upper dir, or an upper metacopy
 * file); returns the lower refs that take part and the stats of the top one.
 */
function searchLowers(stack: LayerStack, candidates: LowerRef[], below: 'none' | 'dir' | 'metacopy'): Search {
  const sts = new Map<LowerRef, HostStat>();
  const { refs, top } = mergeDown(candidates, diskProbe(stack, sts), below);
  return { refs, top: top && sts.get(top) };
}

interface Search {
  refs: LowerRef[];
  top?: HostStat;
  /** The index's row of the object shown. */
  topRow?: LowerRow;
  ix?: number;
}

/**
 * What lstat of a lower object would say, from its index row. The atime is the one it had
 * when the layer was indexed (the kernel keeps lower attributes for a day anyway).
 */
function statOfRow(stack: LayerStack, row: LowerRow): HostStat {
  const { major, minor } = splitDev(row.rdev);
  return {
    ino: BigInt(row.ino),
    size: row.size,
    blocks: row.blocks,
    atime: row.atime_s,
    atimensec: row.atime_ns,
    mtime: row.mtime_s,
    mtimensec: row.mtime_ns,
    ctime: row.ctime_s,
    ctimensec: row.ctime_ns,
    mode: row.mode,
    nlink: row.nlink,
    uid: row.uid,
    gid: row.gid,
    rdev: encodeDevParts(major, minor),
    blksize: row.blksize,
    dev: stack.lowerDevs[row.layer]!,
  };
}

/**
 * The same search answered by the path index: the rows of parent/name in this stack's
 * layers, the shown object's row with its attributes. Only for parents whose lowers share
 * one indexed path (no redirect).
 */
function searchIndex(stack: LayerStack, view: StackView, parent: UNode, name: string, below: 'none' | 'dir' | 'metacopy'): Search {
  const found = view.child(parent.ix!, name);
  if (!found) return { refs: [] };
  const at = new Map(found.rows.map((r) => [r.layer, r]));
  const { refs, top } = mergeDown(parent.lowers, (ref) => probeOf(at.get(ref.layer)), below);
  const children = refs.map((r) => ({ layer: r.layer, path: join(r.path, name) }));
  return { refs: children, topRow: top && at.get(top.layer), ix: found.ix };
}

/** The children of a parent's lowers named `name`, searched by the index when it can answer. */
function searchChild(stack: LayerStack, parent: UNode, name: string, below: 'none' | 'dir' | 'metacopy'): Search {
  if (stack.view && parent.ix !== undefined) {
    const s = searchIndex(stack, stack.view, parent, name, below);
    return s.topRow ? { ...s, top: statOfRow(stack, s.topRow) } : s;
  }
  return searchLowers(stack, parent.lowers.map((r) => ({ layer: r.layer, path: join(r.path, name) })), below);
}

/** The union inode number of a host object (see LayerStack.unionIno and XATTR_ORIGIN_INO). */
export function inoOf(stack: LayerStack, st: HostStat, upperPath?: string | Buffer): bigint {
  if (upperPath !== undefined) {
    const o = originIno(upperPath);
    if (o !== undefined) return o;
  }
  return stack.unionIno(st.dev, st.ino);
}

export function resolveRoot(stack: LayerStack): Resolved {
  const all = stack.lowers.map((_, layer) => ({ layer, path: '' }));
  const ix = stack.view ? ROOT_IX : undefined;
  if (stack.upper) {
    const st = lstatHost(stack.upper)!;
    const up = stack.upperPath('');
    const opaque = isOpaqueDir(up, stack.upper);
    const { refs } = opaque ? { refs: [] } : searchLowers(stack, all, 'dir');
    return { data: { upper: true, metacopy: false, lowers: refs, ix }, st, ino: inoOf(stack, st, up) };
  }
  const { refs, top } = searchLowers(stack, all, 'none');
  return { data: { upper: false, metacopy: false, lowers: refs, ix }, st: top!, ino: inoOf(stack, top!) };
}

export function resolveChild(stack: LayerStack, parent: Inode<UNode>, name: string): Resolved {
  const pd = parent.data;
  // In lower layers `.wh.` names are markers, never objects; in the upper dir (overlay
  // format) such a name is an ordinary file someone made through the mount.
  const below = (mode: 'none' | 'dir' | 'metacopy'): Search => (isMarkerName(name) ? { refs: [] } : searchChild(stack, pd, name, mode));
  if (pd.upper && stack.upper) {
    const rel = parent.childPath(name);
    const up = stack.upperPath(rel);
    const st = lstatHost(up);
    if (st) {
      if (isWhiteout(st)) throw ENOENT_ERROR;
      const ino = inoOf(stack, st, up);
      if (isDir(st)) {
        let found: Search = { refs: [] };
        if (!isOpaqueDir(up, stack.upperPathString(rel))) {
          const r = redirectOf(up);
          found = r !== undefined ? searchLowers(stack, redirected(stack, pd.lowers, r), 'dir') : below('dir');
        }
        return { data: { upper: true, metacopy: false, lowers: found.refs, ix: found.ix }, st, ino };
      }
      if ((st.mode & S_IFMT) === S_IFREG && isMetacopy(up)) {
        // The mark of a copy still landing: its data is in it (landing.ts).
        const landing = stack.landings.of(st.ino);
        if (landing) return { data: { upper: true, metacopy: false, lowers: [], landing }, st, ino };
        const r = redirectOf(up);
        const found = r !== undefined ? searchLowers(stack, redirected(stack, pd.lowers, r), 'metacopy') : below('metacopy');
        const metacopy = found.refs.length > 0;
        return { data: { upper: true, metacopy, lowers: found.refs, dataBlocks: metacopy ? found.top?.blocks : undefined }, st, ino };
      }
      return { data: { upper: true, metacopy: false, lowers: [] }, st, ino };
    }
  }
  const { refs, top, ix } = below('none');
  if (!top) throw ENOENT_ERROR;
  return { data: { upper: false, metacopy: false, lowers: refs, ix }, st: top, ino: inoOf(stack, top) };
}

/** Whether some lower layer still shows this name below the parent (a delete must then leave a whiteout). */
export function lowerHasName(stack: LayerStack, parent: Inode<UNode>, name: string): boolean {
  return !isMarkerName(name) && searchChild(stack, parent.data, name, 'none').top !== undefined;
}
