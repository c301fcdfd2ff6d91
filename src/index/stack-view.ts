// The resolved view of one layer stack. A stack is a chain of layers (OCI's chain id: each
// stack is its parent stack plus one layer), stored once per chain in `stacks`, so images
// sharing a base share those rows and making a stack of N layers costs its new layers'
// ingestion only. Resolving a path reads that path's rows (one per layer that has it)
// and applies the union rule (resolution.ts) to them: the cost follows how many layers
// touch the path, not how many layers the stack has. A bounded hot cache sits above.

import type { Statement } from 'better-sqlite3';
import { HotCache } from './hot-cache.js';
import { mergeDown, type Probe } from './resolution.js';
import { F_OPAQUE, F_REPLACES, F_WHITEOUT, ROOT_IX, type IndexDb, type RowAttrs } from './schema.js';

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
/** The largest directory (in rows: names x layers) whose listing a lookup loads at once. */
const LISTED_ROWS = 2_048;
/** Names held by the cached listings in all: 64 listings of the largest a lookup loads. */
const LISTINGS_CACHED_NAMES = 64 * LISTED_ROWS;
/** A one-name query costs about what a listing costs for this many names (~10 us / ~3 us, in the daemon). */
const NAMES_PER_QUERY = 3;

/** One layer's entry for a path, as the union needs it. */
export interface LowerRow extends RowAttrs {
  /** Position in the stack: 0 = top layer (overlayfs's lowerdir order). */
  layer: number;
  mode: number;
  flags: number;
  ino: number;
  nlink: number;
}

export interface PathRows {
  /** The path id (names.id). */
  ix: number;
  /** Top first; only layers of this stack. */
  rows: LowerRow[];
}

/**
 * A row as the statements below return it: in raw mode, an array per row (no object built
 * by SQLite and copied again here: with 19 columns that was ~3 us of every lookup query).
 * Order: names.id, names.name, then the LowerRow columns as own() reads them.
 */
type RawRow = [ix: number, name: string, ...columns: number[]];
const SELECT_ROWS =
  'SELECT n.id, n.name, e.layer, e.mode, e.flags, e.ino, e.nlink, e.uid, e.gid, e.size, e.mtime_s, e.mtime_ns, ' +
  'e.atime_s, e.atime_ns, e.ctime_s, e.ctime_ns, e.blocks, e.blksize, e.rdev FROM names n JOIN entries e ON e.path = n.id';

export function probeOf(row: LowerRow | undefined): Probe {
  if (!row) return { found: 'none', hides: false };
  if (row.flags & F_WHITEOUT) return { found: 'whiteout', hides: true };
  const dir = (row.mode & S_IFMT) === S_IFDIR;
  return { found: dir ? 'dir' : 'other', hides: dir && (row.flags & (F_OPAQUE | F_REPLACES)) !== 0 };
}

/** What a union path resolves to in the lower layers alone. */
export interface LowerObject {
  ix: number;
  /** The layers taking part, top first (for a directory, all merged ones). */
  rows: LowerRow[];
}

export class StackView {
  /** layers.id -> position (0 = top). */
  private readonly position = new Map<number, number>();
  private readonly childStmt: Statement;
  private readonly listStmt: Statement;
  private readonly linkStmt: Statement;
  private readonly nameStmt: Statement;
  private readonly countStmt: Statement;
  private readonly listBoundedStmt: Statement;
  private readonly childCache = new HotCache<string, PathRows | null>(4_096);
  /** Listings by directory, bounded by their names in all (a readdir loads a whole directory). */
  private readonly listCache = new HotCache<number, Map<string, PathRows>>(LISTINGS_CACHED_NAMES, (m) => m.size + 1);
  /** One-name queries spent per directory, and how many its listing is worth (see child()). */
  private readonly singles = new HotCache<number, { queries: number; worth: number }>(1_024);
  /** The directory of the last name a one-name query found (see child()). */
  private lastFound = -1;
  /** Union paths resolved in the lower layers alone (the journal asks per change). */
  private readonly pathCache = new HotCache<string, LowerObject | null>(4_096);
  private rootObject: LowerObject | undefined;

