// The union daemon's journal against other writers of a shared index file (the store's
// index.db is written by every container's daemon and by load/import/commit), without a
// mount: the union FileSystem is driven directly, with stand-in inodes, as a daemon's
// requests would drive it. Locks are real SQLite locks, held by a second connection (in
// this process, or in a child process that lets go while the daemon waits).

import Database from 'better-sqlite3';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import type { Context } from '../../src/fs/api.js';
import type { Inode } from '../../src/fs/inode.js';
import { checkIndex } from '../../src/index/check.js';
import { PathIndex } from '../../src/index/path-index.js';
import { StackView } from '../../src/index/stack-view.js';
import type { UNode } from '../../src/union/node.js';
import { rootStandIn, standIn } from '../../src/union/stand-in.js';
import { UnionFs } from '../../src/union/union-fs.js';
import { buildStack, d, f, type LayerSpec } from '../helpers/layers.js';
import { ROOT, tmpdir } from '../helpers/mount.js';
import { journalLines } from './helpers.js';

const root = tmpdir('index-contention');
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const SPEC: LayerSpec[] = [{ 'data/a.txt': 'a\n', 'data/sub': d(), 'etc/hosts': f('127.0.0.1 localhost\n') }, { 'data/b.txt': 'b\n' }];
const ctx: Context = { uid: 0, gid: 0, pid: process.pid };

/** What a test inspects of the daemon's private journal state. */
interface JournalState {
  journalBroken: boolean;
  pendingJournal: unknown[];
}

interface Env {
  upper: string;
  index: string;
  ufs: UnionFs;
  top: Inode<UNode>;
}

const open: Array<{ close(): void }> = [];
const children: ChildProcess[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  for (const o of open.splice(0).reverse()) o.close();
});

let n = 0;
function setup(): Env {
  const base = path.join(root, `t${++n}`);
  const { lowers } = buildStack(path.join(base, 'lowers'), SPEC);
  const upper = `${base}/upper`;
  const work = `${base}/work`;
  for (const dir of [upper, work]) fs.mkdirSync(dir);
  const index = `${base}/index.db`;
  // Held back until flushed by the test (or an fsync of the mount would).
  const ufs = new UnionFs({ lowers, upper, work, journalDelayMs: 600_000 });
  ufs.attachIndex(index);
  open.push({ close: () => void ufs.unmounted() });
  return { upper, index, ufs, top: rootStandIn(ufs.root().data) };
}

const state = (ufs: UnionFs): JournalState => ufs as unknown as JournalState;

/** The journal as another process reads it (`strata diff`). */
function recorded(e: Env): string[] {
  return journalLines(e.index, e.upper);
}

/**
 * A copied-up directory, written to the journal with no other writer about (a copy-up's
 * record writes without reading first). What the journal holds before someChanges().
 */
function copiedUpData(e: Env): { data: Inode<UNode>; had: string[] } {
  const data = standIn(e.top, 'data', e.ufs.lookup(ctx, e.top, 'data').data!, 0o040000);
  e.ufs.mkdir(ctx, data, 'first', 0o700);
  e.ufs.flushJournal();
  return { data, had: ['C /data', 'A /data/first'] };
}

/**
 * A few changes whose records read the index before they write it (is the new name in a
 * lower layer?), the first of the batch too: a deferred transaction then holds a read
 * snapshot when it asks for the write lock, and SQLite answers SQLITE_BUSY at once.
 */
function someChanges(e: Env, data: Inode<UNode>): string[] {
  e.ufs.mkdir(ctx, data, 'made', 0o700);
  e.ufs.mkdir(ctx, e.top, 'newdir', 0o755);
  e.ufs.symlink(ctx, e.top, 'sl', Buffer.from('data/a.txt'));
  return ['A /data/made', 'A /newdir', 'A /sl'];
}

const sorted = (xs: string[]): string[] => [...xs].sort((a, b) => (a.slice(2) < b.slice(2) ? -1 : 1));

/** Another connection to the index holding its write lock (what a running ingest batch or another daemon's flush does). */
function holdWriteLock(file: string): Database.Database {
  const db = new Database(file);
  open.push(db);
  db.exec('BEGIN IMMEDIATE');
  db.prepare("UPDATE layers SET built = built WHERE id = (SELECT min(id) FROM layers)").run();
  return db;
}

