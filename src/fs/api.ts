// The inode-based operations interface a filesystem implements (in the spirit of go-fuse's
// fs API). The bridge keeps nodeids, lookup counts, names, open files and directory
// offsets; a filesystem only answers for one inode at a time. Errors are thrown as objects
// with an errno `code` (Node's fs errors already are). Methods left out answer ENOSYS.

import type { MaybeAsync } from '../fuse/session.js';
import type { Attr, StatfsOut } from '../fuse/replies.js';
import type { Inode } from './inode.js';

export type { Attr, StatfsOut, MaybeAsync };

/** The caller of a request. */
export interface Context {
  uid: number;
  gid: number;
  pid: number;
  interrupted?: boolean;
  /**
   * For a request that creates (mknod, mkdir, create, tmpfile) when the kernel left the
   * caller's umask to the daemon (SessionOptions.posixAcl): apply it, unless the parent
   * has a default ACL, which replaces it (host/files.ts withCallerUmask does both).
   */
  umask?: number;
}

export interface Timeouts {
  /** Seconds the kernel may keep the name -> inode mapping. */
  entry: number;
  /** Seconds the kernel may keep the attributes. */
  attr: number;
}

export interface Entry<D> {
  attr: Attr;
  /** State for the inode when the bridge creates it (first lookup of this object). */
  data?: D;
}

/** A point in time for setattr: seconds + nanoseconds, or the current time. */
export type TimeSpec = { sec: number; nsec: number } | 'now';

export interface SetAttr {
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  atime?: TimeSpec;
  mtime?: TimeSpec;
  ctime?: { sec: number; nsec: number };
}

export interface OpenResult<H> {
  handle: H;
  /** Page cache survives close/open (the file cannot change behind the kernel's back). */
  keepCache?: boolean;
  /** Bypass the page cache: every read and write reaches the filesystem. */
  directIo?: boolean;
  nonSeekable?: boolean;
  /**
   * An fd the kernel may read and write directly (FUSE passthrough) instead of sending
   * READ/WRITE. Used only when passthrough was negotiated; `backingWritable` says whether
   * it was opened for writing, so a later write-open of the same inode can share it.
   */
  backingFd?: number;
  backingWritable?: boolean;
}

export interface DirEntry {
  name: string;
  ino: bigint;
  /** At least the S_IFMT bits. */
  mode: number;
}

/** What the bridge gives a filesystem that changes objects on its own (see FileSystem.serving). */
export interface Served<D> {
  /** The root inode, where walks over inodes the kernel knows start. */
  readonly root: Inode<D>;
  /**
   * The object's attributes changed without a request about it (a side effect on another
   * inode): the kernel is told to ask again, shortly and once for several changes.
   */
  attrsChanged(node: Inode<D>): void;
}

export interface FileSystem<D = unknown, H = unknown> {
  /** Attributes and state of the root directory. */
  root(): { attr: Attr; data: D };
  /** Called once the inode table exists, before the first request. */
  serving?(served: Served<D>): void;

  lookup(ctx: Context, parent: Inode<D>, name: string): Entry<D>;
  /** The kernel dropped its last reference to node. */
  forget?(node: Inode<D>): void;
  /**
   * The kernel forgot the directory of the last name it knew node by, but still holds node
   * (an fd opened before node moved to a new nodeid): node.path() works for the duration
   * of this call only, so a filesystem that reaches objects by path keeps another way.
   */
  orphaned?(node: Inode<D>): void;
  getattr(ctx: Context, node: Inode<D>, fh: H | undefined): MaybeAsync<Attr>;
  setattr?(ctx: Context, node: Inode<D>, set: SetAttr, fh: H | undefined): MaybeAsync<Attr>;
  readlink?(ctx: Context, node: Inode<D>): MaybeAsync<Buffer>;

