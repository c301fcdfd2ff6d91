// What a workload asked of a FUSE daemon, per opcode: how many requests and how long each
// took from the kernel queueing it to the daemon's reply ending it (the daemon's whole
// share, the wake-ups on both sides included), read from the kernel's own fuse tracepoints
// (fuse_request_send, fuse_request_end). Nothing runs inside the daemons, so stratafs and
// fuse-overlayfs are measured alike; the bench's ratios say which is slower, these say in
// which requests. A tracing instance of our own, filtered to one mount's connection, keeps
// the system's trace buffer and every other mount out of it; where nothing mounted tracefs,
// the run mounts it at a place of its own.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { mountAt } from '../fuse/mount.js';
import { percentile } from './measure.js';

const ROOTS = ['/sys/kernel/tracing', '/sys/kernel/debug/tracing'];
const EVENTS = ['fuse_request_send', 'fuse_request_end'];
/** Per CPU. A run's events are read after it (reading during it would compete with the workload for the CPUs); a trace that overran says so. */
const BUFFER_KB = 32 * 1024;

/** One opcode's requests in one run, or per run over several (`RequestStats.runs`). */
export interface OpStats {
  count: number;
  /** Sum of their latencies. */
  totalMs: number;
  /** Median latency. */
  p50Us: number;
}

export interface RequestStats {
  /** By opcode name without its FUSE_ prefix (LOOKUP, SETATTR...). */
  ops: Record<string, OpStats>;
  /** Runs these figures are the mean of; counts and totals are per run. */
  runs: number;
  /** The trace buffer overran in some run: figures are short of what happened. */
  lost?: boolean;
}

/** The kernel's dev_t of the FUSE connection mounted at `dir` (the number the tracepoints print), or undefined when no FUSE filesystem is mounted there. */
export function fuseConnection(dir: string): number | undefined {
  const m = mountAt(dir);
  return m && (m.fstype === 'fuse' || m.fstype.startsWith('fuse.')) ? m.dev : undefined;
}

/** Requests of one run by opcode: how many were sent, and the latency of each answered one. */
export type OpLatencies = Map<string, { sent: number; latenciesUs: number[] }>;

/** One line of the trace: when, which event, which request, and for a send its opcode. */
const LINE = /\s(\d+)\.(\d+): fuse_request_(send|end): connection \d+ req (\d+)(?: opcode \d+ \((?:FUSE_)?(\w+)\))?/;

/** Latencies by opcode from the text of a trace; an end whose send came before the trace began is left out. */
export function parseTrace(text: string): OpLatencies {
  const sent = new Map<string, { t: number; op: string }>();
  const out: OpLatencies = new Map();
  for (const line of text.split('\n')) {
    const m = LINE.exec(line);
    if (!m) continue;
    // Microseconds, as the trace prints them: a float of seconds would lose them.
    const t = Number(m[1]) * 1e6 + Number(m[2]!.padEnd(6, '0').slice(0, 6));
    if (m[3] === 'send') {
      const op = m[5] ?? 'UNKNOWN';
      sent.set(m[4]!, { t, op });
      let e = out.get(op);
      if (!e) out.set(op, (e = { sent: 0, latenciesUs: [] }));
      e.sent++;
    } else {
      const s = sent.get(m[4]!);
      if (!s) continue;
      sent.delete(m[4]!);
      out.get(s.op)!.latenciesUs.push(t - s.t);
    }
  }
  return out;
}

/** Figures of several runs as per-run means (the median latency over all their requests), opcodes by time. */
export function mergeRuns(runs: OpLatencies[], lost: boolean): RequestStats {
  const all = new Map<string, { sent: number; latenciesUs: number[]; totalUs: number }>();
  for (const r of runs)
    for (const [op, e] of r) {
      const a = all.get(op) ?? { sent: 0, latenciesUs: [], totalUs: 0 };
      a.sent += e.sent;
      a.latenciesUs.push(...e.latenciesUs);
      a.totalUs += e.latenciesUs.reduce((x, y) => x + y, 0);
      all.set(op, a);
    }
  const ops: Record<string, OpStats> = {};
  for (const [op, e] of [...all].sort((a, b) => b[1].totalUs - a[1].totalUs))
    ops[op] = { count: e.sent / runs.length, totalMs: e.totalUs / 1000 / runs.length, p50Us: e.latenciesUs.length ? percentile(e.latenciesUs, 0.5) : 0 };
  return { ops, runs: runs.length, ...(lost ? { lost } : {}) };
}

/** Instances made by this process: two traces open at once get distinct ones. */
let instances = 0;

