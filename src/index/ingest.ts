// Filling a layer's table: one walk of its extracted dir, every entry with its metadata and
// the overlay/OCI records turned into flags, in write transactions of a few thousand rows
// (so the journals of running mounts sharing the file are never kept waiting long). The walk
// of each batch happens outside the write lock, which is held only while SQLite writes the
// rows: a daemon waiting to write its journal finds the lock free between batches (SQLite's
// busy handler polls; it does not queue). Lower layers never change: a layer is walked once,
// when first mounted or indexed.

import type { BigIntStats } from 'node:fs';
import * as fs from 'node:fs';
import { log } from '../util/log.js';
import { joinRel, osPath } from '../util/os-path.js';
import { sleepSync } from '../util/process.js';
import { hasOpaqueXattr, isMetacopy, isWhiteout, mayBeMetacopy, OCI_OPAQUE, OCI_WHITEOUT_PREFIX, redirectOf } from '../util/overlay-records.js';
import { ownerAlive, selfOwner } from './owner.js';
import { F_METACOPY, F_OPAQUE, F_REDIRECT, F_REPLACES, F_WHITEOUT, ROOT_IX, type IndexDb, type RowAttrs } from './schema.js';

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const NS = 1_000_000_000n;
const BATCH = 4000;
/** How often a process waiting for another that indexes the same layer looks again. */
const BUILDER_POLL_MS = 100;

export interface EntryRow extends RowAttrs {
  path: number;
  mode: number;
  ino: number;
  nlink: number;
  flags: number;
  target: string | null;
}

function splitTime(ns: bigint): [number, number] {
  let s = ns / NS;
  let r = ns % NS;
  if (r < 0n) {
    r += NS;
    s -= 1n;
  }
  return [Number(s), Number(r)];
}

/** `dev:ino:ctime` of a layer root: a plain dir replaced or changed at its top is noticed. */
export function layerStamp(dir: string): string {
  const st = fs.statSync(dir, { bigint: true });
  return `${st.dev}:${st.ino}:${st.ctimeNs}`;
}

/** The row of one object (not an OCI marker), with the records it carries as flags. */
export function rowOf(full: string, pathIx: number, st: BigIntStats, extraFlags: number): EntryRow {
  const mode = Number(st.mode);
  const type = mode & S_IFMT;
  let flags = extraFlags;
  let target: string | null = null;
  const p = osPath(full);
  if (isWhiteout(st)) flags |= F_WHITEOUT;
  else if (type === S_IFDIR) {
    if (hasOpaqueXattr(p)) flags |= F_OPAQUE;
    const redirect = redirectOf(p);
    if (redirect !== undefined) {
      flags |= F_REDIRECT;
      target = redirect;
    }
  } else if (type === S_IFLNK) target = fs.readlinkSync(p, { encoding: 'latin1' });
  else if (type === S_IFREG && mayBeMetacopy(Number(st.size), Number(st.blocks), Number(st.blksize)) && isMetacopy(p)) flags |= F_METACOPY;
  const [ms, mns] = splitTime(st.mtimeNs);
  const [as, ans] = splitTime(st.atimeNs);
  const [cs, cns] = splitTime(st.ctimeNs);
  return {
    path: pathIx,
    mode,
    uid: Number(st.uid),
    gid: Number(st.gid),
    size: Number(st.size),
    mtime_s: ms,
    mtime_ns: mns,
    atime_s: as,
    atime_ns: ans,
    ctime_s: cs,
    ctime_ns: cns,
    blocks: Number(st.blocks),
    blksize: Number(st.blksize),
    rdev: Number(st.rdev),
    ino: Number(st.ino),
    nlink: Number(st.nlink),
    flags,
    target,
  };
}

/** An OCI `.wh.NAME` with no NAME in its layer: the name is deleted. */
export function whiteoutRow(pathIx: number): EntryRow {
  return { path: pathIx, mode: 0, uid: 0, gid: 0, size: 0, mtime_s: 0, mtime_ns: 0, atime_s: 0, atime_ns: 0, ctime_s: 0, ctime_ns: 0, blocks: 0, blksize: 0, rdev: 0, ino: 0, nlink: 0, flags: F_WHITEOUT, target: null };
}

/**
 * Walks a layer dir and hands every row to `emit` (directories before their children).
 * `ixOf(parentIx, name)` interns a path. Shared by ingestion and `strata index check`.
 */
export function walkLayer(root: string, ixOf: (parent: number, name: string) => number, emit: (row: EntryRow) => void): void {
  const visit = (rel: string, ix: number, st: BigIntStats, extra: number): void => {
    const full = rel === '' ? root : `${root}/${rel}`;
    const isDir = (Number(st.mode) & S_IFMT) === S_IFDIR;
    const names = isDir ? fs.readdirSync(osPath(full), { encoding: 'latin1' }) : [];
    const present = new Set(names);
    emit(rowOf(full, ix, st, extra | (present.has(OCI_OPAQUE) ? F_OPAQUE : 0)));
    for (const n of names) {
      if (n === OCI_OPAQUE) continue;
      if (n.startsWith(OCI_WHITEOUT_PREFIX)) {
        const hidden = n.slice(OCI_WHITEOUT_PREFIX.length);
        // With the name present too, the layer replaced it: that row carries F_REPLACES.
        if (!present.has(hidden)) emit(whiteoutRow(ixOf(ix, hidden)));
        continue;
      }
      const childRel = joinRel(rel, n);
      const cst = fs.lstatSync(osPath(`${root}/${childRel}`), { bigint: true });
      visit(childRel, ixOf(ix, n), cst, present.has(OCI_WHITEOUT_PREFIX + n) ? F_REPLACES : 0);
    }
  };
  visit('', ROOT_IX, fs.lstatSync(root, { bigint: true }), 0);
}

