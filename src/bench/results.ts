// What a `strata bench` run produced, as one plain object: the report, the JSON output and
// the chart are all made from it. Ratios are speeds relative to the kernel's overlayfs in
// the same run: overlayfs's median time / the driver's (above 1 = faster than overlayfs).

import type { RequestStats } from './fuse-requests.js';
import type { IdleMemory } from './idle-memory.js';
import type { Sample } from './measure.js';
import type { SizeName } from './sizes.js';

export type Cell =
  | ({
      status: 'ok';
      ratio?: number;
      p50?: number;
      p99?: number;
      requests?: RequestStats;
      /** Bytes resident in the daemon serving the mount after a run (median of the runs); FUSE drivers only. */
      daemonRss?: number;
      /** The daemon's own part of daemonRss (RssAnon: not the program's and libraries' shared pages). */
      daemonAnon?: number;
    } & Sample)
  | { status: 'fail'; reason: string }
  | { status: 'skip'; reason: string };

export interface WorkloadResult {
  id: string;
  title: string;
  /** By driver name. */
  cells: Record<string, Cell>;
}

export interface BenchResults {
  date: string;
  machine: { cores: number; cpu: string; kernel: string; memGiB: number };
  size: SizeName;
  repeat: number;
  image: { label: string; entries: number; smallFiles: number; smallBytes: number; bigBytes: number };
  disk: string;
  reference: string;
  drivers: Array<{ name: string; label: string; skipped?: string }>;
  workloads: WorkloadResult[];
  /** Why FUSE requests were asked for (--requests) but not counted. */
  requestsUnavailable?: string;
  /** The FUSE daemons' memory after a walk and once idle (--idle-memory). */
  idleMemory?: IdleMemory;
  /** Mounts a run left behind (unmounted by force afterwards): a bug in a driver or the harness. */
  leftoverMounts: string[];
}

export interface Comparison {
  ahead: Array<[string, number]>;
  behind: Array<[string, number]>;
}

/** Where driver `a` is faster or slower than driver `b`: time(b) / time(a) per workload where both ran. */
export function compare(r: BenchResults, a: string, b: string): Comparison {
  const out: Comparison = { ahead: [], behind: [] };
  for (const w of r.workloads) {
    const x = w.cells[a];
    const y = w.cells[b];
    if (x?.status !== 'ok' || y?.status !== 'ok') continue;
    const ratio = y.median / x.median;
    (ratio >= 1 ? out.ahead : out.behind).push([w.id, ratio]);
  }
  return out;
}

export function failures(r: BenchResults): Array<[string, string, string]> {
  const out: Array<[string, string, string]> = [];
  for (const w of r.workloads) for (const [d, c] of Object.entries(w.cells)) if (c.status === 'fail') out.push([d, w.id, c.reason]);
  return out;
}
