// The random differential campaign: for each seed a random stack (3-8 layers, overlay or OCI
// format), one side mounted by the kernel's overlayfs (KERNEL_RW_OPTIONS) and one by
// stratafs, and a random script of 40-80 ops (campaign-ops.ts) run step by step on both.
// After every op the results and the snapshots of what it touched are compared; at the end
// the merged trees, then stratafs's tree after a remount, then the kernel's overlayfs
// mounted over stratafs's upper and work dirs. Differences docs/union.md documents are
// counted, not reported (campaign-known.ts); any other is a finding, written as JSON that
// holds the whole case (stack specs, format, script) so it can be replayed and minimized
// (campaign-minimize.ts). Run by test/union/campaign.test.ts; docs/union.md, "Random campaign".
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { native } from '../../src/native/binding.js';
import type { TreeEntry } from '../../src/util/tree.js';
import { randomStack, rng, toOverlayFormat, type LayerFormat, type LayerSpec } from '../helpers/layers.js';
import { diffFields, mergedView, mountSide, nowNs, nowed, prepareSide, snapshotLowers, type MergedView, type Side } from './harness.js';
import { DRIVERS, MountRegistry, forceUnmountUnder, kernelDriver, mountKernelOverlay, mountsUnder, upperRecords, type UnionDriver } from './overlay.js';
import { closeAll, describeOp, escapes, generateScript, parentOf, pathsOf, pread, runOp, type FdTable, type Op } from './campaign-ops.js';
import { fdLabel, inosOf, labelsOf, showDiff, snapDiffs, snapLabels, viewDiffs, type FieldDiff, type Snap, type Snaps } from './campaign-view.js';
import { knownField, knownResult, newKnownState, type KnownClass, type KnownState, type Outcome, type SlotInfo } from './campaign-known.js';

export interface CampaignCase {
  seed: number;
  format: LayerFormat;
  /** bottom layer first, as randomStack makes them */
  specs: LayerSpec[];
  script: Op[];
}

export type Phase = 'initial' | 'step' | 'final' | 'lowers' | 'teardown' | 'remount' | 'kernel-over-upper' | 'harness';

export interface Finding {
  phase: Phase;
  /** index in the script of the first diverging op (phase 'step') */
  step?: number;
  op?: Op;
  /** what the kernel's side showed (the reference), then stratafs's: the result and the differing entries */
  kernel: unknown;
  strata: unknown;
  diffs: string[];
  /** phase, op and what differed: a minimized script must keep it */
  category: string;
}

export interface CaseResult {
  findings: Finding[];
  /** how often each documented difference was met (and the reference's own walk failed) */
  known: Partial<Record<KnownClass | 'attr-invalidation-window' | 'kernel-walk-error', number>>;
  /** ops run (all of them unless a step diverged) */
  steps: number;
  ms: number;
}

/**
 * The driver under test: stratafs, or with STRATA_CAMPAIGN_CANDIDATE=kernel the kernel
 * itself, which must agree with itself on every seed: a check of the harness (as
 * STRATA_UNION_CANDIDATE in differential.test.ts).
 */
function candidate(): UnionDriver {
  const name = process.env.STRATA_CAMPAIGN_CANDIDATE ?? 'strata';
  const d = DRIVERS[name];
  if (!d) throw new Error(`STRATA_CAMPAIGN_CANDIDATE=${name}: expected one of ${Object.keys(DRIVERS).join(', ')}`);
  return d;
}

/** The case a seed stands for: the stack, its format and the script all follow from it. */
export function caseOfSeed(seed: number): CampaignCase {
  const r = rng(seed * 7919 + 1);
  const layers = 3 + r.int(6);
  const format: LayerFormat = r.chance(0.5) ? 'overlay' : 'oci';
  const stack = randomStack(seed, { layers });
  const script = generateScript(r, [...stack.model.keys()].filter((p) => p !== '.'));
  return { seed, format, specs: stack.specs, script };
}

// ---------------------------------------------------------------------------------------
// Findings on disk: JSON with Buffers as base64 (layer contents), read back as Buffers.

