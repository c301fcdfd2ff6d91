// A directory's listing as READDIR serves it: its entries in the order of their offsets,
// which are cookies made from the names. A name's cookie is the same in every listing of
// the directory, so a READDIR that resumes after cookie N finds its place in a listing
// taken later (another reader started over, names came and went meanwhile) without an open
// handle to keep one listing per reader: once OPENDIR is answered ENOSYS the kernel sends
// none (bridge.opendir). ext4 serves its htree directories the same way, with hash cookies.
//
// Cookies stay below 2^31, as ext4's do for 32-bit callers: a 32-bit program without large
// file support gets EOVERFLOW (or loses the entry, by glibc version) from getdents for an
// offset that does not fit, and telldir() returns a long. Two names may then share a hash
// (a 10,000-name directory: ~2%); see Listing.of for what that costs.

import type { DirEntry } from './api.js';

/**
 * "." and ".." take offsets 1 and 2; names hash into [FIRST, FIRST + SPAN), which leaves
 * room below 2^31 for the numbers colliding names take after the last hash.
 */
const FIRST = 3;
const SPAN = 0x80000000 - FIRST - 0x10000;

/**
 * 31 bits of a name (latin1: one char per byte), from two 32-bit multiplicative lanes mixed
 * together at the end (the construction of the public-domain cyrb53, folded to 31 bits).
 */
export function nameCookie(name: string): number {
  let h1 = 0x9e3779b9;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x9e3779b1);
    h2 = Math.imul(h2 ^ c, 0x5f356495);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 0x85ebca6b);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 0xc2b2ae35);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 0x85ebca6b);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 0xc2b2ae35);
  return FIRST + (((h1 ^ h2) >>> 0) % SPAN);
}

export class Listing {
  private constructor(
    readonly entries: readonly DirEntry[],
    /** The offset of entries[i] (the one the kernel resumes after): strictly increasing. */
    readonly offsets: readonly number[],
  ) {}

  /**
   * "." and ".." first, then the names by cookie. Names whose cookies meet are ordered by
   * name and each after the first takes the next number free: their offsets then depend on
   * each other, so a reader that stopped between two of them while the first was removed
   * skips the second, and one that stopped after the second while a name that sorts
   * before both was made may get it again. Both need a collision (31 bits: ~2% of
   * 10,000-name directories hold one) and a change at that very place while a reader is
   * there.
   */
  static of(dot: DirEntry, dotdot: DirEntry, names: readonly DirEntry[], cookie = nameCookie): Listing {
    const keyed = names.map((e) => ({ e, c: cookie(e.name) }));
    keyed.sort((x, y) => x.c - y.c || (x.e.name < y.e.name ? -1 : 1));
    const entries: DirEntry[] = [dot, dotdot];
    const offsets = [1, 2];
    let last = 2;
    for (const { e, c } of keyed) {
      last = c > last ? c : last + 1;
      entries.push(e);
      offsets.push(last);
    }
    return new Listing(entries, offsets);
  }

  /** Index of the first entry a READDIR at `offset` (the last offset the reader got, or 0) returns. */
  after(offset: number): number {
    const o = this.offsets;
    let lo = 0;
    let hi = o.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (o[mid]! <= offset) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

/**
 * The latest listing of directories being read, by nodeid, the least recently read dropped
 * first: a READDIR past offset 0 is served from it instead of listing the directory again
 * for each batch. Only a cache: any listing of the directory serves the same offsets.
 * Offset 0 (opendir, rewinddir) takes a new one, so what a reader starts with is never older
 * than its start; a READDIR that finds nothing left lets it go (no RELEASEDIR says when a
 * reader is done).
 */
export class ListingCache {
  private readonly byNode = new Map<number, Listing>();

  constructor(private readonly max = 64) {}

  get(nodeid: number, offset: number, take: () => Listing): Listing {
    let l = offset === 0 ? undefined : this.byNode.get(nodeid);
    if (!l) l = take();
    // Most recently read last: the first key is the one to drop.
    this.byNode.delete(nodeid);
    this.byNode.set(nodeid, l);
    if (this.byNode.size > this.max) this.byNode.delete(this.byNode.keys().next().value!);
    return l;
  }

  /** The directory was read to its end, removed, or forgotten: its listing is not needed. */
  forget(nodeid: number): void {
    this.byNode.delete(nodeid);
  }
}
