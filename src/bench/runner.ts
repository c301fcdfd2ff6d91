// The benchmark loop: stage the image, then for each workload, each repetition and each
// driver in turn (so drift of the machine hits all drivers alike) a fresh upper/work dir and
// mount, the untimed prepare step, the timed run, the result check, and the unmount, which
// always happens, also after a failure. A driver that fails a workload is not run on it
// again; one that cannot run at all is reported as skipped with the reason.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { log } from '../util/log.js';
import { REFERENCE_DRIVER, selectDrivers, type Mounted, type RunDirs } from './drivers.js';
import { FuseRequestTrace, fuseConnection, mergeRuns, type OpLatencies } from './fuse-requests.js';
import { fmtTime, median, percentile, sample, syncAll } from './measure.js';
import { measureIdleMemory, type IdleMemory } from './idle-memory.js';
import { daemonMemory, mountsUnder, unmount, type DaemonMemory } from './mounts.js';
import type { BenchResults, Cell, WorkloadResult } from './results.js';
import { sizeProfile, type SizeName } from './sizes.js';
import { makeStage, type Stage } from './stage.js';
import { selectWorkloads, type Outcome, type RunCtx } from './workloads.js';

export interface BenchOptions {
  size: SizeName;
  /** Driver names (drivers.ts); default all. */
  drivers?: string[];
  /** Workload ids (workloads.ts); default all. */
  workloads?: string[];
  repeat: number;
  cacheDir: string;
  /** A store image instead of the synthetic one: its layer dirs, top first. */
  image?: { name: string; layers: string[] };
  /** Work on this dir instead of a RAM-backed ext4. */
  dir?: string;
  /** Where the RAM-backed ext4 gets its mount point; default the system's tmpdir. */
  scratchParent?: string;
  /** How to run the strata CLI (default: this build under this node). */
  cli?: string[];
  progress?: (line: string) => void;
  /**
   * Also count the FUSE requests of every timed run of a FUSE driver, per opcode, with their
   * latencies (fuse-requests.ts: the kernel's tracepoints; root and tracefs).
   */
  requests?: boolean;
  /** Also measure each FUSE driver's daemon after a walk and once idle (idle-memory.ts). */
  idleMemory?: boolean;
  /**
   * For the harness's own tests: called on the fresh mount before the timed run and again
   * before the check, to spoil the answer and see the check catch it.
   */
  tamper?: (phase: 'before' | 'after', c: RunCtx, workload: string, driver: string) => void;
}

const firstLine = (s: string): string => s.split('\n')[0]!.slice(0, 240);

function reasonOf(problems: string[]): string {
  return firstLine(problems[0]!) + (problems.length > 1 ? ` (and ${problems.length - 1} more)` : '');
}

