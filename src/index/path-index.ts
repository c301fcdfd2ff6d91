// The path index: one SQLite file (schema.ts) holding every read-only layer's entries
// (ingest.ts), the stacks built from them (stack-view.ts) and the journals of the upper
// dirs mounted over them (journal.ts). The union mount asks it which layer owns a path;
// `strata diff` reads a container's journal; `strata index` inspects and repairs it.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { log } from '../util/log.js';
import { ingestLayer, type IngestProgress } from './ingest.js';
import { otherOwnerAlive, ownerAlive, selfOwner } from './owner.js';
import { JOURNAL_SETTLE_WAIT_MS, UpperJournal, type UpperChange } from './journal.js';
import { dropSoundRecord, markSound } from './known-sound.js';
import { DEFAULT_BUSY_TIMEOUT_MS, isBusy, openIndexDb, ROOT_IX, type IndexDb } from './schema.js';
import { StackView } from './stack-view.js';

export type { UpperChange } from './journal.js';

export interface IndexStats {
  file: string;
  /** The database and its write-ahead log, on disk. */
  bytes: number;
  entries: number;
  paths: number;
  stacks: number;
  layers: Array<{ dir: string; entries: number; buildMs: number; complete: number; built: string }>;
  /** `broken`: why its running daemon stopped recording (the journal is incomplete), else null. */
  uppers: Array<{ dir: string; owner: string | null; broken: string | null; changes: number }>;
}

export interface IndexedStack {
  id: number;
  view: StackView;
  /** Some layer holds overlayfs redirects or metacopies: the union probes the disk instead. */
  special: boolean;
}

const chainKey = (parent: string | undefined, layerKey: string): string => (parent === undefined ? createHash('sha256').update(layerKey).digest('hex') : createHash('sha256').update(`${parent} ${layerKey}`).digest('hex'));

export class PathIndex {
  private constructor(
    readonly file: string,
    readonly db: IndexDb,
    /** The file was unreadable and has been started afresh. */
    readonly rebuilt: boolean,
  ) {}

  /** `busyTimeoutMs`: how long a write waits for another process's (see DEFAULT_BUSY_TIMEOUT_MS). */
  static open(file: string, busyTimeoutMs = DEFAULT_BUSY_TIMEOUT_MS): PathIndex {
    const { db, rebuilt } = openIndexDb(file, busyTimeoutMs);
    return new PathIndex(file, db, rebuilt);
  }

  /** SQLite found the file damaged through this connection: closing it must not call it sound. */
  private damaged = false;

  /**
   * Closes the connection; the file as it leaves it needs no check at the next open
   * (known-sound.ts), unless this connection found it damaged.
   */
  close(): void {
    if (!this.db.open) return;
    this.db.close();
    if (!this.damaged) markSound(this.file);
  }

  /**
   * SQLite's check of every page of the file (`strata index check`). A failure also makes
   * the next open check it, and so move it aside and rebuild it. Returns the problems found.
   */
  checkPages(): string[] {
    const found = (this.db.pragma('quick_check') as Array<{ quick_check: string }>).map((r) => r.quick_check.replace(/\s*\n\s*/g, ' '));
    if (found.length === 1 && found[0] === 'ok') return [];
    this.damaged = true;
    dropSoundRecord(this.file);
    return found;
  }

  /** Indexes a layer dir once (a layer is keyed by its real path, re-indexed if its root changed). */
  addLayer(dir: string, progress?: IngestProgress): number {
    const real = fs.realpathSync(dir);
    return ingestLayer(this.db, real, real, progress);
  }

  /**
   * Drops a layer the store deleted (rmi, image prune): its rows and the stacks built on
   * it. Kept when an upper dir's journal still reads a stack with it (false then). The
   * names it alone used stay until dropUnusedNames (names are shared by layers).
   */
  forgetLayer(realDir: string): boolean {
    const layer = this.db.prepare('SELECT id FROM layers WHERE key = ?').get(realDir) as { id: number } | undefined;
    return layer !== undefined && this.forgetLayerId(layer.id);
  }

