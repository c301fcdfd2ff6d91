// Benchmark of the FUSE layer itself: the loopback mount with passthrough on and off
// against the same directory on the disk, in one run. Prints a table of ratios to the
// disk (1.0 = as fast as the disk) and writes JSON when asked.
//
//   node dist/bench/fuse-layer.js [--dir DIR] [--files N] [--mib N] [--creates N] [--repeat N] [--json FILE]
//
// By default the "disk" is an ext4 filesystem on a RAM-backed loop device: on a VM the
// host throttles the block device after a few GiB of writes, and the figures would then
// measure the throttle. --dir DIR benchmarks a directory on a real disk instead.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { createFiles, makeFileTree, seqRead, seqWrite, statAll } from './file-workloads.js';
import { ramExt4, type ScratchFs } from './scratch-fs.js';
import { dropCaches, sample, syncAll, type Sample } from './measure.js';
import { strataMount } from './mounts.js';

const { values } = parseArgs({
  options: {
    dir: { type: 'string' },
    files: { type: 'string', default: '10000' },
    mib: { type: 'string', default: '512' },
    creates: { type: 'string', default: '5000' },
    repeat: { type: 'string', default: '3' },
    json: { type: 'string' },
  },
});
const nFiles = Number(values.files);
const bytes = Number(values.mib) * 1024 * 1024;
const nCreates = Number(values.creates);
const repeat = Number(values.repeat);

const scratch: ScratchFs | undefined = values.dir ? undefined : ramExt4(Math.max(2048, 4 * Number(values.mib) + 1024));
const base = fs.mkdtempSync(path.join(values.dir ?? scratch!.dir, 'strata-bench-fuse-'));
const src = path.join(base, 'src');
fs.mkdirSync(src);
const progress = (s: string): void => void process.stderr.write(`${s}\n`);

interface Driver {
  name: string;
  /** Directory where the workloads run, and how to undo it. */
  setup(): { root: string; teardown(): void };
}

// The daemon is the only writer below a loopback mount here, so long kernel cache timeouts
// are correct; the union mount uses the same for its immutable lower layers.
const timeouts = ['--entry-timeout', '3600', '--attr-timeout', '3600'];
const drivers: Driver[] = [
  { name: 'ext4 (direct)', setup: () => ({ root: src, teardown: () => {} }) },
  ...[true, false].map((pt) => ({
    name: `stratafs loopback, passthrough ${pt ? 'on' : 'off'}`,
    setup: () => {
      const m = strataMount(['loopback', ...timeouts, ...(pt ? [] : ['--no-passthrough']), src], path.join(base, `mnt-${pt ? 'pt' : 'nopt'}`));
      return { root: m.mnt, teardown: () => m.unmount() };
    },
  })),
];

progress(`preparing ${nFiles} files and a ${values.mib} MiB file under ${src}`);
const paths = makeFileTree(src, nFiles);
seqWrite(path.join(src, 'big'), bytes);

type Results = Record<string, Record<string, Sample>>;
const results: Results = {};
const workloads: Array<[string, (root: string, run: number) => number]> = [
  ['cold stat', (root) => (dropCaches(), statAll(root, paths))],
  ['warm stat', (root) => statAll(root, paths)],
  ['sequential read (page cache warm)', (root) => (seqRead(path.join(root, 'big')), seqRead(path.join(root, 'big')))],
  ['sequential write', (root, run) => seqWrite(path.join(root, `written-${run}`), bytes)],
  ['create files', (root, run) => createFiles(path.join(root, `creates-${run}`), nCreates)],
];

try {
  for (const d of drivers) {
    results[d.name] = {};
    for (const [w, run] of workloads) {
      const runs: number[] = [];
      for (let i = 0; i < repeat; i++) {
        // Pending writeback from the previous run must not slow this one.
        syncAll();
        const env = d.setup();
        try {
          if (w === 'warm stat') statAll(env.root, paths); // load the caches first
          runs.push(run(env.root, i));
        } finally {
          env.teardown();
        }
        for (const f of fs.readdirSync(src)) if (f.startsWith('written-') || f.startsWith('creates-')) fs.rmSync(path.join(src, f), { recursive: true });
      }
      results[d.name]![w] = sample(runs);
      progress(`${d.name.padEnd(36)} ${w.padEnd(36)} median ${(sample(runs).median * 1000).toFixed(1)} ms`);
    }
  }
} finally {
  fs.rmSync(base, { recursive: true, force: true });
  scratch?.remove();
}

const ref = results[drivers[0]!.name]!;
const lines = [
  `FUSE layer benchmark: ${nFiles} files, ${values.mib} MiB, ${nCreates} creates, median of ${repeat}; ${os.cpus().length} cores, Linux ${os.release()}; disk: ${values.dir ? values.dir : 'ext4 on a RAM-backed loop device'}`,
  '',
  `| workload | ${drivers.map((d) => d.name).join(' | ')} |`,
  `|---|${drivers.map(() => '---:').join('|')}|`,
  ...workloads.map(([w]) => {
    const cells = drivers.map((d) => {
      const s = results[d.name]![w]!;
      const ratio = ref[w]!.median / s.median;
      return `${(s.median * 1000).toFixed(1)} ms (${ratio.toFixed(2)}x)`;
    });
    return `| ${w} | ${cells.join(' | ')} |`;
  }),
  '',
  'Cells: median time, and in brackets speed relative to the disk (ext4 time / driver time; 1.00 = as fast as ext4).',
];
process.stdout.write(`${lines.join('\n')}\n`);
if (values.json) fs.writeFileSync(values.json, JSON.stringify({ files: nFiles, mib: Number(values.mib), creates: nCreates, repeat, results }, null, 2));
