// Open files and directories by fh, and the passthrough backing ids they share.

import { fsError } from '../fuse/errors.js';
import type { DirEntry } from './api.js';
import type { Inode } from './inode.js';

export interface OpenFile<D, H> {
  node: Inode<D>;
  handle: H;
  /** Set when this open uses the inode's passthrough backing file. */
  backing: boolean;
}

/** An open directory keeps the listing it took, so offsets stay stable across READDIRs. */
export interface OpenDir<D> {
  node: Inode<D>;
  entries: DirEntry[] | undefined;
}

export class HandleTable<T> {
  private readonly items = new Map<number, T>();
  private next = 1;

  add(item: T): number {
    const fh = this.next++;
    this.items.set(fh, item);
    return fh;
  }

  get(fh: number): T {
    const it = this.items.get(fh);
    if (it === undefined) throw fsError('EBADF', `unknown file handle ${fh}`);
    return it;
  }

  remove(fh: number): T | undefined {
    const it = this.items.get(fh);
    this.items.delete(fh);
    return it;
  }

  get size(): number {
    return this.items.size;
  }

  values(): IterableIterator<T> {
    return this.items.values();
  }
}

interface Backing {
  id: number;
  refs: number;
  writable: boolean;
}

/**
 * The kernel attaches one backing file to a FUSE inode while any passthrough open of it
 * exists; a second open that names another backing id fails with EIO. So the id is shared
 * by every open of the inode and closed after the last RELEASE.
 */
export class BackingTable {
  private readonly byNode = new Map<number, Backing>();

  constructor(
    private readonly open: (fd: number) => number,
    private readonly close: (id: number) => void,
  ) {}

  /** Backing id for this open, or undefined when it must go through the daemon instead. */
  acquire(nodeid: number, fd: number, writable: boolean, needWrite: boolean): number | undefined {
    const cur = this.byNode.get(nodeid);
    if (cur) {
      if (needWrite && !cur.writable) return undefined;
      cur.refs++;
      return cur.id;
    }
    const id = this.open(fd);
    this.byNode.set(nodeid, { id, refs: 1, writable });
    return id;
  }

  /** Whether the inode currently has a backing file attached (other opens must not mix in page-cache mode). */
  has(nodeid: number): boolean {
    return this.byNode.has(nodeid);
  }

  release(nodeid: number): void {
    const cur = this.byNode.get(nodeid);
    if (!cur || --cur.refs > 0) return;
    this.byNode.delete(nodeid);
    this.close(cur.id);
  }
}