  private forgetLayerId(id: number): boolean {
    return this.db
      .transaction((): boolean => {
        const layer = this.db.prepare('SELECT id FROM layers WHERE id = ?').get(id) as { id: number } | undefined;
        if (!layer) return false;
        // A stack is its parent plus one layer: the stacks with this layer anywhere below.
        const stacks = (
          this.db
            .prepare('WITH RECURSIVE s(id) AS (SELECT id FROM stacks WHERE layer = ? UNION SELECT t.id FROM stacks t JOIN s ON t.parent = s.id) SELECT id FROM s')
            .all(layer.id) as Array<{ id: number }>
        ).map((r) => r.id);
        const used = this.db.prepare('SELECT 1 FROM uppers WHERE stack = ?');
        if (stacks.some((id) => used.get(id))) return false;
        const dropStack = this.db.prepare('DELETE FROM stacks WHERE id = ?');
        for (const id of stacks) dropStack.run(id);
        this.db.prepare('DELETE FROM entries WHERE layer = ?').run(layer.id);
        this.db.prepare('DELETE FROM layers WHERE id = ?').run(layer.id);
        return true;
      })
      .immediate();
  }

  /**
   * Deletes the names no layer has an entry for any more, keeping their ancestors' rows
   * (and the root's: its id is fixed), so removing images gives the space back instead of
   * leaving every path they ever had. Safe beside an ingest in another process: a batch
   * interns its names together with their rows, in one transaction. Returns how many.
   */
  dropUnusedNames(): number {
    const drop = this.db.prepare(
      'WITH RECURSIVE keep(id) AS (SELECT DISTINCT path FROM entries UNION SELECT n.parent FROM names n JOIN keep k ON n.id = k.id WHERE n.parent != 0) ' +
        `DELETE FROM names WHERE id != ${ROOT_IX} AND id NOT IN keep`,
    );
    return this.db.transaction(() => drop.run().changes).immediate();
  }

  /** The stack of these layer dirs (top first, as lowerdir), indexing any layer not yet in. */
  stack(dirs: readonly string[], progress?: (dir: string, entries: number) => void): IndexedStack {
    const ids = dirs.map((d) => this.addLayer(d, progress && ((n) => progress(d, n))));
    return this.stackOf(ids);
  }

  private stackOf(idsTopFirst: readonly number[]): IndexedStack {
    const keyOf = this.db.prepare('SELECT key, special FROM layers WHERE id = ?');
    const find = this.db.prepare('SELECT id FROM stacks WHERE key = ?');
    const add = this.db.prepare('INSERT INTO stacks (key, parent, layer, depth) VALUES (?, ?, ?, ?)');
    let parentKey: string | undefined;
    let parentId: number | null = null;
    let special = false;
    // Reads before it writes: BEGIN IMMEDIATE, so it waits for other writers (docs/index.md).
    this.db
      .transaction(() => {
        [...idsTopFirst].reverse().forEach((id, i) => {
          const l = keyOf.get(id) as { key: string; special: number };
          special ||= l.special === 1;
          const key = chainKey(parentKey, l.key);
          const found = find.get(key) as { id: number } | undefined;
          parentId = found ? found.id : Number(add.run(key, parentId, id, i + 1).lastInsertRowid);
          parentKey = key;
        });
      })
      .immediate();
    return { id: parentId!, view: new StackView(this.db, idsTopFirst), special };
  }

  /** The layers of a stored stack, top first. */
  private layersOfStack(stackId: number): number[] {
    const get = this.db.prepare('SELECT parent, layer FROM stacks WHERE id = ?');
    const out: number[] = [];
    for (let id: number | null = stackId; id !== null; ) {
      const r = get.get(id) as { parent: number | null; layer: number };
      out.push(r.layer);
      id = r.parent;
    }
    return out;
  }

