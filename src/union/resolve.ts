// Finding a name: upper first, then the lower dirs merged into the parent, top-down,
// honouring whiteouts, opaque dirs and redirects in both on-disk formats. When the stack is
// indexed, the lower side is answered by the path index (src/index) from the rows of the
// one path, attributes included (lower layers never change, so no lstat is needed: a cold
// lookup reads no inode of the layers); otherwise (no index, or below a redirect) each
// layer is probed on disk. Both apply the rule in src/index/resolution.ts.

import { truncateSync } from 'node:fs';
import { ENOENT_ERROR, fsError } from '../fuse/errors.js';
import { native } from '../native/binding.js';
import { log } from '../util/log.js';
import { joinRel } from '../util/os-path.js';
import type { Inode } from '../fs/inode.js';
import { encodeDevParts, lstatHost, splitDev, type HostStat } from '../fs/attr.js';
import { mergeDown, type Probe } from '../index/resolution.js';
import { ROOT_IX } from '../index/schema.js';
import { probeOf, type LowerRow, type StackView } from '../index/stack-view.js';
import { isOciMarker as isMarkerName, isMetacopy, isOpaqueDir, mayBeMetacopy, isWhiteout, nlinkDeltaOf, OCI_WHITEOUT_PREFIX, originIno, redirectOf } from './markers.js';
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

/**
 * lstat of a candidate in a lower layer; undefined when nothing is there, also when a
 * directory on the way is not one in that layer (ENOTDIR: a redirect's path crossing a
 * file of that layer names nothing in it).
 */
