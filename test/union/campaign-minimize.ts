// Replaying and minimizing a finding of the random campaign (test/union/campaign.ts): a
// finding's JSON holds the whole case, so it runs again as it is, and delta debugging
// (ddmin) drops ops from its script, then layers and entries from its stack, keeping each
// cut that still diverges in the same category (phase, op, what differed).
import * as fs from 'node:fs';
import type { Entry as LayerEntry, LayerSpec } from '../helpers/layers.js';
import { describeOp } from './campaign-ops.js';
import { fromJson, runCase, toJson, type CampaignCase, type CaseResult, type Finding, type FindingFile } from './campaign.js';

export function readFinding(file: string): FindingFile {
  return fromJson<FindingFile>(fs.readFileSync(file, 'utf8'));
}

/** Runs a finding's (or any case's) JSON again. */
export async function replay(file: string, base: string): Promise<CaseResult> {
  const c = readFinding(file);
  return runCase({ seed: c.seed, format: c.format, specs: c.specs, script: c.script }, base);
}

/**
 * Zeller's ddmin: a 1-minimal subsequence of items for which test holds (test(items) is
 * assumed). Subsets first, then complements, at finer and finer granularity.
 */
export async function ddmin<T>(items: T[], test: (xs: T[]) => Promise<boolean>): Promise<T[]> {
  let n = 2;
  while (items.length >= 2) {
    const size = Math.ceil(items.length / n);
    const chunks: T[][] = [];
    for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
    let next: T[] | undefined;
    // With two chunks each subset is the other's complement: tried below.
    for (const c of chunks) if (!next && chunks.length > 2 && (await test(c))) next = c;
    if (next) {
      items = next;
      n = 2;
      continue;
    }
    for (let k = 0; !next && k < chunks.length; k++) {
      const rest = chunks.filter((_, j) => j !== k).flat();
      if (await test(rest)) next = rest;
    }
    if (next) {
      items = next;
      n = Math.max(n - 1, 2);
    } else if (n >= items.length) break;
    else n = Math.min(items.length, n * 2);
  }
  return items;
}

type Entry = [layer: number, key: string];

function entriesOf(specs: LayerSpec[]): Entry[] {
  return specs.flatMap((s, i) => Object.keys(s).filter((k) => k !== '.').map((k): Entry => [i, k]));
}

/** The specs with only these entries (and the roots); a hard link whose file went goes too, or the layer could not be built. */
function specsWith(specs: LayerSpec[], keep: Entry[]): LayerSpec[] {
  const wanted = new Set(keep.map(([i, k]) => `${i}\0${k}`));
  return specs.map((s, i) => {
    const kept = Object.entries(s).filter(([k]) => k === '.' || wanted.has(`${i}\0${k}`));
    const names = new Set(kept.map(([k]) => k));
    return Object.fromEntries(kept.filter(([, e]) => typeof e !== 'object' || e.type !== 'link' || names.has(e.to)));
  });
}

/** Every file's content cut to two bytes: a repro reads better without kilobytes of random data. */
function shortContents(specs: LayerSpec[]): LayerSpec[] {
  return specs.map((s) => Object.fromEntries(Object.entries(s).map(([k, e]) => [k, typeof e === 'object' && e.type === 'file' ? { ...e, content: 'x\n' } : e])));
}

function showEntry(e: LayerEntry): string {
  if (typeof e === 'string') return `file ${JSON.stringify(e)}`;
  const attrs = (x: { mode?: number; uid?: number; gid?: number; xattrs?: object }): string =>
    `${x.mode !== undefined ? ` 0o${x.mode.toString(8)}` : ''}${x.uid || x.gid ? ` ${x.uid ?? 0}:${x.gid ?? 0}` : ''}${x.xattrs ? ` ${JSON.stringify(Object.keys(x.xattrs))}` : ''}`;
  switch (e.type) {
    case 'file':
      return `file ${Buffer.isBuffer(e.content) ? `${e.content.length} B` : JSON.stringify(e.content ?? '')}${attrs(e)}`;
    case 'dir':
      return `dir${e.opaque ? ' opaque' : ''}${attrs(e)}`;
    case 'symlink':
      return `symlink -> ${e.target}`;
    case 'link':
      return `hard link to ${e.to}`;
    case 'fifo':
      return `fifo${attrs(e)}`;
    case 'whiteout':
      return 'whiteout';
  }
}

