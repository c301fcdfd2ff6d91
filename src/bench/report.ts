// The text report of a run: a header saying what was measured where, one Markdown table per
// workload (median, min-max spread, speed relative to overlayfs, latency percentiles; with
// --requests a second one of the FUSE drivers' requests by opcode), and a summary of where
// stratafs is ahead or behind. Markdown, so a run pastes into docs/benchmarks.md as printed.

import { fmtTime } from './measure.js';
import { compare, failures, type BenchResults, type Cell, type WorkloadResult } from './results.js';

const MiB = 2 ** 20;

/** The optional columns of a workload's table: latency percentiles, the daemon's memory. */
interface Extra {
  latency: boolean;
  memory: boolean;
}

const memory = (m: { rss: number; anon: number }): string => `${(m.rss / MiB).toFixed(1)} MiB (${(m.anon / MiB).toFixed(1)} own)`;

function cells(c: Cell | undefined, x: Extra): string[] {
  // Every column after the first: the spread, the ratio and the optional ones.
  const blank = Array<string>(2 + Number(x.latency) + Number(x.memory)).fill('');
  if (!c) return ['', ...blank];
  if (c.status === 'skip') return [`skipped: ${c.reason}`, ...blank];
  if (c.status === 'fail') return [`**FAIL**: ${c.reason.replace(/\|/g, '\\|')}`, ...blank];
  const out = [fmtTime(c.median), `${fmtTime(c.min)} – ${fmtTime(c.max)}`, c.ratio === undefined ? 'n/a' : `${c.ratio.toFixed(2)}x`];
  if (x.latency) out.push(c.p50 === undefined ? '' : `p50 ${fmtTime(c.p50)}, p99 ${fmtTime(c.p99!)}`);
  if (x.memory) out.push(c.daemonRss === undefined ? '' : memory({ rss: c.daemonRss, anon: c.daemonAnon! }));
  return out;
}

function list(xs: Array<[string, number]>): string {
  return xs.map(([w, r]) => `${w} (${r.toFixed(2)}x)`).join(', ') || 'nothing';
}

/** Opcode columns of a requests table: those with the most time in any driver. */
const REQUEST_COLUMNS = 5;

/**
 * A workload's FUSE requests (--requests), per driver that had them: all of them, and the
 * opcodes that took the most time, each as count x median latency.
 */
function requestTable(w: WorkloadResult, r: BenchResults): string[] {
  const traced = r.drivers.flatMap((d) => {
    const c = w.cells[d.name];
    return c?.status === 'ok' && c.requests ? [{ label: d.label, req: c.requests }] : [];
  });
  if (!traced.length) return [];
  const time = new Map<string, number>();
  for (const { req } of traced) for (const [op, s] of Object.entries(req.ops)) time.set(op, Math.max(time.get(op) ?? 0, s.totalMs));
  const cols = [...time].sort((a, b) => b[1] - a[1]).slice(0, REQUEST_COLUMNS).map(([op]) => op);
  const count = (n: number): string => Math.round(n).toLocaleString('en');
  const lines = ['', 'FUSE requests per run (kernel tracepoints, queued to answered): count × median latency; "time": all their latencies summed.', ''];
  // Cells joined as `| a | b |`: a run that sent no request has no opcode columns.
  const row = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  lines.push(row(['driver', 'requests', 'time', ...cols]), `|---|---:|---:|${cols.map(() => '---:|').join('')}`);
  for (const { label, req } of traced) {
    const all = Object.values(req.ops);
    const total = all.reduce((a, s) => a + s.count, 0);
    const ms = all.reduce((a, s) => a + s.totalMs, 0);
    const per = cols.map((op) => (req.ops[op] ? `${count(req.ops[op]!.count)} × ${fmtTime(req.ops[op]!.p50Us / 1e6)}` : '–'));
    lines.push(row([`${label}${req.lost ? ' (trace overran: counts short)' : ''}`, count(total), fmtTime(ms / 1000), ...per]));
  }
  return lines;
}

