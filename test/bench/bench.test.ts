// The harness of `strata bench` on the small synthetic image: every workload gives the
// right answer on the native, overlay and stratafs drivers, and every workload's result
// check catches a wrong one (the answer is spoiled through the tamper hook, before the
// timed run or before the check, and the cell must say FAIL). Also: the report, the JSON
// and the SVG chart through the CLI, and skipped drivers with their reasons. No timing is
// asserted anywhere: figures belong in docs/benchmarks.md, not in tests.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderChart } from '../../src/bench/chart.js';
import { allDrivers } from '../../src/bench/drivers.js';
import { mountsUnder, onPath, unmount } from '../../src/bench/mounts.js';
import { IDLE_WAIT_MS } from '../../src/bench/idle-memory.js';
import { formatReport, summaryLines } from '../../src/bench/report.js';
import type { BenchResults, Cell } from '../../src/bench/results.js';
import { runBench, type BenchOptions } from '../../src/bench/runner.js';
import { sizeProfile } from '../../src/bench/sizes.js';
import { missingNames, WORKLOADS, type RunCtx } from '../../src/bench/workloads.js';
import { STRATA, tmpdir } from '../helpers/mount.js';

const tmp = tmpdir('bench');
const common: BenchOptions = { size: 'small', repeat: 1, cacheDir: path.join(tmp, 'cache'), scratchParent: tmp, cli: [STRATA], progress: () => {} };
const ids = WORKLOADS.map((w) => w.id);

/** Processes with an argument below tmp: daemons a run left behind. */
function processesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      const args = fs.readFileSync(`/proc/${e}/cmdline`, 'latin1').split('\0');
      if (args.some((a) => a.startsWith(dir))) out.push(`${e}: ${args.join(' ')}`);
    } catch {
      // gone
    }
  }
  return out;
}

afterAll(() => {
  const mounts = mountsUnder(tmp);
  for (const m of mounts) unmount(m);
  const procs = processesUnder(tmp);
  fs.rmSync(tmp, { recursive: true, force: true });
  expect(mounts, 'mounts left behind').toEqual([]);
  expect(procs, 'processes left behind').toEqual([]);
});

const first = (c: RunCtx): string => c.stage.targets.candidates[0]![0];
const smallFile = (c: RunCtx): string => c.stage.targets.smallFiles[0]![0];

/**
 * How each workload's answer is spoiled, and what its check must then say. Where the driver
 * has an upper dir, some checks are shown to read it (the merged view stays right there).
 */
const tampers: Record<string, { phase: 'before' | 'after'; spoil(c: RunCtx): void; expect: RegExp }> = {
  'cold-walk': { phase: 'before', spoil: (c) => fs.writeFileSync(path.join(c.root, 'extra'), 'x'), expect: /entries seen by the walk: \d+, expected/ },
  'warm-walk': { phase: 'before', spoil: (c) => fs.unlinkSync(path.join(c.root, smallFile(c))), expect: /entries seen by the walk: \d+, expected/ },
  'stat-all': { phase: 'before', spoil: (c) => fs.appendFileSync(path.join(c.root, smallFile(c)), 'more'), expect: /bytes in regular files: \d+, expected/ },
  missing: { phase: 'before', spoil: (c) => fs.writeFileSync(path.join(c.root, missingNames(c.stage, c.counts)[0]!), ''), expect: /lstats answered ENOENT: \d+, expected/ },
  'read-small': { phase: 'before', spoil: (c) => fs.truncateSync(path.join(c.root, smallFile(c)), 0), expect: /bytes read: \d+, expected/ },
  'read-big': {
    phase: 'before',
    spoil: (c) => {
      const fd = fs.openSync(path.join(c.root, c.stage.targets.bigFile), 'r+');
      fs.writeSync(fd, Buffer.from('spoiled'), 0, 7, 0);
      fs.closeSync(fd);
    },
    expect: /read back wrong data/,
  },
  'copy-up': {
    phase: 'after',
    spoil: (c) => (c.upper ? fs.unlinkSync(path.join(c.upper, first(c))) : fs.appendFileSync(path.join(c.root, first(c)), '+')),
    expect: /^(upper dir: .*ENOENT|merged view: ~ .*: sha256 .*size)/,
  },
  'copy-up-big': {
    phase: 'after',
    spoil: (c) => fs.truncateSync(path.join(c.upper ?? c.root, c.stage.targets.bigFile), 4096),
    expect: /(merged view|upper dir): 4096 bytes, expected \d+/,
  },
  chmod: { phase: 'after', spoil: (c) => fs.chmodSync(path.join(c.root, first(c)), 0o644), expect: /merged view: ~ .*: mode 384 != 420/ },
  create: { phase: 'after', spoil: (c) => fs.unlinkSync(path.join(c.root, 'strata-bench-created/new-7')), expect: /merged view: \d+ entries in strata-bench-created, expected/ },
  'rm-rf': { phase: 'after', spoil: (c) => fs.mkdirSync(path.join(c.root, c.stage.targets.rmTree)), expect: /merged view: .* is still there/ },
  rename: { phase: 'after', spoil: (c) => fs.renameSync(path.join(c.root, `${first(c)}.renamed`), path.join(c.root, first(c))), expect: /still there after its rename/ },
  untar: {
    phase: 'after',
    spoil: (c) => {
      const dir = path.join(c.root, 'strata-bench-untar');
      const file = (fs.readdirSync(dir, { recursive: true }) as string[]).map((p) => path.join(dir, p)).find((p) => fs.statSync(p).isFile())!;
      fs.writeFileSync(file, Buffer.alloc(fs.statSync(file).size, 'x'));
    },
    expect: /merged view: ~ .*sha256 /,
  },
};

