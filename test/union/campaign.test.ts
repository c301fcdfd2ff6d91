// The random differential campaign against the kernel's overlayfs (test/union/campaign.ts;
// docs/union.md, "Random campaign"). Modes, by environment:
//   (none)                          a few fixed seeds, an ordinary test: any finding fails it
//   STRATA_CAMPAIGN_SEEDS=1-40      that range (also "7" or "3,9,12"), one test per seed
//   STRATA_CAMPAIGN_REPLAY=f.json   runs a finding's case again
//   STRATA_CAMPAIGN_MINIMIZE=f.json ddmin of its script and stack, written to f.min.json
// Findings go to STRATA_CAMPAIGN_OUT (default: a new /tmp/campaign-findings-*), with one line
// per seed in summary.txt there. STRATA_CAMPAIGN_KEEP=1 keeps a diverging seed's dirs;
// STRATA_CAMPAIGN_CANDIDATE=kernel runs the kernel against itself (a check of the harness).
// scripts/campaign.sh wraps all of this.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tmpdir } from '../helpers/mount.js';
import { forceUnmountUnder, mountsUnder } from './overlay.js';
import { caseOfSeed, outDir, runCase, showFinding, writeFindings, type CaseResult } from './campaign.js';
import { minimize, readFinding, replay } from './campaign-minimize.js';

/**
 * Seeds that pass today and meet every documented class between them (a few seconds in
 * all): 127 and 421 read through an fd opened before a copy-up (overlay, OCI), 343 and 446
 * the hard-link, metacopy-mtime and unnamed-fd classes (OCI, overlay); 2 copies up a lower
 * hard-link set with a name hidden by a layer above (its link count dropped until session 17).
 */
const DEFAULT_SEEDS = [2, 127, 343, 421, 446];

function parseSeeds(s: string): number[] {
  return s.split(',').flatMap((part) => {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+))?\s*$/.exec(part);
    if (!m) throw new Error(`STRATA_CAMPAIGN_SEEDS=${s}: expected START-END, N or a comma list`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    return Array.from({ length: Math.max(0, b - a + 1) }, (_, i) => a + i);
  });
}

const env = process.env;
const seeds = env.STRATA_CAMPAIGN_SEEDS ? parseSeeds(env.STRATA_CAMPAIGN_SEEDS) : DEFAULT_SEEDS;

describe('random campaign against the kernel overlayfs', () => {
  let root = '';
  const failed: string[] = [];
  // Replay and minimize write beside the file they were given; a campaign run to
  // STRATA_CAMPAIGN_OUT or a new tmpdir; the default seeds make that dir only for a finding.
  const given = env.STRATA_CAMPAIGN_MINIMIZE ?? env.STRATA_CAMPAIGN_REPLAY;
  const campaign = !!(given || env.STRATA_CAMPAIGN_SEEDS || env.STRATA_CAMPAIGN_OUT);
  let out = '';
  const outPath = (): string => {
    if (!out) {
      out = given ? path.dirname(path.resolve(given)) : outDir();
      if (!given) console.log(`campaign findings go to ${out}`);
    }
    return out;
  };
  const say = (line: string): void => {
    if (campaign) fs.appendFileSync(path.join(outPath(), 'summary.txt'), `${line}\n`);
    console.log(line);
  };

  beforeAll(() => {
    root = tmpdir('campaign');
    fs.chmodSync(root, 0o755);
    if (campaign) outPath();
  });

  afterAll(() => {
    forceUnmountUnder(root);
    if (root && mountsUnder(root).length === 0 && env.STRATA_CAMPAIGN_KEEP !== '1') fs.rmSync(root, { recursive: true, force: true });
    if (failed.length) say(`findings (${failed.length}), files in ${outPath()}:\n${failed.join('\n')}`);
  });

  const knownText = (r: CaseResult): string => {
    const k = Object.entries(r.known).map(([c, n]) => `${c} x${n}`);
    return k.length ? `; known: ${k.join(', ')}` : '';
  };

  if (env.STRATA_CAMPAIGN_MINIMIZE) {
    const file = path.resolve(env.STRATA_CAMPAIGN_MINIMIZE);
    it(`minimizes ${file}`, async () => {
      const m = await minimize(file, root, say);
      say(`minimized: ${m.file} (ops ${m.ops[0]} -> ${m.ops[1]}, stack entries ${m.entries[0]} -> ${m.entries[1]}, ${m.runs} runs${m.flaky ? ', flaky' : ''})`);
    }, 4 * 3600_000);
    return;
  }

  if (env.STRATA_CAMPAIGN_REPLAY) {
    const file = path.resolve(env.STRATA_CAMPAIGN_REPLAY);
    it(`replays ${file}`, async () => {
      const c = readFinding(file);
      const r = await replay(file, root);
      const lines = r.findings.map((f) => showFinding(c.seed, f));
      say(`replay ${file}: ${r.steps} ops, ${(r.ms / 1000).toFixed(1)} s${knownText(r)}${lines.length ? `\n${lines.join('\n')}` : ': no finding'}`);
      const files = writeFindings(path.dirname(file), `${path.basename(file, '.json')}.replay`, c, r.findings);
      expect(lines, `findings, written to ${files.join(', ')}`).toEqual([]);
    }, 600_000);
    return;
  }

  it.each(seeds)('seed %i', async (seed) => {
    const c = caseOfSeed(seed);
    const r = await runCase(c, root, { keep: env.STRATA_CAMPAIGN_KEEP === '1' });
    const files = r.findings.length ? writeFindings(outPath(), `seed-${seed}`, c, r.findings) : [];
    const lines = r.findings.map((f) => showFinding(seed, f));
    const head = `seed ${seed}: ${c.format}, ${c.specs.length} layers, ${r.steps}/${c.script.length} ops, ${(r.ms / 1000).toFixed(1)} s`;
    say(`${head}: ${lines.length ? `${lines.length} finding(s) -> ${files.map((f) => path.basename(f)).join(', ')}` : 'ok'}${knownText(r)}`);
    failed.push(...lines);
    expect(lines, `findings of seed ${seed}, written to ${out}`).toEqual([]);
  }, 300_000);
});