  mknod?(ctx: Context, parent: Inode<D>, name: string, mode: number, rdev: number): MaybeAsync<Entry<D>>;
  mkdir?(ctx: Context, parent: Inode<D>, name: string, mode: number): MaybeAsync<Entry<D>>;
  symlink?(ctx: Context, parent: Inode<D>, name: string, target: Buffer): MaybeAsync<Entry<D>>;
  link?(ctx: Context, node: Inode<D>, newParent: Inode<D>, newName: string): MaybeAsync<Entry<D>>;
  /**
   * Resolves true when the object keeps other names (a hard link the kernel may not have
   * looked up): its inode number stays its own, so a lookup of another name finds the
   * inode the kernel still holds for it (an fd of the removed name) instead of a new one.
   */
  unlink?(ctx: Context, parent: Inode<D>, name: string): MaybeAsync<void | boolean>;
  rmdir?(ctx: Context, parent: Inode<D>, name: string): MaybeAsync<void>;
  /**
   * flags: RENAME_NOREPLACE (1), RENAME_EXCHANGE (2), RENAME_WHITEOUT (4). Resolves true
   * when an object the rename replaced keeps other names, as `unlink` does.
   */
  rename?(ctx: Context, parent: Inode<D>, name: string, newParent: Inode<D>, newName: string, flags: number): MaybeAsync<void | boolean>;

  open?(ctx: Context, node: Inode<D>, flags: number): MaybeAsync<OpenResult<H>>;
  create?(ctx: Context, parent: Inode<D>, name: string, flags: number, mode: number): MaybeAsync<{ entry: Entry<D>; open: OpenResult<H> }>;
  /** O_TMPFILE: an open file with no name in parent; a LINK may name it later (unless O_EXCL). */
  tmpfile?(ctx: Context, parent: Inode<D>, flags: number, mode: number): MaybeAsync<{ entry: Entry<D>; open: OpenResult<H> }>;
  read?(ctx: Context, node: Inode<D>, fh: H, offset: number, size: number): MaybeAsync<Buffer>;
  write?(ctx: Context, node: Inode<D>, fh: H, offset: number, data: Buffer): MaybeAsync<number>;
  flush?(ctx: Context, node: Inode<D>, fh: H): MaybeAsync<void>;
  release?(ctx: Context, node: Inode<D>, fh: H): MaybeAsync<void>;
  fsync?(ctx: Context, node: Inode<D>, fh: H | undefined, datasync: boolean): MaybeAsync<void>;
  fallocate?(ctx: Context, node: Inode<D>, fh: H, mode: number, offset: number, length: number): MaybeAsync<void>;
  lseek?(ctx: Context, node: Inode<D>, fh: H, offset: number, whence: number): MaybeAsync<number>;
  copyFileRange?(ctx: Context, inNode: Inode<D>, inFh: H, inOffset: number, outNode: Inode<D>, outFh: H, outOffset: number, length: number, flags: number): MaybeAsync<number>;

  /**
   * Checked at OPENDIR (permissions, existence); the listing is taken by readdir. Answer
   * `{ cache: true }` for a directory whose listing cannot change behind the kernel's back:
   * the kernel then keeps it (FOPEN_CACHE_DIR) and drops it itself when it changes the
   * directory through the mount.
   */
  opendir?(ctx: Context, node: Inode<D>): MaybeAsync<void | { cache: boolean }>;
  /**
   * True when opendir would answer `{ cache: true }` for every directory and check
   * nothing: the kernel then opens directories without asking (bridge.opendir), which
   * saves two requests for each directory opened.
   */
  readonly everyListingCached?: boolean;
  /** Every entry of a directory except "." and "..", which the bridge adds. */
  readdir?(ctx: Context, node: Inode<D>): DirEntry[];
  fsyncdir?(ctx: Context, node: Inode<D>, datasync: boolean): MaybeAsync<void>;

  statfs?(ctx: Context, node: Inode<D>): MaybeAsync<StatfsOut>;
  /** xattr requests carry no file handle: `fh` is an open one of an inode that has no name left (unlinked while open). */
  getxattr?(ctx: Context, node: Inode<D>, name: string, fh?: H): MaybeAsync<Buffer>;
  listxattr?(ctx: Context, node: Inode<D>, fh?: H): MaybeAsync<string[]>;
  setxattr?(ctx: Context, node: Inode<D>, name: string, value: Buffer, flags: number, fh?: H): MaybeAsync<void>;
  removexattr?(ctx: Context, node: Inode<D>, name: string, fh?: H): MaybeAsync<void>;
  /** Without it the bridge checks the mode bits of getattr's answer. */
  access?(ctx: Context, node: Inode<D>, mask: number): MaybeAsync<void>;
}
