// Seeded random choices and file contents for the benchmark's generated trees: the same
// seed gives the same names, sizes and bytes on every machine.

import { prng } from '../util/prng.js';

export interface SeededData {
  int(lo: number, hi: number): number;
  pick<T>(xs: T[]): T;
  shuffle<T>(xs: T[]): T[];
  /** n bytes of noise (a view into a shared 2 MiB buffer: write it out before the next call). */
  bytes(n: number): Buffer;
  /** A container-rootfs file size: 1-16 KiB, one in 250 between 100 KiB and 2 MiB. */
  fileSize(): number;
}

export function seededData(seed: number): SeededData {
  const rnd = prng(seed);
  const int = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));
  const noise = Buffer.allocUnsafe(2 << 20);
  for (let i = 0; i < noise.length; i += 4) noise.writeUInt32LE((rnd() * 4294967296) >>> 0, i);
  return {
    int,
    pick: (xs) => xs[Math.floor(rnd() * xs.length)]!,
    shuffle: (xs) => xs.map((x) => [rnd(), x] as const).sort((a, b) => a[0] - b[0]).map(([, x]) => x),
    bytes(n) {
      const off = int(0, noise.length - n);
      return noise.subarray(off, off + n);
    },
    fileSize: () => (rnd() < 0.004 ? int(100 << 10, 2 << 20) : int(1 << 10, 16 << 10)),
  };
}
