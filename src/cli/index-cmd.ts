// strata index stats|check|rebuild|prune: look at, repair and trim a path index. The index is the
// store's (ROOT/index.db) unless --index names another file (a plain mount keeps its own
// in WORK/stratafs-index.db).

import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { checkIndex } from '../index/check.js';
import { PathIndex } from '../index/path-index.js';
import { defaultStoreRoot, StorePaths } from '../store/paths.js';
import { humanSize, renderTable } from './format.js';

export const usage = 'strata index (stats [--json] | check | rebuild | prune) [--index FILE | --root DIR]';

function indexFile(values: { index?: string; root?: string }): string {
  const file = values.index ?? new StorePaths(values.root ?? defaultStoreRoot()).indexFile;
  if (!fs.existsSync(file)) throw new Error(`${file}: no path index here (ENOENT)`);
  return file;
}

/**
 * An upper dir's journal as a user needs to know it: who holds it, and whether it misses
 * changes (its daemon stopped recording after a failed write: `strata diff` then reads the
 * upper dir itself, and the next mount rebuilds the journal).
 */
function upperState(u: { owner: string | null; broken: string | null }): string {
  const held = u.owner ? `open (daemon ${u.owner.split(':')[1]})` : 'closed';
  return u.broken === null ? held : `${held}, journal incomplete (${u.broken}): rebuilt at the next mount`;
}

export async function indexCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { index: { type: 'string' }, root: { type: 'string' }, json: { type: 'boolean' } },
    allowPositionals: true,
  });
  const [sub] = positionals;
  if (positionals.length !== 1 || !['stats', 'check', 'rebuild', 'prune'].includes(sub!)) throw new Error(`usage: ${usage}`);
  const index = PathIndex.open(indexFile(values));
  try {
    if (sub === 'stats') {
      const s = index.stats();
      if (values.json) {
        process.stdout.write(`${JSON.stringify(s, null, 2)}\n`);
        return 0;
      }
      const perEntry = s.entries ? Math.round(s.bytes / s.entries) : 0;
      process.stdout.write(`${s.file}: ${humanSize(s.bytes)} on disk, ${s.entries} entries (${perEntry} bytes each), ${s.paths} paths, ${s.stacks} stacks\n\n`);
      const rate = (l: { entries: number; buildMs: number }): string => (l.buildMs > 0 ? `${Math.round(l.entries / (l.buildMs / 1000))}/s` : '-');
      process.stdout.write(`${renderTable(['LAYER', 'ENTRIES', 'BUILD', 'RATE', 'INDEXED'], s.layers.map((l) => [l.dir, String(l.entries), l.complete ? `${Math.round(l.buildMs)} ms` : 'incomplete', rate(l), l.built]))}`);
      if (s.uppers.length) process.stdout.write(`\n${renderTable(['UPPER', 'CHANGES', 'STATE'], s.uppers.map((u) => [u.dir, String(u.changes), upperState(u)]))}`);
      return 0;
    }
    if (sub === 'check') {
      const diffs = checkIndex(index);
      for (const d of diffs) process.stdout.write(`${d}\n`);
      process.stderr.write(diffs.length ? `${diffs.length} difference${diffs.length === 1 ? '' : 's'} between the index and the dirs\n` : 'index and dirs agree\n');
      return diffs.length ? 1 : 0;
    }
    if (sub === 'prune') {
      const p = index.prune();
      process.stderr.write(`dropped ${p.uppers} journal${p.uppers === 1 ? '' : 's'} of deleted upper dirs, ${p.layers} deleted layer${p.layers === 1 ? '' : 's'}, ${p.names} path${p.names === 1 ? '' : 's'}\n`);
      return 0;
    }
    const t0 = performance.now();
    index.rebuild((what) => process.stderr.write(`${what}\n`));
    process.stderr.write(`rebuilt in ${Math.round(performance.now() - t0)} ms\n`);
    return 0;
  } finally {
    index.close();
  }
}
