// The on-disk records a union needs beyond plain files, in the two formats we read:
//  - overlay (the kernel's, and what we write): whiteout = char device 0/0;
//    opaque dir = xattr trusted.overlay.opaque="y" (or user.overlay.opaque for
//    unprivileged overlays); renamed dir = trusted.overlay.redirect; metadata-only
//    copy-up = trusted.overlay.metacopy; links a hard-link set's copy counts besides its
//    own = trusted.overlay.nlink ("U+N": the upper file's count plus N).
//  - OCI layer tars extracted as-is: `.wh.NAME` hides NAME below, `.wh..wh..opq` makes
//    its directory opaque.
// Writing the overlay format lets the kernel's overlayfs mount our upper dirs too.

import * as fs from 'node:fs';
import { native } from '../native/binding.js';
import type { HostPath } from '../host/files.js';
import { hasOpaqueXattr, OCI_OPAQUE, OCI_WHITEOUT_PREFIX, XATTR_OPAQUE, XATTR_REDIRECT, xattrOrUndefined } from '../util/overlay-records.js';

export { isMetacopy, mayBeMetacopy, isWhiteout, OCI_OPAQUE, OCI_WHITEOUT_PREFIX, redirectOf, XATTR_METACOPY, XATTR_OPAQUE, XATTR_REDIRECT } from '../util/overlay-records.js';

/** Our own record: the st_ino an object had before copy-up, so its inode number stays. */
export const XATTR_ORIGIN_INO = 'trusted.stratafs.ino';

const S_IFCHR = 0o020000;

/** Private records never shown through the mount, and never settable through it. */
export function isPrivateXattr(name: string): boolean {
  return name.startsWith('trusted.overlay.') || name.startsWith('trusted.stratafs.');
}

const OVERLAY_NS = 'trusted.overlay.';
const ESCAPED_NS = 'trusted.overlay.overlay.';

/**
 * The name an xattr set through the mount has on disk. As overlayfs does, a user's own
 * `trusted.overlay.X` is stored escaped as `trusted.overlay.overlay.X`, so it can never be
 * taken for one of our records. Our own `trusted.stratafs.*` cannot be set (undefined).
 */
export function xattrOnDisk(name: string): string | undefined {
  if (name.startsWith(OVERLAY_NS)) return ESCAPED_NS + name.slice(OVERLAY_NS.length);
  if (name.startsWith('trusted.stratafs.')) return undefined;
  return name;
}

/** The name an xattr on disk shows through the mount, or undefined for our records. */
export function xattrShown(stored: string): string | undefined {
  if (stored.startsWith(ESCAPED_NS)) return OVERLAY_NS + stored.slice(ESCAPED_NS.length);
  return isPrivateXattr(stored) ? undefined : stored;
}

/** An opaque directory hides everything below it in lower layers. */
export function isOpaqueDir(dir: HostPath, dirString: string): boolean {
  if (hasOpaqueXattr(dir)) return true;
  return fs.existsSync(typeof dir === 'string' ? `${dir}/${OCI_OPAQUE}` : Buffer.from(`${dirString}/${OCI_OPAQUE}`, 'latin1'));
}

export function originIno(p: HostPath): bigint | undefined {
  const v = xattrOrUndefined(p, XATTR_ORIGIN_INO);
  return v && v.length === 8 ? v.readBigUInt64LE(0) : undefined;
}

export function setOriginIno(p: HostPath, ino: bigint): void {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(ino);
  native.lsetxattr(p, XATTR_ORIGIN_INO, b, 0);
}

/** overlayfs's link count record of a non-directory: its st_nlink is the upper file's plus this. */
export const XATTR_NLINK = 'trusted.overlay.nlink';

/**
 * The "U+N" / "U-N" of XATTR_NLINK as a number: what to add to the upper file's own count.
 * 0 without the record, and for overlayfs's other form ("L+N", relative to a lower inode
 * found through its index, which it writes on index entries, not on files of the tree).
 */
export function nlinkDeltaOf(p: HostPath): number {
  const v = xattrOrUndefined(p, XATTR_NLINK)?.toString('latin1');
  const m = v === undefined ? null : /^U([+-]\d+)$/.exec(v);
  return m ? Number(m[1]) : 0;
}

export function nlinkRecord(delta: number): Buffer {
  return Buffer.from(`U${delta < 0 ? '' : '+'}${delta}`, 'latin1');
}

export function makeWhiteout(p: HostPath): void {
  native.mknod(p, S_IFCHR, 0, 0);
}

export function setOpaque(p: HostPath): void {
  native.lsetxattr(p, XATTR_OPAQUE, Buffer.from('y'), 0);
}

export function setRedirect(p: HostPath, target: string): void {
  native.lsetxattr(p, XATTR_REDIRECT, Buffer.from(target, 'latin1'), 0);
}

/** `.wh.NAME` entries are markers, never names of the union. */
export function isOciMarker(name: string): boolean {
  return name.startsWith(OCI_WHITEOUT_PREFIX);
}
