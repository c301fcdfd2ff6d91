// The workloads of `strata bench`. Each runs on a fresh mount (or a fresh copy of the merged
// tree for the native driver): an optional untimed prepare step, the timed run, then a check
// of the result against the merged tree on plain disk: what the mount shows and, for drivers
// with an upper dir, what landed there. run() returns what it saw and check() judges it, so
// nothing that happens after the run can hide a wrong answer from the check.

import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  APPENDED,
  appendByte,
  chmodFiles,
  createFiles,
  pattern,
  readFiles,
  removeTree,
  renameFiles,
  seqRead,
  statMissing,
  statPaths,
  untar,
  walkTree,
} from './file-workloads.js';
import { appendedEntry, entryDiff, entryOf, gone, isWhiteout, snapshotBelow, treeDiff, without } from './checks.js';
import { dropCaches } from './measure.js';
import { joinRel } from '../util/os-path.js';
import type { WorkloadCounts } from './sizes.js';
import type { Stage } from './stage.js';

export interface RunCtx {
  /** The merged view: a mount point, or the native driver's copy of the tree. */
  root: string;
  /** The upper dir, for drivers that have one. */
  upper?: string;
  stage: Stage;
  counts: WorkloadCounts;
}

export interface Outcome {
  seconds: number;
  /** Per-operation latencies (copy-up: open + first write of each file). */
  latencies?: number[];
  /** What the run observed, for check(). */
  seen?: Record<string, number>;
}

export interface Workload {
  id: string;
  title(s: Stage, c: WorkloadCounts): string;
  prepare?(c: RunCtx): void;
  run(c: RunCtx): Outcome;
  /** What is wrong with the result; [] when the driver answered right. */
  check(c: RunCtx, o: Outcome): string[];
  /**
   * One untimed round (every driver once, checked) before the timed ones: for a workload
   * whose first runs after staging are slow for whichever driver meets them.
   */
  warmup?: boolean;
}

const CREATED_DIR = 'strata-bench-created';
const UNTAR_DIR = 'strata-bench-untar';
const RENAMED = '.renamed';
const CHMOD_MODE = 0o600;
/** How often the missing workload asks for each name: a program started again and again. */
const MISSING_ROUNDS = 10;

const n = (x: number): string => x.toLocaleString('en');
const mib = (b: number): string => `${+(b / 2 ** 20).toFixed(1)} MiB`;
const seen = (what: string, got: number | undefined, want: number): string[] => (got === want ? [] : [`${what}: ${got}, expected ${want}`]);

// The write workloads take the first files of one fixed random order: a fresh upper dir per run
// makes them lower files again every time.
const first = (c: RunCtx, k: number): string[] => c.stage.targets.candidates.slice(0, k).map(([p]) => p);
const copyUpTargets = (c: RunCtx): string[] => first(c, c.counts.copyUp);
const chmodTargets = (c: RunCtx): string[] => first(c, c.counts.chmod);
const renameTargets = (c: RunCtx): string[] => first(c, c.counts.rename);
const count = (s: Stage, want: number): number => Math.min(want, s.targets.candidates.length);

/**
 * Names that do not exist, spread over the image's directories in path order, as a
 * program's start asks for them: a library in each directory of a search path, a module in
 * each directory of an import path.
 */
export function missingNames(s: Stage, k: WorkloadCounts): string[] {
  // The root too ('' first), so an image without directories still has somewhere to ask.
  const dirs = ['', ...Object.keys(s.ref).filter((p) => s.ref[p]!.type === 'dir')].sort();
  return Array.from({ length: k.missing }, (_x, i) => joinRel(dirs[i % dirs.length]!, `probe-${i}.so`)).filter((p) => !(p in s.ref));
}

/** The whole merged view against the merged tree on disk (names, types, modes, owners, sizes). */
const mergedView = (c: RunCtx, expected = c.stage.ref): string[] => treeDiff(c.root, expected, 'merged view', { content: false });

function walkCheck(c: RunCtx, o: Outcome): string[] {
  return [...seen('entries seen by the walk', o.seen?.entries, c.stage.targets.entries), ...mergedView(c)];
}

/** The big file after its 1-byte append: size, first MiB, last byte. */
function bigAppended(file: string, bytes: number, where: string): string[] {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    return [`${where}: ${(e as NodeJS.ErrnoException).code}`];
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size !== bytes + 1) return [`${where}: ${size} bytes, expected ${bytes + 1}`];
    const head = Buffer.alloc(Math.min(bytes, 1 << 20));
    fs.readSync(fd, head, 0, head.length, 0);
    const tail = Buffer.alloc(1);
    fs.readSync(fd, tail, 0, 1, bytes);
    const out: string[] = [];
    if (!head.equals(pattern(head.length))) out.push(`${where}: the first MiB differs from the lower file`);
    if (tail.toString() !== APPENDED) out.push(`${where}: last byte ${JSON.stringify(tail.toString())}, expected ${JSON.stringify(APPENDED)}`);
    return out;
  } finally {
    fs.closeSync(fd);
  }
}