function lstatBelow(p: string | Buffer): HostStat | undefined {
  try {
    return lstatHost(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw e;
  }
}

/** `.wh.NAME` beside where NAME would be, in an OCI-format layer. */
function ociWhiteout(stack: LayerStack, ref: LowerRef): boolean {
  const name = ref.path.slice(ref.path.lastIndexOf('/') + 1);
  return lstatHost(stack.lowerPath({ layer: ref.layer, path: joinRel(dirOf(ref.path), OCI_WHITEOUT_PREFIX + name) })) !== undefined;
}

function dirOf(p: string): string {
  const slash = p.lastIndexOf('/');
  return slash < 0 ? '' : p.slice(0, slash);
}

/**
 * The directories at an absolute path in the layers below `layer` (-1: all layers): the
 * path resolved a directory at a time through those layers, as overlayfs follows an
 * absolute redirect, so a layer takes part only where every directory on the way is a
 * directory that no layer above hides (a file, a whiteout or an opaque directory there
 * ends it; mapping the path into every layer read a layer's file as a directory: ENOTDIR,
 * or showed what an opaque directory above hid). The path index answers for all layers at
 * once; on disk, each directory on the way is searched like any lookup, and a directory
 * renamed in a lower layer (a redirect of its own) is followed.
 */
function lowerDirsAt(stack: LayerStack, dir: string, layer: number): LowerRef[] {
  const parts = dir.split('/').filter((n) => n !== '');
  const rel = parts.join('/');
  if (stack.view && layer < 0) {
    const found = stack.view.resolve(rel);
    if (!found || (found.rows[0]!.mode & S_IFMT) !== S_IFDIR) return [];
    return found.rows.map((r) => ({ layer: r.layer, path: rel }));
  }
  let dirs: LowerRef[] = stack.lowers.map((_, l) => ({ layer: l, path: '' })).filter((r) => r.layer > layer);
  for (const name of parts) {
    const found = searchLowers(stack, dirs.map((d) => ({ layer: d.layer, path: joinRel(d.path, name) })), 'none');
    if (!found.top || !isDir(found.top)) return [];
    dirs = found.refs;
  }
  return dirs;
}

/** An absolute redirect's candidates in the layers below `layer` (-1: all layers). */
function atPath(stack: LayerStack, redirect: string, layer = -1): LowerRef[] {
  const p = redirect.replace(/^\/+/, '');
  const name = p.slice(p.lastIndexOf('/') + 1);
  return lowerDirsAt(stack, dirOf(p), layer).map((d) => ({ layer: d.layer, path: joinRel(d.path, name) }));
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
  if (redirect.startsWith('/')) return atPath(stack, redirect);
  // A bare name (overlayfs's record of a rename within one directory): in the parent's lower dirs.
  return parentLowers.map((r) => ({ layer: r.layer, path: joinRel(r.path, redirect) }));
}

/** Looks at one candidate on disk: what is there, and the stats when something is; `hiding`: dirs that hide the layers below. */
function diskProbe(stack: LayerStack, sts: Map<LowerRef, HostStat>, hiding: Set<LowerRef>): (ref: LowerRef) => Probe {
  return (ref) => {
    const st = lstatBelow(stack.lowerPath(ref));
    if (!st) return { found: ociWhiteout(stack, ref) ? 'whiteout' : 'none', hides: false };
    if (isWhiteout(st)) return { found: 'whiteout', hides: true };
    sts.set(ref, st);
    const dir = isDir(st);
    const hides = dir && hidesBelow(stack, ref);
    if (hides) hiding.add(ref);
    return { found: dir ? 'dir' : 'other', hides };
  };
}

/**
 * Walks candidate lower objects top-down on disk (the rule is src/index/resolution.ts).
 * `below` describes what was found above (nothing, an upper dir, or an upper metacopy
 * file); returns the lower refs that take part and the stats of the top one.
 */
function searchLowers(stack: LayerStack, candidates: LowerRef[], below: 'none' | 'dir' | 'metacopy'): Search {
  const sts = new Map<LowerRef, HostStat>();
  const hiding = new Set<LowerRef>();
  const { refs, top } = mergeDown(candidates, diskProbe(stack, sts, hiding), below);
  const found = { refs, top: top && sts.get(top) };
  if (!stack.lowerRedirects) return found;
  // A lower directory renamed in its own layer (an overlay upper dir used as a layer)
  // carries a redirect: the layers below it hold its contents at the old name.
  for (const [i, ref] of refs.entries()) {
    if (!isDir(sts.get(ref)!) || hiding.has(ref)) break;
    const r = redirectOf(stack.lowerPath(ref));
    if (r === undefined) continue;
    const rest = r.startsWith('/')
      ? atPath(stack, r, ref.layer)
      : candidates.filter((c) => c.layer > ref.layer).map((c) => ({ layer: c.layer, path: joinRel(dirOf(c.path), r) }));
    return { ...found, refs: [...refs.slice(0, i + 1), ...searchLowers(stack, rest, 'dir').refs] };
  }
  return found;
}

/**
 * A metadata-only copy whose data no layer below holds: overlayfs fails its lookup with EIO
 * rather than show the copy's holes as the file's content, and so does stratafs.
 */
function noData(rel: string): Error {
  log.warn({ path: rel }, 'metadata-only copy with no data in the layers below: EIO');
  return fsError('EIO', `${rel}: metadata-only copy with no data in the layers below`);
}

/**
 * Where the data of a lower regular file lies when that file is itself a metadata-only
 * copy: an overlay upper dir (the kernel's with metacopy=on, or ours) stacked as a lower
 * layer. As overlayfs does, the search goes on in the layers below it, at its redirect
 * (absolute, or a name in its parent's lower dirs) or else at its own name, until a file
 * with data is found; undefined when the file is no metacopy, EIO when none is found.
 * `parentDirs`: the merged parent's lower dirs, which know where a renamed parent lies
 * below. The mark is read only where blocks and size allow it (mayBeMetacopy).
 */
function dataBelow(stack: LayerStack, ref: LowerRef, st: HostStat, parentDirs: LowerRef[]): { ref: LowerRef; st: HostStat } | undefined {
  if ((st.mode & S_IFMT) !== S_IFREG || !mayBeMetacopy(st.size, st.blocks, st.blksize)) return undefined;
  const p = stack.lowerPath(ref);
  if (!isMetacopy(p)) return undefined;
  const name = ref.path.slice(ref.path.lastIndexOf('/') + 1);
  // The parent's own lower dirs when the file was found in one of them; otherwise (reached
  // through an upper metacopy's absolute redirect) its directory in each layer below.
  const viaParent = parentDirs.some((d) => d.layer === ref.layer && joinRel(d.path, name) === ref.path);
  const dirs = viaParent ? parentDirs.filter((d) => d.layer > ref.layer) : lowerDirsAt(stack, dirOf(ref.path), ref.layer);
  const r = redirectOf(p);
  const candidates =
    r !== undefined && r.startsWith('/')
      ? atPath(stack, r, ref.layer)
      : dirs.map((d) => ({ layer: d.layer, path: joinRel(d.path, r ?? name) }));
  const found = searchLowers(stack, candidates, 'metacopy');
  const next = found.refs[0];
  if (!next || !found.top) throw noData(ref.path);
  return dataBelow(stack, next, found.top, r !== undefined && r.startsWith('/') ? [] : dirs) ?? { ref: next, st: found.top };
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
  const children = refs.map((r) => ({ layer: r.layer, path: joinRel(r.path, name) }));
  return { refs: children, topRow: top && at.get(top.layer), ix: found.ix };
}

/** The children of a parent's lowers named `name`, searched by the index when it can answer. */
function searchChild(stack: LayerStack, parent: UNode, name: string, below: 'none' | 'dir' | 'metacopy'): Search {
  if (stack.view && parent.ix !== undefined) {
    const s = searchIndex(stack, stack.view, parent, name, below);
    return s.topRow ? { ...s, top: statOfRow(stack, s.topRow) } : s;
  }
  return searchLowers(stack, parent.lowers.map((r) => ({ layer: r.layer, path: joinRel(r.path, name) })), below);
}

/**
 * Where an absolute redirect to a node's lower objects points: the path at which they are
 * found from the top lower layer. Without redirects in the lower layers that is the path of
 * its top lower object. With them (a directory renamed in a lower layer leaves its old path
 * to the layers below it), it is the node's union path with each directory that has a
 * redirect in the upper dir replaced by that redirect, as overlayfs builds it.
 */
export function redirectTarget(stack: LayerStack, node: Inode<UNode>): string {
  if (!stack.lowerRedirects) return `/${node.data.lowers[0]!.path}`;
  const names: string[] = [];
  for (let n = node; !n.isRoot; ) {
    const link = n.links[0];
    if (!link) throw fsError('ESTALE', `inode ${n.nodeid} has no name`);
    const r = n.data.upper ? redirectOf(stack.upperPath(n.path())) : undefined;
    if (r?.startsWith('/')) return [r.replace(/\/+$/, ''), ...names.reverse()].join('/');
    names.push(r ?? link.name);
    n = link.parent;
  }
  return `/${names.reverse().join('/')}`;
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

/**
 * A metadata-only copy always has its data's size (a truncate or a write copies the data
 * first). One with another size is a data copy whose landing a crash cut short (landing.ts):
 * the mark still says "data below", but writes made after the copy-up had changed its size,
 * so it showed the lower data with the new size (and so did the kernel over this upper
 * dir). Those writes were never made durable: the file goes back to the lower data's size,
 * on disk too, its times kept. (`st` is changed in place.)
 */
function unlandedCopy(stack: LayerStack, rel: string, up: string | Buffer, st: HostStat, dataSize: number): void {
  log.warn({ path: rel, size: st.size, dataSize }, 'a copy-up had not landed when its daemon died: the file shows its lower data again, at that size');
  if (!stack.readOnly) {
    truncateSync(up, dataSize);
    native.utimens(up, st.atime, st.atimensec, st.mtime, st.mtimensec, true);
  }
  st.size = dataSize;
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
      const origin = originIno(up);
      const ino = origin ?? stack.unionIno(st.dev, st.ino);
      if (isDir(st)) {
        let found: Search = { refs: [] };
        if (!isOpaqueDir(up, stack.upperPathString(rel))) {
          const r = redirectOf(up);
          found = r !== undefined ? searchLowers(stack, redirected(stack, pd.lowers, r), 'dir') : below('dir');
        }
        return { data: { upper: true, metacopy: false, lowers: found.refs, ix: found.ix }, st, ino };
      }
      // Only a copy of a lower file (it has our origin record) can count names it could not link.
      const nlinkDelta = (origin !== undefined && (st.mode & S_IFMT) === S_IFREG ? nlinkDeltaOf(up) : 0) || undefined;
      if ((st.mode & S_IFMT) === S_IFREG && isMetacopy(up)) {
        // The mark of a copy still landing: its data is in it (landing.ts).
        const landing = stack.landings.of(st.ino);
        if (landing) return { data: { upper: true, metacopy: false, lowers: [], landing, nlinkDelta }, st, ino };
        const r = redirectOf(up);
        const candidates = r !== undefined ? redirected(stack, pd.lowers, r) : undefined;
        const found = candidates ? searchLowers(stack, candidates, 'metacopy') : below('metacopy');
        if (found.refs.length === 0) throw noData(rel);
        // Below a lower metacopy its data is searched in the directories the candidates were
        // found in: a redirect walked a directory at a time knows where a directory renamed
        // in a lower layer lies further down (its path mapped anew into those layers did not:
        // EIO after a rename of such a file, found by a helper's campaign).
        const dirs = candidates ? candidates.map((c) => ({ layer: c.layer, path: dirOf(c.path) })) : pd.lowers;
        const deeper = found.top && stack.lowerRedirects ? dataBelow(stack, found.refs[0]!, found.top, dirs) : undefined;
        const blocks = deeper ? deeper.st.blocks : found.top?.blocks;
        const dataSize = deeper ? deeper.st.size : found.top?.size;
        if (dataSize !== undefined && st.size !== dataSize) unlandedCopy(stack, rel, up, st, dataSize);
        return { data: { upper: true, metacopy: true, lowers: found.refs, data: deeper?.ref, dataBlocks: blocks, nlinkDelta }, st, ino };
      }
      return { data: { upper: true, metacopy: false, lowers: [], nlinkDelta }, st, ino };
    }
  }
  const { refs, top, ix } = below('none');
  if (!top) throw ENOENT_ERROR;
  // Only where lower layers may hold metacopies (the index found some, or there is none).
  const deeper = stack.lowerRedirects ? dataBelow(stack, refs[0]!, top, pd.lowers) : undefined;
  return { data: { upper: false, metacopy: false, lowers: refs, ix, data: deeper?.ref, dataBlocks: deeper?.st.blocks }, st: top, ino: inoOf(stack, top) };
}

/** Whether some lower layer still shows this name below the parent (a delete must then leave a whiteout). */
export function lowerHasName(stack: LayerStack, parent: Inode<UNode>, name: string): boolean {
  return !isMarkerName(name) && searchChild(stack, parent.data, name, 'none').top !== undefined;
}
