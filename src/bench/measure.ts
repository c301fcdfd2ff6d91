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

/** The q-quantile (0..1) of xs, nearest rank. */
export function percentile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

/** A duration for people: µs below 1 ms, ms below 10 s, else s. */
export function fmtTime(s: number): string {
  if (s < 1e-3) return `${(s * 1e6).toFixed(0)} µs`;
  if (s < 10) return `${(s * 1e3).toFixed(1)} ms`;
  return `${s.toFixed(2)} s`;
}
