// Opening the path index file: only a file SQLite calls damaged (or that fails its check,
// or is of an older schema) is moved aside and rebuilt. A failure that says nothing of the
// file (another process holding the lock, no access) is reported with the file and the
// SQLite code, and the file stays where running daemons keep writing to it. Real SQLite
// files and locks, no mocks.

import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { PathIndex } from '../../src/index/path-index.js';
import { checkIndex } from '../../src/index/check.js';
import { knownSound } from '../../src/index/known-sound.js';
import { native } from '../../src/native/binding.js';
import { INDEX_SCHEMA_VERSION, moveAside, openIndexDb, ROOT_IX } from '../../src/index/schema.js';
import { tmpdir } from '../helpers/mount.js';

const root = tmpdir('index-open');
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const open: Array<{ close(): void }> = [];
afterEach(() => {
  for (const o of open.splice(0).reverse()) o.close();
});

let n = 0;
function dir(): string {
  const d = path.join(root, `t${++n}`);
  fs.mkdirSync(d);
  return d;
}

/** An index with a layer and a journal in it, closed. */
function made(file: string): void {
  const layer = path.join(path.dirname(file), 'layer');
  fs.mkdirSync(`${layer}/etc`, { recursive: true });
  fs.writeFileSync(`${layer}/etc/hosts`, 'x');
  const index = PathIndex.open(file);
  try {
    index.stack([layer]);
  } finally {
    index.close();
  }
}

/** Runs SQL on the file from another connection, as an older or newer strata would have written it. */
function alter(file: string, sql: string): void {
  const db = new Database(file);
  try {
    db.exec(sql);
  } finally {
    db.close();
  }
}

const movedAside = (file: string): string[] => fs.readdirSync(path.dirname(file)).filter((f) => f.startsWith(`${path.basename(file)}.`) && /\.(broken|old)-\d+/.test(f));
const layerCount = (file: string): number => {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare('SELECT count(*) FROM layers').pluck().get() as number;
  } finally {
    db.close();
  }
};

/** Another process's connection holding the write lock (a daemon's flush, an ingest batch). */
function holdWriteLock(file: string): Database.Database {
  const db = new Database(file);
  open.push(db);
  db.pragma('journal_mode = WAL');
  db.exec('BEGIN EXCLUSIVE');
  db.exec("CREATE TABLE IF NOT EXISTS held_by_test (x)");
  return db;
}