describe('strata bench, size small', () => {
  let right: BenchResults;
  let wrong: BenchResults;

  beforeAll(async () => {
    right = await runBench({ ...common, drivers: ['native', 'overlay', 'stratafs', 'fuse-overlayfs'], requests: true });
    wrong = await runBench({
      ...common,
      drivers: ['native', 'overlay'],
      tamper: (phase, c, w) => {
        if (tampers[w]!.phase === phase) tampers[w]!.spoil(c);
      },
    });
  }, 120_000);

  it('has a spoiler for every workload', () => {
    expect(Object.keys(tampers).sort()).toEqual([...ids].sort());
  });

  describe.each(ids)('%s', (id) => {
    it('gives the right answer on native, overlay and stratafs (fuse-overlayfs: when installed)', () => {
      const w = right.workloads.find((x) => x.id === id)!;
      for (const d of ['native', 'overlay', 'stratafs']) expect(w.cells[d], `${d} on ${id}`).toMatchObject({ status: 'ok' });
      expect(w.cells.overlay).toMatchObject({ ratio: 1 });
      if (onPath('fuse-overlayfs')) expect(w.cells['fuse-overlayfs'], `fuse-overlayfs on ${id}`).toMatchObject({ status: 'ok' });
      else expect(w.cells['fuse-overlayfs']).toMatchObject({ status: 'skip', reason: expect.stringMatching(/not installed/) });
    });

    it('reports FAIL when the answer is wrong', () => {
      const w = wrong.workloads.find((x) => x.id === id)!;
      for (const d of ['native', 'overlay']) {
        const c = w.cells[d]!;
        expect(c.status, `${d} on ${id}: ${JSON.stringify(c)}`).toBe('fail');
        expect(c.status === 'fail' && c.reason).toMatch(tampers[id]!.expect);
      }
    });
  });

  it('prints a table per workload and a summary; FAILs are in the table and the summary', () => {
    const text = formatReport(right);
    for (const w of right.workloads) expect(text).toContain(`### \`${w.id}\`: ${w.title}\n`);
    expect(text).toMatch(/\| overlayfs \(kernel\) \| [\d.]+ (ms|µs|s) \| [\d.]+ (ms|µs|s) – [\d.]+ (ms|µs|s) \| 1\.00x \|/);
    expect(text).toMatch(/\| open \+ first write \|/);
    expect(summaryLines(right)[0]).toMatch(/^stratafs vs overlayfs \(kernel\): ahead on .*; behind on /);
    const bad = formatReport(wrong);
    expect(bad).toMatch(/\| native \(merged tree on the disk\) \| \*\*FAIL\*\*: /);
    expect(bad).toContain('FAIL: overlay on untar: merged view');
  });

  it('counts the FUSE requests of the FUSE drivers per opcode (--requests), and of no other mount', () => {
    expect(right.requestsUnavailable).toBeUndefined();
    const fuse = onPath('fuse-overlayfs') ? ['stratafs', 'fuse-overlayfs'] : ['stratafs'];
    const cell = (id: string, d: string): Cell => right.workloads.find((w) => w.id === id)!.cells[d]!;
    for (const w of right.workloads) {
      for (const d of ['native', 'overlay']) expect(w.cells[d]!.status === 'ok' && w.cells[d]!.requests, `${d} on ${w.id}`).toBeUndefined();
      for (const d of fuse) {
        const c = cell(w.id, d);
        expect(c.status === 'ok' && c.requests, `${d} on ${w.id}`).toMatchObject({ runs: 1 });
      }
    }
    // One SETATTR per chmod, exactly: requests of the other mounts of this test run (other
    // drivers, other test files) are not counted.
    const n = sizeProfile('small').counts.chmod;
    for (const d of fuse) {
      const c = cell('chmod', d);
      if (c.status !== 'ok') throw new Error(`${d}: ${JSON.stringify(c)}`);
      expect(c.requests!.ops.SETATTR, d).toMatchObject({ count: n, totalMs: expect.any(Number), p50Us: expect.any(Number) });
      expect(c.requests!.ops.SETATTR!.p50Us, d).toBeGreaterThan(0);
      expect(c.requests!.ops.LOOKUP!.count, d).toBeGreaterThanOrEqual(n);
      expect(c.requests!.lost, d).toBeUndefined();
    }
    // With passthrough the kernel reads the backing file itself: no READ reaches stratafs.
    const read = cell('read-small', 'stratafs');
    expect(read.status === 'ok' && read.requests!.ops.READ).toBeUndefined();
    expect(read.status === 'ok' && read.requests!.ops.OPEN!.count).toBeGreaterThanOrEqual(1);
    if (onPath('fuse-overlayfs')) {
      const fo = cell('read-small', 'fuse-overlayfs');
      expect(fo.status === 'ok' && fo.requests!.ops.READ!.count).toBeGreaterThan(1);
    }
    // The kernel opens directories without asking stratafs (OPENDIR answered ENOSYS once:
    // no_opendir), so a walk sends it neither OPENDIR nor RELEASEDIR; fuse-overlayfs gets both.
    for (const id of ['cold-walk', 'warm-walk']) {
      const walk = cell(id, 'stratafs');
      if (walk.status !== 'ok') throw new Error(`stratafs on ${id}: ${JSON.stringify(walk)}`);
      // Requests were counted at all (the walk's GETATTRs, LOOKUPs or READDIRs).
      expect(Object.values(walk.requests!.ops).reduce((n, o) => n + o.count, 0), id).toBeGreaterThan(0);
      expect(walk.requests!.ops.OPENDIR?.count ?? 0, id).toBeLessThanOrEqual(1);
      expect(walk.requests!.ops.RELEASEDIR, id).toBeUndefined();
      if (id === 'cold-walk') expect(walk.requests!.ops.READDIRPLUS?.count ?? walk.requests!.ops.READDIR?.count, id).toBeGreaterThan(1);
      if (onPath('fuse-overlayfs')) {
        const fo = cell(id, 'fuse-overlayfs');
        expect(fo.status === 'ok' && fo.requests!.ops.OPENDIR!.count, id).toBeGreaterThan(1);
      }
    }
    // Names that do not exist, asked for once before: the kernel answers every later lstat
    // itself (negative entries kept), and the table then has no opcode columns.
    const missing = cell('missing', 'stratafs');
    expect(missing.status === 'ok' && Object.values(missing.requests!.ops).reduce((n, o) => n + o.count, 0)).toBe(0);
    expect(formatReport(right)).toContain('| stratafs (passthrough on) | 0 | 0 µs |\n');
    // The tracing instance went with the run, and so did tracefs where the run mounted it.
    if (fs.existsSync('/sys/kernel/tracing/instances')) expect(fs.readdirSync('/sys/kernel/tracing/instances').filter((e) => e.startsWith('strata-bench-'))).toEqual([]);
    expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain('strata-tracefs-');
    const text = formatReport(right);
    expect(text).toContain('FUSE requests per run (kernel tracepoints, queued to answered)');
    expect(text).toMatch(/\| stratafs \(passthrough on\) \| [\d,]+ \| [\d.]+ (ms|µs|s) \| .*\d+ × [\d.]+ (ms|µs) \|/);
    expect(text).not.toMatch(/\| overlayfs \(kernel\) \| [\d,]+ \| [\d.]+ (ms|µs|s) \| .* × /);
  });

  it('reports the memory of the daemon serving each FUSE mount after its runs, and none for the kernel\'s', () => {
    const fuse = onPath('fuse-overlayfs') ? ['stratafs', 'fuse-overlayfs'] : ['stratafs'];
    for (const w of right.workloads) {
      for (const d of ['native', 'overlay']) expect(w.cells[d]!.status === 'ok' && w.cells[d]!.daemonRss, `${d} on ${w.id}`).toBeUndefined();
      for (const d of fuse) {
        const c = w.cells[d]!;
        if (c.status !== 'ok') throw new Error(`${d} on ${w.id}: ${JSON.stringify(c)}`);
        // A live process's resident set: at least its own code (the node binary for stratafs),
        // of which its own memory (heap, stacks) is a part.
        expect(c.daemonRss, `${d} on ${w.id}`).toBeGreaterThan(d === 'stratafs' ? 16 * 2 ** 20 : 2 ** 20);
        expect(c.daemonAnon, `${d} on ${w.id}`).toBeGreaterThan(0);
        expect(c.daemonAnon, `${d} on ${w.id}`).toBeLessThan(c.daemonRss!);
      }
    }
    const text = formatReport(right);
    expect(text).toContain('| driver | median | min – max | vs overlayfs (kernel) | daemon RSS after (own) |');
    expect(text).toMatch(/\| stratafs \(passthrough on\) \| [\d.]+ (ms|µs|s) \| .* \| [\d.]+x \| [\d.]+ MiB \([\d.]+ own\) \|\n/);
    expect(text).toMatch(/\| overlayfs \(kernel\) \| [\d.]+ (ms|µs|s) \| .* \| 1\.00x \|  \|\n/);
  });

  it('starts each round with the next driver, so the slow first runs after staging fall on every driver in turn', async () => {
    const seen: string[] = [];
    await runBench({ ...common, repeat: 3, drivers: ['native', 'overlay', 'stratafs'], workloads: ['warm-walk'], tamper: (phase, _c, _w, d) => void (phase === 'before' && seen.push(d)) });
    const [a, b, c] = [seen.slice(0, 3), seen.slice(3, 6), seen.slice(6)];
    expect(new Set(a)).toEqual(new Set(['native', 'overlay', 'stratafs']));
    expect(b).toEqual([a[1], a[2], a[0]]);
    expect(c).toEqual([a[2], a[0], a[1]]);
  }, 60_000);

  it('runs a warm-up workload once per driver, checked but untimed, before the timed rounds', async () => {
    const seen: string[] = [];
    const lines: string[] = [];
    const r = await runBench({ ...common, repeat: 2, drivers: ['native', 'stratafs'], workloads: ['copy-up-big'], progress: (s) => void lines.push(s), tamper: (phase, _c, _w, d) => void (phase === 'before' && seen.push(d)) });
    // The warm-up round, then two timed ones, each starting with the next driver.
    const [a, b] = [seen[0]!, seen[1]!];
    expect(new Set([a, b])).toEqual(new Set(['native', 'stratafs']));
    expect(seen).toEqual([a, b, b, a, a, b]);
    const cells = r.workloads[0]!.cells;
    for (const d of ['native', 'stratafs']) expect(cells[d]).toMatchObject({ status: 'ok', runs: [expect.any(Number), expect.any(Number)] });
    expect(lines.filter((l) => / copy-up-big +warm-up /.test(l))).toHaveLength(2);
    expect(lines.filter((l) => / copy-up-big +[12]\/2 /.test(l))).toHaveLength(4);
  }, 60_000);

  it('measures each FUSE daemon after a walk and once idle; stratafs gives memory back', async () => {
    const lines: string[] = [];
    const r = await runBench({ ...common, drivers: ['overlay', 'stratafs', 'fuse-overlayfs'], workloads: ['warm-walk'], idleMemory: true, progress: (s) => void lines.push(s) });
    const m = r.idleMemory!;
    expect(m.waitedMs).toBe(IDLE_WAIT_MS);
    expect(m.entries).toBe(r.image.entries);
    // Kernel drivers have no daemon.
    expect(Object.keys(m.drivers).sort()).toEqual(['fuse-overlayfs', 'stratafs']);
    const s = m.drivers.stratafs!;
    expect(s.idle.anon, `stratafs own memory after the walk ${s.busy.anon}, idle ${s.idle.anon}`).toBeLessThan(s.busy.anon);
    for (const x of Object.values(m.drivers)) for (const v of [x.busy, x.idle]) expect(v.anon).toBeLessThan(v.rss);
    expect(lines.some((l) => /^idle memory: stratafs, fuse-overlayfs walked; waiting \d+ s without requests$/.test(l))).toBe(true);
    const text = formatReport(r);
    expect(text).toContain('### Daemon memory, busy and idle');
    expect(text).toMatch(/\| stratafs \(passthrough on\) \| [\d.]+ MiB \([\d.]+ own\) \| [\d.]+ MiB \([\d.]+ own\) \|\n/);
    expect(text).not.toMatch(/\| overlayfs \(kernel\) \| [\d.]+ MiB/);
    expect(mountsUnder(tmp)).toEqual([]);
    // Without it (the default of runBench), no such measure and no table.
    expect(right.idleMemory).toBeUndefined();
    expect(formatReport(right)).not.toContain('Daemon memory, busy and idle');
  }, 90_000);

  it('reports a driver that cannot run as skipped, with the reason', () => {
    const saved = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      expect(allDrivers().find((d) => d.name === 'fuse-overlayfs')!.unavailable()).toMatch(/fuse-overlayfs is not installed/);
    } finally {
      process.env.PATH = saved;
    }
    const r: BenchResults = structuredClone(right);
    r.drivers.find((d) => d.name === 'fuse-overlayfs')!.skipped = 'fuse-overlayfs is not installed';
    for (const w of r.workloads) w.cells['fuse-overlayfs'] = { status: 'skip', reason: 'fuse-overlayfs is not installed' };
    expect(formatReport(r)).toContain('| fuse-overlayfs | skipped: fuse-overlayfs is not installed |');
    expect(summaryLines(r)).toContain('stratafs vs fuse-overlayfs: not compared (fuse-overlayfs is not installed)');
  });

  it('the CLI prints the table, writes JSON and an SVG chart, and exits 0', async () => {
    const json = path.join(tmp, 'out.json');
    const svg = path.join(tmp, 'out.svg');
    const r = spawnSync(
      STRATA,
      ['bench', '--size', 'small', '--repeat', '2', '--drivers', 'native,overlay', '--workloads', 'copy-up,rename', '--cache', common.cacheDir, '--json', json, '--chart', svg],
      { encoding: 'utf8', env: { ...process.env, TMPDIR: tmp }, timeout: 60_000 },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^strata bench: synthetic image, size small/);
    expect(r.stdout).toContain('### `copy-up`: copy-up of 200 small files');
    expect(r.stderr).toMatch(/\[\d\/8\] overlay +rename +2\/2 +[\d.]+ (ms|µs)/);
    const out = JSON.parse(fs.readFileSync(json, 'utf8')) as BenchResults;
    expect(out.workloads.map((w) => w.id)).toEqual(['copy-up', 'rename']);
    expect(out.workloads[0]!.cells.overlay).toMatchObject({ status: 'ok', ratio: 1, runs: [expect.any(Number), expect.any(Number)], p50: expect.any(Number), p99: expect.any(Number) });
    const chart = fs.readFileSync(svg, 'utf8');
    expect(chart).toMatch(/^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect(chart).toContain('native (merged tree on the disk)');
    expect(await renderChart(out)).toBe(chart.replace(/\n$/, ''));
  }, 60_000);
});
