// The journal of one upper (container) dir: for every path the container changed, whether
// it was added (A), changed (C) or deleted (D) relative to the lower layers, as `docker
// diff` shows it. The daemon records a path after the disk change is made (disk first,
// index after); copied-up parents are recorded as they are copied, so the parents of a
// change show as C. Reading it costs the number of changes, not the size of the image.
// The upper dir stays the truth: rebuild() recreates the journal from a walk of it alone.

import * as fs from 'node:fs';
import type { Statement } from 'better-sqlite3';
import { log } from '../util/log.js';
import { osPath } from '../util/os-path.js';
import { hasOpaqueXattr, isWhiteout, redirectOf, type ObjectKind } from '../util/overlay-records.js';
import { isBusy, type IndexDb } from './schema.js';
import type { LowerObject, StackView } from './stack-view.js';

export type ChangeKind = 'A' | 'C' | 'D';

export interface UpperChange {
  /** The union path, '/etc/passwd'. */
  path: string;
  kind: ChangeKind;
  /** A directory that hides what the lower layers had below it. */
  opaque?: boolean;
}

interface Row {
  path: string;
  kind: ChangeKind;
  opaque: number;
  origin: string | null;
}

/** An upper path as the journal needs it: the object there, and a directory's records. */
export interface Observed {
  st: ObjectKind | undefined;
  opaque?: boolean;
  /** Where a renamed directory came from (its redirect), as a union path. */
  origin?: string | null;
}

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;

/** Errors meaning "nothing there now" for a path read after the change that made it. */
const GONE = new Set(['ENOENT', 'ENOTDIR']);
const isDir = (st: ObjectKind): boolean => (Number(st.mode) & S_IFMT) === S_IFDIR;

function parentOf(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}

/** Rows under `prefix/`: a range on the primary key ('0' sorts right after '/'). */
const UNDER_RANGE = 'path > ? AND path < ?';

/** A record the daemon queued after a change, written later with others (writeBatch). */
export interface JournalRecord {
  write: (j: UpperJournal) => void;
  /** The path it is about, for the log. */
  rel: string;
}

/**
 * How long the daemon waits for the index's write lock before a batch of records goes back
 * to its queue to be tried again later. The daemon's event loop, so every request of the
 * mount, stands still while it waits, so it is short. The writers it waits for hold the
 * lock briefly: another mount's journal batch (a few ms), a 4,000-row batch of a layer
 * being indexed by `strata load`, `import` or `commit` (~40 ms of inserts; its walk is done
 * outside the lock). SQLite's busy handler polls (after 1, 2, 5, 10, 15, 20, 25 ms...), so
 * 100 ms finds the lock free between such batches. Longer holders (a journal rebuilt from a
 * big upper dir, `strata index rebuild` or `check`) are outwaited by retrying.
 */
export const JOURNAL_LOCK_WAIT_MS = 100;

/**
 * The wait when something waits on the journal itself: an fsync of the mount (`strata
 * diff` reads the journal right after it), the unmount. Also the daemon connection's busy
 * timeout for its other writes.
 */
export const JOURNAL_SETTLE_WAIT_MS = 1000;

/** A batch the lock kept out is tried again after as long as it has waited so far, within these bounds. */
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 5000;

/**
 * Records a daemon keeps for a lock that does not come free. Past this the journal is
 * given up (rebuilt from the upper dir, as after a failed write), so the daemon's memory
 * stays bounded.
 */
const BACKLOG_MAX = 65_536;

export class UpperJournal {
  private readonly upsert: Statement;
  private readonly remove: Statement;
  private readonly removeUnder: Statement;
  private readonly rowAt: Statement;
  /** Since when (ms) a batch of the daemon's records has waited for the lock (writeBatch); undefined when none waits. */
  private waitingSince: number | undefined;
  /**
   * Why this journal is known to be incomplete: its daemon, still running, stopped
   * recording after a write failed (uppers.broken). Set by the reader that loaded it.
   */
  incomplete: string | undefined;

  constructor(
    private readonly db: IndexDb,
    readonly upperId: number,
    readonly upperDir: string,
    private readonly view: StackView,
  ) {
    this.upsert = db.prepare('INSERT INTO changes (upper, path, kind, opaque, origin) VALUES (?, ?, ?, ?, ?) ON CONFLICT (upper, path) DO UPDATE SET kind = excluded.kind, opaque = excluded.opaque, origin = excluded.origin');
    this.remove = db.prepare('DELETE FROM changes WHERE upper = ? AND path = ?');
    this.removeUnder = db.prepare(`DELETE FROM changes WHERE upper = ? AND ${UNDER_RANGE}`);
    this.rowAt = db.prepare('SELECT path, kind, opaque, origin FROM changes WHERE upper = ? AND path = ?');
  }

