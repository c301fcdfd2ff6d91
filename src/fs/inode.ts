// One object the kernel knows by nodeid. It carries the names it is known under (its
// directory entries), so a filesystem can ask for its path; hard links give one inode
// several entries.

import { fsError } from '../fuse/errors.js';
import type { Attr } from '../fuse/replies.js';
import { joinRel } from '../util/os-path.js';

export interface Link<D> {
  parent: Inode<D>;
  name: string;
}

/**
 * What a removed directory keeps for the fds and working directories that may still hold
 * it (the bridge does not know which directories are open): its attributes as they were just
 * before, with its link count as the removal leaves it, and its xattrs (shown names). An
 * fstat or fgetxattr of the open directory reaches the filesystem without a handle (FUSE
 * sends none for directories) and may find no path left to ask by.
 */
export interface RemovedDir {
  attr: Attr;
  xattrs: Map<string, Buffer>;
}

export class Inode<D = unknown> {
  /** How many LOOKUP replies the kernel holds for this nodeid (FORGET gives them back). */
  lookups = 0;
  /** Children the kernel has looked up, by name; made on the first (most inodes are files). */
  private kids: Map<string, Inode<D>> | undefined;
  /**
   * The names this inode is reachable by; links[0] is the one path() uses. Changed only by
   * addLink/removeLink. Most inodes have one name, so the first makes an array of one: an
   * empty array that grows by push reserves 17 slots, ~130 bytes more for every inode held.
   */
  links: Array<Link<D>> = [];
  /**
   * Set when the object moved on to a new nodeid (InodeTable.supersede): the kernel inode
   * of this one is pinned to a backing file that no longer holds the object's data.
   */
  successor: Inode<D> | undefined;
  /** Superseded inodes the kernel still knows whose successor this is: requests on them land here. */
  predecessors = 0;
  /** A removed directory: what its fds (or a cwd in it) still see (RemovedDir). */
  removed: RemovedDir | undefined;
  /**
   * Its last name was removed through the mount (unlink, rmdir, replaced by a rename): the
   * directory that name was in. An inode also loses its names when the kernel forgets the
   * directories they are in (dropChildren) while it still holds the inode itself: the
   * object keeps them then, and this stays unset.
   */
  unlinkedFrom: Inode<D> | undefined;

  constructor(
    readonly nodeid: number,
    /** st_ino reported to the kernel and the key that makes hard links one inode. */
    readonly ino: bigint,
    /** S_IFMT bits: the type never changes for one inode. */
    readonly type: number,
    /** The filesystem's own state for this inode. */
    public data: D,
  ) {}

  get isRoot(): boolean {
    return this.nodeid === 1;
  }

  /** Path relative to the filesystem root ('' for the root itself, 'a/b' below it). */
  path(): string {
    if (this.isRoot) return '';
    const names: string[] = [];
    let n: Inode<D> = this;
    while (!n.isRoot) {
      const l = n.links[0];
      // Unlinked while still open or known: there is no path any more.
      if (!l) throw fsError('ESTALE', `inode ${n.nodeid} has no name`);
      names.push(l.name);
      n = l.parent;
    }
    return names.reverse().join('/');
  }

  /** Path of a child name of this directory. */
  childPath(name: string): string {
    return joinRel(this.path(), name);
  }

  parent(): Inode<D> | undefined {
    return this.links[0]?.parent;
  }

  /** The child the kernel has looked up under this name, if any. */
  child(name: string): Inode<D> | undefined {
    return this.kids?.get(name);
  }

  addLink(parent: Inode<D>, name: string): void {
    const old = parent.child(name);
    if (old === this) return;
    if (old) old.removeLink(parent, name);
    (parent.kids ??= new Map()).set(name, this);
    if (this.links.length === 0) this.links = [{ parent, name }];
    else this.links.push({ parent, name });
    this.unlinkedFrom = undefined;
  }

  removeLink(parent: Inode<D>, name: string): void {
    if (parent.child(name) === this) parent.kids!.delete(name);
    const i = this.links.findIndex((l) => l.parent === parent && l.name === name);
    if (i >= 0) this.links.splice(i, 1);
  }

  /**
   * The kernel forgot this directory, and with it every dentry below it: the names of the
   * children go too. A child it still knows (a hard link elsewhere keeps it) must not
   * keep a name under an inode that is gone: path() would fail for it with ESTALE under
   * every name, and a new lookup of this directory gives it another nodeid, under which the
   * child's name would only be added behind the dead one. The child stays the inode of
   * its st_ino, so a later lookup of the name finds it again.
   */
  dropChildren(orphaned?: (kid: Inode<D>) => void): void {
    // Deleting the entry being visited is safe in a Map's iteration.
    for (const [name, kid] of this.kids ?? []) {
      // Its last name: told while this directory still gives it a path.
      if (kid.links.length === 1) orphaned?.(kid);
      kid.removeLink(this, name);
    }
    this.kids = undefined;
  }
}
