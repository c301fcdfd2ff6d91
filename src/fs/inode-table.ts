// nodeid <-> inode, with the kernel's lookup counts. Nodeids are never reused within one
// mount, so the generation number can stay 0.

import { fsError } from '../fuse/errors.js';
import { Inode } from './inode.js';

export class InodeTable<D> {
  private readonly byId = new Map<number, Inode<D>>();
  private readonly byIno = new Map<bigint, Inode<D>>();
  private nextId = 2;
  readonly root: Inode<D>;
  /**
   * Told of an inode the kernel still holds that is losing the last name it knew, because
   * the kernel forgot that name's directory (Inode.dropChildren), while its path still works.
   */
  orphaned: ((node: Inode<D>) => void) | undefined;

  constructor(rootIno: bigint, rootData: D) {
    this.root = new Inode<D>(1, rootIno, 0o040000, rootData);
    this.root.lookups = 1;
    this.byId.set(1, this.root);
    this.byIno.set(rootIno, this.root);
  }

  get size(): number {
    return this.byId.size;
  }

  /** The object behind a nodeid: for a superseded nodeid, the object as it is now. */
  get(nodeid: number): Inode<D> {
    let n = this.byId.get(nodeid);
    if (!n) throw fsError('ESTALE', `unknown nodeid ${nodeid}`);
    while (n.successor) n = n.successor;
    return n;
  }

  /** The inode the kernel means by this nodeid, superseded or not. */
  exact(nodeid: number): Inode<D> {
    const n = this.byId.get(nodeid);
    if (!n) throw fsError('ESTALE', `unknown nodeid ${nodeid}`);
    return n;
  }

  /**
   * Gives the object a new nodeid; the old one stays valid for requests (they reach the
   * object) until the kernel forgets it. Used when the kernel's inode is stuck with a
   * backing file that no longer holds the object's data: after a copy-up, an inode open
   * for passthrough on the lower file. New lookups return the new nodeid, so the kernel
   * builds a fresh inode for the object, while opens made before keep the old one.
   */
  supersede(node: Inode<D>): Inode<D> {
    const next = new Inode<D>(this.nextId++, node.ino, node.type, node.data);
    this.byId.set(next.nodeid, next);
    if (this.byIno.get(node.ino) === node) this.byIno.set(node.ino, next);
    for (const l of [...node.links]) {
      node.removeLink(l.parent, l.name);
      next.addLink(l.parent, l.name);
    }
    // Opened without a name (/proc/self/fd of a file unlinked while open): the successor is
    // still the object whose last name was removed, not one whose names were only forgotten.
    next.unlinkedFrom = node.unlinkedFrom;
    node.successor = next;
    next.predecessors = 1;
    return next;
  }

  find(ino: bigint): Inode<D> | undefined {
    return this.byIno.get(ino);
  }

  /**
   * Records that the kernel now holds one more reference to the object `ino` under
   * parent/name. An existing inode with that number is reused, so hard links share one.
   */
  remember(parent: Inode<D>, name: string, ino: bigint, mode: number, data: () => D): Inode<D> {
    const type = mode & 0o170000;
    let node = this.byIno.get(ino);
    if (node && node.type !== type) {
      // The number was freed and reused for another object: the old inode lives on only
      // until the kernel forgets it.
      this.byIno.delete(ino);
      node = undefined;
    }
    if (!node) {
      node = new Inode<D>(this.nextId++, ino, type, data());
      this.byId.set(node.nodeid, node);
      this.byIno.set(ino, node);
    }
    node.lookups++;
    node.addLink(parent, name);
    return node;
  }

  /** A new object with no name (O_TMPFILE), which the kernel now holds once; a LINK may name it later. */
  rememberNameless(ino: bigint, mode: number, data: D): Inode<D> {
    const node = new Inode<D>(this.nextId++, ino, mode & 0o170000, data);
    this.byId.set(node.nodeid, node);
    this.byIno.set(ino, node);
    node.lookups = 1;
    return node;
  }

  /** Counts one more kernel reference to a known inode (lookup of "." or ".."). */
  ref(node: Inode<D>): Inode<D> {
    node.lookups++;
    return node;
  }

  /**
   * Drops n references; returns the inode when the kernel no longer knows the object (a
   * superseded nodeid going away leaves the object to its successor).
   */
  forget(nodeid: number, n: number): Inode<D> | undefined {
    const node = this.byId.get(nodeid);
    if (!node || node.isRoot) return undefined;
    node.lookups -= n;
    return this.dropIfUnknown(node);
  }

  /** Lets go of an inode the kernel no longer holds, unless a superseded one still routes to it. */
  private dropIfUnknown(node: Inode<D>): Inode<D> | undefined {
    if (node.lookups > 0 || node.predecessors > 0) return undefined;
    this.byId.delete(node.nodeid);
    if (node.successor) {
      // Requests on this nodeid went to the successor, which may now go too.
      node.successor.predecessors--;
      return this.dropIfUnknown(node.successor);
    }
    if (this.byIno.get(node.ino) === node) this.byIno.delete(node.ino);
    // Children first: their paths go through this directory's own name.
    node.dropChildren(this.orphaned);
    for (const l of [...node.links]) node.removeLink(l.parent, l.name);
    return node;
  }

  /**
   * The name parent/name is gone (unlink, rmdir). `survives`: the object keeps other names
   * the kernel has not looked up; its number stays its own.
   */
  unlinkName(parent: Inode<D>, name: string, survives = false): void {
    const node = parent.child(name);
    if (!node) return;
    node.removeLink(parent, name);
    this.retireIfNameless(node, parent, survives);
  }

  /** Moves or swaps names after a successful rename. `survives`: a replaced object keeps other names (unlinkName). */
  rename(oldParent: Inode<D>, oldName: string, newParent: Inode<D>, newName: string, exchange: boolean, survives = false): void {
    const moved = oldParent.child(oldName);
    const target = newParent.child(newName);
    moved?.removeLink(oldParent, oldName);
    target?.removeLink(newParent, newName);
    moved?.addLink(newParent, newName);
    if (exchange) target?.addLink(oldParent, oldName);
    else if (target && target !== moved) this.retireIfNameless(target, newParent, survives);
  }

  /**
   * An object that lost its last name is gone; the kernel may still hold its nodeid (open
   * files) until FORGET. Its st_ino is free for the filesystem to reuse, and a new object
   * with that number must get a new nodeid: the kernel refuses a new directory that comes
   * back as the inode of a removed one (ESTALE), and a file would show stale attributes.
   */
  private retireIfNameless(node: Inode<D>, from: Inode<D>, survives = false): void {
    if (node.links.length > 0) return;
    node.unlinkedFrom = from;
    if (!survives && this.byIno.get(node.ino) === node) this.byIno.delete(node.ino);
  }
}