export interface FindingFile extends CampaignCase {
  finding: Finding;
}

export function toJson(x: unknown): string {
  return JSON.stringify(
    x,
    (_k, v: unknown) => {
      const b = v as { type?: unknown; data?: unknown };
      return b && b.type === 'Buffer' && Array.isArray(b.data) ? { type: 'Buffer', base64: Buffer.from(b.data as number[]).toString('base64') } : v;
    },
    1,
  );
}

export function fromJson<T>(text: string): T {
  return JSON.parse(text, (_k, v: unknown) => {
    const b = v as { type?: unknown; base64?: unknown };
    return b && b.type === 'Buffer' && typeof b.base64 === 'string' ? Buffer.from(b.base64, 'base64') : v;
  }) as T;
}

/** STRATA_CAMPAIGN_OUT, or a fresh tmpdir (printed once). */
export function outDir(): string {
  const dir = process.env.STRATA_CAMPAIGN_OUT ?? fs.mkdtempSync(path.join(os.tmpdir(), 'campaign-findings-'));
  fs.mkdirSync(dir, { recursive: true });
  process.env.STRATA_CAMPAIGN_OUT = dir;
  return dir;
}

/** Writes each finding of a case as `<name>-<phase>.json` in dir; returns the files. */
export function writeFindings(dir: string, name: string, c: CampaignCase, findings: Finding[]): string[] {
  return findings.map((finding) => {
    const file = path.join(dir, `${name}-${finding.phase}.json`);
    fs.writeFileSync(file, toJson({ ...c, finding } satisfies FindingFile));
    return file;
  });
}

/** One line per finding, for test failures and the summary. */
export function showFinding(seed: number, f: Finding): string {
  const where = f.phase === 'step' ? `step ${f.step} (${describeOp(f.op!)})` : f.phase;
  return `seed ${seed} ${where}: ${f.diffs.slice(0, 4).join(' | ')}${f.diffs.length > 4 ? ` (+${f.diffs.length - 4})` : ''}`;
}

// ---------------------------------------------------------------------------------------
// Running one case

export interface RunOptions {
  /** Stop at the first finding of this phase (the minimizer's test): later phases are not run. */
  until?: Phase;
  /** Keep the case's directories (layers, upper dirs, daemon log) when something was found. */
  keep?: boolean;
}

function attempt(f: () => unknown): Outcome {
  try {
    return { ok: f() };
  } catch (e) {
    return { error: (e as NodeJS.ErrnoException).code ?? String(e) };
  }
}

/** The category a minimized script must keep: the phase, the op, and which results or fields differed. */
function categoryOf(phase: Phase, op: Op | undefined, diffs: FieldDiff[], resultDiffers: boolean): string {
  const fields = resultDiffers ? ['result'] : [...new Set(diffs.map((d) => d.field))].sort();
  return `${phase}:${op?.op ?? '-'}:${fields.join(',')}`;
}

/**
 * docs/union.md, Reading, "Cache lifetimes": the directories a copy-up copies (nlink, ctime)
 * are announced to the kernel collected over 10 ms; "overlayfs shows them at once, stratafs
 * within those 10 ms". A directory's link count that differs is looked at again once that
 * has passed, and the final trees are taken after it.
 */
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 30));

