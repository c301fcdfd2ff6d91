// Typed loader for the native addon (native-bindings/). Everything here is a
// thin syscall wrapper; policy lives in the TypeScript callers.
import { createRequire } from 'node:module';

/** A path as a JS string (encoded as UTF-8) or raw bytes, for names that are not UTF-8. */
export type NativePath = string | Uint8Array;

/**
 * What every failing native call throws (or rejects with): shaped like Node's fs errors.
 * `errno` is negative (-2 for ENOENT), so `-err.errno` is the value a FUSE reply wants.
 */
export interface NativeError extends Error {
  code: string;
  errno: number;
  syscall: string;
  /** The path argument (decoded as UTF-8), when the call had one. */
  path?: string;
  /** The second path of renameat2. */
  dest?: string;
}

export interface MountOptions {
  /** Mode of the root inode, file type bits included (e.g. 0o40755). */
  rootMode: number;
  uid: number;
  gid: number;
  allowOther?: boolean;
  defaultPermissions?: boolean;
  /** mount(2) source, shown in /proc/mounts. Default "stratafs". */
  fsname?: string;
  /** Filesystem type becomes "fuse.<subtype>". */
  subtype?: string;
  readOnly?: boolean;
  noSuid?: boolean;
  noDev?: boolean;
  noAtime?: boolean;
  maxRead?: number;
}

export interface ReaderHandle {
  /** Stops polling and closes the handle; idempotent. The loop is no longer kept alive. */
  stop(): void;
}

/**
 * Called once per wakeup with every request read (1..256 Buffers, each exactly one message).
 * `null` means the reader stopped: without `err` the filesystem was unmounted or the
 * connection aborted (ENODEV); with `err` any other read failure.
 */
export type BatchCallback = (batch: Buffer[] | null, err?: NativeError) => void;

export interface CopyResult {
  method: 'clone' | 'copy_file_range' | 'readwrite';
  /** Data bytes copied (for 'clone': the file size). */
  bytes: number;
}

export interface NativeBinding {
  // device and mount
  openDevice(): number;
  mount(fd: number, target: NativePath, opts: MountOptions): void;
  umount(target: NativePath, flags: number): void;
  /**
   * spinMicros: after a batch, keep reading for this long (extended while requests keep
   * arriving, at most 2 ms per wake-up) before sleeping in epoll again.
   */
  startReader(fd: number, bufSize: number, onBatch: BatchCallback, spinMicros?: number): ReaderHandle;
  writev(fd: number, bufs: readonly Uint8Array[]): number;
  backingOpen(fd: number, backingFd: number): number;
  backingClose(fd: number, backingId: number): void;

  // syscalls Node lacks
  /**
   * lstat/fstat into `out` (16 slots, order in native-bindings/src/stat.c); returns st_ino,
   * or the errno (a positive number) instead of throwing.
   */
  lstat(path: NativePath, out: Float64Array): bigint | number;
  fstat(fd: number, out: Float64Array): bigint | number;
  mknod(path: NativePath, mode: number, major: number, minor: number): void;
  renameat2(oldPath: NativePath, newPath: NativePath, flags: number): void;
  /** linkat(2) with AT_SYMLINK_FOLLOW: names an O_TMPFILE file through /proc/self/fd/N. */
  linkFollow(oldPath: NativePath, newPath: NativePath): void;
  lgetxattr(path: NativePath, name: string | Uint8Array): Buffer;
  /** lgetxattr that returns the errno (a positive number) instead of throwing, as lstat does. */
  lgetxattrOrErrno(path: NativePath, name: string | Uint8Array): Buffer | number;
  lsetxattr(path: NativePath, name: string | Uint8Array, value: Uint8Array, flags: number): void;
  llistxattr(path: NativePath): string[];
  lremovexattr(path: NativePath, name: string | Uint8Array): void;
  fgetxattr(fd: number, name: string | Uint8Array): Buffer;
  fsetxattr(fd: number, name: string | Uint8Array, value: Uint8Array, flags: number): void;
  flistxattr(fd: number): string[];
  fremovexattr(fd: number, name: string | Uint8Array): void;
  utimens(
    path: NativePath,
    atimeSec: number,
    atimeNsec: number,
    mtimeSec: number,
    mtimeNsec: number,
    nofollow: boolean,
  ): void;
  futimens(fd: number, atimeSec: number, atimeNsec: number, mtimeSec: number, mtimeNsec: number): void;
  lchown(path: NativePath, uid: number, gid: number): void;
  lseek(fd: number, offset: number, whence: number): number;
  fallocate(fd: number, mode: number, offset: number, length: number): void;
  copyFileRange(fdIn: number, offIn: number, fdOut: number, offOut: number, len: number): number;
  ficlone(destFd: number, srcFd: number): void;
  /** syncfs(2): writes out the whole filesystem holding fd. */
  syncfs(fd: number): void;
  /** flock(fd, LOCK_EX | LOCK_NB): false when another open file holds a lock on it. Dropped when the holder dies. */
  tryLockExclusive(fd: number): boolean;
  copyData(srcFd: number, dstFd: number): Promise<CopyResult>;
  /** A small file's first `len` bytes, on this thread: copy_file_range if `tryRange`, else read/write. Returns the bytes copied. */
  copySmall(srcFd: number, dstFd: number, len: number, tryRange: boolean): number;
  capSysAdmin(): boolean;

