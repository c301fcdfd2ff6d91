// strata bench: copy-up and union benchmarks of stratafs against the kernel's overlayfs,
// fuse-overlayfs and the plain disk (src/bench/). This file only parses options, finds a
// store image's layers, and writes the outputs; the report goes to stdout, progress to stderr.

import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { renderChart } from '../bench/chart.js';
import { defaultCacheDir } from '../bench/image-cache.js';
import { formatReport } from '../bench/report.js';
import { failures } from '../bench/results.js';
import { runBench } from '../bench/runner.js';
import type { SizeName } from '../bench/sizes.js';
import { ImageStore } from '../store/images.js';

export const usage = `strata bench [--drivers stratafs,stratafs-nopt,stratafs-volatile,overlay,fuse-overlayfs,native] [--workloads ID,...]
               [--repeat N] [--size small|full] [--image NAME [--root DIR]] [--json FILE] [--chart FILE.svg]
               [--cache DIR] [--dir DIR] [--requests] [--idle-memory]`;

const list = (s: string | undefined): string[] | undefined => s?.split(',').map((x) => x.trim()).filter(Boolean);

/** Layer dirs of a store image, top first (the order of overlayfs's lowerdir). */
function imageLayers(name: string, root: string | undefined): string[] {
  const store = ImageStore.open(root);
  try {
    const image = store.resolveImage(name);
    return store.lowerDirs(image);
  } finally {
    store.close();
  }
}

export async function benchCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      drivers: { type: 'string' },
      workloads: { type: 'string' },
      repeat: { type: 'string', default: '3' },
      size: { type: 'string', default: 'full' },
      image: { type: 'string' },
      root: { type: 'string' },
      json: { type: 'string' },
      chart: { type: 'string' },
      cache: { type: 'string' },
      dir: { type: 'string' },
      requests: { type: 'boolean', default: false },
      'idle-memory': { type: 'boolean' },
    },
    allowPositionals: true,
  });
  if (positionals.length) throw new Error(`unexpected argument '${positionals[0]}'\nusage: ${usage}`);
  const repeat = Number(values.repeat);
  if (!Number.isInteger(repeat) || repeat < 1) throw new Error(`--repeat: expected a positive integer, got '${values.repeat}'`);
  if (process.getuid?.() !== 0) throw new Error('strata bench needs root: it mounts, drops the page cache and makes whiteouts');
  const results = await runBench({
    size: values.size as SizeName,
    drivers: list(values.drivers),
    workloads: list(values.workloads),
    repeat,
    cacheDir: values.cache ?? defaultCacheDir(),
    image: values.image ? { name: values.image, layers: imageLayers(values.image, values.root) } : undefined,
    dir: values.dir,
    requests: values.requests,
    // A full run also measures the daemons once idle (~11 s); a run of chosen workloads on request.
    idleMemory: values['idle-memory'] ?? values.workloads === undefined,
  });
  process.stdout.write(formatReport(results));
  if (values.json) fs.writeFileSync(values.json, `${JSON.stringify(results, null, 2)}\n`);
  if (values.chart) fs.writeFileSync(values.chart, await renderChart(results));
  return failures(results).length || results.leftoverMounts.length ? 1 : 0;
}