export interface IngestProgress {
  (entries: number): void;
}

/**
 * Indexes the layer extracted at `dir` under `key`, unless it is indexed already with the
 * same root stamp. Returns its layer id. An interrupted ingestion (complete = 0) is
 * redone from the start.
 */
export function ingestLayer(db: IndexDb, key: string, dir: string, progress?: IngestProgress): number {
  const stamp = layerStamp(dir);
  type Known = { id: number; stamp: string; complete: number; builder: string | null } | undefined;
  const known = db.prepare('SELECT id, stamp, complete, builder FROM layers WHERE key = ?');
  const done = (l: Known): boolean => l !== undefined && l.complete === 1 && l.stamp === stamp;
  const seen = known.get(key) as Known;
  if (done(seen)) return seen!.id;
  const t0 = performance.now();
  const me = selfOwner();
  // Write transactions take the lock first (BEGIN IMMEDIATE), so they wait for other
  // writers with the busy timeout: one that read first would get SQLITE_BUSY at once.
  const begin = db.transaction((): { id: number; fresh: boolean } | { builder: number } => {
    // Read again under the lock: another process may have indexed it meanwhile.
    const old = known.get(key) as Known;
    if (done(old)) return { id: old!.id, fresh: false };
    // Another process is indexing it right now: starting over would delete the row its
    // next batches go to. Its result is waited for (a dead one's half is redone).
    const builder = old?.builder && old.builder !== me ? ownerAlive(old.builder) : undefined;
    if (builder !== undefined) return { builder };
    if (old) {
      db.prepare('DELETE FROM entries WHERE layer = ?').run(old.id);
      db.prepare('DELETE FROM layers WHERE id = ?').run(old.id);
    }
    return { id: Number(db.prepare("INSERT INTO layers (key, dir, stamp, built, builder) VALUES (?, ?, ?, datetime('now'), ?)").run(key, dir, stamp, me).lastInsertRowid), fresh: true };
  });
  let start = begin.immediate();
  for (let told = false; 'builder' in start; start = begin.immediate()) {
    if (!told) log.info({ layer: dir, pid: start.builder }, 'waiting for another process indexing this layer');
    told = true;
    sleepSync(BUILDER_POLL_MS);
  }
  const id = start.id;
  if (!start.fresh) return id;
  const intern = db.prepare('INSERT INTO names (parent, name) VALUES (?, ?) ON CONFLICT (parent, name) DO UPDATE SET name = excluded.name RETURNING id');
  const insert = db.prepare(
    'INSERT INTO entries (path, layer, mode, uid, gid, size, mtime_s, mtime_ns, atime_s, atime_ns, ctime_s, ctime_ns, blocks, blksize, rdev, ino, nlink, flags, target) ' +
      'VALUES (@path, @layer, @mode, @uid, @gid, @size, @mtime_s, @mtime_ns, @atime_s, @atime_ns, @ctime_s, @ctime_ns, @blocks, @blksize, @rdev, @ino, @nlink, @flags, @target)',
  );
  // The walk names each path by a provisional id (negative); a batch's names are interned
  // with its rows. Directories keep theirs, since their children may come in later batches.
  let nextTmp = -1;
  const interned = new Map<number, number>();
  let names: Array<[tmp: number, parent: number, name: string]> = [];
  let rows: EntryRow[] = [];
  let count = 0;
  let special = 0;
  const real = (ix: number): number => (ix < 0 ? interned.get(ix)! : ix);
  const write = db.transaction((last: boolean) => {
    for (const [tmp, parent, name] of names) interned.set(tmp, (intern.get(real(parent), name) as { id: number }).id);
    for (const r of rows) insert.run({ ...r, path: real(r.path), layer: id });
    count += rows.length;
    if (last) db.prepare('UPDATE layers SET entries = ?, build_ms = ?, complete = 1, special = ?, builder = NULL WHERE id = ?').run(count, performance.now() - t0, special, id);
  });
  const flush = (last: boolean): void => {
    write.immediate(last);
    for (const r of rows) if (r.path < 0 && (r.mode & S_IFMT) !== S_IFDIR) interned.delete(r.path);
    names = [];
    rows = [];
  };
  walkLayer(
    dir,
    (parent, name) => {
      const tmp = nextTmp--;
      names.push([tmp, parent, name]);
      return tmp;
    },
    (row) => {
      if (row.flags & (F_REDIRECT | F_METACOPY) || !Number.isSafeInteger(row.ino)) special = 1;
      rows.push(row);
      if (rows.length >= BATCH) {
        flush(false);
        progress?.(count);
      }
    },
  );
  flush(true);
  progress?.(count);
  return id;
}