/** Runs a case under base (a directory of its own is made there); always unmounts. */
export async function runCase(c: CampaignCase, base: string, opts: RunOptions = {}): Promise<CaseResult> {
  const started = Date.now();
  const dir = fs.mkdtempSync(path.join(base, `seed-${c.seed}-`));
  const findings: Finding[] = [];
  const known: CaseResult['known'] = {};
  const count = (k: keyof CaseResult['known']): void => void (known[k] = (known[k] ?? 0) + 1);
  const registry = new MountRegistry();
  const fdsK: FdTable = new Map();
  const fdsS: FdTable = new Map();
  let steps = 0;
  const done = (p: Phase): boolean => findings.some((f) => f.phase === p) && opts.until === p;
  // Every time from here on is "now" (nowed): the upper dirs are made now, and the script
  // writes now; layer times and the times scripts set are older.
  const t0 = nowNs();
  try {
    const kern = prepareSide(kernelDriver, path.join(dir, 'ref'), c.specs, c.format, true);
    const strata = prepareSide(candidate(), path.join(dir, 'cand'), c.specs, c.format, true);
    const lowersBefore = [snapshotLowers(kern), snapshotLowers(strata)];
    registry.track(mountSide(kern));
    registry.track(mountSide(strata));
    const st = newKnownState(strata.upper!);

    /** Compares two views; unknown differences become a finding of `phase`. */
    const compareViews = (phase: Phase, a: MergedView, b: MergedView, strataInos: Record<string, string>): void => {
      const unknown = viewDiffs(a, b).filter((d) => {
        const k = knownField(d, b.tree[d.label], strataInos[d.label], st);
        if (k) count(k);
        return !k;
      });
      if (unknown.length) findings.push(treeFinding(phase, a, b, unknown));
    };

    /**
     * A merged view, or undefined when the walk of the mount failed. The kernel failing its
     * own walk of the reference mount leaves nothing to compare with, and says nothing about
     * stratafs: counted ('kernel-walk-error'), not reported (docs/union.md, "Random
     * campaign"). stratafs's walk failing, or the kernel's walk of stratafs's upper dir, is a
     * finding.
     */
    const view = (phase: Phase, who: 'kernel' | 'stratafs' | 'kernel over stratafs', mnt: string): MergedView | undefined => {
      try {
        return nowed(mergedView(mnt), t0);
      } catch (e) {
        if (who === 'kernel') count('kernel-walk-error');
        else findings.push({ phase, kernel: null, strata: null, diffs: [`the walk of ${who}'s mount failed: ${String(e)}`], category: `${phase}:-:walk` });
        return undefined;
      }
    };
    const compareWalks = (phase: Phase, a: MergedView | undefined, b: MergedView | undefined, strataInos: Record<string, string>): void => {
      if (a && b) compareViews(phase, a, b, strataInos);
    };

    const va0 = view('initial', 'kernel', kern.mnt);
    const vb0 = view('initial', 'stratafs', strata.mnt);
    const inos0 = vb0 ? inosOf(strata.mnt, vb0) : {};
    for (const [p, e] of Object.entries(vb0?.tree ?? {})) if (e.type !== 'dir' && (e.nlink ?? 1) > 1 && inos0[p]) st.lowerLinkInos.add(inos0[p]);
    compareWalks('initial', va0, vb0, inos0);
    if (done('initial')) return result();

    const slots = new Map<number, SlotInfo>();
    for (let i = 0; i < c.script.length; i++) {
      const op = c.script[i]!;
      steps = i + 1;
      const diverged = await stepOnce(op, i, kern, strata, fdsK, fdsS, slots, st, t0, count);
      if (diverged) {
        findings.push(diverged);
        break;
      }
    }
    if (done('step')) return result();
    const stepDiverged = findings.some((f) => f.phase === 'step');

    // With every fd closed: what is left must be the same tree (once stratafs's late
    // attribute notifications are in, as after every step).
    closeAll(fdsK);
    closeAll(fdsS);
    await settle();
    const va = view('final', 'kernel', kern.mnt);
    const vb = view('final', 'stratafs', strata.mnt);
    const inosB = vb ? inosOf(strata.mnt, vb) : {};
    // After a diverging step the trees differ for that reason: the later comparisons
    // against the kernel would report it again.
    if (!stepDiverged) compareWalks('final', va, vb, inosB);
    if (done('final')) return result();

    await registry.cleanupAll().catch((e: unknown) => {
      findings.push({ phase: 'teardown', kernel: 'unmounted', strata: String(e), diffs: [String(e)], category: 'teardown' });
    });
    const lowerDiffs = [...diffFields(snapshotLowers(kern), lowersBefore[0]!).map((l) => `kernel ${l}`), ...diffFields(snapshotLowers(strata), lowersBefore[1]!).map((l) => `stratafs ${l}`)];
    if (lowerDiffs.length) findings.push({ phase: 'lowers', kernel: null, strata: null, diffs: lowerDiffs, category: 'lowers' });

    // stratafs again over what it left on disk: the tree the kernel showed before.
    if (!stepDiverged) {
      registry.track(mountSide(strata));
      const vr = view('remount', 'stratafs', strata.mnt);
      compareWalks('remount', va, vr, vr ? inosOf(strata.mnt, vr) : {});
      await registry.cleanupAll();
      if (done('remount')) return result();
    }

    // The kernel over stratafs's upper and work dirs (the upper dir is in its format): the
    // tree stratafs showed. As differential.test.ts does: OCI lowers converted in place first.
    if (strata.stack.format === 'oci') for (const l of strata.stack.layers) toOverlayFormat(l);
    const mnt2 = path.join(dir, 'cand', 'kernel-remount');
    fs.mkdirSync(mnt2);
    registry.track(mountKernelOverlay(strata.stack.lowers, strata.upper, strata.work, mnt2));
    const vk = view('kernel-over-upper', 'kernel over stratafs', mnt2);
    await registry.cleanupAll();
    const before = findings.length;
    compareWalks('kernel-over-upper', vk, vb, inosB);
    if (findings.length > before) findings[findings.length - 1]!.diffs.push(...upperRecords(strata.upper!).map((l) => `upper: ${l}`));
    return result();
  } catch (e) {
    // Not a difference: the harness or a mount failed. The daemon's log says why.
    const log = path.join(dir, 'cand', 'mnt.log');
    const tail = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n').slice(-5) : [];
    findings.push({ phase: 'harness', kernel: null, strata: null, diffs: [String((e as Error).stack ?? e), ...tail], category: 'harness' });
    return result();
  } finally {
    closeAll(fdsK);
    closeAll(fdsS);
    await registry.cleanupAll().catch((e: unknown) => {
      if (!findings.some((f) => f.phase === 'teardown')) findings.push({ phase: 'teardown', kernel: 'unmounted', strata: String(e), diffs: [String(e)], category: 'teardown' });
    });
    forceUnmountUnder(dir);
    if (mountsUnder(dir).length === 0 && !(opts.keep && findings.length)) fs.rmSync(dir, { recursive: true, force: true });
  }

  function result(): CaseResult {
    return { findings, known, steps, ms: Date.now() - started };
  }
}

