// The store's SQLite database (better-sqlite3): which layers exist, which images use them,
// tags, and the containers that pin images. The schema is documented in
// docs/on-disk-format.md; bump SCHEMA_VERSION and add a migration when it changes.

import Database from 'better-sqlite3';

export type Db = Database.Database;

export const SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS layers (
  diff_id   TEXT PRIMARY KEY,          -- sha256 of the uncompressed layer tar
  size      INTEGER NOT NULL,          -- bytes of regular-file content
  files     INTEGER NOT NULL,          -- entries extracted (files, dirs, links, ...)
  created   TEXT NOT NULL              -- when it was extracted (ISO 8601)
);
CREATE TABLE IF NOT EXISTS layer_blobs (
  digest     TEXT PRIMARY KEY,         -- sha256 of a (possibly compressed) blob it was loaded from
  diff_id    TEXT NOT NULL REFERENCES layers(diff_id) ON DELETE CASCADE,
  media_type TEXT NOT NULL,
  size       INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
  id        TEXT PRIMARY KEY,          -- sha256 of the config blob
  config    BLOB NOT NULL,             -- the config blob, byte for byte
  created   TEXT,                      -- the config's "created"
  loaded    TEXT NOT NULL,             -- when it entered the store
  digest    TEXT                       -- manifest digest it was loaded from (repo digest), if any
);
CREATE TABLE IF NOT EXISTS image_layers (
  image_id  TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  position  INTEGER NOT NULL,          -- 0 = bottom layer
  diff_id   TEXT NOT NULL REFERENCES layers(diff_id),
  PRIMARY KEY (image_id, position)
);
CREATE INDEX IF NOT EXISTS image_layers_by_layer ON image_layers(diff_id);
CREATE TABLE IF NOT EXISTS tags (
  repository TEXT NOT NULL,
  tag        TEXT NOT NULL,
  image_id   TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  tagged     TEXT NOT NULL,
  PRIMARY KEY (repository, tag)
);
CREATE INDEX IF NOT EXISTS tags_by_image ON tags(image_id);
CREATE TABLE IF NOT EXISTS containers (
  id        TEXT PRIMARY KEY,          -- 64 hex digits
  name      TEXT NOT NULL UNIQUE,
  image_id  TEXT NOT NULL REFERENCES images(id),
  created   TEXT NOT NULL
);
`;

export function openDb(file: string): Db {
  const db = new Database(file);
  // WAL: readers (images, inspect) never wait for a load in progress.
  db.pragma('journal_mode = WAL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > SCHEMA_VERSION) {
    db.close();
    throw new Error(`${file}: store schema version ${version} is newer than this strata (${SCHEMA_VERSION})`);
  }
  db.exec(SCHEMA);
  db.pragma(`user_version = ${SCHEMA_VERSION}`);
  return db;
}