  private upperPath(rel: string): string | Buffer {
    return osPath(rel === '' ? this.upperDir : `${this.upperDir}/${rel}`);
  }

  /**
   * What the upper dir holds at `rel` now: read right after a change, while the path is
   * still the one the change made (the daemon writes the record itself a little later).
   */
  observe(rel: string, known?: ObjectKind | null): Observed {
    // null: the caller knows nothing is there; undefined: it does not know, so look.
    const st = known === undefined ? this.upperHas(rel) : (known ?? undefined);
    if (!st || !isDir(st)) return { st };
    const p = this.upperPath(rel);
    const r = redirectOf(p);
    // overlayfs writes a bare name for a rename inside one directory.
    const origin = r === undefined ? null : r.startsWith('/') ? r.replace(/^\/+/, '') : [parentOf(rel), r].filter(Boolean).join('/');
    return { st, opaque: hasOpaqueXattr(p), origin };
  }

  /** The row `rel` ('a/b') gets for what the upper dir holds there (observe()); undefined: no change of the image. */
  private rowOf(rel: string, o: Observed): Row | undefined {
    const st = o.st;
    if (!st) return undefined;
    const path = `/${rel}`;
    const inLower = this.view.resolve(rel) !== undefined;
    // A whiteout over nothing (under a renamed directory) is no change of the image.
    if (isWhiteout(st)) return inLower ? { path, kind: 'D', opaque: 0, origin: null } : undefined;
    return { path, kind: inLower ? 'C' : 'A', opaque: o.opaque ? 1 : 0, origin: o.origin ?? null };
  }

  /** Brings the row of `rel` ('a/b') in line with what the upper dir held there (observe()). */
  record(rel: string, o: Observed): void {
    const path = `/${rel}`;
    if (!o.st || !isDir(o.st)) this.removeUnder.run(this.upperId, `${path}/`, `${path}0`);
    const row = this.rowOf(rel, o);
    if (row) this.upsert.run(this.upperId, row.path, row.kind, row.opaque, row.origin);
    else this.remove.run(this.upperId, path);
  }

  /**
   * Records of changes already made wait for the index lock (writeBatch): the journal is
   * behind the upper dir. A rename then waits behind them, and the unmount leaves the
   * journal marked unfinished.
   */
  get behind(): boolean {
    return this.waitingSince !== undefined;
  }

  /**
   * Writes the daemon's queued records, in order, in one transaction that takes the write
   * lock first (BEGIN IMMEDIATE: a transaction that read before it wrote would get
   * SQLITE_BUSY at once, without waiting, whenever another process held the lock or had
   * written since its read). Returns undefined once they are written. Returns in how many
   * ms to try again if another process kept the lock past the wait (JOURNAL_SETTLE_WAIT_MS
   * when `settle`, else JOURNAL_LOCK_WAIT_MS): nothing is written then, the caller keeps
   * the batch in front of its queue, and the journal is `behind` until a batch goes in.
   *
   * Should the transaction fail otherwise, it is rolled back and the records are written
   * again each in its own savepoint, so a record that fails takes no other with it (a
   * savepoint for every record had cost the daemon ~20 us a record: ~80 us a rename); the
   * failures are then thrown together.
   */
  writeBatch(batch: readonly JournalRecord[], settle: boolean): number | undefined {
    this.db.pragma(`busy_timeout = ${settle ? JOURNAL_SETTLE_WAIT_MS : JOURNAL_LOCK_WAIT_MS}`);
    const since = this.waitingSince;
    this.waitingSince = undefined;
    let written: boolean;
    try {
      written = this.tryBatch(batch);
    } finally {
      // The connection's other writes (unmount's, markIncomplete) wait as long as promised.
      this.db.pragma(`busy_timeout = ${JOURNAL_SETTLE_WAIT_MS}`);
    }
    if (written) {
      if (since !== undefined) log.info({ upper: this.upperDir, records: batch.length, waitedMs: Date.now() - since }, 'journal records written: the path index is free again');
      return undefined;
    }
    this.waitingSince = since ?? Date.now();
    const waited = Date.now() - this.waitingSince;
    if (since === undefined) log.warn({ upper: this.upperDir, records: batch.length }, 'the path index is locked by another process: journal records wait, and are written once it is free');
    if (batch.length > BACKLOG_MAX) throw new Error(`${batch.length} journal records waited ${waited} ms for the path index lock: the journal is given up`);
    return Math.min(RETRY_MAX_MS, Math.max(RETRY_MIN_MS, waited));
  }