export async function runBench(o: BenchOptions): Promise<BenchResults> {
  const progress = o.progress ?? ((s: string) => void process.stderr.write(`${s}\n`));
  const profile = sizeProfile(o.size);
  if (!(o.repeat >= 1)) throw new Error('--repeat takes a positive number');
  const drivers = selectDrivers(o.drivers, o.cli);
  const workloads = selectWorkloads(o.workloads);
  const skipped = new Map(drivers.map((d) => [d.name, d.unavailable()]));
  for (const [d, why] of skipped) if (why) progress(`${d}: skipped: ${why}`);
  const live = drivers.filter((d) => !skipped.get(d.name));

  // Everything below is synchronous; a signal is handled between runs, so the finally
  // blocks still unmount and remove the scratch filesystem.
  let stop: string | undefined;
  const onSignal = (sig: NodeJS.Signals): void => {
    stop = sig;
    progress(`${sig}: stopping after this run`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const leftoverMounts: string[] = [];
  const results: WorkloadResult[] = [];
  let stage: Stage | undefined;
  let trace: FuseRequestTrace | undefined;
  let requestsUnavailable: string | undefined;
  let idleMemory: IdleMemory | undefined;
  try {
    if (o.requests) {
      const t = FuseRequestTrace.open();
      if (typeof t === 'string') progress(`FUSE requests not counted: ${(requestsUnavailable = t)}`);
      else trace = t;
    }
    stage = makeStage({ profile, cacheDir: o.cacheDir, image: o.image, dir: o.dir, scratchParent: o.scratchParent, progress });
    if (stop) throw new Error(`interrupted by ${stop}`);
    const runsDir = path.join(stage.base, 'runs');
    fs.mkdirSync(runsDir);
    const total = workloads.reduce((a, w) => a + (o.repeat + (w.warmup ? 1 : 0)) * live.length, 0);
    let k = 0;
    for (const w of workloads) {
      const title = w.title(stage, profile.counts);
      const times = new Map<string, number[]>(live.map((d) => [d.name, []]));
      const latencies = new Map<string, number[]>(live.map((d) => [d.name, []]));
      // Memory of the daemon serving the mount (FUSE drivers), after each timed run.
      const memory = new Map<string, DaemonMemory[]>(live.map((d) => [d.name, []]));
      const requests = new Map<string, { runs: OpLatencies[]; lost: boolean }>();
      const failed = new Map<string, string>();
      const rounds = o.repeat + (w.warmup ? 1 : 0);
      for (let i = 0; i < rounds; i++) {
        // Each round starts with the next driver: the first runs after staging are slow for
        // whichever driver runs them (copy-up-big: ~5 s, then ~0.4 s), and a fixed order
        // gave all of that to the first driver listed (always stratafs).
        const order = live.map((_, j) => live[(j + i) % live.length]!);
        const warm = w.warmup === true && i === 0;
        for (const d of order) {
          k++;
          await new Promise((r) => setImmediate(r));
          if (stop) throw new Error(`interrupted by ${stop}`);
          if (failed.has(d.name)) continue;
          const tag = `[${String(k).padStart(String(total).length)}/${total}] ${d.name.padEnd(14)} ${w.id.padEnd(11)} ${warm ? 'warm-up' : `${i + (w.warmup ? 0 : 1)}/${o.repeat}`}`;
          const dir = fs.mkdtempSync(path.join(runsDir, `${d.name}-`));
          const dirs: RunDirs = { dir, upper: path.join(dir, 'upper'), work: path.join(dir, 'work'), mnt: path.join(dir, 'mnt') };
          for (const p of [dirs.upper, dirs.work, dirs.mnt]) fs.mkdirSync(p);
          try {
            // Pending writeback of the previous run must not slow this one.
            syncAll();
            let m: Mounted | undefined;
            try {
              m = d.mount(stage, dirs);
              const c: RunCtx = { root: m.root, upper: m.upper, stage: stage!, counts: profile.counts };
              w.prepare?.(c);
              o.tamper?.('before', c, w.id, d.name);
              const connection = trace && !warm ? fuseConnection(m.root) : undefined;
              let out: Outcome;
              if (connection === undefined) out = w.run(c);
              else {
                const got = trace!.record(connection, () => w.run(c));
                out = got.result;
                const r = requests.get(d.name) ?? { runs: [], lost: false };
                r.runs.push(got.ops);
                r.lost ||= got.lost;
                requests.set(d.name, r);
              }
              o.tamper?.('after', c, w.id, d.name);
              const problems = w.check(c, out);
              if (problems.length) throw new Error(reasonOf(problems));
              if (!warm) {
                times.get(d.name)!.push(out.seconds);
                latencies.get(d.name)!.push(...(out.latencies ?? []));
                const mem = daemonMemory(m.root);
                if (mem) memory.get(d.name)!.push(mem);
              }
              progress(`${tag}  ${fmtTime(out.seconds)}`);
            } finally {
              m?.unmount();
            }
          } catch (e) {
            const reason = firstLine((e as Error).message);
            failed.set(d.name, reason);
            progress(`${tag}  FAIL: ${reason}`);
            log.debug({ err: e, driver: d.name, workload: w.id }, 'bench run failed');
          } finally {
            for (const m of mountsUnder(dir)) {
              leftoverMounts.push(m);
              progress(`WARNING: ${m} still mounted after its run; unmounting it`);
              unmount(m);
            }
            fs.rmSync(dir, { recursive: true, force: true });
          }
        }
      }
      const cells: Record<string, Cell> = {};
      for (const d of drivers) {
        const why = skipped.get(d.name) ?? failed.get(d.name);
        if (why) {
          cells[d.name] = { status: skipped.get(d.name) ? 'skip' : 'fail', reason: why };
          continue;
        }
        const lat = latencies.get(d.name)!;
        const mem = memory.get(d.name)!;
        const req = requests.get(d.name);
        cells[d.name] = {
          status: 'ok',
          ...sample(times.get(d.name)!),
          ...(lat.length > 1 ? { p50: percentile(lat, 0.5), p99: percentile(lat, 0.99) } : {}),
          ...(req ? { requests: mergeRuns(req.runs, req.lost) } : {}),
          ...(mem.length ? { daemonRss: median(mem.map((x) => x.rss)), daemonAnon: median(mem.map((x) => x.anon)) } : {}),
        };
      }
      const ref = cells[REFERENCE_DRIVER];
      if (ref?.status === 'ok') for (const c of Object.values(cells)) if (c.status === 'ok') c.ratio = ref.median / c.median;
      results.push({ id: w.id, title, cells });
    }
    if (o.idleMemory && !stop) {
      try {
        idleMemory = await measureIdleMemory(stage, live, runsDir, progress);
      } catch (e) {
        progress(`idle memory: FAIL: ${firstLine((e as Error).message)}`);
      } finally {
        for (const m of mountsUnder(runsDir)) {
          leftoverMounts.push(m);
          unmount(m);
        }
      }
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    trace?.close();
    stage?.remove();
  }
  const cpu = os.cpus();
  return {
    date: new Date().toISOString(),
    machine: { cores: cpu.length, cpu: cpu[0]?.model ?? 'unknown', kernel: os.release(), memGiB: Math.round(os.totalmem() / 2 ** 30) },
    size: profile.name,
    repeat: o.repeat,
    image: { label: stage.label, entries: stage.targets.entries, smallFiles: stage.targets.smallFiles.length, smallBytes: stage.targets.smallBytes, bigBytes: stage.targets.bigBytes },
    disk: stage.disk,
    reference: REFERENCE_DRIVER,
    drivers: drivers.map((d) => ({ name: d.name, label: d.label, ...(skipped.get(d.name) ? { skipped: skipped.get(d.name) } : {}) })),
    workloads: results,
    ...(requestsUnavailable ? { requestsUnavailable } : {}),
    ...(idleMemory ? { idleMemory } : {}),
    leftoverMounts,
  };
}

