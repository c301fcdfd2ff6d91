// What the union knows about one inode: where it lives now.

import type { Landing } from './landing.js';
import type { LowerRef } from './stack.js';

export interface UNode {
  /** The object exists in the upper dir, at its union path. */
  upper: boolean;
  /** A regular file copied up for metadata only: its data still lives below (lowerData()). */
  metacopy: boolean;
  /**
   * For a directory: the lower directories merged below it, top first (empty when it is
   * opaque or exists only in the upper dir). For anything else: the lower object that
   * holds it (or its data, for a metacopy), when there is one.
   */
  lowers: LowerRef[];
  /**
   * For a regular file whose lower object is itself a metadata-only copy (an overlay upper
   * dir stacked as a lower layer, as podman does with layers made under metacopy=on): the
   * lower file further down that holds its data. Absent: lowers[0] holds the data.
   */
  data?: LowerRef;
  /**
   * For a metacopy: the block count of the lower file that holds its data. Lower layers
   * never change, so a stat of the file needs no second lstat for it.
   */
  dataBlocks?: number;
  /**
   * The path index's id for the lower path its lowers share (src/index), when the stack is
   * indexed and no redirect made them differ; lookups below it are then answered by the
   * index instead of probing each layer.
   */
  ix?: number;
  /**
   * A data copy-up of this file whose fsync is still under way, or failed (landing.ts): an
   * fsync, rename or link of the file waits for it.
   */
  landing?: Landing;
  /**
   * An O_TMPFILE file in the upper dir that has no name yet: an fd of it, the only way to
   * reach it until a LINK names it (then closed), or until the kernel forgets the inode.
   */
  anon?: number;
  /**
   * For an upper copy of a lower hard-link set: the links of the lower file no name of the
   * union shows, hidden by a layer above (not deleted through the mount), which st_nlink
   * keeps counting, as before the copy-up and as overlayfs with index=on does
   * (trusted.overlay.nlink, markers.ts). Absent: 0.
   */
  nlinkDelta?: number;
  /**
   * Open handles on the lower file (opened before a copy-up). When the file is unlinked
   * while some remain, the union keeps an fd of its upper copy in `anon`: those handles
   * name the lower file, and fstat through them must show the copy, which has no path left.
   */
  lowerOpens?: number;
}

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;

/**
 * The link count an object shows: 1 for a merged directory (in the upper dir over lower
 * ones, or in more than one lower layer), as overlayfs reports it: the count of one
 * layer's directory is neither the merged one nor "unknown", and tools that take
 * nlink - 2 as the number of subdirectories (find's leaf optimisation) treat 1 as unknown.
 * Anything else shows its own count, and an upper copy of a lower hard-link set also the
 * names it could not link (UNode.nlinkDelta).
 */
export function shownNlink(d: UNode, st: { mode: number; nlink: number }): number {
  // The names no layer shows stay the file's after its last shown name goes (unlinked while
  // open): overlayfs (index=on) counts them through an fd too (campaign seed 2080).
  if ((st.mode & S_IFMT) !== S_IFDIR) return d.upper ? st.nlink + (d.nlinkDelta ?? 0) : st.nlink;
  return d.lowers.length > (d.upper ? 0 : 1) ? 1 : st.nlink;
}

/** The lower object an object's content is read from; undefined when the upper dir holds it. */
export function lowerData(d: UNode): LowerRef | undefined {
  return d.upper && !d.metacopy ? undefined : (d.data ?? d.lowers[0]);
}
