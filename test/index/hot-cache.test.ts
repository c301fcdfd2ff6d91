// The bounded cache above SQLite: least recently used first out, bounded by weight (a
// directory listing weighs its names), so a daemon's memory does not grow with the image.
import { describe, expect, it } from 'vitest';
import { HotCache } from '../../src/index/hot-cache.js';

describe('HotCache', () => {
  it('drops the least recently used entries once the weights pass the limit', () => {
    const c = new HotCache<string, number[]>(10, (v) => v.length);
    c.set('a', [1, 2, 3, 4]);
    c.set('b', [1, 2, 3, 4]);
    expect(c.get('a')).toEqual([1, 2, 3, 4]); // a is now the most recent
    c.set('c', [1, 2, 3]); // 11 > 10: b goes, not a
    expect(c.get('b')).toBeUndefined();
    expect(c.get('a')).toBeDefined();
    expect(c.get('c')).toBeDefined();
    expect(c.size).toBe(2);
  });

  it('replacing an entry counts its new weight only; one entry heavier than the limit stays alone', () => {
    const c = new HotCache<string, number[]>(10, (v) => v.length);
    c.set('a', [1, 2, 3, 4, 5, 6]);
    c.set('a', [1]);
    c.set('b', [1, 2, 3, 4, 5, 6, 7, 8, 9]); // 1 + 9 = 10: both fit
    expect(c.size).toBe(2);
    c.set('huge', new Array<number>(50).fill(0));
    expect(c.size).toBe(1);
    expect(c.get('huge')).toHaveLength(50);
    c.set('d', [1]); // the heavy one goes first
    expect(c.get('huge')).toBeUndefined();
    expect(c.get('d')).toEqual([1]);
  });

  it('counts entries by default, and keeps null answers (a name no layer has)', () => {
    const c = new HotCache<string, number | null>(2);
    c.set('x', null);
    c.set('y', 1);
    expect(c.get('x')).toBeNull();
    c.set('z', 2); // y is the coldest now
    expect(c.get('y')).toBeUndefined();
    expect(c.get('x')).toBeNull();
  });
});