describe('opening the path index', () => {
  it('an index in use opens without writing: another writer holding the lock is no obstacle', () => {
    const file = path.join(dir(), 'index.db');
    made(file);
    const other = holdWriteLock(file);
    const t0 = performance.now();
    const { db, rebuilt } = openIndexDb(file, 2000);
    db.close();
    expect(rebuilt).toBe(false);
    expect(performance.now() - t0).toBeLessThan(1000);
    other.exec('ROLLBACK');
  });

  it('a new index that another process is creating meanwhile: the lock is waited for, then reported', () => {
    const file = path.join(dir(), 'index.db');
    const other = holdWriteLock(file);
    let err: Error & { code?: string } = new Error('none');
    try {
      openIndexDb(file, 100).db.close();
    } catch (e) {
      err = e as Error & { code?: string };
    }
    expect(err.message).toMatch(new RegExp(`^${file}: cannot open the path index: .*\\(SQLITE_BUSY\\)`));
    expect(err.code).toBe('SQLITE_BUSY');
    expect(movedAside(file)).toEqual([]);
    other.exec('COMMIT');
    const { db, rebuilt } = openIndexDb(file, 100);
    db.close();
    expect(rebuilt).toBe(false);
  });

  it('a file SQLite cannot open at all (here: a directory in its place) is reported, not moved', () => {
    const file = path.join(dir(), 'index.db');
    fs.mkdirSync(file);
    expect(() => openIndexDb(file)).toThrow(new RegExp(`^${file}: cannot open the path index: .*\\(SQLITE_CANTOPEN\\)`));
    expect(fs.statSync(file).isDirectory()).toBe(true);
    expect(movedAside(file)).toEqual([]);
  });

  it('a damaged file is moved aside and a fresh index made', () => {
    const file = path.join(dir(), 'index.db');
    made(file);
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, Buffer.alloc(4096, 0x5a), 0, 4096, 0);
    fs.closeSync(fd);
    const { db, rebuilt } = openIndexDb(file);
    open.push(db);
    expect(rebuilt).toBe(true);
    expect(movedAside(file)).toEqual([expect.stringMatching(/^index\.db\.broken-\d+$/)]);
    expect(db.prepare('SELECT count(*) FROM layers').pluck().get()).toBe(0);
  });

  /** Garbage over the third page (a table's or index's b-tree page, not the header): only a full check finds it. */
  function damageInside(file: string): void {
    expect(fs.statSync(file).size).toBeGreaterThan(3 * 4096);
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, Buffer.alloc(4096, 0x5a), 0, 4096, 2 * 4096);
    fs.closeSync(fd);
  }

  /** The same damage with the file's size and mtime put back: the state recorded as sound. */
  function damageUnseen(file: string): void {
    const st = fs.statSync(file, { bigint: true });
    damageInside(file);
    const [s, ns] = [st.mtimeNs / 1_000_000_000n, st.mtimeNs % 1_000_000_000n];
    native.utimens(file, Number(s), Number(ns), Number(s), Number(ns), true);
  }

  it('a file changed since our last clean close (or passed check) is checked page by page at the next open', () => {
    const file = path.join(dir(), 'index.db');
    made(file);
    expect(knownSound(file)).toBe(true);
    damageInside(file);
    expect(knownSound(file)).toBe(false);
    const { db, rebuilt } = openIndexDb(file);
    open.push(db);
    expect(rebuilt).toBe(true);
    expect(movedAside(file)).toEqual([expect.stringMatching(/^index\.db\.broken-\d+$/)]);
    // The fresh index passed its check: known sound until something else changes it.
    expect(knownSound(file)).toBe(true);
  });

  it('a file in the state our last clean close left is not read whole at open (the record decides)', () => {
    const file = path.join(dir(), 'index.db');
    made(file);
    damageUnseen(file);
    expect(knownSound(file)).toBe(true);
    const { db, rebuilt } = openIndexDb(file);
    open.push(db);
    expect(rebuilt).toBe(false);
    // Without the record, the open checks and finds the damage.
    db.close();
    open.pop();
    fs.rmSync(`${file}-sound`);
    const again = openIndexDb(file);
    open.push(again.db);
    expect(again.rebuilt).toBe(true);
  });

  it('strata index check reads every page of a file known sound; damage it finds makes the next open rebuild', () => {
    const file = path.join(dir(), 'index.db');
    made(file);
    damageUnseen(file);
    const index = PathIndex.open(file);
    expect(index.rebuilt).toBe(false);
    const found = checkIndex(index);
    index.close();
    expect(found.length).toBeGreaterThan(0);
    for (const line of found) expect(line).toMatch(new RegExp(`^index file ${file}: .+ \\(moved aside and rebuilt at the next open\\)$`));
    expect(knownSound(file)).toBe(false);
    const { db, rebuilt } = openIndexDb(file);
    open.push(db);
    expect(rebuilt).toBe(true);
  });

  it('a damaged file another process has replaced meanwhile is not moved aside: the replacement stays', () => {
    const file = path.join(dir(), 'index.db');
    made(file);
    const seen = `${fs.statSync(file).dev}:${fs.statSync(file).ino}`;
    // The other process: moved the damaged file aside and made a fresh index in its place.
    fs.renameSync(file, `${file}.broken-1`);
    made(file);
    expect(moveAside(file, seen, `${file}.broken-2`)).toBe(false);
    expect(layerCount(file)).toBe(1);
    expect(movedAside(file)).toEqual(['index.db.broken-1']);
    // The file it did find unusable is moved, with its -wal and -shm.
    const now = `${fs.statSync(file).dev}:${fs.statSync(file).ino}`;
    expect(moveAside(file, now, `${file}.broken-3`)).toBe(true);
    expect(fs.existsSync(file)).toBe(false);
    expect(movedAside(file)).toContain('index.db.broken-3');
    expect(movedAside(file).some((f) => f.startsWith('index.db.broken-2'))).toBe(false);
  });

  it('an index of an older schema is moved aside and rebuilt; one of a newer schema is refused and left', () => {
    const older = path.join(dir(), 'index.db');
    made(older);
    alter(older, `PRAGMA user_version = ${INDEX_SCHEMA_VERSION - 1}`);
    const { db, rebuilt } = openIndexDb(older);
    db.close();
    expect(rebuilt).toBe(true);
    expect(movedAside(older)).toEqual([expect.stringMatching(/^index\.db\.old-\d+$/)]);

    const newer = path.join(dir(), 'index.db');
    made(newer);
    alter(newer, 'PRAGMA user_version = 99');
    expect(() => openIndexDb(newer)).toThrow(`${newer}: index schema version 99 is newer than this strata (${INDEX_SCHEMA_VERSION})`);
    expect(movedAside(newer)).toEqual([]);
  });
});

