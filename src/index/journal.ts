// The journal of one upper (container) dir: for every path the container changed, whether
// it was added (A), changed (C) or deleted (D) relative to the lower layers, as `docker
// diff` shows it. The daemon records a path after the disk change is made (disk first,
// index after); copied-up parents are recorded as they are copied, so the parents of a
// change show as C. Reading it costs the number of changes, not the size of the image.
// The upper dir stays the truth: rebuild() recreates the journal from a walk of it alone.

import * as fs from 'node:fs';
import type { Statement } from 'better-sqlite3';
import { osPath } from '../util/os-path.js';
import { hasOpaqueXattr, isWhiteout, redirectOf, type ObjectKind } from '../util/overlay-records.js';
import type { IndexDb } from './schema.js';
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

const isDir = (st: ObjectKind): boolean => (Number(st.mode) & S_IFMT) === S_IFDIR;

function parentOf(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}

/** Rows under `prefix/`: a range on the primary key ('0' sorts right after '/'). */
const UNDER_RANGE = 'path > ? AND path < ?';

export class UpperJournal {
  private readonly upsert: Statement;
  private readonly remove: Statement;
  private readonly removeUnder: Statement;
  private readonly under: Statement;
  private readonly rowAt: Statement;

  constructor(
    private readonly db: IndexDb,
    readonly upperId: number,
    readonly upperDir: string,
    private readonly view: StackView,
  ) {
    this.upsert = db.prepare('INSERT INTO changes (upper, path, kind, opaque, origin) VALUES (?, ?, ?, ?, ?) ON CONFLICT (upper, path) DO UPDATE SET kind = excluded.kind, opaque = excluded.opaque, origin = excluded.origin');
    this.remove = db.prepare('DELETE FROM changes WHERE upper = ? AND path = ?');
    this.removeUnder = db.prepare(`DELETE FROM changes WHERE upper = ? AND ${UNDER_RANGE}`);
    this.under = db.prepare(`SELECT path FROM changes WHERE upper = ? AND ${UNDER_RANGE}`);
    this.rowAt = db.prepare('SELECT path, kind, opaque, origin FROM changes WHERE upper = ? AND path = ?');
  }

  private upperPath(rel: string): string | Buffer {
    return osPath(rel === '' ? this.upperDir : `${this.upperDir}/${rel}`);
  }

  /**
   * What the upper dir holds at `rel` now: read right after a change, while the path is
   * still the one the change made (the daemon writes the record itself a little later).
   */
  observe(rel: string, st: ObjectKind | undefined = fs.lstatSync(this.upperPath(rel), { bigint: true, throwIfNoEntry: false })): Observed {
    if (!st || !isDir(st)) return { st };
    const p = this.upperPath(rel);
    const r = redirectOf(p);
    // overlayfs writes a bare name for a rename inside one directory.
    const origin = r === undefined ? null : r.startsWith('/') ? r.replace(/^\/+/, '') : [parentOf(rel), r].filter(Boolean).join('/');
    return { st, opaque: hasOpaqueXattr(p), origin };
  }

  /** Brings the row of `rel` ('a/b') in line with what the upper dir held there (observe()). */
  record(rel: string, o: Observed): void {
    const path = `/${rel}`;
    const st = o.st;
    if (!st || !isDir(st)) this.removeUnder.run(this.upperId, `${path}/`, `${path}0`);
    if (!st) {
      this.remove.run(this.upperId, path);
      return;
    }
    const inLower = this.view.resolve(rel) !== undefined;
    if (isWhiteout(st)) {
      // A whiteout over nothing (under a renamed directory) is no change of the image.
      if (inLower) this.upsert.run(this.upperId, path, 'D', 0, null);
      else this.remove.run(this.upperId, path);
      return;
    }
    this.upsert.run(this.upperId, path, inLower ? 'C' : 'A', o.opaque ? 1 : 0, o.origin ?? null);
  }

  /** Runs several records as one transaction (the nested ones become savepoints). */
  inTransaction(fn: () => void): void {
    this.db.transaction(fn)();
  }

  /**
   * Records a copy-up of an object the lower layers show at this same path: a change (C)
   * with nothing to look up (a copy-up carries no opaque or redirect record).
   */
  copiedUp(rel: string): void {
    this.upsert.run(this.upperId, `/${rel}`, 'C', 0, null);
  }

  /**
   * Records a rename (or exchange) after it happened: rows under the old name move to the
   * new one and are looked at again (what was a change in place may now be an addition).
   */
  renamed(from: string, to: string, exchange: boolean): void {
    this.db.transaction(() => {
      const moved = (a: string): string[] => (this.under.all(this.upperId, `/${a}/`, `/${a}0`) as Array<{ path: string }>).map((r) => r.path.slice(a.length + 2));
      const fromKids = moved(from);
      const toKids = exchange ? moved(to) : [];
      this.removeUnder.run(this.upperId, `/${from}/`, `/${from}0`);
      this.removeUnder.run(this.upperId, `/${to}/`, `/${to}0`);
      const again = [from, to, ...fromKids.map((k) => `${to}/${k}`), ...toKids.map((k) => `${from}/${k}`)];
      for (const rel of again) this.record(rel, this.observe(rel));
    })();
  }

  /** Recreates the journal from a walk of the upper dir (crash repair, `strata index rebuild`). */
  rebuild(): number {
    let n = 0;
    this.db.transaction(() => {
      this.db.prepare('DELETE FROM changes WHERE upper = ?').run(this.upperId);
      const walk = (rel: string): void => {
        for (const name of fs.readdirSync(this.upperPath(rel), { encoding: 'latin1' })) {
          const child = rel === '' ? name : `${rel}/${name}`;
          const st = fs.lstatSync(this.upperPath(child), { bigint: true });
          this.record(child, this.observe(child, st));
          n++;
          if (isDir(st)) walk(child);
        }
      };
      walk('');
    })();
    return n;
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

  private upperHas(rel: string): ObjectKind | undefined {
    return fs.lstatSync(this.upperPath(rel), { bigint: true, throwIfNoEntry: false }) ?? undefined;
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
