// A directory's listing as READDIR serves it: its entries in the order of their offsets,
// which are cookies made from the names. A name's cookie is the same in every listing of
// the directory, so a READDIR that resumes after cookie N finds its place in a listing
// taken later (another reader started over, names came and went meanwhile) without an open
// handle to keep one listing per reader: once OPENDIR is answered ENOSYS the kernel sends
// none (bridge.opendir). Names there throughout are neither lost nor repeated; ext4 serves
// its htree directories the same way, with hash cookies.

import type { DirEntry } from './api.js';

/** "." and ".." take offsets 1 and 2; names hash into [FIRST, 2^53): exact as a JS number and a u64. */
const FIRST = 3;

/**
 * 53 bits of a name (latin1: one char per byte), from two 32-bit multiplicative lanes mixed
 * together at the end (the construction of the public-domain cyrb53).
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
  const h = (h2 & 0x1fffff) * 0x100000000 + (h1 >>> 0);
  return h < FIRST ? h + FIRST : h;
}

export class Listing {
  private constructor(
    readonly entries: readonly DirEntry[],
    /** The offset of entries[i] (the one the kernel resumes after): strictly increasing. */
    readonly offsets: readonly number[],
  ) {}

  /**
   * "." and ".." first, then the names by cookie. Two names whose cookies meet (~1 in 10^8
   * for a directory of 10,000) are ordered by name and the second takes the next number
   * free: the one case where a name's offset depends on another, so a reader that stopped
   * between them while the first was removed may skip the second.
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
 * The latest listing of recently read directories, by nodeid: a READDIR past offset 0 is
 * served from it instead of listing the directory again for each batch. Only a cache: any
 * listing of the directory serves the same offsets. Offset 0 (opendir, rewinddir) takes a
 * new one, so what a reader starts with is never older than its start.
 */
export class ListingCache {
  private readonly byNode = new Map<number, Listing>();

  constructor(private readonly max = 64) {}

  get(nodeid: number, offset: number, take: () => Listing): Listing {
    let l = offset === 0 ? undefined : this.byNode.get(nodeid);
    if (l) return l;
    l = take();
    this.byNode.delete(nodeid);
    this.byNode.set(nodeid, l);
    if (this.byNode.size > this.max) this.byNode.delete(this.byNode.keys().next().value!);
    return l;
  }

  forget(nodeid: number): void {
    this.byNode.delete(nodeid);
  }
}
