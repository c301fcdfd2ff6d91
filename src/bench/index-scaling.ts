// Benchmark of the path index (issue 4): cold lookups of 10,000 paths through stacks of
// 1, 16, 64 and 128 layers on stratafs (index on, and off for contrast), the kernel's
// overlayfs and fuse-overlayfs, in one run; then index build time and size, and the
// daemon's memory, for an image of 100,000 files. Layers live on a RAM-backed ext4.
//
//   node dist/bench/index-scaling.js [--layers 1,16,64,128] [--files 100000] [--repeat 3] [--json FILE]
//
// Every upper layer carries all of the base layer's directories (as real images re-state
// /usr, /etc, ...), so a union that probes layer by layer pays for each layer on every
// cold lookup, while the index reads only the rows of the one path.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { PathIndex } from '../index/path-index.js';
import { dropCaches, median } from './measure.js';
import { daemonMemory, fuseOverlayfsMount, kernelOverlayMount, onPath, strataMount, type BenchMount } from './mounts.js';
import { ramExt4 } from './scratch-fs.js';

const { values } = parseArgs({
  options: {
    layers: { type: 'string', default: '1,16,64,128' },
    files: { type: 'string', default: '100000' },
    repeat: { type: 'string', default: '3' },
    json: { type: 'string' },
  },
});
const LAYER_COUNTS = values.layers.split(',').map(Number);
const BIG_FILES = Number(values.files);
const REPEAT = Number(values.repeat);
const DIRS = 100;
const PER_DIR = 100;
const progress = (s: string): void => void process.stderr.write(`${s}\n`);

const dirName = (d: number): string => `d${String(d).padStart(3, '0')}`;

/**
 * Base layer: DIRS x PER_DIR files; layer k > 0: every dir again, with one file of its own.
 * The layers are named through a short symlink: overlayfs takes its options in one page,
 * and 128 long lowerdir paths do not fit.
 */
function makeLayers(root: string, count: number): string[] {
  const short = `/tmp/sx${process.pid}`;
  fs.rmSync(short, { force: true });
  fs.mkdirSync(root, { recursive: true });
  fs.symlinkSync(root, short);
  const layers: string[] = [];
  for (let k = 0; k < count; k++) {
    const l = path.join(short, String(k));
    for (let d = 0; d < DIRS; d++) {
      fs.mkdirSync(path.join(l, dirName(d)), { recursive: true });
      if (k === 0) for (let f = 0; f < PER_DIR; f++) fs.writeFileSync(path.join(l, dirName(d), `f${f}`), 'x');
      else fs.writeFileSync(path.join(l, dirName(d), `l${k}`), 'y');
    }
    layers.push(l);
  }
  return layers.reverse();
}