/** The daemons' memory after a walk of the image and once idle (--idle-memory). */
function idleTable(r: BenchResults): string[] {
  const m = r.idleMemory;
  if (!m) return [];
  const lines = [
    '',
    '### Daemon memory, busy and idle',
    '',
    `Resident memory of each FUSE daemon (its own part in brackets) right after a walk of all ${m.entries.toLocaleString('en')} entries, and after ${m.waitedMs / 1000} s without a request.`,
    '',
    '| driver | after the walk | idle |',
    '|---|---:|---:|',
  ];
  for (const d of r.drivers) {
    const x = m.drivers[d.name];
    if (x) lines.push(`| ${d.label} | ${memory(x.busy)} | ${memory(x.idle)} |`);
  }
  return lines;
}

/** One line per peer: where the stratafs driver (passthrough on, else off) is faster or slower. */
export function summaryLines(r: BenchResults): string[] {
  const ran = (d: string): boolean => r.workloads.some((w) => w.cells[d]?.status === 'ok');
  const ours = ['stratafs', 'stratafs-nopt'].find(ran);
  const out: string[] = [];
  if (ours) {
    for (const peer of [r.reference, 'fuse-overlayfs']) {
      const label = r.drivers.find((d) => d.name === peer)?.label;
      if (!label) continue;
      if (!ran(peer)) {
        out.push(`${ours} vs ${label}: not compared (${r.drivers.find((d) => d.name === peer)?.skipped ?? 'it failed every workload'})`);
        continue;
      }
      const c = compare(r, ours, peer);
      out.push(`${ours} vs ${label}: ahead on ${list(c.ahead)}; behind on ${list(c.behind)}`);
    }
  }
  // Like for like: neither fsyncs a copy-up.
  const fo = r.drivers.find((d) => d.name === 'fuse-overlayfs')?.label;
  if (ran('stratafs-volatile') && fo && ran('fuse-overlayfs')) {
    const c = compare(r, 'stratafs-volatile', 'fuse-overlayfs');
    out.push(`stratafs-volatile vs ${fo}: ahead on ${list(c.ahead)}; behind on ${list(c.behind)}`);
  }
  for (const [d, w, why] of failures(r)) out.push(`FAIL: ${d} on ${w}: ${why}`);
  if (r.leftoverMounts.length) out.push(`WARNING: mounts left behind by a run (unmounted by force): ${r.leftoverMounts.join(', ')}`);
  return out;
}

export function formatReport(r: BenchResults): string {
  const refLabel = r.drivers.find((d) => d.name === r.reference)?.label ?? r.reference;
  const lines = [
    `strata bench: ${r.image.label}: ${r.image.entries.toLocaleString('en')} entries, ${r.image.smallFiles.toLocaleString('en')} small files (${(r.image.smallBytes / MiB).toFixed(1)} MiB), a ${(r.image.bigBytes / MiB).toFixed(0)} MiB file.`,
    `Median of ${r.repeat} run${r.repeat === 1 ? '' : 's'}, each with a fresh upper/work dir and mount; ${r.machine.cores} cores (${r.machine.cpu}), ${r.machine.memGiB} GiB, Linux ${r.machine.kernel}; disk: ${r.disk}; ${r.date}.`,
    `"vs ${refLabel}": its median time / the driver's (above 1.00 = faster than ${refLabel}).`,
  ];
  for (const w of r.workloads) {
    const ok = Object.values(w.cells).filter((c) => c.status === 'ok');
    const x: Extra = { latency: ok.some((c) => c.p50 !== undefined), memory: ok.some((c) => c.daemonRss !== undefined) };
    lines.push('', `### \`${w.id}\`: ${w.title}`, '');
    lines.push(
      `| driver | median | min – max | vs ${refLabel} |${x.latency ? ' open + first write |' : ''}${x.memory ? ' daemon RSS after (own) |' : ''}`,
      `|---|---:|---:|---:|${x.latency ? '---|' : ''}${x.memory ? '---:|' : ''}`,
    );
    for (const d of r.drivers) lines.push(`| ${d.label} | ${cells(w.cells[d.name], x).join(' | ')} |`);
    lines.push(...requestTable(w, r));
  }
  lines.push(...idleTable(r));
  if (r.requestsUnavailable) lines.push('', `FUSE requests not counted: ${r.requestsUnavailable}.`);
  const summary = summaryLines(r);
  if (summary.length) lines.push('', 'Summary:', ...summary.map((s) => `- ${s}`));
  return `${lines.join('\n')}\n`;
}