  /**
   * Takes the journal of an upper dir for a mount: refused while another live daemon
   * holds it; rebuilt from the upper dir when the last daemon died without closing it (or
   * stopped recording) or the dir was last used over other layers. Close it with `detach`
   * on unmount. From here on the connection is a serving daemon's: its writes wait at most
   * JOURNAL_SETTLE_WAIT_MS for the lock, since the daemon's requests wait with them.
   */
  attachUpper(upperDir: string, stack: IndexedStack): UpperJournal {
    const dir = fs.realpathSync(upperDir);
    const row = this.db.prepare('SELECT id, stack, owner, broken FROM uppers WHERE dir = ?').get(dir) as { id: number; stack: number; owner: string | null; broken: string | null } | undefined;
    const holder = otherOwnerAlive(row?.owner ?? null);
    if (holder !== undefined) throw new Error(`${dir}: upper dir is in use by the stratafs daemon with pid ${holder}`);
    const id = row ? row.id : Number(this.db.prepare("INSERT INTO uppers (dir, stack, updated) VALUES (?, ?, datetime('now'))").run(dir, stack.id).lastInsertRowid);
    const journal = new UpperJournal(this.db, id, dir, stack.view);
    const stale = row !== undefined && (row.owner !== null || row.broken !== null || row.stack !== stack.id);
    if (stale || (!row && fs.readdirSync(dir).length > 0)) {
      const why = row?.broken ? `its last daemon stopped recording (${row.broken})` : row?.owner ? 'its last daemon died without unmounting' : row ? 'it was last mounted over other layers' : 'it is new to this index';
      const t0 = performance.now();
      const n = journal.rebuild();
      log.warn({ upper: dir, entries: n, ms: Math.round(performance.now() - t0) }, `upper-change journal rebuilt from the upper dir: ${why}`);
    }
    this.db
      .transaction(() => {
        // A rebuild that began after this stack's layers were read gives them new ids, and
        // the view would find no rows: its transaction and this one exclude each other.
        const ids = stack.view.layerIds;
        const complete = ids.length === 0 ? 0 : (this.db.prepare(`SELECT count(*) FROM layers WHERE complete = 1 AND id IN (${ids.join(',')})`).pluck().get() as number);
        if (complete !== ids.length) throw new Error(`${this.file}: the path index is being rebuilt (strata index rebuild): mount again once it is done (EBUSY)`);
        this.db.prepare("UPDATE uppers SET stack = ?, owner = ?, broken = NULL, updated = datetime('now') WHERE id = ?").run(stack.id, selfOwner(), id);
      })
      .immediate();
    this.db.pragma(`busy_timeout = ${JOURNAL_SETTLE_WAIT_MS}`);
    return journal;
  }

  /**
   * A clean unmount: the journal is complete, unless records still wait for the index lock
   * (the journal is then left marked unfinished, and its next reader rebuilds it).
   */
  detachUpper(journal: UpperJournal): void {
    if (!this.db.open) return;
    if (journal.behind) {
      log.warn({ upper: journal.upperDir }, 'unmounted with journal records still waiting for the path index lock: the journal stays marked unfinished, its next reader rebuilds it');
      return;
    }
    try {
      this.db.prepare("UPDATE uppers SET owner = NULL, updated = datetime('now') WHERE id = ?").run(journal.upperId);
    } catch (e) {
      if (!isBusy(e)) throw e;
      log.warn({ upper: journal.upperDir }, 'the path index stayed locked at unmount: the journal stays marked unfinished, its next reader rebuilds it');
    }
  }

