// What a directory removed while an fd or a process's cwd still holds it answers with:
// FUSE sends no handle for directories, and the filesystem may have no path left to ask by
// (Inode.removed). The bridge takes the record before every rmdir and rename over a
// directory, and answers from it once the filesystem says ESTALE.

import { errnoNumber, errnoOf } from '../fuse/errors.js';
import type { RequestContext } from '../fuse/session.js';
import { after, recover, type MaybeAsync } from '../util/maybe-async.js';
import type { Attr, FileSystem, SetAttr, TimeSpec } from './api.js';
import type { Inode, RemovedDir } from './inode.js';

const ESTALE = errnoNumber('ESTALE');
const S_IFDIR = 0o040000;

/**
 * What a directory about to lose its last name keeps for an fd or a cwd that may still hold
 * it. Taken for every directory removed, since the bridge does not know which are open (the
 * kernel opens directories without asking where listings may be kept, and OPENDIR has no
 * handle otherwise): an lstat and an llistxattr, which find no xattrs on most. A directory
 * that shows its own link count has none left once removed (the host's fstat says 0); 1,
 * the count of a merged one, stays (overlayfs's fstat says 1). What cannot be read is left
 * out: the removal itself must not fail for it.
 */
export function keptOfDir<D, H>(fs: FileSystem<D, H>, ctx: RequestContext, node: Inode<D> | undefined): MaybeAsync<RemovedDir | undefined> {
  if (!node || node.links.length !== 1 || node.type !== S_IFDIR) return undefined;
  return recover(
    () => after(fs.getattr(ctx, node, undefined), (a) => after(xattrsOf(fs, ctx, node), (xattrs) => ({ attr: { ...a, nlink: a.nlink > 1 ? 0 : a.nlink }, xattrs }))),
    () => undefined,
  );
}

/** Every xattr of node (shown names), without those that cannot be read. */
function xattrsOf<D, H>(fs: FileSystem<D, H>, ctx: RequestContext, node: Inode<D>): MaybeAsync<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const { listxattr, getxattr } = fs;
  if (!listxattr || !getxattr) return out;
  const readOne = (n: string): MaybeAsync<void> =>
    recover(
      () => after(getxattr.call(fs, ctx, node, n), (v) => void out.set(n, v)),
      () => undefined, // gone meanwhile
    );
  return recover(
    () =>
      after(listxattr.call(fs, ctx, node), (names) => {
        let done: MaybeAsync<void> = undefined;
        for (const n of names) done = after(done, () => readOne(n));
        return after(done, () => out);
      }),
    () => out, // none readable: its fds will see none
  );
}

/** What a removed directory kept, when it has no name left; otherwise undefined. */
function keptRecord<D>(node: Inode<D>): RemovedDir | undefined {
  return node.links.length === 0 ? node.removed : undefined;
}

/**
 * What a removed directory keeps, used once the filesystem cannot reach it (its error `e`,
 * ESTALE: no path left); any other failure is rethrown. For a union, a directory only in
 * lower layers stays reachable there, and a change to it fails as its copy-up does
 * (overlayfs's errno).
 */
export function removedDir<D>(node: Inode<D>, e: unknown): RemovedDir {
  const kept = keptRecord(node);
  if (!kept || errnoOf(e) !== ESTALE) throw e;
  return kept;
}

/**
 * The xattrs a removed directory kept, for reads through its fd: checked before the
 * filesystem is asked, so the common request pays one field read.
 */
export function removedXattrs<D>(node: Inode<D>): Map<string, Buffer> | undefined {
  return keptRecord(node)?.xattrs;
}

/**
 * A change to a removed directory: nothing of it is left on disk to change (for overlayfs,
 * a deleted upper directory nobody else can reach), so the attributes it answers with
 * change, as a later fstat through the fd shows.
 */
export function setRemoved(a: Attr, s: SetAttr): Attr {
  const now = Date.now();
  const time = (t: TimeSpec): [number, number] => (t === 'now' ? [Math.floor(now / 1000), (now % 1000) * 1e6] : [t.sec, t.nsec]);
  if (s.mode !== undefined) a.mode = (a.mode & ~0o7777) | (s.mode & 0o7777);
  if (s.uid !== undefined) a.uid = s.uid;
  if (s.gid !== undefined) a.gid = s.gid;
  if (s.atime !== undefined) [a.atime, a.atimensec] = time(s.atime);
  if (s.mtime !== undefined) [a.mtime, a.mtimensec] = time(s.mtime);
  [a.ctime, a.ctimensec] = s.ctime ? [s.ctime.sec, s.ctime.nsec] : time('now');
  return a;
}