export const WORKLOADS: Workload[] = [
  {
    id: 'cold-walk',
    title: (s) => `cold walk: readdir + lstat of ${n(s.targets.entries)} entries (caches dropped)`,
    prepare: () => dropCaches(),
    run: (c) => {
      const r = walkTree(c.root);
      return { seconds: r.seconds, seen: { entries: r.entries } };
    },
    check: walkCheck,
  },
  {
    id: 'warm-walk',
    title: () => 'warm walk (the second walk on the mount)',
    prepare: (c) => void walkTree(c.root),
    run: (c) => {
      const r = walkTree(c.root);
      return { seconds: r.seconds, seen: { entries: r.entries } };
    },
    check: walkCheck,
  },
  {
    id: 'stat-all',
    title: (s) => `stat of every entry by path, ${n(s.targets.entries)} (fresh mount)`,
    run: (c) => {
      const r = statPaths(c.root, Object.keys(c.stage.ref));
      return { seconds: r.seconds, seen: { files: r.files, fileBytes: r.fileBytes } };
    },
    check: (c, o) => {
      const files = Object.values(c.stage.ref).filter((e) => e.type === 'file');
      return [...seen('regular files', o.seen?.files, files.length), ...seen('bytes in regular files', o.seen?.fileBytes, files.reduce((a, e) => a + e.size!, 0))];
    },
  },
  {
    id: 'missing',
    title: (s, k) => `lstat of ${n(missingNames(s, k).length)} names that do not exist, ${MISSING_ROUNDS} times each, asked once before (what program starts ask again and again: the loader's search path, PATH, imports)`,
    // The first time costs what stat-all measures; this is the times after it.
    prepare: (c) => void statMissing(c.root, missingNames(c.stage, c.counts), 1),
    run: (c) => {
      const r = statMissing(c.root, missingNames(c.stage, c.counts), MISSING_ROUNDS);
      return { seconds: r.seconds, seen: { missing: r.missing } };
    },
    check: (c, o) => seen('lstats answered ENOENT', o.seen?.missing, missingNames(c.stage, c.counts).length * MISSING_ROUNDS),
  },
  {
    id: 'read-small',
    title: (s) => `read all ${n(s.targets.smallFiles.length)} small files, ${mib(s.targets.smallBytes)} (caches dropped)`,
    prepare: () => dropCaches(),
    run: (c) => {
      const r = readFiles(
        c.root,
        c.stage.targets.smallFiles.map(([p]) => p),
      );
      return { seconds: r.seconds, seen: { bytes: r.bytes } };
    },
    check: (c, o) => {
      const { smallFiles, smallBytes } = c.stage.targets;
      // Contents of a sample of about 200 files (from every layer), against the disk's.
      const step = Math.max(1, Math.floor(smallFiles.length / 200));
      const out = seen('bytes read', o.seen?.bytes, smallBytes);
      for (let i = 0; i < smallFiles.length; i += step) {
        const p = smallFiles[i]![0];
        if (!fs.readFileSync(path.join(c.root, p)).equals(fs.readFileSync(path.join(c.stage.nativeBase, p)))) out.push(`${p}: contents differ from the image's`);
      }
      return out;
    },
  },
  {
    id: 'read-big',
    title: (s) => `sequential read of the ${mib(s.targets.bigBytes)} file, 1 MiB reads, page cache warm`,
    prepare: (c) => void seqRead(path.join(c.root, c.stage.targets.bigFile)),
    // seqRead checks the data (a known pattern) and the length itself.
    run: (c) => ({ seconds: seqRead(path.join(c.root, c.stage.targets.bigFile)) }),
    check: () => [],
  },
  {
    id: 'copy-up',
    title: (s, k) => `copy-up of ${n(count(s, k.copyUp))} small files (1-byte append; p50/p99 of open + first write)`,
    run: (c) => appendByte(c.root, copyUpTargets(c)),
    check: (c) => {
      const out: string[] = [];
      for (const p of copyUpTargets(c)) {
        const want = appendedEntry(path.join(c.stage.nativeBase, p), APPENDED);
        out.push(...entryDiff(c.root, p, want, 'merged view'));
        if (c.upper) out.push(...entryDiff(c.upper, p, want, 'upper dir'));
      }
      return out;
    },
  },
  {
    id: 'copy-up-big',
    title: (s) => `copy-up of the ${mib(s.targets.bigBytes)} file (open, first 1-byte write, close)`,
    // The close too, as `echo x >> big` has it: closing a fresh 1 GiB copy once stalled
    // for seconds on stratafs (the copy was marked for writeback at its first close).
    run: (c) => ({ seconds: appendByte(c.root, [c.stage.targets.bigFile]).seconds }),
    // The first two or three copies of the 1 GiB file after staging take 0.7-5 s, the rest
    // ~0.4 s, whichever driver makes them (sessions 13 and 14): with medians of three, the
    // ratio said which driver met them.
    warmup: true,
    check: (c) => {
      const { bigFile, bigBytes } = c.stage.targets;
      return [...bigAppended(path.join(c.root, bigFile), bigBytes, 'merged view'), ...(c.upper ? bigAppended(path.join(c.upper, bigFile), bigBytes, 'upper dir') : [])];
    },
  },
  {
    id: 'chmod',
    title: (s, k) => `chmod of ${n(count(s, k.chmod))} lower files (metadata-only copy-up)`,
    run: (c) => ({ seconds: chmodFiles(c.root, chmodTargets(c), CHMOD_MODE) }),
    check: (c) => {
      const out: string[] = [];
      for (const p of chmodTargets(c)) {
        out.push(...entryDiff(c.root, p, { ...entryOf(path.join(c.stage.nativeBase, p)), mode: CHMOD_MODE }, 'merged view'));
        // The data may stay below (metacopy): in the upper dir only the mode must be there.
        if (c.upper) {
          const st = fs.lstatSync(path.join(c.upper, p), { throwIfNoEntry: false });
          if (!st?.isFile() || (st.mode & 0o7777) !== CHMOD_MODE) out.push(`upper dir: ${p}: ${st ? `mode ${(st.mode & 0o7777).toString(8)}` : 'missing'}, expected a file of mode ${CHMOD_MODE.toString(8)}`);
        }
      }
      return out;
    },
  },
  {
    id: 'create',
    title: (_s, k) => `create ${n(k.create)} empty files`,
    run: (c) => ({ seconds: createFiles(path.join(c.root, CREATED_DIR), c.counts.create) }),
    check: (c) => {
      const want = Array.from({ length: c.counts.create }, (_x, i) => `new-${i}`).sort();
      const listing = (dir: string, where: string): string[] => {
        const got = snapshotBelow(dir, { content: false });
        const names = Object.keys(got ?? {}).sort();
        return JSON.stringify(names) === JSON.stringify(want) ? [] : [`${where}: ${names.length} entries in ${CREATED_DIR}, expected ${want.length} (new-0 .. new-${want.length - 1})`];
      };
      return [...listing(path.join(c.root, CREATED_DIR), 'merged view'), ...(c.upper ? listing(path.join(c.upper, CREATED_DIR), 'upper dir') : [])];
    },
  },
  {
    id: 'rm-rf',
    title: (s) => `rm -rf of a ${n(s.targets.rmTreeEntries)}-entry lower tree`,
    run: (c) => ({ seconds: removeTree(path.join(c.root, c.stage.targets.rmTree)) }),
    check: (c) => {
      const { rmTree } = c.stage.targets;
      const out = gone(path.join(c.root, rmTree)) ? mergedView(c, without(c.stage.ref, rmTree)) : [`merged view: ${rmTree} is still there`];
      if (c.upper && !isWhiteout(c.upper, rmTree)) out.push(`upper dir: no whiteout for ${rmTree}`);
      return out;
    },
  },
  {
    id: 'rename',
    title: (s, k) => `rename ${n(count(s, k.rename))} lower files`,
    run: (c) => ({ seconds: renameFiles(c.root, renameTargets(c), RENAMED) }),
    check: (c) => {
      const out: string[] = [];
      for (const p of renameTargets(c)) {
        if (!gone(path.join(c.root, p))) out.push(`merged view: ${p} still there after its rename`);
        out.push(...entryDiff(c.root, p + RENAMED, entryOf(path.join(c.stage.nativeBase, p)), 'merged view'));
        if (c.upper) {
          if (!fs.existsSync(path.join(c.upper, p + RENAMED))) out.push(`upper dir: ${p}${RENAMED} is missing`);
          if (!isWhiteout(c.upper, p)) out.push(`upper dir: no whiteout for ${p}`);
        }
      }
      return out;
    },
  },
  {
    id: 'untar',
    title: (s) => `untar ${mib(s.untarBytes)} of small files (${n(s.untarFiles)}) into the mount`,
    run: (c) => ({ seconds: untar(c.stage.tarball, path.join(c.root, UNTAR_DIR)) }),
    check: (c) => [
      ...treeDiff(path.join(c.root, UNTAR_DIR), c.stage.untarRef, 'merged view', { mtime: true }),
      ...(c.upper ? treeDiff(path.join(c.upper, UNTAR_DIR), c.stage.untarRef, 'upper dir', { mtime: true }) : []),
    ],
  },
];

export function selectWorkloads(ids: string[] | undefined): Workload[] {
  if (!ids?.length) return WORKLOADS;
  for (const id of ids) if (!WORKLOADS.some((w) => w.id === id)) throw new Error(`unknown workload '${id}' (known: ${WORKLOADS.map((w) => w.id).join(', ')})`);
  return WORKLOADS.filter((w) => ids.includes(w.id));
}
