// The chart of a run: one horizontal bar per driver and workload, its length the driver's
// speed relative to overlayfs on a log scale (2x ahead and 2x behind look alike), drawn
// from the dashed line at 1: right of it faster than overlayfs, left of it slower. Drawn by
// Vega-Lite and rendered headless to SVG by Vega (no canvas, no browser, no network).

import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { BenchResults } from './results.js';

/** The Vega-Lite spec of the chart (exported for tests and for anyone who wants to restyle it). */
export function chartSpec(r: BenchResults): vl.TopLevelSpec {
  const refLabel = r.drivers.find((d) => d.name === r.reference)?.label ?? r.reference;
  const drivers = r.drivers.filter((d) => r.workloads.some((w) => w.cells[d.name]?.status === 'ok'));
  const values = r.workloads.flatMap((w) =>
    drivers.flatMap((d) => {
      const c = w.cells[d.name];
      return c?.status === 'ok' && c.ratio !== undefined ? [{ workload: w.id, driver: d.label, ratio: c.ratio }] : [];
    }),
  );
  const y = { field: 'workload', type: 'nominal', sort: r.workloads.map((w) => w.id), title: null } as const;
  const yOffset = { field: 'driver', type: 'nominal', sort: drivers.map((d) => d.label) } as const;
  const x = { field: 'ratio', type: 'quantitative', scale: { type: 'log' }, title: `speed relative to ${refLabel} (higher is faster)` } as const;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: `strata bench: speed relative to ${refLabel}`,
      subtitle: `${r.image.label}; median of ${r.repeat}; Linux ${r.machine.kernel}, ${r.machine.cores} cores; ${r.date.slice(0, 10)}`,
    },
    width: 560,
    height: 12 * Math.max(1, drivers.length) * r.workloads.length + 8 * r.workloads.length,
    background: 'white',
    layer: [
      {
        data: { values },
        // From 1 to the ratio: bars grow right for faster than the reference, left for slower.
        mark: 'bar',
        encoding: { y, yOffset, x, x2: { datum: 1 }, color: { field: 'driver', type: 'nominal', sort: drivers.map((d) => d.label), title: 'driver', legend: { labelLimit: 320 } } },
      },
      {
        data: { values },
        mark: { type: 'text', align: { expr: "datum.ratio >= 1 ? 'left' : 'right'" }, dx: { expr: 'datum.ratio >= 1 ? 3 : -3' }, fontSize: 9 },
        encoding: { y, yOffset, x, text: { field: 'ratio', type: 'quantitative', format: '.2f' } },
      },
      {
        data: { values: [{ ratio: 1 }] },
        mark: { type: 'rule', strokeDash: [4, 3], color: '#333' },
        encoding: { x: { field: 'ratio', type: 'quantitative' } },
      },
    ],
  };
}

export async function renderChart(r: BenchResults): Promise<string> {
  const view = new vega.View(vega.parse(vl.compile(chartSpec(r)).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