  /** `layerIds`: top first, as overlayfs's lowerdir. */
  constructor(
    db: IndexDb,
    readonly layerIds: readonly number[],
  ) {
    layerIds.forEach((id, i) => {
      if (!Number.isSafeInteger(id)) throw new Error(`path index: bad layer id ${id}`);
      this.position.set(id, i);
    });
    // Only this stack's rows: the index holds every image's layers, and a directory the
    // images share (/usr/bin) has rows from each of them. The `+` keeps SQLite on the
    // primary key's path prefix (one seek per name, then a membership test) instead of a
    // seek per (name, layer), which would make a lookup cost grow with the stack's depth.
    const ours = `+e.layer IN (${layerIds.join(',')})`;
    this.childStmt = db.prepare(`${SELECT_ROWS} WHERE n.parent = ? AND n.name = ? AND ${ours}`).raw(true);
    this.listStmt = db.prepare(`${SELECT_ROWS} WHERE n.parent = ? AND ${ours}`).raw(true);
    this.listBoundedStmt = db.prepare(`${SELECT_ROWS} WHERE n.parent = ? AND ${ours} LIMIT ?`).raw(true);
    this.linkStmt = db.prepare('SELECT path FROM entries WHERE layer = ? AND ino = ? AND nlink > 1 AND (mode & 61440) = 32768');
    this.nameStmt = db.prepare('SELECT parent, name FROM names WHERE id = ?');
    this.countStmt = db.prepare(`SELECT count(*) FROM (SELECT 1 FROM names n JOIN entries e ON e.path = n.id WHERE n.parent = ? AND ${ours} LIMIT ${LISTED_ROWS + 1})`).pluck();
  }

  get depth(): number {
    return this.layerIds.length;
  }

  /** The row with the layer's position in this stack instead of its id; undefined for a layer not in it. */
  private own(r: RawRow): LowerRow | undefined {
    const layer = this.position.get(r[2]!);
    if (layer === undefined) return undefined;
    return {
      layer,
      mode: r[3]!,
      flags: r[4]!,
      ino: r[5]!,
      nlink: r[6]!,
      uid: r[7]!,
      gid: r[8]!,
      size: r[9]!,
      mtime_s: r[10]!,
      mtime_ns: r[11]!,
      atime_s: r[12]!,
      atime_ns: r[13]!,
      ctime_s: r[14]!,
      ctime_ns: r[15]!,
      blocks: r[16]!,
      blksize: r[17]!,
      rdev: r[18]!,
    };
  }

  /**
   * The rows of parent/name in this stack's layers, top first; undefined if none has it.
   * A directory's whole listing (up to LISTED_ROWS rows, loaded once) answers every later
   * lookup there at ~1 us, but costs ~3 us a name against ~10 us for a one-name query. So
   * it is loaded once the one-name queries spent in the directory add up to what it costs
   * (its rows in this stack / NAMES_PER_QUERY, counted at the second lookup): `stat` of a whole
   * directory pays at most twice the listing, while a chmod or rename of a few files in a
   * big directory no longer loads one. Sooner when two names are found one right after the
   * other in the same directory: a script going through it (a rename's second lookup, of a
   * name not there yet, does not count).
   */
  child(parentIx: number, name: string): PathRows | undefined {
    const listed = this.listCache.get(parentIx);
    if (listed) return listed.get(name);
    const key = `${parentIx}/${name}`;
    const hit = this.childCache.get(key);
    if (hit !== undefined) return hit ?? undefined;
    const spent = this.singles.get(parentIx) ?? { queries: 0, worth: Infinity };
    this.singles.set(parentIx, spent);
    if (++spent.queries === 2) {
      const rows = this.countStmt.get(parentIx) as number;
      spent.worth = rows > LISTED_ROWS ? Infinity : Math.max(2, Math.ceil(rows / NAMES_PER_QUERY));
    }
    if (spent.queries === spent.worth) {
      const all = this.listing(parentIx, this.listBoundedStmt.all(parentIx, LISTED_ROWS + 1) as RawRow[], LISTED_ROWS);
      if (all) return all.get(name);
    }
    let ix = 0;
    const rows: LowerRow[] = [];
    for (const raw of this.childStmt.all(parentIx, name) as RawRow[]) {
      ix = raw[0];
      const r = this.own(raw);
      if (r) rows.push(r);
    }
    const out = rows.length ? { ix, rows: rows.sort((a, b) => a.layer - b.layer) } : undefined;
    this.childCache.set(key, out ?? null);
    if (out) {
      if (this.lastFound === parentIx && spent.worth !== Infinity) spent.worth = Math.min(spent.worth, spent.queries + 1);
      this.lastFound = parentIx;
    }
    return out;
  }

