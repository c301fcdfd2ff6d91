// Benchmark of container diff and commit: a container with CHANGES changes over a FILES-file
// image. `strata diff` (the path index's journal) against a naive walk-and-compare of the
// image's tree and the container's mounted tree, in one run, with both results checked
// against each other; then `strata commit` of the same container.
//
//   node dist/bench/containers.js [--files 15000] [--changes 10000] [--repeat 5] [--json FILE] [--dir DIR]
//
// diff and commit are timed in this process through src/containers' own functions (what
// the commands run, without Node's start-up), and diff also end to end as a command. The
// store lives on an ext4 on a RAM-backed loop device unless --dir (docs/benchmarks.md).

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { commitContainer } from '../containers/commit.js';
import { containerChanges } from '../containers/diff.js';
import { ImageStore } from '../store/images.js';
import { osPath } from '../util/os-path.js';
import { prng } from '../util/prng.js';
import { fmtTime, median } from './measure.js';
import { run, STRATA_CLI, unmount } from './mounts.js';
import { ramExt4, type ScratchFs } from './scratch-fs.js';

const { values } = parseArgs({
  options: {
    files: { type: 'string', default: '15000' },
    changes: { type: 'string', default: '10000' },
    repeat: { type: 'string', default: '5' },
    json: { type: 'string' },
    dir: { type: 'string' },
  },
});
const FILES = Number(values.files);
const CHANGES = Number(values.changes);
const REPEAT = Number(values.repeat);
if (!(FILES >= 100) || !(CHANGES >= 10) || CHANGES > FILES || !(REPEAT >= 1)) throw new Error('--files >= 100, 10 <= --changes <= --files, --repeat >= 1');
const say = (s: string): void => void process.stderr.write(`${s}\n`);
const PER_DIR = 100;