/** Unmounts and removes a tracefs mount point open() made (nothing for undefined). */
function release(mounted: string | undefined): void {
  if (!mounted) return;
  execFileSync('umount', [mounted], { stdio: 'ignore' });
  fs.rmdirSync(mounted);
}

/**
 * A tracing instance for one bench run at a time. `open` returns why it cannot be had
 * instead (no tracefs, no fuse tracepoints in this kernel, no permission).
 */
export class FuseRequestTrace {
  private constructor(
    private readonly dir: string,
    /** Where open() mounted tracefs itself, to unmount it at close(). */
    private readonly mounted: string | undefined,
  ) {}

  static open(roots: readonly string[] = ROOTS, mountParent = os.tmpdir()): FuseRequestTrace | string {
    const withFuse = (r: string): boolean => fs.existsSync(path.join(r, 'events/fuse/fuse_request_send'));
    let root = roots.find(withFuse);
    let mounted: string | undefined;
    if (!root && !roots.some((r) => fs.existsSync(path.join(r, 'events')))) {
      // Not mounted (no systemd to do it, as in a container): mounted for the run at a
      // place of its own, so that the system's view and another run's are left alone, and
      // unmounted by close().
      mounted = fs.mkdtempSync(path.join(mountParent, 'strata-tracefs-'));
      try {
        execFileSync('mount', ['-t', 'tracefs', 'nodev', mounted], { stdio: ['ignore', 'ignore', 'pipe'] });
      } catch (e) {
        fs.rmdirSync(mounted);
        return `tracefs is not mounted, and mounting it failed: ${firstLine(e)}`;
      }
      if (withFuse(mounted)) root = mounted;
    }
    if (!root) {
      release(mounted);
      return 'this kernel has no fuse tracepoints (fuse_request_send, fuse_request_end)';
    }
    const dir = path.join(root, 'instances', `strata-bench-${process.pid}-${++instances}`);
    try {
      fs.mkdirSync(dir);
    } catch (e) {
      release(mounted);
      return `cannot make a tracing instance at ${dir}: ${firstLine(e)}`;
    }
    const t = new FuseRequestTrace(dir, mounted);
    try {
      // A clock that agrees across CPUs: a request is sent on the caller's, ended on the daemon's.
      t.write('trace_clock', 'mono');
      t.write('buffer_size_kb', String(BUFFER_KB));
    } catch (e) {
      t.close();
      return `cannot set up the tracing instance at ${dir}: ${firstLine(e)}`;
    }
    return t;
  }

  private write(file: string, value: string): void {
    fs.writeFileSync(path.join(this.dir, file), value);
  }

  private enable(on: boolean): void {
    this.write('tracing_on', '0');
    for (const e of EVENTS) this.write(`events/fuse/${e}/enable`, on ? '1' : '0');
    if (on) this.write('tracing_on', '1');
  }

  /** Starts recording the requests of the connection `fuseConnection` gave, from an empty buffer. */
  private start(connection: number): void {
    this.write('tracing_on', '0');
    this.write('trace', '');
    for (const e of EVENTS) this.write(`events/fuse/${e}/filter`, `connection == ${connection}`);
    this.enable(true);
  }

  /** Stops recording and returns what was recorded since start, by opcode, and whether the buffer overran. */
  private stop(): { ops: OpLatencies; lost: boolean } {
    this.enable(false);
    const ops = parseTrace(fs.readFileSync(path.join(this.dir, 'trace'), 'latin1'));
    const lost = fs.readdirSync(path.join(this.dir, 'per_cpu')).some((cpu) => /^overrun: [1-9]/m.test(fs.readFileSync(path.join(this.dir, 'per_cpu', cpu, 'stats'), 'utf8')));
    return { ops, lost };
  }

  /** `f`'s result and the requests of `connection` while it ran (recording stops also when it throws). */
  record<T>(connection: number, f: () => T): { result: T; ops: OpLatencies; lost: boolean } {
    this.start(connection);
    let result: T;
    try {
      result = f();
    } catch (e) {
      this.stop();
      throw e;
    }
    return { result, ...this.stop() };
  }

  /** Removes the instance (its buffers go with it), and tracefs if open() mounted it. */
  close(): void {
    try {
      this.enable(false);
    } catch {
      // Removing the instance below stops everything anyway.
    }
    fs.rmdirSync(this.dir);
    release(this.mounted);
  }
}

function firstLine(e: unknown): string {
  const err = e as { stderr?: Buffer; code?: string; message?: string };
  return (err.stderr?.toString().trim() || err.code || err.message || String(e)).split('\n')[0]!;
}