describe('forgetting a deleted layer (rmi, image prune)', () => {
  it('drops its rows and the stacks on it; keeps them while an upper dir journal reads such a stack', () => {
    const base = dir();
    const file = path.join(base, 'index.db');
    const [a, b] = ['a', 'b'].map((l) => path.join(base, l));
    for (const l of [a!, b!]) {
      fs.mkdirSync(`${l}/etc`, { recursive: true });
      fs.writeFileSync(`${l}/etc/${path.basename(l)}`, 'x');
    }
    const upper = path.join(base, 'upper');
    fs.mkdirSync(upper);
    const index = PathIndex.open(file);
    open.push(index.db);
    const onB = index.stack([a!, b!]); // a over b: a stack on b, and one more on top of it
    index.stack([b!]);
    const count = (sql: string): number => index.db.prepare(sql).pluck().get() as number;
    expect(count('SELECT count(*) FROM stacks')).toBe(2);
    // An upper dir's journal reads the stack a-over-b: b stays, and so does everything on it.
    const journal = index.attachUpper(upper, onB);
    expect(index.forgetLayer(fs.realpathSync(b!))).toBe(false);
    expect(count('SELECT count(*) FROM layers')).toBe(2);
    index.detachUpper(journal);
    index.db.prepare('DELETE FROM uppers').run();
    expect(index.forgetLayer(fs.realpathSync(b!))).toBe(true);
    expect(count('SELECT count(*) FROM stacks')).toBe(0);
    expect(index.db.prepare('SELECT key FROM layers').pluck().all()).toEqual([fs.realpathSync(a!)]);
    expect(count('SELECT count(*) FROM entries WHERE layer NOT IN (SELECT id FROM layers)')).toBe(0);
    expect(index.forgetLayer(fs.realpathSync(b!))).toBe(false);
  });

  it('drops the names only deleted layers had, keeping shared ones, their parents and the root', () => {
    const base = dir();
    const [a, b] = ['a', 'b'].map((l) => path.join(base, l));
    fs.mkdirSync(`${a}/usr/share/doc`, { recursive: true });
    fs.writeFileSync(`${a}/usr/share/doc/a`, 'x');
    fs.mkdirSync(`${b}/usr/lib/deep/er`, { recursive: true });
    fs.writeFileSync(`${b}/usr/lib/deep/er/b`, 'x');
    fs.mkdirSync(`${b}/opt`);
    const index = PathIndex.open(path.join(base, 'index.db'));
    open.push(index.db);
    index.stack([a!, b!]);
    const paths = (): string[] => {
      const view = index.stack([a!]).view;
      const ids = index.db.prepare('SELECT id FROM names WHERE parent != 0').pluck().all() as number[];
      return ids.map((id) => view.pathOf(id)).sort();
    };
    expect(paths()).toEqual(['opt', 'usr', 'usr/lib', 'usr/lib/deep', 'usr/lib/deep/er', 'usr/lib/deep/er/b', 'usr/share', 'usr/share/doc', 'usr/share/doc/a']);
    // Nothing is unused while both layers are there.
    expect(index.dropUnusedNames()).toBe(0);
    expect(index.forgetLayer(fs.realpathSync(b!))).toBe(true);
    expect(index.dropUnusedNames()).toBe(5);
    expect(paths()).toEqual(['usr', 'usr/share', 'usr/share/doc', 'usr/share/doc/a']);
    expect(index.db.prepare('SELECT id FROM names WHERE parent = 0').pluck().all()).toEqual([ROOT_IX]);
    // The layer comes back (loaded again): its names are made anew and it resolves as before.
    const again = index.stack([a!, b!]).view;
    const usr = again.child(ROOT_IX, 'usr')!;
    expect(usr.rows.map((r) => r.layer)).toEqual([0, 1]);
    const lib = again.child(usr.ix, 'lib')!;
    expect(again.pathOf(again.child(again.child(lib.ix, 'deep')!.ix, 'er')!.ix)).toBe('usr/lib/deep/er');
  });
});