  /**
   * The journal of an upper dir known to this index, or undefined. One whose daemon died
   * without unmounting is rebuilt from the upper dir first; one whose daemon runs but
   * stopped recording comes with `incomplete` set.
   */
  private journalOf(upperDir: string): UpperJournal | undefined {
    const dir = fs.realpathSync(upperDir);
    const row = this.db.prepare('SELECT id, stack, owner, broken FROM uppers WHERE dir = ?').get(dir) as { id: number; stack: number; owner: string | null; broken: string | null } | undefined;
    if (!row) return undefined;
    const journal = new UpperJournal(this.db, row.id, dir, new StackView(this.db, this.layersOfStack(row.stack)));
    const live = row.owner !== null && ownerAlive(row.owner) !== undefined;
    if (!live && (row.owner !== null || row.broken !== null)) {
      // Walked before the write lock (scan()); written only if no daemon took the upper
      // dir meanwhile (a mount rebuilds the journal itself as it takes it).
      const scan = journal.scan();
      const repaired = this.db
        .transaction((): boolean => {
          const now = this.db.prepare('SELECT owner, broken FROM uppers WHERE id = ?').get(row.id) as { owner: string | null; broken: string | null } | undefined;
          if (now?.owner !== row.owner || now.broken !== row.broken) return false;
          journal.replace(scan);
          this.db.prepare("UPDATE uppers SET owner = NULL, broken = NULL, updated = datetime('now') WHERE id = ?").run(row.id);
          return true;
        })
        .immediate();
      if (!repaired) return this.journalOf(upperDir);
      log.warn({ upper: dir }, `upper-change journal rebuilt: its daemon ${row.broken !== null ? `stopped recording (${row.broken})` : 'died without unmounting'}`);
    } else if (row.broken !== null) journal.incomplete = row.broken;
    return journal;
  }

  /**
   * The changes recorded for an upper dir, docker-diff style (see journal.ts). An upper dir
   * never mounted with this index has none if it is empty, and is an error otherwise. A
   * journal its running daemon stopped writing is not trusted: the answer comes from a
   * rebuild from the upper dir (rolled back: the daemon's row stays as it is).
   */
  upperChanges(upperDir: string): UpperChange[] {
    const j = this.journalOf(upperDir);
    if (j?.incomplete !== undefined) {
      log.warn({ upper: j.upperDir, why: j.incomplete }, 'the journal is incomplete (its daemon stopped recording): changes read from the upper dir');
      return j.asRebuilt(() => j.changes());
    }
    if (j) return j.changes();
    if (fs.readdirSync(upperDir).length === 0) return [];
    throw new Error(`${upperDir}: this upper dir was never mounted with the index ${this.file}; mount it once or run 'strata index rebuild'`);
  }

  /** What the index holds and what it costs (`strata index stats`). */
  stats(): IndexStats {
    const q = <T>(sql: string): T => this.db.prepare(sql).get() as T;
    let bytes = 0;
    for (const suffix of ['', '-wal']) bytes += fs.statSync(this.file + suffix, { throwIfNoEntry: false })?.size ?? 0;
    const layers = this.db.prepare('SELECT dir, entries, build_ms AS buildMs, complete, built FROM layers ORDER BY id').all() as IndexStats['layers'];
    const entries = layers.reduce((n, l) => n + l.entries, 0);
    return {
      file: this.file,
      bytes,
      entries,
      paths: q<{ n: number }>('SELECT count(*) AS n FROM names').n,
      stacks: q<{ n: number }>('SELECT count(*) AS n FROM stacks').n,
      layers,
      uppers: this.db.prepare('SELECT u.dir, u.owner, u.broken, (SELECT count(*) FROM changes c WHERE c.upper = u.id) AS changes FROM uppers u ORDER BY u.dir').all() as IndexStats['uppers'],
    };
  }

