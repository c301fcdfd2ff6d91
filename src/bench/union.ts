// Benchmark of the union mount: stratafs against the kernel's overlayfs (the reference)
// and fuse-overlayfs, over the same synthetic three-layer image, in one run. Every
// workload run gets a fresh upper and work dir and a fresh mount. Prints a table of
// ratios to overlayfs (1.0 = as fast as overlayfs) and writes JSON when asked.
//
//   node dist/bench/union.js [--repeat N] [--big-mib N] [--json FILE]
//        [--drivers overlay,stratafs,fuse-overlayfs] [--workloads cold-walk,warm-walk,...]
//
// The layers and upper dirs live on an ext4 filesystem on a RAM-backed loop device (see
// docs/benchmarks.md: the VM's block device is throttled by its host).

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { appendByte, chmodFiles, createFiles, readFiles, removeTree, renameFiles, seqRead, walkTree } from './file-workloads.js';
import { dropCaches, median, sample, seconds, syncAll, type Sample } from './measure.js';
import { strataMount } from './mounts.js';
import { ramExt4 } from './scratch-fs.js';
import { makeSyntheticImage, type SyntheticImage } from './synthetic-image.js';

const { values } = parseArgs({
  options: {
    repeat: { type: 'string', default: '3' },
    'big-mib': { type: 'string', default: '1024' },
    json: { type: 'string' },
    drivers: { type: 'string', default: 'overlay,stratafs,fuse-overlayfs' },
    workloads: { type: 'string' },
  },
});
const repeat = Number(values.repeat);
const bigMiB = Number(values['big-mib']);
if (!(repeat >= 1) || !(bigMiB >= 1)) throw new Error('--repeat and --big-mib take positive numbers');
const progress = (s: string): void => void process.stderr.write(`${s}\n`);

const N_COPY_UP = 2000;
const N_CHMOD = 2000;
const N_CREATE = 10000;
const N_RENAME = 1000;

// ---- drivers -------------------------------------------------------------------------

interface Layers {
  lower: string[];
  upper: string;
  work: string;
  mnt: string;
}