  // fd passing (fusermount3's protocol)
  /** AF_UNIX SOCK_STREAM pair, both ends close-on-exec (spawn's stdio mapping still hands one to a child). */
  socketpair(): [number, number];
  /**
   * Receives one fd sent with SCM_RIGHTS; it comes back close-on-exec, and non-blocking if
   * `nonBlock`. Blocks until a message or EOF. No fd in the message (or EOF) throws EPROTO.
   */
  recvFd(sockFd: number, nonBlock?: boolean): number;

  // memory
  /**
   * A full, memory-reducing garbage collection (V8's LowMemoryNotification: the young
   * generation shrinks back to its initial size), then malloc_trim(0). Blocks for the
   * collection: for idle moments only (fs/idle-memory.ts).
   */
  lowMemory(): void;

  // constants
  readonly MNT_FORCE: number;
  readonly MNT_DETACH: number;
  readonly UMOUNT_NOFOLLOW: number;
  readonly RENAME_NOREPLACE: number;
  readonly RENAME_EXCHANGE: number;
  readonly RENAME_WHITEOUT: number;
  readonly XATTR_CREATE: number;
  readonly XATTR_REPLACE: number;
  readonly UTIME_NOW: number;
  readonly UTIME_OMIT: number;
  readonly SEEK_SET: number;
  readonly SEEK_CUR: number;
  readonly SEEK_END: number;
  readonly SEEK_DATA: number;
  readonly SEEK_HOLE: number;
  readonly FALLOC_FL_KEEP_SIZE: number;
  readonly FALLOC_FL_PUNCH_HOLE: number;
  readonly FALLOC_FL_ZERO_RANGE: number;
}

// Resolved against this file, which sits two levels below the repository root both as
// src/native/binding.ts (vitest) and as dist/native/binding.js (compiled).
const require = createRequire(import.meta.url);
export const native = require('../../native-bindings/build/Release/stratafs_native.node') as NativeBinding;

export const {
  MNT_FORCE,
  MNT_DETACH,
  UMOUNT_NOFOLLOW,
  RENAME_NOREPLACE,
  RENAME_EXCHANGE,
  RENAME_WHITEOUT,
  XATTR_CREATE,
  XATTR_REPLACE,
  UTIME_NOW,
  UTIME_OMIT,
  SEEK_SET,
  SEEK_CUR,
  SEEK_END,
  SEEK_DATA,
  SEEK_HOLE,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  FALLOC_FL_ZERO_RANGE,
} = native;

/** True for errors thrown by the addon (and by Node's fs, which have the same shape). */
export function isNativeError(e: unknown): e is NativeError {
  return e instanceof Error && typeof (e as Partial<NativeError>).code === 'string' &&
    typeof (e as Partial<NativeError>).errno === 'number';
}
