// The names of the on-disk records a union reads (overlayfs's xattrs and whiteouts, OCI's
// `.wh.` markers) and the plain readers of them, in one place for the union
// (src/union/markers.ts builds on these) and the path index, which records them as flags.

import { constants } from 'node:os';
import { native } from '../native/binding.js';

export const XATTR_OPAQUE = 'trusted.overlay.opaque';
export const XATTR_USER_OPAQUE = 'user.overlay.opaque';
export const XATTR_REDIRECT = 'trusted.overlay.redirect';
export const XATTR_METACOPY = 'trusted.overlay.metacopy';

export const OCI_WHITEOUT_PREFIX = '.wh.';
export const OCI_OPAQUE = '.wh..wh..opq';

const S_IFMT = 0o170000;
const S_IFCHR = 0o020000;

const { ENODATA, ENOTSUP, EOPNOTSUPP } = constants.errno;

/**
 * An xattr's value, or undefined where it is not set or the filesystem has none. Asked on
 * every lookup of an upper object, and mostly answered "not set": no error is built for it.
 */
export function xattrOrUndefined(p: string | Buffer, name: string): Buffer | undefined {
  const v = native.lgetxattrOrErrno(p, name);
  if (typeof v !== 'number') return v;
  if (v === ENODATA || v === ENOTSUP || v === EOPNOTSUPP) return undefined;
  // Rare: read again to throw the addon's error, which names the path and the syscall.
  return native.lgetxattr(p, name);
}

/** What the records need of an object's stat, from Node's stats or the addon's: its type, and a device's number. */
export interface ObjectKind {
  mode: number | bigint;
  rdev: number | bigint;
}

/** overlayfs's whiteout: a character device 0/0. */
export const WHITEOUT_KIND: ObjectKind = { mode: S_IFCHR, rdev: 0 };

export function isWhiteout(st: ObjectKind): boolean {
  return (Number(st.mode) & S_IFMT) === S_IFCHR && Number(st.rdev) === 0;
}

/** `trusted.overlay.opaque=y` (or the user.* form of unprivileged overlays). */
export function hasOpaqueXattr(p: string | Buffer): boolean {
  return (xattrOrUndefined(p, XATTR_OPAQUE) ?? xattrOrUndefined(p, XATTR_USER_OPAQUE))?.toString() === 'y';
}

/** The redirect of a renamed directory: an absolute union path ('/a/b') or a sibling name. */
export function redirectOf(p: string | Buffer): string | undefined {
  return xattrOrUndefined(p, XATTR_REDIRECT)?.toString('latin1');
}

/**
 * Whether a regular file's size and blocks leave room for it to be a metadata-only copy,
 * which holds no data: only then is the mark worth an xattr read. Its blocks may still
 * count one block of xattrs (ext4 moves them out of the inode once the origin, metacopy
 * and redirect records no longer fit there), so a small file always needs the read.
 * An empty file shows the same with or without data below.
 */
export function mayBeMetacopy(size: number, blocks: number, blksize: number): boolean {
  return size > 0 && blocks * 512 < size + Math.max(blksize, 4096);
}

export function isMetacopy(p: string | Buffer): boolean {
  return xattrOrUndefined(p, XATTR_METACOPY) !== undefined;
}