function treeFinding(phase: Phase, a: MergedView, b: MergedView, diffs: FieldDiff[]): Finding {
  const labels = [...new Set(diffs.map((d) => d.label))].slice(0, 20);
  return {
    phase,
    kernel: Object.fromEntries(labels.map((l) => [l, a.tree[l] ?? null])),
    strata: Object.fromEntries(labels.map((l) => [l, b.tree[l] ?? null])),
    diffs: diffs.map(showDiff),
    category: categoryOf(phase, undefined, diffs, false),
  };
}

/** Ops that give the file they name a new mtime (now, or the one they set) on any mount. */
const SETS_MTIME = new Set<Op['op']>(['create', 'append', 'truncate', 'utimens', 'fwrite', 'ftruncate', 'futimens']);

/**
 * One op on both mounts (the kernel's first), then what it touched on both; a finding if they
 * differ in a way docs/union.md does not document.
 */
async function stepOnce(
  op: Op,
  i: number,
  kern: Side,
  strata: Side,
  fdsK: FdTable,
  fdsS: FdTable,
  slots: Map<number, SlotInfo>,
  st: KnownState,
  t0: bigint,
  count: (k: keyof CaseResult['known']) => void,
): Promise<Finding | undefined> {
  const labels = labelsOf(op, new Map([...fdsS, ...fdsK]));
  // Links that lead out of the mount are not followed on either side. Looked up on the
  // kernel's mount only, so stratafs meets its names as uncached as the script leaves them.
  const out = pathsOf(op).some(([p, follow]) => escapes(kern.mnt, p, follow));
  const a = out ? { ok: 'escapes' } : attempt(() => runOp(op, kern.mnt, fdsK));
  const b = out ? { ok: 'escapes' } : attempt(() => runOp(op, strata.mnt, fdsS));
  const sa = snapLabels(kern.mnt, fdsK, labels, t0);
  const sb = snapLabels(strata.mnt, fdsS, labels, t0);
  if (op.op === 'open') noteOpen(op, kern, strata, fdsK, fdsS, slots, st, sb);
  const fdIno = 'fd' in op ? sb.inos[fdLabel(op.fd)] : undefined;
  const slot: SlotInfo = 'fd' in op ? { ...slots.get(op.fd), strataFd: sb.entries[fdLabel(op.fd)] as TreeEntry, fedLower: fdIno !== undefined && st.lowerFedInos.has(fdIno) } : {};
  const lowerFed = op.op === 'fcopy' && 'ok' in b ? noteLowerFed(op, a, b.ok as number, fdsK, fdsS, slots, st, sb) : undefined;

  const resultDiffers = JSON.stringify(a) !== JSON.stringify(b);
  const resultKnown = resultDiffers ? knownResult(op, a, b, slot, lowerFed) : undefined;
  if (resultKnown) {
    count(resultKnown);
    if (resultKnown === 'unnamed-lower-fd-change' && 'fd' in op) {
      const ino = sb.inos[fdLabel(op.fd)];
      if (ino) st.unnamedFdInos.add(ino);
    }
  }
  // A rename that failed on both alike: its source directory and the source's parent may
  // show the time of the attempt on the kernel (failed-rename-mtime).
  if (op.op === 'rename' && 'error' in a && 'error' in b && a.error === b.error) {
    for (const l of [op.from, parentOf(op.from)]) {
      const ino = sb.inos[l];
      if (ino) st.failedRenameInos.add(ino);
    }
  }
  // An op that sets the file's mtime on both sides ends what an open for writing left
  // apart (metacopy-data-mtime): from here on a stale time is a finding.
  if (SETS_MTIME.has(op.op) && 'ok' in a && 'ok' in b) {
    const ino = sb.inos['fd' in op ? fdLabel(op.fd) : pathsOf(op)[0]![0]];
    if (ino) st.writeOpenedInos.delete(ino);
  }
  const unknownFields = (x: Snaps, y: Snaps): FieldDiff[] =>
    snapDiffs(x.entries, y.entries).filter((d) => {
      const e = y.entries[d.label];
      const k = knownField(d, e && !('error' in e) ? e : undefined, y.inos[d.label], st);
      if (k) count(k);
      return !k;
    });
  let diffs = unknownFields(sa, sb);
  // A directory's link count may lag on stratafs (settle): looked at again, and only that.
  const lagging = (d: FieldDiff): boolean => d.field === 'nlink' && (sb.entries[d.label] as TreeEntry | undefined)?.type === 'dir';
  if (diffs.some(lagging)) {
    await settle();
    const again = unknownFields(snapLabels(kern.mnt, fdsK, labels, t0), snapLabels(strata.mnt, fdsS, labels, t0));
    const stays = (d: FieldDiff): boolean => !lagging(d) || again.some((x) => x.label === d.label && x.field === 'nlink');
    if (!diffs.every(stays)) count('attr-invalidation-window');
    diffs = diffs.filter(stays);
  }
  if ((!resultDiffers || resultKnown) && !diffs.length) return undefined;
  const shown = [...new Set(diffs.map((d) => d.label))];
  const pick = (s: Snaps): Record<string, Snap> => Object.fromEntries(shown.map((l) => [l, s.entries[l]!]));
  return {
    phase: 'step',
    step: i,
    op,
    kernel: { result: a, ...(shown.length ? { entries: pick(sa) } : {}) },
    strata: { result: b, ...(shown.length ? { entries: pick(sb) } : {}) },
    diffs: [...(resultDiffers && !resultKnown ? [`~ result: ${JSON.stringify(a)} != ${JSON.stringify(b)}`] : []), ...diffs.map(showDiff)],
    category: categoryOf('step', op, diffs, resultDiffers && !resultKnown),
  };
}

