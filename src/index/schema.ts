// The path index's SQLite file: schema, opening, and what happens when it is damaged.
// The index is a cache of what the layer dirs and upper dirs hold, never the source of
// truth: a file that cannot be opened or fails its check is moved aside and rebuilt, with a
// warning, and the caller re-ingests from the dirs. docs/on-disk-format.md documents it.

import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { log } from '../util/log.js';

export type IndexDb = Database.Database;

export const INDEX_SCHEMA_VERSION = 2;

/** Flags of an entry row (entries.flags). */
export const F_WHITEOUT = 1; // char 0/0 device or `.wh.NAME` with no NAME in the same layer
export const F_OPAQUE = 2; // trusted.overlay.opaque=y, user.overlay.opaque=y or `.wh..wh..opq`
export const F_REPLACES = 4; // OCI: `.wh.NAME` and NAME in one layer (a directory replaced)
export const F_REDIRECT = 8; // trusted.overlay.redirect (target in entries.target)
export const F_METACOPY = 16; // trusted.overlay.metacopy: data lives in a lower layer

/** An object's attributes in its entries row, as the layer walk found them (lower layers never change). */
export interface RowAttrs {
  uid: number;
  gid: number;
  size: number;
  mtime_s: number;
  mtime_ns: number;
  atime_s: number;
  atime_ns: number;
  ctime_s: number;
  ctime_ns: number;
  blocks: number;
  blksize: number;
  /** st_rdev as glibc encodes it. */
  rdev: number;
}