  /**
   * Recreates everything from the dirs alone: every layer walked again, every journal
   * rebuilt. Refused while a live daemon holds a journal here: a layer walked again gets a
   * new id, and the mount's view of its stack, which reads the rows by the ids it started
   * with, would find none of its lower names any more.
   */
  rebuild(progress?: (what: string) => void): void {
    // In one transaction with the check, every layer is marked as built by this process
    // before the first is walked: a mount starting meanwhile waits for each (ingestLayer),
    // and one that read the old ids first is refused as it attaches (attachUpper).
    this.db
      .transaction(() => {
        for (const u of this.db.prepare('SELECT dir, owner FROM uppers WHERE owner IS NOT NULL ORDER BY dir').all() as Array<{ dir: string; owner: string }>) {
          const pid = otherOwnerAlive(u.owner);
          if (pid !== undefined) throw new Error(`${this.file}: in use by the stratafs daemon with pid ${pid} (upper dir ${u.dir}): a rebuild would take its layers' rows from under its mount; unmount first (\`strata index check\` works while mounted) (EBUSY)`);
        }
        this.db.prepare('UPDATE layers SET complete = 0, builder = ?').run(selfOwner());
      })
      .immediate();
    for (const l of this.db.prepare('SELECT id, dir FROM layers ORDER BY id').all() as Array<{ id: number; dir: string }>) {
      if (!fs.existsSync(l.dir)) {
        progress?.(`dropping ${l.dir} (gone)`);
        this.db
          .transaction(() => {
            this.db.prepare('DELETE FROM entries WHERE layer = ?').run(l.id);
            this.db.prepare('UPDATE layers SET complete = 0 WHERE id = ?').run(l.id);
          })
          .immediate();
        continue;
      }
      progress?.(`indexing ${l.dir}`);
      ingestLayer(this.db, l.dir, l.dir);
    }
    for (const u of this.uppers()) {
      if (!fs.existsSync(u.dir)) continue;
      progress?.(`journal of ${u.dir}`);
      u.journal()?.rebuild();
    }
  }

  /** Drops an upper dir's journal (its container is being removed). */
  forgetUpper(upperDir: string): void {
    const dir = fs.existsSync(upperDir) ? fs.realpathSync(upperDir) : upperDir;
    this.db
      .transaction(() => {
        const row = this.db.prepare('SELECT id FROM uppers WHERE dir = ?').get(dir) as { id: number } | undefined;
        if (!row) return;
        this.db.prepare('DELETE FROM changes WHERE upper = ?').run(row.id);
        this.db.prepare('DELETE FROM uppers WHERE id = ?').run(row.id);
      })
      .immediate();
  }

  /**
   * Drops what points at dirs that are gone: journals of upper dirs deleted with their
   * containers (unless a live daemon holds one), then layers whose dirs were deleted
   * (unless a journal still reads a stack with them), then the names nobody has left. An
   * index shared by many plain mounts (`-o index=FILE`, a mount program's containers)
   * otherwise keeps every layer and container it ever saw; the store does this itself
   * on rmi and prune.
   */
  prune(): { uppers: number; layers: number; names: number } {
    let uppers = 0;
    let layers = 0;
    for (const u of this.db.prepare('SELECT dir, owner FROM uppers').all() as Array<{ dir: string; owner: string | null }>) {
      if (fs.existsSync(u.dir) || (u.owner !== null && ownerAlive(u.owner) !== undefined)) continue;
      this.forgetUpper(u.dir);
      uppers++;
    }
    for (const l of this.db.prepare('SELECT id, dir FROM layers').all() as Array<{ id: number; dir: string }>) {
      if (!fs.existsSync(l.dir) && this.forgetLayerId(l.id)) layers++;
    }
    return { uppers, layers, names: uppers + layers > 0 ? this.dropUnusedNames() : 0 };
  }

  /** Every upper dir this index keeps a journal for. */
  uppers(): Array<{ dir: string; journal: () => UpperJournal | undefined }> {
    return (this.db.prepare('SELECT dir FROM uppers ORDER BY dir').all() as Array<{ dir: string }>).map((r) => ({ dir: r.dir, journal: () => this.journalOf(r.dir) }));
  }
}