/** All a campaign file holds (they stay far below 1 MiB). */
const readWhole = (fd: number): Buffer => pread(fd, 0, 1 << 20);

/**
 * After an open: whether stratafs's fd reads a lower file (opened read-only while the data
 * was below: no upper copy, or a metadata-only one), with the data both fds read then; and
 * which files were opened for writing without truncation.
 */
function noteOpen(op: Extract<Op, { op: 'open' }>, kern: Side, strata: Side, fdsK: FdTable, fdsS: FdTable, slots: Map<number, SlotInfo>, st: KnownState, sb: Snaps): void {
  slots.delete(op.fd);
  const fk = fdsK.get(op.fd);
  const fsd = fdsS.get(op.fd);
  if (!fk || !fsd) return;
  st.fdPaths.set(fdLabel(op.fd), op.path);
  const ino = sb.inos[fdLabel(op.fd)];
  if ((op.flags === 'r+' || op.flags === 'a+') && ino) st.writeOpenedInos.add(ino);
  if (op.flags !== 'r') return;
  let rel: string;
  try {
    // Resolved on the kernel's mount (the same tree so far), as escapes() looks up names.
    rel = path.relative(kern.mnt, fs.realpathSync(path.join(kern.mnt, op.path)));
  } catch {
    return;
  }
  const upperFile = path.join(strata.upper!, rel);
  let lower = true;
  try {
    const s = fs.lstatSync(upperFile);
    lower = !s.isFile() || hasMetacopy(upperFile);
  } catch {
    /* no upper copy */
  }
  if (!lower) return;
  const dk = attempt(() => readWhole(fk.fd));
  const ds = attempt(() => readWhole(fsd.fd));
  if ('ok' in dk && 'ok' in ds && Buffer.compare(dk.ok as Buffer, ds.ok as Buffer) === 0) slots.set(op.fd, { lowerData: ds.ok as Buffer });
}