  /** Every name under a directory in any of this stack's layers, with its rows, top first. */
  children(parentIx: number): Map<string, PathRows> {
    return this.listCache.get(parentIx) ?? this.listing(parentIx, this.listStmt.all(parentIx) as RawRow[])!;
  }

  /** A directory's rows by name, cached; undefined (and not cached) past `limit` rows. */
  private listing(parentIx: number, raws: RawRow[], limit = Infinity): Map<string, PathRows> | undefined {
    if (raws.length > limit) return undefined;
    const out = new Map<string, PathRows>();
    for (const raw of raws) {
      const r = this.own(raw);
      if (!r) continue;
      let e = out.get(raw[1]);
      if (!e) out.set(raw[1], (e = { ix: raw[0], rows: [] }));
      e.rows.push(r);
    }
    for (const e of out.values()) e.rows.sort((a, b) => a.layer - b.layer);
    this.listCache.set(parentIx, out);
    return out;
  }

  /** The union path ('a/b', no leading slash) of a path id. */
  pathOf(ix: number): string {
    const parts: string[] = [];
    while (ix !== ROOT_IX) {
      const r = this.nameStmt.get(ix) as { parent: number; name: string } | undefined;
      if (!r) throw new Error(`path index: no name with id ${ix}`);
      parts.push(r.name);
      ix = r.parent;
    }
    return parts.reverse().join('/');
  }

  /** Paths in the layer at `position` that are names of its regular file with inode `ino`. */
  linkNames(position: number, ino: number): string[] {
    const id = this.layerIds[position]!;
    return (this.linkStmt.all(id, ino) as Array<{ path: number }>).map((r) => this.pathOf(r.path));
  }

  /** The root: every layer's top directory, merged (its names row has parent 0, see schema.ts). */
  root(): LowerObject {
    return (this.rootObject ??= { ix: ROOT_IX, rows: mergeDown(this.child(0, '')?.rows ?? [], probeOf, 'dir').refs });
  }

  /**
   * Resolves one step below a lower directory whose merged layers are `parent.rows`:
   * undefined when the lower layers do not show the name.
   */
  step(parent: LowerObject, name: string): LowerObject | undefined {
    const found = this.child(parent.ix, name);
    if (!found) return undefined;
    const at = new Map(found.rows.map((r) => [r.layer, r]));
    const { refs, top } = mergeDown(parent.rows, (p) => probeOf(at.get(p.layer)), 'none');
    if (!top) return undefined;
    return { ix: found.ix, rows: refs.map((p) => at.get(p.layer)!) };
  }

  /** What the lower layers alone show at a union path ('' = root, 'a/b'). */
  resolve(rel: string): LowerObject | undefined {
    if (rel === '') return this.root();
    const hit = this.pathCache.get(rel);
    if (hit !== undefined) return hit ?? undefined;
    // Parents are resolved (and cached) first: siblings share them.
    const slash = rel.lastIndexOf('/');
    const parent = this.resolve(slash < 0 ? '' : rel.slice(0, slash));
    const out = parent && parent.rows.length > 0 && (parent.rows[0]!.mode & S_IFMT) === S_IFDIR ? this.step(parent, rel.slice(slash + 1)) : undefined;
    this.pathCache.set(rel, out ?? null);
    return out;
  }

  /** The names a merged lower directory shows, each resolved. */
  list(dir: LowerObject): Map<string, LowerObject> {
    const out = new Map<string, LowerObject>();
    for (const [name, found] of this.children(dir.ix)) {
      const at = new Map(found.rows.map((r) => [r.layer, r]));
      const { refs, top } = mergeDown(dir.rows, (p) => probeOf(at.get(p.layer)), 'none');
      if (top) out.set(name, { ix: found.ix, rows: refs.map((p) => at.get(p.layer)!) });
    }
    return out;
  }
}
