// Progress lines drawn only when stderr is a terminal (tests and CI are not, and get no
// output), redrawn in place like docker's: per layer for load, per phase for commit and
// export of large layers.

import type { LayerProgress } from '../store/load.js';
import { humanSize } from './format.js';

const WIDTH = 40;
/** Redraws at most this often (the last one of a phase always). */
const REDRAW_MS = 100;
/** Commit and export draw bars only for this much file content or more: smaller ones are done at once. */
export const LARGE_BYTES = 16 << 20;

/** "[=====>      ] 12.3MB/40MB" */
function bar(bytes: number, total: number): string {
  const frac = total ? Math.min(1, bytes / total) : 0;
  const n = Math.floor(frac * WIDTH);
  return `[${'='.repeat(n)}${n < WIDTH ? '>' : ''}${' '.repeat(Math.max(0, WIDTH - n - 1))}] ${humanSize(bytes)}/${humanSize(total)}`;
}

export function layerProgress(stream: NodeJS.WriteStream = process.stderr): ((p: LayerProgress) => void) | undefined {
  if (!stream.isTTY) return undefined;
  let last = 0;
  let current = '';
  return (p) => {
    const t = Date.now();
    if (p.phase === 'extracting' && p.id === current && t - last < REDRAW_MS) return;
    last = t;
    if (p.id !== current && current) stream.write('\n');
    current = p.id;
    let text: string;
    if (p.phase === 'exists') text = `${p.id}: Already exists`;
    else if (p.phase === 'done') text = `${p.id}: Loaded ${humanSize(p.total)}`;
    else text = `${p.id}: Loading ${bar(p.bytes, p.total)}`;
    stream.write(`\r\x1b[2K${text}`);
    if (p.phase !== 'extracting') {
      stream.write('\n');
      current = '';
    }
  };
}

/**
 * One bar per phase ("Writing layer", "Extracting"), for a job whose phases report
 * (bytes, total). Phases below `minTotal` bytes draw nothing.
 */
export function phaseProgress(stream: NodeJS.WriteStream = process.stderr, minTotal = LARGE_BYTES): ((label: string, bytes: number, total: number) => void) | undefined {
  if (!stream.isTTY) return undefined;
  let last = 0;
  let current: string | undefined;
  let ended: string | undefined;
  return (label, bytes, total) => {
    if (total < minTotal || label === ended) return;
    const t = Date.now();
    const finished = bytes >= total;
    if (label === current && !finished && t - last < REDRAW_MS) return;
    last = t;
    current = label;
    stream.write(`\r\x1b[2K${label} ${bar(bytes, total)}${finished ? '\n' : ''}`);
    if (finished) ended = label;
  };
}