/** The root of every layer: names row 1, with no parent. */
export const ROOT_IX = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS layers (
  id        INTEGER PRIMARY KEY,
  key       TEXT NOT NULL UNIQUE,      -- 'sha256:<diff id>' for store layers, 'dir:<realpath>' otherwise
  dir       TEXT NOT NULL,             -- where the layer is extracted
  stamp     TEXT NOT NULL,             -- dev:ino:ctime of the layer root when indexed
  entries   INTEGER NOT NULL DEFAULT 0,
  build_ms  REAL NOT NULL DEFAULT 0,
  complete  INTEGER NOT NULL DEFAULT 0,-- 1 once every entry is in
  special   INTEGER NOT NULL DEFAULT 0,-- 1 if it holds redirects or metacopies (disk resolver)
  built     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS names (
  id        INTEGER PRIMARY KEY,       -- path id; 1 = the root
  parent    INTEGER NOT NULL,
  name      TEXT NOT NULL,             -- bytes as latin1 (round-trips through UTF-8 text)
  UNIQUE (parent, name)
);
CREATE TABLE IF NOT EXISTS entries (
  path      INTEGER NOT NULL,          -- names.id
  layer     INTEGER NOT NULL,          -- layers.id
  mode      INTEGER NOT NULL,          -- st_mode incl. type (0 for an OCI whiteout marker)
  uid       INTEGER NOT NULL,
  gid       INTEGER NOT NULL,
  size      INTEGER NOT NULL,
  mtime_s   INTEGER NOT NULL,
  mtime_ns  INTEGER NOT NULL,
  atime_s   INTEGER NOT NULL,          -- when the layer was indexed (reads may move it later)
  atime_ns  INTEGER NOT NULL,
  ctime_s   INTEGER NOT NULL,
  ctime_ns  INTEGER NOT NULL,
  blocks    INTEGER NOT NULL,          -- st_blocks (512-byte units)
  blksize   INTEGER NOT NULL,
  rdev      INTEGER NOT NULL,          -- st_rdev as glibc encodes it
  ino       INTEGER NOT NULL,          -- st_ino inside the layer: hard-link identity
  nlink     INTEGER NOT NULL,
  flags     INTEGER NOT NULL,          -- F_* above
  target    TEXT,                      -- symlink target or redirect, latin1
  PRIMARY KEY (path, layer)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_by_layer ON entries(layer);
CREATE INDEX IF NOT EXISTS entries_links ON entries(layer, ino) WHERE nlink > 1 AND (mode & 61440) = 32768;
CREATE TABLE IF NOT EXISTS stacks (
  id        INTEGER PRIMARY KEY,
  key       TEXT NOT NULL UNIQUE,      -- chain key: sha256 over the layer keys, bottom up
  parent    INTEGER,                   -- the stack one layer shorter (shared by images with that base)
  layer     INTEGER NOT NULL,          -- its top layer
  depth     INTEGER NOT NULL           -- 1 = a single layer
);
CREATE TABLE IF NOT EXISTS uppers (
  id        INTEGER PRIMARY KEY,
  dir       TEXT NOT NULL UNIQUE,      -- the upper dir (realpath)
  stack     INTEGER NOT NULL,          -- the lower stack it sits on
  owner     TEXT,                      -- '<boot id>:<pid>' of the daemon writing it, NULL when clean
  updated   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS changes (
  upper     INTEGER NOT NULL,
  path      TEXT NOT NULL,             -- '/a/b', latin1
  kind      TEXT NOT NULL,             -- 'A' | 'C' | 'D'
  opaque    INTEGER NOT NULL DEFAULT 0,-- a directory hiding what the lower layers had
  origin    TEXT,                      -- for a renamed lower directory: where its lower contents are
  PRIMARY KEY (upper, path)
) WITHOUT ROWID;
`;

function openChecked(file: string): IndexDb {
  const db = new Database(file);
  try {
    db.pragma('journal_mode = WAL');
    // One writer (the daemon of each mount); NORMAL: a crash loses at most the last
    // transactions, which the upper-dir check at mount repairs.
    db.pragma('synchronous = NORMAL');
    db.pragma('busy_timeout = 5000');
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > INDEX_SCHEMA_VERSION) throw new Error(`index schema version ${version} is newer than this strata (${INDEX_SCHEMA_VERSION})`);
    // An older index lacks columns: it is rebuilt from the dirs like a damaged one.
    if (version !== 0 && version < INDEX_SCHEMA_VERSION) throw new Error(`index schema version ${version} is older than this strata's (${INDEX_SCHEMA_VERSION})`);
    const ok = db.pragma('quick_check', { simple: true });
    if (ok !== 'ok') throw new Error(`quick_check: ${String(ok)}`);
    db.exec(SCHEMA);
    db.prepare('INSERT OR IGNORE INTO names (id, parent, name) VALUES (?, 0, ?)').run(ROOT_IX, '');
    db.pragma(`user_version = ${INDEX_SCHEMA_VERSION}`);
    return db;
  } catch (e) {
    db.close();
    throw e;
  }
}

/**
 * Opens (creating) the index at `file`. A damaged or foreign file is moved aside to
 * FILE.broken-<time> with a warning and a fresh index is made: everything in it can be
 * rebuilt from the layer and upper dirs. `rebuilt` tells the caller which happened.
 */
export function openIndexDb(file: string): { db: IndexDb; rebuilt: boolean } {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  try {
    return { db: openChecked(file), rebuilt: false };
  } catch (e) {
    const why = (e as Error).message;
    if (/newer than this strata/.test(why)) throw new Error(`${file}: ${why}`);
    const older = /older than this strata/.test(why);
    const aside = `${file}.${older ? 'old' : 'broken'}-${Date.now()}`;
    log.warn({ file, err: why, movedTo: aside }, 'path index unreadable; rebuilding it from the layer dirs');
    process.stderr.write(`strata: ${older ? 'note' : 'warning'}: ${file}: ${older ? 'made by an older strata' : 'index unreadable'} (${why}); moved to ${aside}, rebuilding\n`);
    for (const suffix of ['', '-wal', '-shm']) {
      try {
        fs.renameSync(file + suffix, aside + suffix);
      } catch {
        /* not there */
      }
    }
    return { db: openChecked(file), rebuilt: true };
  }
}
