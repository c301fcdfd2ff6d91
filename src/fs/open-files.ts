// Open files by fh, and the passthrough backing ids they share.

import { fsError } from '../fuse/errors.js';
import { fstatHost } from './attr.js';
import type { Inode } from './inode.js';

export interface OpenFile<D, H> {
  /** The object (moves to the successor when its inode is superseded). */
  node: Inode<D>;
  /** The kernel inode this file was opened on: its backing id and I/O mode are kept by this. */
  nodeid: number;
  handle: H;
  /** Set when this open uses the inode's passthrough backing file. */
  backing: boolean;
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
  /** dev:ino of the backing file. */
  file: string;
}

/** acquire() could not attach: the inode's backing file is another file than this open's. */
export const OTHER_BACKING = -1;

/** dev:ino of an open host file. */
function fileOf(fd: number): string {
  const st = fstatHost(fd);
  return `${st.dev}:${st.ino}`;
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

  /**
   * Backing id for this open; undefined when it must go through the daemon instead;
   * OTHER_BACKING when the inode is attached to a different file (a union's lower file,
   * copied up since), which the kernel cannot swap while the inode is open.
   */
  acquire(nodeid: number, fd: number, writable: boolean, needWrite: boolean): number | undefined {
    const cur = this.byNode.get(nodeid);
    if (cur) {
      if (fileOf(fd) !== cur.file) return OTHER_BACKING;
      if (needWrite && !cur.writable) return undefined;
      cur.refs++;
      return cur.id;
    }
    const id = this.open(fd);
    this.byNode.set(nodeid, { id, refs: 1, writable, file: fileOf(fd) });
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
