// `strata index check`: the index against the dirs it describes, every difference listed.
// The file's pages are checked first (SQLite's quick_check, which opening the index skips
// for a file in a state known sound: known-sound.ts).
// Layers are walked again and compared row by row; each upper dir's journal is compared
// with what a rebuild from the upper dir would record (computed inside a transaction that
// is rolled back, so checking changes nothing), and one its running daemon stopped writing
// is reported as such.

import * as fs from 'node:fs';
import { walkLayer, type EntryRow } from './ingest.js';
import type { PathIndex } from './path-index.js';
import { StackView } from './stack-view.js';

// Not the atime: reading a lower file may move it, and the union reports the indexed one.
const FIELDS = ['mode', 'uid', 'gid', 'size', 'mtime_s', 'mtime_ns', 'ctime_s', 'ctime_ns', 'blocks', 'blksize', 'rdev', 'ino', 'nlink', 'flags', 'target'] as const;

function compareLayer(index: PathIndex, layer: { id: number; dir: string }, out: string[]): void {
  const db = index.db;
  if (!fs.existsSync(layer.dir)) {
    out.push(`layer ${layer.dir}: directory is missing`);
    return;
  }
  const stored = new Map<number, EntryRow>();
  for (const r of db.prepare('SELECT path, mode, uid, gid, size, mtime_s, mtime_ns, ctime_s, ctime_ns, blocks, blksize, rdev, ino, nlink, flags, target FROM entries WHERE layer = ?').all(layer.id) as EntryRow[]) stored.set(r.path, r);
  const lookup = db.prepare('SELECT id FROM names WHERE parent = ? AND name = ?');
  const view = new StackView(db, [layer.id]);
  // Names the index never saw get negative ids, so their children can still be walked.
  let unknown = 0;
  const unknownNames = new Map<number, string>();
  walkLayer(
    layer.dir,
    (parent, name) => {
      const hit = lookup.get(parent, name) as { id: number } | undefined;
      if (hit) return hit.id;
      const id = --unknown;
      unknownNames.set(id, `${parent < 0 ? unknownNames.get(parent) : view.pathOf(parent)}/${name}`);
      return id;
    },
    (row) => {
      if (row.path < 0) {
        out.push(`layer ${layer.dir}: /${unknownNames.get(row.path)!.replace(/^\/+/, '')} is on disk, not in the index`);
        return;
      }
      const had = stored.get(row.path);
      const where = `layer ${layer.dir}: /${view.pathOf(row.path)}`;
      if (!had) out.push(`${where} is on disk, not in the index`);
      else {
        const diff = FIELDS.filter((f) => had[f] !== row[f]);
        if (diff.length) out.push(`${where}: ${diff.map((f) => `${f} index=${String(had[f])} disk=${String(row[f])}`).join(', ')}`);
        stored.delete(row.path);
      }
    },
  );
  for (const ix of stored.keys()) out.push(`layer ${layer.dir}: /${view.pathOf(ix)} is in the index, not on disk`);
}

function compareUpper(index: PathIndex, upper: ReturnType<PathIndex['uppers']>[number], out: string[]): void {
  if (!fs.existsSync(upper.dir)) {
    out.push(`upper ${upper.dir}: directory is missing`);
    return;
  }
  const journal = upper.journal();
  if (!journal) return;
  if (journal.incomplete !== undefined) out.push(`upper ${upper.dir}: the journal is incomplete: its running daemon stopped recording after a failed write (${journal.incomplete}); the next mount rebuilds it`);
  const key = (r: { path: string; kind: string; opaque: number; origin: string | null }): string => `${r.kind} opaque=${r.opaque} origin=${r.origin ?? '-'}`;
  const recorded = new Map(journal.rows().map((r) => [r.path, key(r)]));
  for (const r of journal.asRebuilt(() => journal.rows())) {
    const had = recorded.get(r.path);
    if (had === undefined) out.push(`upper ${upper.dir}: ${r.kind} ${r.path} is on disk, not in the journal`);
    else if (had !== key(r)) out.push(`upper ${upper.dir}: ${r.path}: journal says ${had}, the upper dir says ${key(r)}`);
    recorded.delete(r.path);
  }
  for (const [p, k] of recorded) out.push(`upper ${upper.dir}: ${p} (${k}) is in the journal, not on disk`);
}

/** Every difference between the index and the layer and upper dirs it describes. */
export function checkIndex(index: PathIndex): string[] {
  // The file itself first: rows read from damaged pages would say nothing of the dirs.
  const pages = index.checkPages();
  if (pages.length > 0) return pages.map((p) => `index file ${index.file}: ${p} (moved aside and rebuilt at the next open)`);
  const out: string[] = [];
  for (const l of index.db.prepare('SELECT id, dir, complete FROM layers ORDER BY id').all() as Array<{ id: number; dir: string; complete: number }>) {
    if (l.complete !== 1) out.push(fs.existsSync(l.dir) ? `layer ${l.dir}: indexing was interrupted (re-indexed at next mount)` : `layer ${l.dir}: directory is gone (ENOENT)`);
    else compareLayer(index, l, out);
  }
  for (const u of index.uppers()) compareUpper(index, u, out);
  return out;
}