function ms(f: () => unknown): number {
  const t = process.hrtime.bigint();
  f();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

async function msAsync(f: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await f();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

/** FILES files of 0.5-4 KiB, PER_DIR per directory, fixed-seed content. */
function makeRootfs(dir: string): string[] {
  const rnd = prng(0xc0ffee);
  const pool = Buffer.alloc(1 << 16);
  for (let i = 0; i < pool.length; i += 4) pool.writeUInt32LE((rnd() * 4294967296) >>> 0, i);
  const files: string[] = [];
  for (let i = 0; i < FILES; i++) {
    const d = `d${String(Math.floor(i / PER_DIR)).padStart(3, '0')}`;
    if (i % PER_DIR === 0) fs.mkdirSync(path.join(dir, d), { recursive: true });
    const rel = `${d}/f${String(i % PER_DIR).padStart(3, '0')}`;
    const n = 512 + Math.floor(rnd() * 3584);
    const off = Math.floor(rnd() * (pool.length - n));
    fs.writeFileSync(path.join(dir, rel), pool.subarray(off, off + n));
    files.push(rel);
  }
  return files;
}

interface Plan {
  modify: string[];
  chmod: string[];
  remove: string[];
  /** New files, in new directories. */
  add: string[];
}

/** CHANGES changes: 40% modified, 20% chmod only, 20% deleted, 20% added. */
function planChanges(files: string[]): Plan {
  const rnd = prng(0xd1ff);
  const order = [...files];
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const nMod = Math.round(CHANGES * 0.4);
  const nChmod = Math.round(CHANGES * 0.2);
  const nRm = Math.round(CHANGES * 0.2);
  const nAdd = CHANGES - nMod - nChmod - nRm;
  const add = Array.from({ length: nAdd }, (_, i) => `new${String(Math.floor(i / PER_DIR)).padStart(3, '0')}/n${String(i % PER_DIR).padStart(3, '0')}`);
  return { modify: order.slice(0, nMod), chmod: order.slice(nMod, nMod + nChmod), remove: order.slice(nMod + nChmod, nMod + nChmod + nRm), add };
}

function applyChanges(mnt: string, p: Plan): void {
  const at = (rel: string): string => path.join(mnt, rel);
  for (const f of p.modify) fs.appendFileSync(at(f), 'changed\n');
  for (const f of p.chmod) fs.chmodSync(at(f), 0o600);
  for (const f of p.remove) fs.unlinkSync(at(f));
  for (const f of p.add) {
    if (f.endsWith('/n000')) fs.mkdirSync(path.dirname(at(f)));
    fs.writeFileSync(at(f), `added ${f}\n`);
  }
}

interface Meta {
  mode: bigint;
  uid: bigint;
  gid: bigint;
  size: bigint;
  mtimeNs: bigint;
  target?: string;
}

/** Every entry below root: readdir + lstat (+ readlink), as a naive differ must. */
function walk(root: string): Map<string, Meta> {
  const out = new Map<string, Meta>();
  const visit = (rel: string): void => {
    for (const name of fs.readdirSync(osPath(rel ? `${root}/${rel}` : root), { encoding: 'latin1' })) {
      const child = rel ? `${rel}/${name}` : name;
      const p = osPath(`${root}/${child}`);
      const st = fs.lstatSync(p, { bigint: true });
      const m: Meta = { mode: st.mode, uid: st.uid, gid: st.gid, size: st.size, mtimeNs: st.mtimeNs };
      if (st.isSymbolicLink()) m.target = fs.readlinkSync(p, { encoding: 'latin1' });
      out.set(`/${child}`, m);
      if (st.isDirectory()) visit(child);
    }
  };
  visit('');
  return out;
}

const same = (a: Meta, b: Meta): boolean => a.mode === b.mode && a.uid === b.uid && a.gid === b.gid && a.size === b.size && a.mtimeNs === b.mtimeNs && a.target === b.target;

/** The naive differ (what docker does without a change journal): walk both trees, compare metadata. */
function naiveDiff(image: string, container: string): Array<{ path: string; kind: 'A' | 'C' | 'D' }> {
  const a = walk(image);
  const b = walk(container);
  const out: Array<{ path: string; kind: 'A' | 'C' | 'D' }> = [];
  for (const [p, m] of b) {
    const old = a.get(p);
    if (!old) out.push({ path: p, kind: 'A' });
    else if (!same(old, m)) out.push({ path: p, kind: 'C' });
  }
  for (const p of a.keys()) if (!b.has(p)) out.push({ path: p, kind: 'D' });
  return out.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
}

/** The change lines of regular files: directories differ by design (docker marks copied-up parents C, a stat compare does not). */
function fileLines(changes: Array<{ path: string; kind: string }>, files: Set<string>): string[] {
  return changes.filter((c) => files.has(c.path)).map((c) => `${c.kind} ${c.path}`);
}

async function main(): Promise<void> {
  let scratch: ScratchFs | undefined;
  let mounted: string | undefined;
  const base = values.dir ? fs.mkdtempSync(path.join(values.dir, 'strata-bench-containers-')) : (scratch = ramExt4(2048)).dir;
  const root = path.join(base, 'store');
  const env = { ...process.env, STRATAFS_ROOT: root };
  const strata = (...args: string[]): string => {
    const r = spawnSync(STRATA_CLI[0]!, [...STRATA_CLI.slice(1), ...args], { encoding: 'utf8', env, maxBuffer: 1 << 28 });
    if (r.status !== 0) throw new Error(`strata ${args.join(' ')}: ${r.stderr.trim()}`);
    return r.stdout;
  };
  try {
    say(`bench-containers: a ${FILES}-file image, ${CHANGES} changes, in ${base}`);
    const rootfs = path.join(base, 'rootfs');
    const files = makeRootfs(rootfs);
    run('tar', ['-C', rootfs, '-cf', path.join(base, 'image.tar'), '.']);
    fs.rmSync(rootfs, { recursive: true });
    strata('import', path.join(base, 'image.tar'), 'bench:base');
    fs.rmSync(path.join(base, 'image.tar'));
    strata('create', '--name', 'bench', 'bench:base');
    const mnt = path.join(base, 'mnt');
    fs.mkdirSync(mnt);
    const tMount = ms(() => strata('mount', 'bench', mnt));
    mounted = mnt;
    const plan = planChanges(files);
    const tChanges = ms(() => applyChanges(mnt, plan));
    say(`  mounted in ${fmtTime(tMount / 1e3)} (the path index indexes the image once); ${CHANGES} changes made in ${fmtTime(tChanges / 1e3)}`);

    const store = ImageStore.open(root);
    let report: Record<string, unknown>;
    try {
      const layerDir = store.paths.layerDir(store.resolveImage('bench:base').layers[0]!);
      // Diff: index journal, in process and as a command; naive walk-and-compare. Each
      // measured REPEAT times after one warm-up, alternating.
      let journal = containerChanges(store, 'bench');
      let naive = naiveDiff(layerDir, mnt);
      const tDiff: number[] = [];
      const tNaive: number[] = [];
      const tCli: number[] = [];
      const tNode: number[] = [];
      for (let i = 0; i < REPEAT; i++) {
        tDiff.push(ms(() => (journal = containerChanges(store, 'bench'))));
        tNaive.push(ms(() => (naive = naiveDiff(layerDir, mnt))));
        tCli.push(ms(() => strata('diff', 'bench')));
        tNode.push(ms(() => strata('--version')));
      }
      const fileSet = new Set([...files, ...plan.add].map((f) => `/${f}`));
      const a = fileLines(journal, fileSet);
      const b = fileLines(naive, fileSet);
      if (a.length !== CHANGES || a.join('\n') !== b.join('\n')) throw new Error(`diff results disagree: journal ${a.length} file changes, naive ${b.length}, expected ${CHANGES}`);

      unmount(mnt);
      mounted = undefined;
      // Commit: the container layer written as a tar, hashed, extracted into the store.
      let phaseAt = 0;
      const t0 = process.hrtime.bigint();
      const c = await commitContainer(store, 'bench', {
        reference: 'bench:committed',
        onProgress: (p) => {
          if (p.phase === 'extracting' && !phaseAt) phaseAt = Number(process.hrtime.bigint() - t0) / 1e6;
        },
      });
      const tCommit = Number(process.hrtime.bigint() - t0) / 1e6;
      // Again: the same bytes, so the layer is already in the store (write and hash only).
      const tCommit2 = await msAsync(() => commitContainer(store, 'bench', { reference: 'bench:again' }));
      const again = store.resolveImage('bench:again').layers.at(-1);
      if (again !== c.diffId) throw new Error(`commit is not reproducible: ${c.diffId} then ${again}`);

      const dDiff = median(tDiff);
      const dNaive = median(tNaive);
      report = {
        files: FILES,
        changes: CHANGES,
        diffLines: journal.length,
        diffMs: tDiff,
        naiveMs: tNaive,
        diffCliMs: tCli,
        nodeStartMs: tNode,
        speedup: dNaive / dDiff,
        commitMs: tCommit,
        commitWriteMs: phaseAt,
        commitAgainMs: tCommit2,
        layerBytes: c.blobSize,
        layerEntries: c.entries,
      };
      const row = (k: string, v: string): string => `  ${k.padEnd(52)} ${v}`;
      say('');
      say(row(`diff, path index journal (${journal.length} lines)`, `${fmtTime(dDiff / 1e3)}  (median of ${REPEAT}; target < 100 ms: ${dDiff < 100 ? 'met' : 'missed'})`));
      say(row('naive walk-and-compare of image and container trees', `${fmtTime(dNaive / 1e3)}  (median of ${REPEAT})`));
      say(row('speed-up', `${(dNaive / dDiff).toFixed(1)}x  (target >= 10x: ${dNaive / dDiff >= 10 ? 'met' : 'missed'})`));
      say(row('`strata diff` as a command, end to end', `${fmtTime(median(tCli) / 1e3)}  (node start-up alone: ${fmtTime(median(tNode) / 1e3)})`));
      say(row(`commit (${c.entries} entries, ${(c.blobSize / 1e6).toFixed(1)} MB tar)`, `${fmtTime(tCommit / 1e3)}  (write + hash ${fmtTime(phaseAt / 1e3)}, extract ${fmtTime((tCommit - phaseAt) / 1e3)})`));
      say(row('commit again (same layer: write + hash only)', fmtTime(tCommit2 / 1e3)));
    } finally {
      store.close();
    }
    if (values.json) fs.writeFileSync(values.json, JSON.stringify(report, null, 2) + '\n');
  } finally {
    if (mounted) unmount(mounted);
    if (scratch) scratch.remove();
    else fs.rmSync(base, { recursive: true, force: true });
  }
}

main().catch((e: Error) => {
  say(`bench-containers: ${e.message}`);
  process.exitCode = 1;
});