  /** writeBatch()'s transactions: true once written, false if the lock stayed taken. */
  private tryBatch(batch: readonly JournalRecord[]): boolean {
    try {
      this.db
        .transaction(() => {
          for (const r of batch) r.write(this);
        })
        .immediate();
      return true;
    } catch (e) {
      if (isBusy(e)) return false;
    }
    const failed: string[] = [];
    try {
      this.db
        .transaction(() => {
          for (const r of batch) {
            try {
              this.db.transaction(() => r.write(this))();
            } catch (e) {
              failed.push(`/${r.rel}: ${(e as Error).message}`);
            }
          }
        })
        .immediate();
    } catch (e) {
      if (isBusy(e)) return false;
      throw e;
    }
    if (failed.length > 0) throw new Error(`${failed.length} of ${batch.length} journal records could not be written: ${failed.slice(0, 3).join('; ')}${failed.length > 3 ? '; ...' : ''}`);
    return true;
  }

  /**
   * Marks the journal incomplete for other readers while its daemon still runs
   * (uppers.broken), once the daemon stopped recording after a failed write: `strata diff`
   * and `strata index check` then go by the upper dir. Best effort: what broke the journal
   * may fail this too, and readers then learn it once the daemon is gone (its owner mark
   * stays, and the next reader rebuilds the journal).
   */
  markIncomplete(reason: string): void {
    try {
      this.db.prepare('UPDATE uppers SET broken = ? WHERE id = ?').run(reason.slice(0, 1000), this.upperId);
    } catch (e) {
      log.warn({ upper: this.upperDir, err: (e as Error).message }, 'could not mark the journal incomplete in the path index: readers trust it until this daemon exits');
    }
  }

  /**
   * Records a copy-up of an object the lower layers show at this same path: a change (C)
   * with nothing to look up (a copy-up carries no opaque or redirect record).
   */
  copiedUp(rel: string): void {
    this.upsert.run(this.upperId, `/${rel}`, 'C', 0, null);
  }

  /**
   * Records a rename (or exchange) of a directory, as a record of the daemon's queue
   * (writeBatch): the rows under both names go, and both are recorded again with what the
   * upper dir holds below them when it is written (what was a change in place may now be an
   * addition). Read from the disk, not moved from the old rows, so it is right however late
   * it is written, behind records that waited for the lock or after later renames.
   */
  renamed(from: string, to: string, exchange: boolean): void {
    this.removeUnder.run(this.upperId, `/${from}/`, `/${from}0`);
    this.removeUnder.run(this.upperId, `/${to}/`, `/${to}0`);
    if (exchange) this.recordTree(from);
    else this.record(from, this.observe(from));
    this.recordTree(to);
  }

  /** Visits `rel` and everything the upper dir holds below it, as they are now; returns how many. */
  private walk(rel: string, st: ObjectKind | undefined, visit: (rel: string, o: Observed) => void): number {
    visit(rel, this.observe(rel, st ?? null));
    if (!st || !isDir(st)) return 1;
    let n = 1;
    for (const name of this.upperNames(rel)) n += this.walk(`${rel}/${name}`, this.upperHas(`${rel}/${name}`), visit);
    return n;
  }

  /** The names in an upper directory; none when it is gone or was replaced since (a later change records that). */
  private upperNames(rel: string): string[] {
    try {
      return fs.readdirSync(this.upperPath(rel), { encoding: 'latin1' });
    } catch (e) {
      if (GONE.has((e as NodeJS.ErrnoException).code ?? '')) return [];
      throw e;
    }
  }

  /** Records `rel` and everything the upper dir holds below it, as they are now; returns how many. */
  private recordTree(rel: string, st: ObjectKind | undefined = this.upperHas(rel)): number {
    return this.walk(rel, st, (r, o) => this.record(r, o));
  }