interface Driver {
  name: string;
  /** Why the driver cannot run here, or undefined. */
  skip?: string;
  mount(l: Layers): () => void;
}

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${(r.stderr || r.stdout).trim()}`);
}

function isMounted(mnt: string): boolean {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === mnt);
}

function umount(mnt: string, fuse: boolean): void {
  if (!isMounted(mnt)) return;
  const r = fuse ? spawnSync('fusermount3', ['-u', mnt]) : spawnSync('umount', [mnt]);
  if (r.status !== 0 && isMounted(mnt)) spawnSync('umount', ['-l', mnt]);
}

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '/usr/bin:/bin').split(':').some((d) => {
    try {
      fs.accessSync(path.join(d, cmd), fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

const overlayOpts = (l: Layers): string => `lowerdir=${l.lower.join(':')},upperdir=${l.upper},workdir=${l.work}`;
const allDrivers: Driver[] = [
  {
    name: 'overlay',
    mount(l) {
      run('mount', ['-t', 'overlay', 'overlay', '-o', overlayOpts(l), l.mnt]);
      return () => umount(l.mnt, false);
    },
  },
  {
    name: 'stratafs',
    mount(l) {
      const m = strataMount(['mount', '--lower', l.lower.join(':'), '--upper', l.upper, '--work', l.work], l.mnt);
      return () => m.unmount();
    },
  },
  {
    name: 'fuse-overlayfs',
    skip: onPath('fuse-overlayfs') ? undefined : 'fuse-overlayfs is not installed',
    mount(l) {
      run('fuse-overlayfs', ['-o', overlayOpts(l), l.mnt]);
      return () => umount(l.mnt, true);
    },
  },
];
const wantedDrivers = values.drivers.split(',').filter(Boolean);
for (const d of wantedDrivers) if (!allDrivers.some((x) => x.name === d)) throw new Error(`unknown driver ${d} (known: ${allDrivers.map((x) => x.name).join(', ')})`);
const drivers = allDrivers.filter((d) => wantedDrivers.includes(d.name));

// ---- workloads -----------------------------------------------------------------------

interface Ctx {
  root: string;
  upper: string;
  img: SyntheticImage;
}
interface Outcome {
  seconds: number;
  latencies?: number[];
}
interface Workload {
  id: string;
  title: string;
  /** Runs on a fresh mount; returns the timed part's seconds and checks its result. */
  run(c: Ctx): Outcome | number;
}

function expectInUpper(c: Ctx, rels: string[], check: (st: fs.Stats, rel: string) => string | undefined): void {
  for (const rel of rels) {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(path.join(c.upper, rel));
    } catch {
      throw new Error(`${rel}: not in the upper dir`);
    }
    const why = check(st, rel);
    if (why) throw new Error(`${rel} in the upper dir: ${why}`);
  }
}

const allWorkloads: Workload[] = [
  {
    id: 'cold-walk',
    title: 'cold walk, lstat of every entry (caches dropped)',
    run: (c) => (dropCaches(), walkTree(c.root, c.img.merged.size)),
  },
  {
    id: 'warm-walk',
    title: 'warm walk (second walk on the mount)',
    run: (c) => (walkTree(c.root, c.img.merged.size), walkTree(c.root, c.img.merged.size)),
  },
  {
    id: 'read-small',
    title: 'read all small files (caches dropped)',
    run: (c) => (dropCaches(), readFiles(c.root, c.img.smallFiles)),
  },
  {
    id: 'read-big',
    title: 'sequential read of the big file, 1 MiB reads, page cache warm',
    run: (c) => (seqRead(path.join(c.root, c.img.bigFile)), seqRead(path.join(c.root, c.img.bigFile))),
  },
  {
    id: 'copy-up',
    title: `copy-up of ${N_COPY_UP.toLocaleString('en')} small files (append 1 byte)`,
    run(c) {
      const files = c.img.candidates.slice(0, N_COPY_UP);
      const r = appendByte(c.root, files);
      const sizes = new Map(files);
      expectInUpper(c, files.map(([p]) => p), (st, rel) => (st.isFile() && st.size === sizes.get(rel)! + 1 ? undefined : `size ${st.size}`));
      return r;
    },
  },
  {
    id: 'copy-up-big',
    title: 'copy-up of the big file (first 1-byte append)',
    run(c) {
      const r = appendByte(c.root, [[c.img.bigFile, c.img.bigBytes]]);
      expectInUpper(c, [c.img.bigFile], (st) => (st.size === c.img.bigBytes + 1 ? undefined : `size ${st.size}`));
      return r.seconds;
    },
  },
  {
    id: 'chmod',
    title: `chmod of ${N_CHMOD.toLocaleString('en')} lower files (metadata copy-up)`,
    run(c) {
      const files = c.img.candidates.slice(0, N_CHMOD).map(([p]) => p);
      const t = chmodFiles(c.root, files, 0o600);
      expectInUpper(c, files, (st) => ((st.mode & 0o7777) === 0o600 ? undefined : `mode ${(st.mode & 0o7777).toString(8)}`));
      return t;
    },
  },
  {
    id: 'create',
    title: `create ${N_CREATE.toLocaleString('en')} empty files`,
    run(c) {
      const t = createFiles(path.join(c.root, 'created'), N_CREATE);
      // Only createFiles' names: fuse-overlayfs also puts its opaque markers in a new dir.
      const inUpper = fs.readdirSync(path.join(c.upper, 'created')).filter((n) => n.startsWith('new-')).length;
      if (inUpper !== N_CREATE) throw new Error(`${inUpper} of the created files in the upper dir, expected ${N_CREATE}`);
      return t;
    },
  },
  {
    id: 'rm-rf',
    title: 'rm -rf of a 3,000-entry lower tree',
    run: (c) => removeTree(path.join(c.root, c.img.rmTree)),
  },
  {
    id: 'rename',
    title: `rename ${N_RENAME.toLocaleString('en')} lower files`,
    run: (c) => renameFiles(c.root, c.img.candidates.slice(0, N_RENAME), '.renamed'),
  },
];
const wantedWorkloads = values.workloads?.split(',').filter(Boolean) ?? allWorkloads.map((w) => w.id);
for (const w of wantedWorkloads) if (!allWorkloads.some((x) => x.id === w)) throw new Error(`unknown workload ${w} (known: ${allWorkloads.map((x) => x.id).join(', ')})`);
const workloads = allWorkloads.filter((w) => wantedWorkloads.includes(w.id));

// ---- the run -------------------------------------------------------------------------

type Cell = { sample: Sample; latencies?: number[] } | { fail: string } | { skip: string };
const results: Record<string, Record<string, Cell>> = {};
for (const d of drivers) results[d.name] = {};

const scratch = ramExt4(2 * bigMiB + 1536);
const base = path.join(scratch.dir, 'union-bench');
let img: SyntheticImage | undefined;
try {
  progress(`making the synthetic image (3 layers, big file ${bigMiB} MiB) under ${base}`);
  const tMake = seconds(() => {
    img = makeSyntheticImage(path.join(base, 'image'), { bigBytes: bigMiB * 1024 * 1024 });
  });
  progress(`  ${img!.merged.size} merged entries, ${img!.smallFiles.length} small files (${(img!.smallBytes / 2 ** 20).toFixed(1)} MiB) in ${tMake.toFixed(1)} s`);
  for (const d of drivers) {
    if (d.skip) for (const w of workloads) results[d.name]![w.id] = { skip: d.skip };
  }
  const live = drivers.filter((d) => !d.skip);
  for (const w of workloads) {
    const runs = new Map<string, { times: number[]; latencies: number[] }>(live.map((d) => [d.name, { times: [], latencies: [] }]));
    const failed = new Map<string, string>();
    // Drivers take turns within each repetition, so drift in the machine hits all of them.
    for (let i = 0; i < repeat; i++) {
      for (const d of live) {
        if (failed.has(d.name)) continue;
        const dir = fs.mkdtempSync(path.join(base, `${d.name}-`));
        const l: Layers = { lower: img!.layers, upper: path.join(dir, 'upper'), work: path.join(dir, 'work'), mnt: path.join(dir, 'mnt') };
        for (const p of [l.upper, l.work, l.mnt]) fs.mkdirSync(p);
        try {
          // Pending writeback from the previous run must not slow this one.
          syncAll();
          let unmount: (() => void) | undefined;
          try {
            unmount = d.mount(l);
            const o = w.run({ root: l.mnt, upper: l.upper, img: img! });
            const r = runs.get(d.name)!;
            r.times.push(typeof o === 'number' ? o : o.seconds);
            if (typeof o !== 'number' && o.latencies && w.id === 'copy-up') r.latencies.push(...o.latencies);
          } finally {
            unmount?.();
            if (!unmount) umount(l.mnt, d.name !== 'overlay');
          }
        } catch (e) {
          const msg = (e as Error).message.split('\n')[0]!.slice(0, 160);
          failed.set(d.name, msg);
          progress(`${d.name.padEnd(15)} ${w.id.padEnd(12)} FAIL: ${msg}`);
        } finally {
          if (isMounted(l.mnt)) throw new Error(`${l.mnt} is still mounted after its run`);
          fs.rmSync(dir, { recursive: true, force: true });
        }
      }
    }
    for (const d of live) {
      const f = failed.get(d.name);
      const r = runs.get(d.name)!;
      if (f) {
        results[d.name]![w.id] = { fail: f };
        continue;
      }
      results[d.name]![w.id] = { sample: sample(r.times), ...(r.latencies.length ? { latencies: r.latencies } : {}) };
      progress(`${d.name.padEnd(15)} ${w.id.padEnd(12)} median ${(median(r.times) * 1000).toFixed(1)} ms`);
    }
  }
} finally {
  for (const d of drivers) {
    for (const e of fs.existsSync(base) ? fs.readdirSync(base) : []) {
      if (e.startsWith(`${d.name}-`)) umount(path.join(base, e, 'mnt'), d.name !== 'overlay');
    }
  }
  scratch.remove();
}
const leftover = fs.readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => l.includes('union-bench') || l.includes('strata-scratch-'));
if (leftover.length) progress(`WARNING: mounts left behind:\n${leftover.join('\n')}`);

// ---- report --------------------------------------------------------------------------

const pct = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};
const us = (s: number): string => `${(s * 1e6).toFixed(0)} µs`;
const refName = 'overlay';
function cell(d: string, w: string): string {
  const c = results[d]![w]!;
  if ('skip' in c) return `skipped: ${c.skip}`;
  if ('fail' in c) return `FAIL: ${c.fail.replace(/\|/g, '\\|')}`;
  const ref = results[refName]?.[w];
  const ratio = ref && 'sample' in ref ? ` (${(ref.sample.median / c.sample.median).toFixed(2)}x)` : '';
  const lat = c.latencies ? `; per file p50 ${us(pct(c.latencies, 0.5))}, p99 ${us(pct(c.latencies, 0.99))}` : '';
  return `${(c.sample.median * 1000).toFixed(1)} ms${ratio}${lat}`;
}

/** time(other) / time(stratafs) per workload where both ran. */
function compare(other: string): { ahead: string[]; behind: string[] } {
  const ahead: string[] = [];
  const behind: string[] = [];
  for (const w of workloads) {
    const a = results.stratafs?.[w.id];
    const b = results[other]?.[w.id];
    if (!a || !b || !('sample' in a) || !('sample' in b)) continue;
    const r = b.sample.median / a.sample.median;
    (r >= 1 ? ahead : behind).push(`${w.id} ${r.toFixed(2)}x`);
  }
  return { ahead, behind };
}

const names: Record<string, string> = { overlay: 'overlayfs (kernel)', stratafs: 'stratafs (passthrough on)', 'fuse-overlayfs': 'fuse-overlayfs' };
const summary: string[] = [];
if (results.stratafs) {
  for (const other of ['overlay', 'fuse-overlayfs']) {
    if (!results[other]) continue;
    const sk = drivers.find((d) => d.name === other)?.skip;
    if (sk) {
      summary.push(`vs ${names[other]}: skipped (${sk})`);
      continue;
    }
    const { ahead, behind } = compare(other);
    summary.push(`vs ${names[other]}: ahead on ${ahead.join(', ') || 'nothing'}, behind on ${behind.join(', ') || 'nothing'}`);
  }
}
const lines = [
  `Union mount benchmark: synthetic 3-layer image (${img?.merged.size ?? '?'} entries, ${img?.smallFiles.length ?? '?'} small files, big file ${bigMiB} MiB), median of ${repeat}, fresh upper/work and mount per run; ${os.cpus().length} cores, Linux ${os.release()}; disk: ext4 on a RAM-backed loop device`,
  '',
  `| workload | ${drivers.map((d) => names[d.name]).join(' | ')} |`,
  `|---|${drivers.map(() => '---:').join('|')}|`,
  ...workloads.map((w) => `| ${w.title} | ${drivers.map((d) => cell(d.name, w.id)).join(' | ')} |`),
  '',
  'Cells: median time, and in brackets speed relative to overlayfs (overlayfs time / driver time; 1.00 = as fast as overlayfs).',
  ...(summary.length ? ['', `Summary (other driver's time / stratafs's time; > 1 = stratafs faster): stratafs ${summary.join('; ')}`] : []),
];
process.stdout.write(`${lines.join('\n')}\n`);
if (values.json) {
  const out: Record<string, Record<string, unknown>> = {};
  for (const [d, ws] of Object.entries(results)) {
    out[d] = {};
    for (const [w, c] of Object.entries(ws)) {
      out[d]![w] = 'sample' in c ? { ...c.sample, ...(c.latencies ? { p50: pct(c.latencies, 0.5), p99: pct(c.latencies, 0.99) } : {}) } : c;
    }
  }
  fs.writeFileSync(values.json, JSON.stringify({ bigMiB, repeat, entries: img?.merged.size, smallFiles: img?.smallFiles.length, smallBytes: img?.smallBytes, results: out }, null, 2));
}
if (leftover.length) process.exitCode = 1;