/** A child process that takes the write lock, says so, and lets go after `ms`. */
async function lockInChild(file: string, ms: number): Promise<ChildProcess> {
  const script = `
    const Database = require('better-sqlite3');
    const db = new Database(${JSON.stringify(file)});
    db.exec('BEGIN IMMEDIATE');
    db.prepare("INSERT INTO stacks (key, parent, layer, depth) VALUES ('held-by-test', NULL, 1, 1)").run();
    process.stdout.write('locked\\n');
    setTimeout(() => { db.exec('COMMIT'); db.close(); process.stdout.write('released\\n'); }, ${ms});
  `;
  const child = spawn(process.execPath, ['-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (b: Buffer) => {
      if (b.toString().includes('locked')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`lock holder exited early (${code})`)));
  });
  return child;
}

describe('the daemon journal with other writers on the same index file', () => {
  it('waits for a writer that holds the lock briefly (busy handler), instead of losing the batch', async () => {
    const e = setup();
    const { data, had } = copiedUpData(e);
    const want = [...had, ...someChanges(e, data)];
    const child = await lockInChild(e.index, 300);
    const t0 = performance.now();
    e.ufs.flushJournal();
    const waited = performance.now() - t0;
    expect(state(e.ufs).journalBroken).toBe(false);
    expect(state(e.ufs).pendingJournal).toHaveLength(0);
    expect(recorded(e)).toEqual(sorted(want));
    // It did wait for the other writer, and not much longer.
    expect(waited).toBeGreaterThan(100);
    await new Promise((r) => child.on('exit', r));
  });

  it('keeps a batch the lock holder outlasts, writes it once the lock is free, and never marks the journal broken', () => {
    const e = setup();
    const { data, had } = copiedUpData(e);
    const want = someChanges(e, data);
    const other = holdWriteLock(e.index);
    e.ufs.flushJournal();
    expect(state(e.ufs).journalBroken).toBe(false);
    expect(state(e.ufs).pendingJournal).toHaveLength(want.length);
    other.exec('COMMIT');
    expect(recorded(e)).toEqual(had);
    // A later change queues behind the batch put back, and one flush writes them in order.
    e.ufs.mkdir(ctx, e.top, 'later', 0o755);
    e.ufs.flushJournal();
    expect(state(e.ufs).journalBroken).toBe(false);
    expect(state(e.ufs).pendingJournal).toHaveLength(0);
    expect(recorded(e)).toEqual(sorted([...had, ...want, 'A /later']));
  });

  it('a directory renamed while records wait for the lock is written behind them, in order', async () => {
    const e = setup();
    e.ufs.mkdir(ctx, e.top, 'dir', 0o755);
    const dir = standIn(e.top, 'dir', e.ufs.lookup(ctx, e.top, 'dir').data!, 0o040000);
    e.ufs.mkdir(ctx, dir, 'kid', 0o755);
    const other = holdWriteLock(e.index);
    await e.ufs.rename(ctx, e.top, 'dir', e.top, 'moved', 0);
    expect(state(e.ufs).journalBroken).toBe(false);
    other.exec('COMMIT');
    e.ufs.flushJournal();
    expect(state(e.ufs).pendingJournal).toHaveLength(0);
    expect(recorded(e)).toEqual(['A /moved', 'A /moved/kid']);
  });

  it('a record that cannot be written breaks the journal once: the rest of its batch is kept, nothing more is queued, and readers go by the upper dir', () => {
    const e = setup();
    const { data, had } = copiedUpData(e);
    const db = new Database(e.index);
    open.push(db);
    // Refused as a full disk or a damaged index would refuse it (not a lock: that waits).
    db.exec(`CREATE TRIGGER refuse BEFORE INSERT ON changes WHEN NEW.path = '/data/bad' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`);
    for (const name of ['good1', 'bad', 'good2']) e.ufs.mkdir(ctx, data, name, 0o755);
    e.ufs.flushJournal();
    expect(state(e.ufs).journalBroken).toBe(true);
    const stored = (): string[] => db.prepare('SELECT path FROM changes ORDER BY path').pluck().all() as string[];
    const kept = ['/data', '/data/first', '/data/good1', '/data/good2'];
    expect(stored()).toEqual(kept);
    // Nothing more is queued (or logged): the next mount rebuilds the journal anyway.
    e.ufs.mkdir(ctx, data, 'after', 0o755);
    expect(state(e.ufs).pendingJournal).toHaveLength(0);
    e.ufs.flushJournal();
    expect(stored()).toEqual(kept);
    // Other processes see that the journal of this live daemon is incomplete.
    expect(db.prepare('SELECT broken FROM uppers').pluck().get()).toMatch(/refused by the test/);
    db.exec('DROP TRIGGER refuse');
    const truth = sorted([...had, 'A /data/after', 'A /data/bad', 'A /data/good1', 'A /data/good2']);
    expect(recorded(e)).toEqual(truth);
    // ... read from a rebuild that is rolled back: the daemon's rows are left as they are.
    expect(stored()).toEqual(kept);
    const index = PathIndex.open(e.index);
    try {
      const check = checkIndex(index);
      expect(check[0]).toMatch(/^upper .*: the journal is incomplete: its running daemon stopped recording after a failed write \(.*refused by the test.*\)/);
      expect(check).toContain(`upper ${e.upper}: A /data/bad is on disk, not in the journal`);
    } finally {
      index.close();
    }
    // Once the daemon is gone (a daemon with a broken journal leaves its owner mark at
    // unmount), the next reader rebuilds the journal for good.
    db.prepare("UPDATE uppers SET owner = 'another-boot:1'").run();
    expect(recorded(e)).toEqual(truth);
    expect(db.prepare('SELECT owner, broken FROM uppers').get()).toEqual({ owner: null, broken: null });
    expect(stored()).toEqual(truth.map((l) => l.slice(2)).sort());
  });

  it('a layer indexed by another process meanwhile (strata load) holds the daemon up for one of its batches at most, and loses nothing', async () => {
    const e = setup();
    const layer = path.join(root, `big-layer-${n}`);
    for (let d = 0; d < 200; d++) {
      fs.mkdirSync(`${layer}/d${d}`, { recursive: true });
      for (let f = 0; f < 100; f++) fs.writeFileSync(`${layer}/d${d}/f${f}`, '');
    }
    const script = `
      import { PathIndex } from ${JSON.stringify(pathToFileURL(path.join(ROOT, 'dist/index/path-index.js')).href)};
      const index = PathIndex.open(${JSON.stringify(e.index)});
      process.stdout.write('start\\n');
      const t0 = performance.now();
      index.addLayer(${JSON.stringify(layer)});
      index.close();
      process.stdout.write('done ' + Math.round(performance.now() - t0) + '\\n');
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    let out = '';
    child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', r));
    await new Promise<void>((r) => {
      const poll = setInterval(() => out.includes('start') && (clearInterval(poll), r()), 5);
    });
    // Batches as the daemon's timer writes them (waiting JOURNAL_LOCK_WAIT_MS at most),
    // one change each, until the other process has indexed the layer.
    const want: string[] = [];
    let written = 0;
    let slowest = 0;
    while (!out.includes('done')) {
      e.ufs.mkdir(ctx, e.top, `n${want.length}`, 0o755);
      want.push(`A /n${want.length}`);
      const t0 = performance.now();
      e.ufs.flushJournal(false);
      slowest = Math.max(slowest, performance.now() - t0);
      if (state(e.ufs).pendingJournal.length === 0) written++;
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(await exited).toBe(0);
    e.ufs.flushJournal();
    expect(state(e.ufs).journalBroken).toBe(false);
    expect(state(e.ufs).pendingJournal).toHaveLength(0);
    expect(recorded(e)).toEqual(sorted(want));
    // The ingestion leaves the lock free while it walks: most batches got in while it ran.
    expect(written).toBeGreaterThan(want.length / 2);
    expect(slowest).toBeLessThan(400);
  });
});

describe('two processes indexing one new layer at once (two mounts starting over a fresh layer)', () => {
  it('the second waits for the first and takes its result: one complete layer row, the id both were given', async () => {
    const base = path.join(root, `two-ingests-${++n}`);
    const layer = path.join(base, 'layer');
    for (let d = 0; d < 100; d++) {
      fs.mkdirSync(`${layer}/d${d}`, { recursive: true });
      for (let f = 0; f < 100; f++) fs.writeFileSync(`${layer}/d${d}/f${f}`, '');
    }
    const index = path.join(base, 'index.db');
    PathIndex.open(index).close();
    const ingest = (): { child: ChildProcess; out: () => string; exited: Promise<number | null> } => {
      const script = `
        import { PathIndex } from ${JSON.stringify(pathToFileURL(path.join(ROOT, 'dist/index/path-index.js')).href)};
        const index = PathIndex.open(${JSON.stringify(index)});
        process.stdout.write('start\\n');
        const id = index.addLayer(${JSON.stringify(layer)});
        index.close();
        process.stdout.write('id ' + id + '\\n');
      `;
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      children.push(child);
      let out = '';
      child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
      return { child, out: () => out, exited: new Promise((r) => child.on('exit', r)) };
    };
    // Started together: whichever takes the lock first makes the layer row and walks the
    // layer; the other finds that row incomplete while the walk goes on.
    const first = ingest();
    const second = ingest();
    expect(await first.exited).toBe(0);
    expect(await second.exited).toBe(0);
    const idOf = (out: string): number => Number(/id (\d+)/.exec(out)![1]);
    expect(idOf(second.out())).toBe(idOf(first.out()));
    const db = new Database(index, { readonly: true });
    open.push(db);
    const rows = db.prepare('SELECT id, entries, complete, builder FROM layers').all();
    expect(rows).toEqual([{ id: idOf(first.out()), entries: 100 * 100 + 100 + 1, complete: 1, builder: null }]);
    expect(db.prepare('SELECT count(*) FROM entries').pluck().get()).toBe(100 * 100 + 100 + 1);
  });
});

describe('journal repairs against other writers of the index', () => {
  /**
   * An upper dir whose journal needs a repair, left by a daemon that died (`dead`) or that
   * runs but stopped recording (`broken`: this process stands in for it, alive). Returns
   * each index read of the repair's walk with whether a write transaction was open then.
   */
  function repairReads(state: 'dead' | 'broken', meanwhile?: (index: PathIndex) => void): { reads: boolean[]; lines: string[] } {
    const e = setup();
    const data = standIn(e.top, 'data', e.ufs.lookup(ctx, e.top, 'data').data!, 0o040000);
    e.ufs.mkdir(ctx, data, 'made', 0o700);
    e.ufs.flushJournal();
    void e.ufs.unmounted();
    open.splice(open.length - 1, 1);
    // What the daemon did not record: found by the walk only.
    fs.writeFileSync(`${e.upper}/data/made/later`, 'x');
    const index = PathIndex.open(e.index);
    open.push(index);
    const owner = state === 'dead' ? 'gone:2147483646' : liveOwner;
    index.db.prepare('UPDATE uppers SET owner = ?, broken = ?').run(owner, state === 'broken' ? 'a write failed' : null);
    const reads: boolean[] = [];
    const spy = vi.spyOn(StackView.prototype, 'resolve').mockImplementation(function (this: StackView, rel: string) {
      if (reads.push(index.db.inTransaction) === 1) meanwhile?.(index);
      return resolve.call(this, rel);
    });
    try {
      return { reads, lines: index.upperChanges(e.upper).map((c) => `${c.kind} ${c.path}`) };
    } finally {
      spy.mockRestore();
    }
  }
  const resolve = StackView.prototype.resolve;
  const liveOwner = `${fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()}:${process.pid}`;

  it('a dead daemon\'s journal is rebuilt with the upper dir walked before the write lock is taken', () => {
    const { reads, lines } = repairReads('dead');
    expect(lines).toEqual(['C /data', 'A /data/made', 'A /data/made/later']);
    // One index read per entry of the walk (A or C?), none of them holding the lock.
    expect(reads.length).toBeGreaterThanOrEqual(3);
    expect(reads.filter((inTx) => inTx)).toEqual([]);
  });

  it('a journal its live daemon stopped writing is read from a walk made before the write lock too', () => {
    const { reads, lines } = repairReads('broken');
    expect(lines).toEqual(['C /data', 'A /data/made', 'A /data/made/later']);
    expect(reads.length).toBeGreaterThanOrEqual(3);
    expect(reads.filter((inTx) => inTx)).toEqual([]);
  });

  it('a mount that takes the upper dir while the walk goes on keeps its journal: the walk is not written over it', () => {
    // A daemon starting meanwhile rebuilds the journal itself as it takes the dir; here it
    // is this process, alive, with the journal it found (the walk's extra file is not in it).
    const { lines } = repairReads('dead', (index) => {
      const other = new Database(index.file);
      open.push(other);
      other.prepare('UPDATE uppers SET owner = ?').run(liveOwner);
    });
    expect(lines).toEqual(['C /data', 'A /data/made']);
  });
});
