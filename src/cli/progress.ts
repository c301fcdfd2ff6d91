// Per-layer progress lines for load, drawn only when stderr is a terminal (tests and CI
// are not, and get no output). One line per layer, redrawn in place like docker's.

import type { LayerProgress } from '../store/load.js';
import { humanSize } from './format.js';

export function layerProgress(stream: NodeJS.WriteStream = process.stderr): ((p: LayerProgress) => void) | undefined {
  if (!stream.isTTY) return undefined;
  let last = 0;
  let current = '';
  return (p) => {
    const t = Date.now();
    if (p.phase === 'extracting' && p.id === current && t - last < 100) return;
    last = t;
    if (p.id !== current && current) stream.write('\n');
    current = p.id;
    const width = 40;
    let text: string;
    if (p.phase === 'exists') text = `${p.id}: Already exists`;
    else if (p.phase === 'done') text = `${p.id}: Loaded ${humanSize(p.total)}`;
    else {
      const frac = p.total ? Math.min(1, p.bytes / p.total) : 0;
      const n = Math.floor(frac * width);
      text = `${p.id}: Loading [${'='.repeat(n)}${n < width ? '>' : ''}${' '.repeat(Math.max(0, width - n - 1))}] ${humanSize(p.bytes)}/${humanSize(p.total)}`;
    }
    stream.write(`\r\x1b[2K${text}`);
    if (p.phase !== 'extracting') {
      stream.write('\n');
      current = '';
    }
  };
}
