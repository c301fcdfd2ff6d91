// Timing and statistics for benchmarks. Figures are reported as ratios against a peer
// measured in the same run, never as absolute targets in tests.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';

export function seconds(f: () => void): number {
  const t = process.hrtime.bigint();
  f();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function syncAll(): void {
  execFileSync('sync');
}

/** Drops the page, dentry and inode caches (root only), so the next pass reads from disk. */
export function dropCaches(): void {
  syncAll();
  fs.writeFileSync('/proc/sys/vm/drop_caches', '3');
}

export interface Sample {
  runs: number[];
  median: number;
  min: number;
  max: number;
}

export function sample(runs: number[]): Sample {
  return { runs, median: median(runs), min: Math.min(...runs), max: Math.max(...runs) };
}
