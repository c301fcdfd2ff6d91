// A bounded map of recently used answers (least recently used goes first), above SQLite:
// hot directory entries are answered without a query. Bounded by weight (by default one
// per entry; a directory listing weighs its names) so the daemon's memory does not grow
// with the image.

export class HotCache<K, V> {
  private readonly map = new Map<K, V>();
  private total = 0;

  constructor(
    private readonly limit: number,
    private readonly weigh: (value: V) => number = () => 1,
  ) {}

  get(key: K): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      // Re-insert: a Map iterates in insertion order, so the first key is the coldest.
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }

  set(key: K, value: V): void {
    this.drop(key);
    this.map.set(key, value);
    this.total += this.weigh(value);
    // The newest entry stays even when it alone weighs more than the limit.
    while (this.total > this.limit && this.map.size > 1) this.drop(this.map.keys().next().value as K);
  }

  private drop(key: K): void {
    const old = this.map.get(key);
    if (old === undefined) return;
    this.total -= this.weigh(old);
    this.map.delete(key);
  }

  get size(): number {
    return this.map.size;
  }
}
