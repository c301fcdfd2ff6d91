// The path index's SQLite file: schema, opening, and what happens when it is damaged.
// The index is a cache of what the layer dirs and upper dirs hold, never the source of
// truth: a file SQLite calls damaged, or that fails its check, is moved aside and rebuilt,
// with a warning, and the caller re-ingests from the dirs. Any other failure to open it (a
// lock held too long, no permission, an I/O error, a full disk) is not the file's fault:
// it is reported and the file left where it is, since running daemons keep writing to it.
// docs/on-disk-format.md documents it.

import Database from 'better-sqlite3';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { log } from '../util/log.js';
import { dropSoundRecord, knownSound, markSound } from './known-sound.js';

export type IndexDb = Database.Database;

/**
 * 3: the metacopy flag is also read for small files (ext4 counts an xattr block in their
 * blocks), so a version-2 index may have missed lower metacopies: it is rebuilt.
 */
export const INDEX_SCHEMA_VERSION = 3;

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
  built     TEXT NOT NULL,
  builder   TEXT                       -- '<boot id>:<pid>' of the process indexing it while complete = 0
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
  updated   TEXT NOT NULL,
  broken    TEXT                       -- why its live daemon stopped recording (a failed write), else NULL
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

/** Busy timeout of a connection that nothing else limits: a command waits up to 5 s for another writer. */
export const DEFAULT_BUSY_TIMEOUT_MS = 5000;

/** The SQLite result code of an error from better-sqlite3 ('SQLITE_BUSY_SNAPSHOT', ...), if it is one. */
export function sqliteCode(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_') ? code : undefined;
}

/**
 * Another connection held the lock for longer than the busy timeout (or, in a transaction
 * that read before it wrote, had written since: SQLITE_BUSY_SNAPSHOT). Worth trying again.
 */
export function isBusy(e: unknown): boolean {
  return sqliteCode(e)?.startsWith('SQLITE_BUSY') === true;
}

/** A file that is not a usable index of ours: moved aside (`aside`.<time>) and rebuilt. */
class Unusable extends Error {
  constructor(
    message: string,
    readonly aside: 'broken' | 'old',
  ) {
    super(message);
  }
}

/** What SQLite says of a file that is not a sound database: only these mean "damaged". */
const DAMAGED = /^SQLITE_(CORRUPT|NOTADB)/;

function openChecked(file: string, busyTimeoutMs: number): IndexDb {
  // Before SQLite opens it: the state a clean close of ours left, or one a check passed.
  const sound = knownSound(file);
  const db = new Database(file, { timeout: busyTimeoutMs });
  try {
    db.pragma('journal_mode = WAL');
    // One writer (the daemon of each mount); NORMAL: a crash loses at most the last
    // transactions, which the upper-dir check at mount repairs.
    db.pragma('synchronous = NORMAL');
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > INDEX_SCHEMA_VERSION) throw new Error(`index schema version ${version} is newer than this strata (${INDEX_SCHEMA_VERSION})`);
    // An older index lacks columns: it is rebuilt from the dirs like a damaged one.
    if (version !== 0 && version < INDEX_SCHEMA_VERSION) throw new Unusable(`index schema version ${version} is older than this strata's (${INDEX_SCHEMA_VERSION})`, 'old');
    // Every page, so only for a state not known sound (known-sound.ts): a damaged header
    // fails above without it.
    if (!sound) {
      const ok = db.pragma('quick_check', { simple: true });
      if (ok !== 'ok') throw new Unusable(`quick_check: ${String(ok)}`, 'broken');
      markSound(file);
    }
    // An index in use is opened without writing (so without waiting for running daemons):
    // only a new one gets its tables.
    if (version === 0) {
      db.transaction(() => {
        db.exec(SCHEMA);
        db.prepare('INSERT OR IGNORE INTO names (id, parent, name) VALUES (?, 0, ?)').run(ROOT_IX, '');
        db.pragma(`user_version = ${INDEX_SCHEMA_VERSION}`);
      }).immediate();
    }
    return db;
  } catch (e) {
    db.close();
    throw e;
  }
}

/**
 * Opens (creating) the index at `file`. A damaged file (SQLite says corrupt or not a
 * database, or quick_check fails) or one of an older schema is moved aside to
 * FILE.broken-<time> (FILE.old-<time>) with a warning and a fresh index is made:
 * everything in it can be rebuilt from the layer and upper dirs. `rebuilt` tells the caller
 * which happened. Any other error is thrown, naming the file and the SQLite code, and the
 * file is left alone: a lock another process held past `busyTimeoutMs`, no permission,
 * an I/O error or a full disk says nothing of the file, and daemons that have it open would
 * go on writing to the file moved aside.
 */
export function openIndexDb(file: string, busyTimeoutMs = DEFAULT_BUSY_TIMEOUT_MS, retried = false): { db: IndexDb; rebuilt: boolean } {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const seen = fileIdentity(file);
  let why: Unusable;
  try {
    return { db: openChecked(file, busyTimeoutMs), rebuilt: false };
  } catch (e) {
    const code = sqliteCode(e);
    const message = (e as Error).message;
    if (e instanceof Unusable) why = e;
    else if (code && DAMAGED.test(code)) why = new Unusable(`${message} (${code})`, 'broken');
    else if (!code) throw new Error(`${file}: ${message}`, { cause: e });
    else throw Object.assign(new Error(`${file}: cannot open the path index: ${message} (${code}); the file is left as it is`, { cause: e }), { code });
  }
  const older = why.aside === 'old';
  const aside = `${file}.${why.aside}-${Date.now()}`;
  // Another process that found the same file unusable may have moved it aside and made a
  // fresh one meanwhile: that one is opened, not moved aside in its turn.
  if (!moveAside(file, seen, aside)) {
    if (retried) throw new Error(`${file}: the path index keeps being replaced while it is opened`);
    return openIndexDb(file, busyTimeoutMs, true);
  }
  log.warn({ file, err: why.message, movedTo: aside }, 'path index unreadable; rebuilding it from the layer dirs');
  process.stderr.write(`strata: ${older ? 'note' : 'warning'}: ${file}: ${older ? 'made by an older strata' : 'index unreadable'} (${why.message}); moved to ${aside}, rebuilding\n`);
  return { db: openChecked(file, busyTimeoutMs), rebuilt: true };
}

/** dev:ino of the file at a path, or undefined when there is none. */
function fileIdentity(file: string): string | undefined {
  const st = fs.statSync(file, { throwIfNoEntry: false });
  return st && `${st.dev}:${st.ino}`;
}

/**
 * Moves the index file (and its -wal and -shm) to `aside`, unless the file at that path is
 * no longer the one found unusable (`seen`, its dev:ino): then false, and nothing moved.
 */
export function moveAside(file: string, seen: string | undefined, aside: string): boolean {
  if (fileIdentity(file) !== seen) return false;
  dropSoundRecord(file);
  for (const suffix of ['', '-wal', '-shm']) {
    try {
      fs.renameSync(file + suffix, aside + suffix);
    } catch {
      /* not there */
    }
  }
  return true;
}
