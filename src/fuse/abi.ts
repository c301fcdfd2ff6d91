// The FUSE kernel ABI (include/uapi/linux/fuse.h). Debian 12 ships 7.38; the constants of
// 7.39-7.40 (passthrough, max_stack_depth, backing ids) are defined here by hand.

export const KERNEL_VERSION = 7;
/** The minor we speak. 7.40 brings passthrough and fuse_open_out.backing_id. */
export const KERNEL_MINOR_VERSION = 40;
export const ROOT_ID = 1;
/** The kernel refuses a read buffer smaller than this. */
export const MIN_READ_BUFFER = 8192;

export const enum Op {
  LOOKUP = 1,
  FORGET = 2,
  GETATTR = 3,
  SETATTR = 4,
  READLINK = 5,
  SYMLINK = 6,
  MKNOD = 8,
  MKDIR = 9,
  UNLINK = 10,
  RMDIR = 11,
  RENAME = 12,
  LINK = 13,
  OPEN = 14,
  READ = 15,
  WRITE = 16,
  STATFS = 17,
  RELEASE = 18,
  FSYNC = 20,
  SETXATTR = 21,
  GETXATTR = 22,
  LISTXATTR = 23,
  REMOVEXATTR = 24,
  FLUSH = 25,
  INIT = 26,
  OPENDIR = 27,
  READDIR = 28,
  RELEASEDIR = 29,
  FSYNCDIR = 30,
  GETLK = 31,
  SETLK = 32,
  SETLKW = 33,
  ACCESS = 34,
  CREATE = 35,
  INTERRUPT = 36,
  BMAP = 37,
  DESTROY = 38,
  IOCTL = 39,
  POLL = 40,
  NOTIFY_REPLY = 41,
  BATCH_FORGET = 42,
  FALLOCATE = 43,
  READDIRPLUS = 44,
  RENAME2 = 45,
  LSEEK = 46,
  COPY_FILE_RANGE = 47,
  SETUPMAPPING = 48,
  REMOVEMAPPING = 49,
  SYNCFS = 50,
  TMPFILE = 51,
  STATX = 52,
}

/** INIT flags. Bits 32..63 travel in flags2; they are kept here as one 64-bit bigint set. */
export const InitFlag = {
  ASYNC_READ: 1n << 0n,
  POSIX_LOCKS: 1n << 1n,
  ATOMIC_O_TRUNC: 1n << 3n,
  EXPORT_SUPPORT: 1n << 4n,
  BIG_WRITES: 1n << 5n,
  DONT_MASK: 1n << 6n,
  FLOCK_LOCKS: 1n << 10n,
  AUTO_INVAL_DATA: 1n << 12n,
  DO_READDIRPLUS: 1n << 13n,
  READDIRPLUS_AUTO: 1n << 14n,
  ASYNC_DIO: 1n << 15n,
  WRITEBACK_CACHE: 1n << 16n,
  PARALLEL_DIROPS: 1n << 18n,
  HANDLE_KILLPRIV: 1n << 19n,
  HANDLE_KILLPRIV_V2: 1n << 28n,
  POSIX_ACL: 1n << 20n,
  ABORT_ERROR: 1n << 21n,
  MAX_PAGES: 1n << 22n,
  CACHE_SYMLINKS: 1n << 23n,
  /** Offered only: the kernel takes ENOSYS to OPENDIR as "open directories without asking" (5.1+). */
  NO_OPENDIR_SUPPORT: 1n << 24n,
  EXPLICIT_INVAL_DATA: 1n << 25n,
  SETXATTR_EXT: 1n << 29n,
  INIT_EXT: 1n << 30n,
  SECURITY_CTX: 1n << 32n,
  HAS_EXPIRE_ONLY: 1n << 35n,
  DIRECT_IO_ALLOW_MMAP: 1n << 36n,
  PASSTHROUGH: 1n << 37n,
  NO_EXPORT_SUPPORT: 1n << 38n,
} as const;

/** fuse_open_out.open_flags */
export const FOPEN_DIRECT_IO = 1 << 0;
export const FOPEN_KEEP_CACHE = 1 << 1;
export const FOPEN_NONSEEKABLE = 1 << 2;
export const FOPEN_CACHE_DIR = 1 << 3;
/** No FLUSH on close: for filesystems with nothing to do at close. */
export const FOPEN_NOFLUSH = 1 << 5;
export const FOPEN_PASSTHROUGH = 1 << 7;

/** fuse_setattr_in.valid */
export const FATTR_MODE = 1 << 0;
export const FATTR_UID = 1 << 1;
export const FATTR_GID = 1 << 2;
export const FATTR_SIZE = 1 << 3;
export const FATTR_ATIME = 1 << 4;
export const FATTR_MTIME = 1 << 5;
export const FATTR_FH = 1 << 6;
export const FATTR_ATIME_NOW = 1 << 7;
export const FATTR_MTIME_NOW = 1 << 8;
export const FATTR_LOCKOWNER = 1 << 9;
export const FATTR_CTIME = 1 << 10;
export const FATTR_KILL_SUIDGID = 1 << 11;

export const GETATTR_FH = 1 << 0;
export const RELEASE_FLUSH = 1 << 0;
export const FSYNC_FDATASYNC = 1 << 0;
export const LK_FLOCK = 1 << 0;
export const WRITE_CACHE = 1 << 0;
/** With HANDLE_KILLPRIV_V2: the writer lacks CAP_FSETID, the fs must drop set-id bits. */
export const WRITE_KILL_SUIDGID = 1 << 2;
/** fuse_open_in.open_flags: O_TRUNC open by a writer without CAP_FSETID. */
export const OPEN_KILL_SUIDGID = 1 << 0;

export const enum NotifyCode {
  POLL = 1,
  INVAL_INODE = 2,
  INVAL_ENTRY = 3,
  STORE = 4,
  RETRIEVE = 5,
  DELETE = 6,
}

/** Wire sizes of the fixed structs we encode or decode. */
export const SIZE = {
  inHeader: 40,
  outHeader: 16,
  attr: 88,
  entryOut: 128,
  attrOut: 104,
  openOut: 16,
  initOut: 64,
  statfsOut: 80,
  writeOut: 8,
  dirent: 24,
  direntplus: 152,
  lkOut: 24,
  lseekOut: 8,
  getxattrOut: 8,
} as const;