  /**
   * The journal as a walk of the upper dir finds it, written nowhere yet: the walk (an
   * lstat, xattr reads and an index read per entry; seconds for a big layer) runs before
   * the write lock is taken, so running mounts' journals and ingests sharing the index are
   * not held up by it (replace() then holds the lock only to write the rows).
   */
  scan(): { rows: Row[]; walked: number } {
    const rows: Row[] = [];
    let walked = 0;
    for (const name of fs.readdirSync(this.upperPath(''), { encoding: 'latin1' })) {
      walked += this.walk(name, this.upperHas(name), (r, o) => {
        const row = this.rowOf(r, o);
        if (row) rows.push(row);
      });
    }
    return { rows, walked };
  }

  /** Replaces the stored journal with a scan's rows (inside the caller's write transaction). */
  replace(scan: { rows: readonly Row[] }): void {
    this.db.prepare('DELETE FROM changes WHERE upper = ?').run(this.upperId);
    for (const r of scan.rows) this.upsert.run(this.upperId, r.path, r.kind, r.opaque, r.origin);
  }

  /** Recreates the journal from a walk of the upper dir (crash repair, `strata index rebuild`); returns the entries walked. */
  rebuild(): number {
    const scan = this.scan();
    this.db.transaction(() => this.replace(scan)).immediate();
    return scan.walked;
  }

  /**
   * `fn`'s answer on a rebuild of the journal from the upper dir that is rolled back after:
   * the stored journal stays as it is (`strata index check`; `strata diff` of a journal
   * its running daemon stopped writing). The walk happens before the write lock (scan()).
   */
  asRebuilt<T>(fn: () => T): T {
    const scan = this.scan();
    const undo = new Error('rolled back');
    let out: { value: T } | undefined;
    try {
      this.db
        .transaction(() => {
          this.replace(scan);
          out = { value: fn() };
          throw undo;
        })
        .immediate();
    } catch (e) {
      if (e !== undo) throw e;
    }
    return out!.value;
  }

  /** The recorded rows, as stored (for `strata index check`). */
  rows(): Row[] {
    return this.db.prepare('SELECT path, kind, opaque, origin FROM changes WHERE upper = ? ORDER BY path').all(this.upperId) as Row[];
  }

  /**
   * The changes in docker's terms, sorted by path. A renamed lower directory brings its
   * lower contents along as additions; an opaque directory deletes the lower names it
   * hides. Both expansions read the index, and the upper dir only where they overlap it.
   */
  changes(): UpperChange[] {
    const out = new Map<string, UpperChange>();
    for (const r of this.rows()) {
      out.set(r.path, r.opaque ? { path: r.path, kind: r.kind, opaque: true } : { path: r.path, kind: r.kind });
      const rel = r.path.slice(1);
      if (r.origin !== null) {
        const lower = this.view.resolve(r.origin);
        if (lower) this.expand(lower, rel, 'A', out);
      } else if (r.opaque && r.kind === 'C') {
        const lower = this.view.resolve(rel);
        if (lower) for (const name of this.view.list(lower).keys()) if (!this.upperHas(`${rel}/${name}`)) out.set(`/${rel}/${name}`, { path: `/${rel}/${name}`, kind: 'D' });
      }
    }
    return [...out.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  /**
   * What the upper dir holds at `rel`, or undefined. A record written a little after its
   * change may find a parent renamed or replaced by a file since (ENOTDIR): nothing is at
   * `rel` then, as for ENOENT; the change that did it has its own record.
   */
  private upperHas(rel: string): ObjectKind | undefined {
    try {
      return fs.lstatSync(this.upperPath(rel), { bigint: true, throwIfNoEntry: false }) ?? undefined;
    } catch (e) {
      if (GONE.has((e as NodeJS.ErrnoException).code ?? '')) return undefined;
      throw e;
    }
  }

  /** Lower objects shown under `rel` (a renamed directory) that the upper dir does not replace. */
  private expand(dir: LowerObject, rel: string, kind: ChangeKind, out: Map<string, UpperChange>): void {
    for (const [name, child] of this.view.list(dir)) {
      const crel = `${rel}/${name}`;
      const st = this.upperHas(crel);
      const isLowerDir = (child.rows[0]!.mode & S_IFMT) === S_IFDIR;
      if (!st) {
        out.set(`/${crel}`, { path: `/${crel}`, kind });
        if (isLowerDir) this.expand(child, crel, kind, out);
        continue;
      }
      // An upper directory merged over this one (copied up after the rename) still shows
      // the lower names it does not hide; its own row is already in the journal.
      if (!isDir(st) || !isLowerDir) continue;
      const own = this.rowAt.get(this.upperId, `/${crel}`) as Row | undefined;
      if (!own?.opaque && !own?.origin) this.expand(child, crel, kind, out);
    }
  }
}