/**
 * After a copy_file_range that stratafs made: when its source fd is one that read the lower
 * data on stratafs (noteOpen) and is no longer the same file on both (read-before-copy-up:
 * another open copied the file up), and stratafs's destination holds exactly that lower data
 * where the copy went, the destination is noted (KnownState.lowerFedInos). Returns the
 * source's lower data then. "No longer the same": the kernel's source reads other data, or
 * the kernel refused the copy as one within a single file whose ranges overlap (EINVAL),
 * its source and destination fds being one file there (the copy's, on stratafs another).
 */
function noteLowerFed(op: Extract<Op, { op: 'fcopy' }>, kernel: Outcome, copied: number, fdsK: FdTable, fdsS: FdTable, slots: Map<number, SlotInfo>, st: KnownState, sb: Snaps): Buffer | undefined {
  const lowerData = slots.get(op.from)?.lowerData;
  const srcK = fdsK.get(op.from);
  const dstK = fdsK.get(op.fd);
  const dstS = fdsS.get(op.fd);
  if (!lowerData || !srcK || !dstK || !dstS) return undefined;
  const oneFileOnKernel = (): boolean => {
    const [x, y] = [fs.fstatSync(srcK.fd), fs.fstatSync(dstK.fd)];
    return x.ino === y.ino && x.dev === y.dev;
  };
  const refusedAsOverlap = 'error' in kernel && kernel.error === 'EINVAL' && op.pos < op.len && oneFileOnKernel();
  const kernelReads = attempt(() => readWhole(srcK.fd));
  if (!refusedAsOverlap && 'ok' in kernelReads && Buffer.compare(kernelReads.ok as Buffer, lowerData) === 0) return undefined;
  const landed = attempt(() => pread(dstS.fd, op.pos, copied));
  if (!('ok' in landed) || Buffer.compare(landed.ok as Buffer, lowerData.subarray(0, copied)) !== 0) return undefined;
  const ino = sb.inos[fdLabel(op.fd)];
  if (ino) st.lowerFedInos.add(ino);
  return lowerData;
}

/** overlayfs's "data is below" mark (a metadata-only copy, or a copy still landing: docs/union.md). */
function hasMetacopy(p: string): boolean {
  return native.lgetxattrOrErrno(p, 'trusted.overlay.metacopy') instanceof Buffer;
}
