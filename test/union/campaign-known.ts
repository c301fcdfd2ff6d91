// The documented differences between stratafs and the kernel's overlayfs that the random
// campaign (test/union/campaign.ts) must not report. Each class is matched as narrowly as
// docs/union.md states it: the kind of object, which side shows what, and what the script
// did to that object before. A difference that matches none is a finding.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { originIno } from '../../src/union/markers.js';
import type { TreeEntry } from '../../src/util/tree.js';
import { digest, type Op } from './campaign-ops.js';
import type { FieldDiff } from './campaign-view.js';

export type KnownClass =
  | 'merged-dir-of-linked-name'
  | 'lower-link-nlink'
  | 'metacopy-data-mtime'
  | 'read-before-copy-up'
  | 'unnamed-lower-fd-change'
  | 'dir-lseek'
  | 'failed-rename-mtime';

/** What the engine learned about stratafs's objects (by st_ino, which copy-up keeps) while the script ran. */
export interface KnownState {
  /** stratafs's upper dir, read on the host (not through the mount) */
  strataUpper: string;
  /** files that were lower hard-link sets (nlink > 1) before the script */
  lowerLinkInos: Set<string>;
  /** files the script opened for writing without truncating them (open r+ or a+), until an op set their mtime on both */
  writeOpenedInos: Set<string>;
  /** files changed through an fd after their last name went, which the kernel refused (see below) */
  unnamedFdInos: Set<string>;
  /** the path each open fd (label fd#N) was opened by */
  fdPaths: Map<string, string>;
  /** files copy_file_range wrote the lower data of a read-before-copy-up fd into (see knownField) */
  lowerFedInos: Set<string>;
  /** directories that were the source, or the source's parent, of a rename that failed on both (see knownField) */
  failedRenameInos: Set<string>;
}

export function newKnownState(strataUpper: string): KnownState {
  return { strataUpper, lowerLinkInos: new Set(), writeOpenedInos: new Set(), unnamedFdInos: new Set(), fdPaths: new Map(), lowerFedInos: new Set(), failedRenameInos: new Set() };
}

/**
 * The upper dir holds, in this directory or below it, the copy of a file that was a lower
 * hard-link set (its union inode number, trusted.stratafs.ino, is one of them): a name of the
 * set linked there, its directories copied up to hold it.
 */
function holdsLinkedName(upperDir: string, linkInos: Set<string>): boolean {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(upperDir, { withFileTypes: true });
  } catch {
    return false;
  }
  return entries.some((e) => {
    const p = path.join(upperDir, e.name);
    if (e.isDirectory()) return holdsLinkedName(p, linkInos);
    return e.isFile() && linkInos.has(String(originIno(p) ?? fs.lstatSync(p).ino));
  });
}

/**
 * A field difference of an object that is a documented difference, or undefined.
 * `strata`: stratafs's entry at that label (its type), `ino`: its st_ino there.
 */
export function knownField(d: FieldDiff, strata: TreeEntry | undefined, ino: string | undefined, st: KnownState): KnownClass | undefined {
  const type = strata?.type;
  // docs/union.md, Writing, "Hard links", "Deliberate difference": copying up one name of a
  // lower hard-link set links its other names into the upper dir, whose directories (with
  // their parents) are copied up to hold them and become merged directories (nlink 1);
  // overlayfs links a name only when it is looked up and still shows the lower count.
  if (d.field === 'nlink' && type === 'dir' && d.strata === 1 && d.kernel !== 1) {
    const p = d.label.startsWith('fd#') ? st.fdPaths.get(d.label) : d.label;
    if (p !== undefined && holdsLinkedName(path.join(st.strataUpper, p), st.lowerLinkInos)) return 'merged-dir-of-linked-name';
  }
  // docs/union.md, "Where stratafs differs from overlayfs on purpose", "Link counts of lower
  // hard-link sets": after a name is deleted or replaced, overlayfs (index=on) lowers the
  // other names' st_nlink; stratafs reports the lower file's own count, also through a
  // copy-up (trusted.overlay.nlink), which the kernel mounting our upper dir does not read.
  if (d.field === 'nlink' && type !== 'dir' && ino !== undefined && st.lowerLinkInos.has(ino)) {
    if (typeof d.kernel === 'number' && typeof d.strata === 'number' && d.kernel < d.strata) return 'lower-link-nlink';
  }
  // docs/union.md, "Where stratafs differs from overlayfs on purpose", "mtime after a
  // metadata-only copy gets its data": overlayfs stamps the time of the open for writing that
  // copies the data in (also of a metacopy its index made for a hard-link set); stratafs keeps
  // the file's time. Only an open for writing that writes nothing leaves the two apart (a
  // write, a truncation or O_TRUNC sets mtime on both): known from such an open (r+, a+) of
  // the file until an op sets its mtime on both (the engine forgets it then).
  if (d.field === 'mtimeNs' && type === 'file' && d.kernel === 'now' && d.strata !== 'now' && ino !== undefined && st.writeOpenedInos.has(ino)) {
    return 'metacopy-data-mtime';
  }
  // docs/union.md, "Files unlinked while open", "Deliberate difference: overlayfs fails the
  // latter": what fchmod/fchown/futimens/fsetxattr changed on stratafs's nameless copy, the kernel
  // refused, so the fd's attributes stay apart afterwards; fstat through it shows stratafs's
  // nameless copy with nlink 0 (as documented), the kernel its unlinked lower file.
  if (ino !== undefined && st.unnamedFdInos.has(ino)) {
    if (['mode', 'uid', 'gid', 'mtimeNs', 'xattrs'].includes(d.field) || (d.field === 'nlink' && d.strata === 0)) return 'unnamed-lower-fd-change';
  }
  // The same, carried on by copy_file_range: a file that received, through it, the lower
  // data a read-before-copy-up fd read on stratafs (checked where it is noted, see
  // campaign.ts) holds other bytes than the kernel's, and may have another size.
  // Its mtime too, where only stratafs wrote (the kernel refused the copy: noteLowerFed).
  if (type === 'file' && ino !== undefined && st.lowerFedInos.has(ino)) {
    if (['sha256', 'size', 'blocks'].includes(d.field) || (d.field === 'mtimeNs' && d.strata === 'now' && d.kernel !== 'now')) return 'read-before-copy-up';
  }
  // docs/union.md, "Where stratafs differs", a rename that fails: overlayfs copies up and
  // prepares the source first, which leaves the source directory's and its parent's mtime
  // "now" although the rename then fails (ENOTEMPTY); on stratafs a failed rename changes
  // nothing (campaign seed 1118 with drop caches, 4 ops).
  if (d.field === 'mtimeNs' && type === 'dir' && d.kernel === 'now' && d.strata !== 'now' && ino !== undefined && st.failedRenameInos.has(ino)) return 'failed-rename-mtime';
  return undefined;
}