/** The base layer's paths in a fixed shuffled order (the same for every driver). */
function lookupPaths(): string[] {
  const out: string[] = [];
  for (let d = 0; d < DIRS; d++) for (let f = 0; f < PER_DIR; f++) out.push(`${dirName(d)}/f${f}`);
  let s = 12345;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

interface Driver {
  name: string;
  skip?: string;
  mount(lowers: string[], upper: string, work: string, mnt: string): BenchMount;
}

const DRIVERS: Driver[] = [
  { name: 'stratafs', mount: (l, u, w, m) => strataMount(['mount', '-o', `lowerdir=${l.join(':')},upperdir=${u},workdir=${w}`], m) },
  { name: 'stratafs index=off', mount: (l, u, w, m) => strataMount(['mount', '-o', `lowerdir=${l.join(':')},upperdir=${u},workdir=${w},index=off`], m) },
  { name: 'overlay', mount: (l, u, w, m) => kernelOverlayMount(l, m, u, w) },
  { name: 'fuse-overlayfs', skip: onPath('fuse-overlayfs') ? undefined : 'fuse-overlayfs is not installed', mount: (l, u, w, m) => fuseOverlayfsMount(l, u, w, m) },
];

function coldLookups(d: Driver, lowers: string[], base: string, paths: string[]): number {
  const runs: number[] = [];
  for (let r = 0; r < REPEAT; r++) {
    const dir = path.join(base, `${d.name.replace(/\W/g, '_')}-${r}`);
    const upper = path.join(dir, 'u');
    const work = path.join(dir, 'w');
    fs.mkdirSync(upper, { recursive: true });
    fs.mkdirSync(work);
    fs.mkdirSync(path.join(dir, 'm'));
    // The index is built by the first mount; copy it in so every run measures lookups only.
    const warmIndex = path.join(base, 'index.db');
    if (d.name === 'stratafs' && fs.existsSync(warmIndex)) fs.copyFileSync(warmIndex, path.join(work, 'stratafs-index.db'));
    const m = d.mount(lowers, upper, work, path.join(dir, 'm'));
    try {
      dropCaches();
      const t = process.hrtime.bigint();
      for (const p of paths) fs.lstatSync(`${m.mnt}/${p}`);
      runs.push(Number(process.hrtime.bigint() - t) / 1e9);
    } finally {
      m.unmount();
    }
    if (d.name === 'stratafs' && !fs.existsSync(warmIndex)) fs.copyFileSync(path.join(work, 'stratafs-index.db'), warmIndex);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return median(runs);
}

function buildBigImage(root: string, files: number): { dir: string; entries: number } {
  const dir = path.join(root, 'big');
  const perDir = 100;
  let made = 0;
  for (let d = 0; made < files; d++) {
    const sub = path.join(dir, `a${d % 50}`, `b${d}`);
    fs.mkdirSync(sub, { recursive: true });
    for (let f = 0; f < perDir && made < files; f++, made++) fs.writeFileSync(path.join(sub, `file-${f}.txt`), 'content');
  }
  return { dir, entries: made };
}

async function main(): Promise<void> {
  const scratch = ramExt4(4096);
  const results: Record<string, unknown> = {};
  try {
    const paths = lookupPaths();
    const table: Array<Record<string, number | string>> = [];
    for (const n of LAYER_COUNTS) {
      progress(`building ${n} layer${n === 1 ? '' : 's'}`);
      const base = path.join(scratch.dir, `stack-${n}`);
      const lowers = makeLayers(path.join(base, 'layers'), n);
      const row: Record<string, number | string> = { layers: n };
      for (const d of DRIVERS) {
        if (d.skip) {
          row[d.name] = `skipped: ${d.skip}`;
          continue;
        }
        progress(`  ${d.name}: cold lookups of ${paths.length} paths`);
        row[d.name] = coldLookups(d, lowers, base, paths);
      }
      table.push(row);
      fs.rmSync(base, { recursive: true, force: true });
      fs.rmSync(`/tmp/sx${process.pid}`, { force: true });
    }
    results.lookups = table;
    const first = table[0]!;
    process.stdout.write(`\nCold lookup of ${paths.length} paths (median of ${REPEAT}, seconds; growth = time / time at ${first.layers} layer${first.layers === 1 ? '' : 's'})\n`);
    const names = DRIVERS.map((d) => d.name);
    process.stdout.write(`${['layers', ...names.flatMap((n) => [n, 'growth'])].join('\t')}\n`);
    for (const row of table) {
      const cells = names.flatMap((n) => (typeof row[n] === 'number' ? [(row[n] as number).toFixed(3), `${((row[n] as number) / (first[n] as number)).toFixed(2)}x`] : [String(row[n]), '-']));
      process.stdout.write(`${[row.layers, ...cells].join('\t')}\n`);
    }

    progress(`building a ${BIG_FILES}-file image`);
    const big = buildBigImage(scratch.dir, BIG_FILES);
    const indexFile = path.join(scratch.dir, 'big-index.db');
    const index = PathIndex.open(indexFile);
    const t0 = performance.now();
    index.addLayer(big.dir);
    const buildMs = performance.now() - t0;
    const st = index.stats();
    index.close();
    const bytes = fs.statSync(indexFile).size + (fs.statSync(`${indexFile}-wal`, { throwIfNoEntry: false })?.size ?? 0);
    const build = { entries: st.entries, ms: Math.round(buildMs), entriesPerSecond: Math.round(st.entries / (buildMs / 1000)), bytes, bytesPerEntry: Math.round(bytes / st.entries) };
    results.build = build;
    process.stdout.write(`\nIndex build, ${st.entries} entries: ${build.ms} ms (${build.entriesPerSecond} entries/s), ${bytes} bytes on disk (${build.bytesPerEntry} bytes/entry)\n`);

    const mdir = path.join(scratch.dir, 'bigmount');
    for (const d of ['u', 'w', 'm']) fs.mkdirSync(path.join(mdir, d), { recursive: true });
    fs.copyFileSync(indexFile, path.join(mdir, 'w', 'stratafs-index.db'));
    const m = strataMount(['mount', '-o', `lowerdir=${big.dir},upperdir=${mdir}/u,workdir=${mdir}/w`], path.join(mdir, 'm'));
    try {
      let seen = 0;
      const walk = (p: string): void => {
        for (const e of fs.readdirSync(p, { withFileTypes: true })) {
          seen++;
          fs.lstatSync(`${p}/${e.name}`);
          if (e.isDirectory()) walk(`${p}/${e.name}`);
        }
      };
      walk(m.mnt);
      const mem = daemonMemory(m.mnt);
      if (!mem) throw new Error(`no daemon found for ${m.mnt}`);
      results.memory = { entriesWalked: seen, ...mem };
      process.stdout.write(`Daemon memory after stat of all ${seen} entries: RSS ${(mem.rss / 2 ** 20).toFixed(0)} MiB, peak ${(mem.hwm / 2 ** 20).toFixed(0)} MiB\n`);
    } finally {
      m.unmount();
    }
    if (values.json) fs.writeFileSync(values.json, `${JSON.stringify(results, null, 2)}\n`);
  } finally {
    scratch.remove();
  }
}

await main();