/** A case as text for a report: the layers (bottom first, implicit root left out), then the script. */
export function describeCase(c: CampaignCase): string[] {
  const lines = [`format ${c.format}, ${c.specs.length} layers (bottom first)`];
  c.specs.forEach((s, i) => {
    for (const [k, e] of Object.entries(s)) if (k !== '.') lines.push(`  layer ${i}: ${k}: ${showEntry(e)}`);
  });
  c.script.forEach((op, i) => lines.push(`  ${i}: ${describeOp(op)}`));
  return lines;
}

export interface Minimized {
  file: string;
  /** the minimized case did not diverge on a last run */
  flaky: boolean;
  ops: [before: number, after: number];
  entries: [before: number, after: number];
  runs: number;
}

/**
 * Minimizes a finding's case and writes `<file without .json>.min.json` beside it (the last
 * run's finding of the same category in it). `log` gets a line per kept cut.
 */
export async function minimize(file: string, base: string, log: (line: string) => void, maxRuns = Number(process.env.STRATA_CAMPAIGN_MINIMIZE_RUNS ?? 1000)): Promise<Minimized> {
  const orig = readFinding(file);
  const want = orig.finding.category;
  let runs = 0;
  let last: Finding | undefined;
  const seen = new Map<string, boolean>();
  // Past the budget every cut counts as failing: ddmin then ends with what it has.
  const test = async (c: CampaignCase, always = false): Promise<boolean> => {
    const key = toJson([c.specs, c.script]);
    const hit = seen.get(key);
    if (hit !== undefined) return hit;
    if (runs >= maxRuns && !always) return false;
    runs++;
    const r = await runCase(c, base, { until: orig.finding.phase });
    const f = r.findings.find((x) => x.category === want);
    if (f) last = f;
    seen.set(key, !!f);
    return !!f;
  };

  let cur: CampaignCase = { seed: orig.seed, format: orig.format, specs: orig.specs, script: orig.script };
  if (!(await test(cur, true))) throw new Error(`${file}: the case does not diverge in category ${want} when run again (timing?); nothing to minimize`);
  // What follows the first diverging step cannot matter to it.
  if (orig.finding.phase === 'step' && orig.finding.step !== undefined) {
    const cut = { ...cur, script: cur.script.slice(0, orig.finding.step + 1) };
    if (await test(cut)) cur = cut;
  }
  const opsBefore = orig.script.length;
  cur = { ...cur, script: await ddmin(cur.script, (s) => test({ ...cur, script: s })) };
  log(`${file}: script ${opsBefore} -> ${cur.script.length} ops (${runs} runs)`);
  // Whole layers first (cheap, big), then the entries left.
  const layers = await ddmin(
    cur.specs.map((_, i) => i),
    (keep) => test({ ...cur, specs: keep.map((i) => cur.specs[i]!) }),
  );
  cur = { ...cur, specs: layers.map((i) => cur.specs[i]!) };
  const entriesBefore = entriesOf(orig.specs).length;
  const kept = await ddmin(entriesOf(cur.specs), (keep) => test({ ...cur, specs: specsWith(cur.specs, keep) }));
  cur = { ...cur, specs: specsWith(cur.specs, kept) };
  const short = { ...cur, specs: shortContents(cur.specs) };
  if (await test(short)) cur = short;
  log(`${file}: stack ${orig.specs.length} layers, ${entriesBefore} entries -> ${cur.specs.length} layers, ${kept.length} entries (${runs} runs)`);
  // The finding as the minimized case shows it.
  seen.clear();
  const again = await test(cur, true);
  if (!again) log(`${file}: the minimized case did not diverge when run once more: the finding depends on timing (written anyway)`);
  const out = file.replace(/\.json$/, '') + '.min.json';
  fs.writeFileSync(out, toJson({ ...cur, finding: last! } satisfies FindingFile));
  log([`${out}:`, ...describeCase(cur), ...last!.diffs.map((d) => `  ${d}`)].join('\n'));
  return { flaky: !again, file: out, ops: [opsBefore, cur.script.length], entries: [entriesBefore, kept.length], runs };
}