export type Outcome = { ok: unknown } | { error: string };

/** What the engine knows of the slot an fd op used. */
export interface SlotInfo {
  /**
   * The data the fd read when opened, when it was opened read-only on a file whose data was
   * still in a lower layer on stratafs, and both mounts read the same then.
   */
  lowerData?: Buffer;
  /** stratafs's fstat through the fd after the op */
  strataFd?: TreeEntry;
  /** the fd's file received, through copy_file_range, lower data a read-before-copy-up fd read (KnownState.lowerFedInos) */
  fedLower?: boolean;
}

/**
 * A difference of an op's result that is documented, or undefined. `lowerFed`: a
 * copy_file_range whose source fd read the lower data on stratafs and other data on the
 * kernel (campaign.ts checks it before the op).
 */
export function knownResult(op: Op, kernel: Outcome, strata: Outcome, slot: SlotInfo, lowerFed?: Buffer): KnownClass | undefined {
  // docs/union.md, "Where stratafs differs from overlayfs on purpose": "A file opened
  // read-only while it was only in a lower layer keeps reading the lower data after another
  // open copies it up"; overlayfs (since 4.19) reads the upper copy. Known only when stratafs
  // read exactly the lower data of the open.
  if (op.op === 'fread' && slot.lowerData && 'ok' in strata && 'ok' in kernel) {
    if (strata.ok === digest(slot.lowerData.subarray(op.pos, op.pos + op.len))) return 'read-before-copy-up';
  }
  // And lseek's SEEK_DATA/SEEK_HOLE through such an fd, answered for the lower data (the
  // campaign's files have no holes: data up to its end, ENXIO from there).
  if (op.op === 'fseek' && slot.lowerData && slot.strataFd?.type === 'file') {
    const size = slot.lowerData.length;
    const lower = op.pos >= size ? { error: 'ENXIO' } : { ok: op.whence === 'data' ? op.pos : size };
    if (JSON.stringify(strata) === JSON.stringify(lower)) return 'read-before-copy-up';
  }
  // The same through copy_file_range from such an fd: stratafs copied as much of the lower
  // data as the length asked for (the kernel, of the copy's data).
  // (Or the kernel refused it as a copy within one file whose ranges overlap: there the two
  // fds are one file, on stratafs the lower file and its copy. noteLowerFed checked that.)
  if (op.op === 'fcopy' && lowerFed && 'ok' in strata && strata.ok === Math.min(op.len, lowerFed.length)) {
    if ('ok' in kernel || kernel.error === 'EINVAL') return 'read-before-copy-up';
  }
  // And a read of a file that received such lower data through copy_file_range: it holds
  // other bytes than the kernel's, and may have another size (as knownField says of its
  // contents; campaign seed 3149 with more ops, minimized to 5 ops).
  if (op.op === 'fread' && slot.fedLower && 'ok' in strata && 'ok' in kernel) return 'read-before-copy-up';
  // docs/union.md, "Where stratafs differs", lseek on directories: SEEK_DATA and SEEK_HOLE on
  // a directory are answered by the kernel's FUSE itself, from the directory's size; overlayfs
  // fails them on a merged directory (EINVAL) and passes them to the layer's directory
  // otherwise (ext4: SEEK_HOLE gives LLONG_MAX).
  if (op.op === 'fseek' && slot.strataFd?.type === 'dir') return 'dir-lseek';
  // docs/union.md, "Files unlinked while open": a lower file unlinked while open, never
  // copied up, with no other name shown, changed through its fd: stratafs copies it up
  // without a name (fstat then shows nlink 0); "Deliberate difference: overlayfs fails the
  // latter (EEXIST or ENOENT)".
  if (['fchmod', 'fchown', 'futimens', 'fsetxattr'].includes(op.op) && 'error' in kernel && ['EEXIST', 'ENOENT'].includes(kernel.error) && 'ok' in strata) {
    if (slot.strataFd?.nlink === 0) return 'unnamed-lower-fd-change';
  }
  return undefined;
}
