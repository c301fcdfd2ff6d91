// Offsets of READDIR without a handle (src/fs/listing.ts): a name keeps its offset in every
// listing of the directory, so a reader resumes at the right entry in a listing taken later.
// The same on a real mount, against overlayfs: the differential case 'a directory read in
// pieces while names come and go'.

import { describe, expect, it } from 'vitest';
import type { DirEntry } from '../../src/fs/api.js';
import { Listing, ListingCache, nameCookie } from '../../src/fs/listing.js';

const entry = (name: string): DirEntry => ({ name, ino: 1n, mode: 0o100000 });
const dot = { name: '.', ino: 1n, mode: 0o040000 };
const dotdot = { name: '..', ino: 1n, mode: 0o040000 };
const listing = (names: string[]): Listing => Listing.of(dot, dotdot, names.map(entry));

/** Reads a listing in batches of `n`, taking a new one from `next()` before each batch after the first. */
function readInBatches(n: number, next: () => Listing): string[] {
  const out: string[] = [];
  let offset = 0;
  for (;;) {
    const l = next();
    const from = l.after(offset);
    if (from >= l.entries.length) return out;
    for (let i = from; i < Math.min(from + n, l.entries.length); i++) {
      out.push(l.entries[i]!.name);
      offset = l.offsets[i]!;
    }
  }
}

describe('directory listings with name cookies as offsets', () => {
  it('puts "." and ".." first at 1 and 2, then every name once at an increasing offset above them', () => {
    const names = Array.from({ length: 2000 }, (_, i) => `f${i}`);
    const l = listing(names);
    expect(l.entries.slice(0, 2).map((e) => e.name)).toEqual(['.', '..']);
    expect(l.offsets.slice(0, 2)).toEqual([1, 2]);
    expect(l.entries.slice(2).map((e) => e.name).sort()).toEqual([...names].sort());
    for (let i = 1; i < l.offsets.length; i++) expect(l.offsets[i]).toBeGreaterThan(l.offsets[i - 1]!);
    // 31 bits: what getdents and telldir of 32-bit programs can carry.
    expect(Math.max(...l.offsets)).toBeLessThan(2 ** 31);
    // after(): the entry following a given offset; 0 is the start.
    expect(l.after(0)).toBe(0);
    expect(l.after(2)).toBe(2);
    expect(l.after(l.offsets[700]!)).toBe(701);
    expect(l.after(l.offsets[700]! + 0.5)).toBe(701);
    expect(l.after(2 ** 53)).toBe(l.entries.length);
  });

  it('gives a name the same offset in any listing of the directory, whatever else is in it', () => {
    expect(nameCookie('a')).toBe(nameCookie('a'));
    expect(nameCookie('a')).not.toBe(nameCookie('b'));
    const a = listing(['x', 'y', 'z', 'w']);
    const b = listing(['z', 'q', 'x']);
    const offsetOf = (l: Listing, n: string): number => l.offsets[l.entries.findIndex((e) => e.name === n)]!;
    expect(offsetOf(b, 'x')).toBe(offsetOf(a, 'x'));
    expect(offsetOf(b, 'z')).toBe(offsetOf(a, 'z'));
  });

  it('a reader that gets a new listing before every batch, while names come and go, reads each name there throughout once', () => {
    let names = Array.from({ length: 1000 }, (_, i) => `name-${i}`);
    let round = 0;
    const read = readInBatches(37, () => {
      round++;
      // Remove some, add some between batches.
      names = names.filter((_, i) => (i + round) % 29 !== 0).concat(Array.from({ length: 5 }, (_, i) => `new-${round}-${i}`));
      return listing(names);
    });
    const kept = names.filter((n) => n.startsWith('name-'));
    const counts = new Map<string, number>();
    for (const n of read) counts.set(n, (counts.get(n) ?? 0) + 1);
    expect(kept.filter((n) => counts.get(n) !== 1)).toEqual([]);
    expect([...counts.values()].filter((c) => c > 1)).toEqual([]);
  });

  it('names whose cookies meet take the next numbers free, ordered by name', () => {
    // Two real names with one 31-bit cookie (found by hashing f0, f1, ...).
    expect(nameCookie('f25228')).toBe(nameCookie('f84066'));
    const h = nameCookie('f25228');
    const l = listing(['f84066', 'f25228']);
    expect(l.entries.map((e) => e.name)).toEqual(['.', '..', 'f25228', 'f84066']);
    expect(l.offsets).toEqual([1, 2, h, h + 1]);
    expect(l.after(h)).toBe(3);
    // A run of them, through a cookie function that makes them meet: each takes the next number.
    const run = Listing.of(dot, dotdot, ['c', 'a', 'b', 'd'].map(entry), (n) => (n === 'd' ? 101 : 100));
    expect(run.entries.map((e) => e.name)).toEqual(['.', '..', 'a', 'b', 'c', 'd']);
    expect(run.offsets).toEqual([1, 2, 100, 101, 102, 103]);
  });

  it('keeps the latest listing of the directories read last: offset 0 takes a new one, later offsets reuse it', () => {
    const cache = new ListingCache(2);
    let taken = 0;
    const take = (): Listing => (taken++, listing(['a']));
    const first = cache.get(10, 0, take);
    expect(cache.get(10, 5, take)).toBe(first);
    expect(cache.get(10, 0, take)).not.toBe(first);
    expect(taken).toBe(2);
    cache.get(11, 0, take);
    // 10 read again: 11 is now the one read longest ago, and goes when 12 comes.
    cache.get(10, 5, take);
    cache.get(12, 0, take);
    expect(taken).toBe(4);
    cache.get(10, 5, take);
    expect(taken).toBe(4);
    cache.get(11, 5, take);
    expect(taken).toBe(5);
    // A forgotten one (read to its end, removed) is listed again.
    cache.forget(11);
    cache.get(11, 5, take);
    expect(taken).toBe(6);
  });
});
