// The image store: layers, images, tags and the containers that pin images, kept in
// SQLite next to the extracted layers. Refcounting lives here and only here: a layer is
// deleted when no image uses it, an image when no tag names it and no container uses it.

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { log } from '../util/log.js';
import { openDb, type Db } from './db.js';
import { defaultStoreRoot, hexOf, removeTree, StorePaths } from './paths.js';
import { formatReference, idPrefixOf, parseReference, shortId, type NamedRef } from './reference.js';

export interface ImageRecord {
  id: string;
  config: Buffer;
  /** The config's "created", if any. */
  created: string | null;
  loaded: string;
  /** Manifest digest the image was loaded from (its repo digest), if known. */
  digest: string | null;
  /** diff_ids, bottom layer first. */
  layers: string[];
  tags: NamedRef[];
  /** Bytes of file content over all layers. */
  size: number;
}

export interface LayerRecord {
  diffId: string;
  size: number;
  files: number;
}

/** A layer of an image being committed: either already in the store or extracted into tempDir. */
export interface NewLayer {
  diffId: string;
  tempDir?: string;
  blobDigest?: string;
  mediaType?: string;
  blobSize?: number;
  size: number;
  files: number;
}

export interface NewImage {
  id: string;
  config: Buffer;
  digest?: string;
  layers: NewLayer[];
  tags: NamedRef[];
}

export interface ContainerRecord {
  id: string;
  name: string;
  imageId: string;
  created: string;
}

export interface RemoveResult {
  lines: string[];
  /** Bytes of layer content deleted. */
  reclaimed: number;
  /** Real paths the deleted layer dirs had (the path index keys its layers by them). */
  removedDirs: string[];
}

function now(): string {
  return new Date().toISOString();
}

function configCreated(config: Buffer): string | null {
  try {
    const c = JSON.parse(config.toString('utf8')) as { created?: unknown };
    return typeof c.created === 'string' ? c.created : null;
  } catch {
    return null;
  }
}

export class ImageStore {
  readonly paths: StorePaths;
  readonly db: Db;

  private constructor(root: string) {
    this.paths = new StorePaths(root);
    this.paths.ensure();
    this.db = openDb(this.paths.db);
  }

  /** Opens (creating if needed) the store at `root`, default defaultStoreRoot(). */
  static open(root?: string): ImageStore {
    return new ImageStore(root ?? defaultStoreRoot());
  }

  close(): void {
    this.db.close();
  }

  // ---- layers -------------------------------------------------------------------------

  layer(diffId: string): LayerRecord | undefined {
    const r = this.db.prepare('SELECT diff_id, size, files FROM layers WHERE diff_id = ?').get(diffId) as
      | { diff_id: string; size: number; files: number }
      | undefined;
    return r && { diffId: r.diff_id, size: r.size, files: r.files };
  }

  /** A layer counts as present only with both its row and its directory. */
  hasLayer(diffId: string): boolean {
    return this.layer(diffId) !== undefined && fs.existsSync(this.paths.layerDir(diffId));
  }

  /** diff_id of a layer previously loaded from the blob `digest`, if that layer is still here. */
  layerForBlob(digest: string): string | undefined {
    const r = this.db.prepare('SELECT diff_id FROM layer_blobs WHERE digest = ?').get(digest) as { diff_id: string } | undefined;
    return r && this.hasLayer(r.diff_id) ? r.diff_id : undefined;
  }

  // ---- images -------------------------------------------------------------------------

  /**
   * Records an image, its new layers and its tags in one transaction, moving extracted
   * layer dirs into place inside it: if anything fails the renames are undone and the
   * transaction rolls back, so the store never refers to a missing layer. A tag that
   * named another image moves to this one (that image may become dangling, as in docker).
   */
  commitImage(img: NewImage): void {
    const moved: Array<[string, string]> = [];
    const loaded = now();
    const tx = this.db.transaction(() => {
      for (const l of img.layers) {
        if (l.tempDir !== undefined) {
          const dest = this.paths.layerDir(l.diffId);
          if (fs.existsSync(dest)) {
            // Another load put the same layer in place meanwhile; ours is redundant.
            removeTree(l.tempDir);
          } else {
            fs.renameSync(l.tempDir, dest);
            moved.push([dest, l.tempDir]);
          }
          this.db.prepare('INSERT OR REPLACE INTO layers (diff_id, size, files, created) VALUES (?, ?, ?, ?)').run(l.diffId, l.size, l.files, loaded);
        }
        if (l.blobDigest !== undefined) {
          this.db
            .prepare('INSERT OR IGNORE INTO layer_blobs (digest, diff_id, media_type, size) VALUES (?, ?, ?, ?)')
            .run(l.blobDigest, l.diffId, l.mediaType ?? 'application/vnd.oci.image.layer.v1.tar', l.blobSize ?? 0);
        }
        if (!this.layer(l.diffId)) throw new Error(`layer ${l.diffId} is not in the store`);
      }
      const exists = this.db.prepare('SELECT 1 FROM images WHERE id = ?').get(img.id);
      if (!exists) {
        this.db.prepare('INSERT INTO images (id, config, created, loaded, digest) VALUES (?, ?, ?, ?, ?)').run(img.id, img.config, configCreated(img.config), loaded, img.digest ?? null);
        img.layers.forEach((l, i) => this.db.prepare('INSERT INTO image_layers (image_id, position, diff_id) VALUES (?, ?, ?)').run(img.id, i, l.diffId));
      } else if (img.digest) {
        this.db.prepare('UPDATE images SET digest = ? WHERE id = ?').run(img.digest, img.id);
      }
      for (const t of img.tags) this.setTag(t, img.id, loaded);
    });
    try {
      tx();
    } catch (e) {
      for (const [dest, back] of moved) {
        try {
          fs.renameSync(dest, back);
        } catch {
          removeTree(dest);
        }
      }
      throw e;
    }
  }

  private setTag(t: NamedRef, imageId: string, when = now()): void {
    this.db.prepare('INSERT OR REPLACE INTO tags (repository, tag, image_id, tagged) VALUES (?, ?, ?, ?)').run(t.repository, t.tag, imageId, when);
  }

  image(id: string): ImageRecord | undefined {
    const r = this.db.prepare('SELECT id, config, created, loaded, digest FROM images WHERE id = ?').get(id) as
      | { id: string; config: Buffer; created: string | null; loaded: string; digest: string | null }
      | undefined;
    if (!r) return undefined;
    const layers = (this.db.prepare('SELECT diff_id FROM image_layers WHERE image_id = ? ORDER BY position').all(id) as Array<{ diff_id: string }>).map((x) => x.diff_id);
    const tags = this.db.prepare('SELECT repository, tag FROM tags WHERE image_id = ? ORDER BY repository, tag').all(id) as NamedRef[];
    const size = (this.db.prepare('SELECT COALESCE(SUM(l.size), 0) AS s FROM image_layers il JOIN layers l ON l.diff_id = il.diff_id WHERE il.image_id = ?').get(id) as { s: number }).s;
    return { ...r, config: Buffer.from(r.config), layers, tags, size };
  }

  /** An image's layer dirs, top first (overlayfs's lowerdir order). */
  lowerDirs(image: ImageRecord): string[] {
    return [...image.layers].reverse().map((d) => this.paths.layerDir(d));
  }

  /** Every image, newest first (by the config's created time, then load time). */
  images(): ImageRecord[] {
    const ids = this.db.prepare('SELECT id FROM images ORDER BY COALESCE(created, loaded) DESC, loaded DESC').all() as Array<{ id: string }>;
    return ids.map((r) => this.image(r.id)!);
  }

  /**
   * Resolves what a user typed: a reference with a tag (default latest) first, then a full
   * or unique-prefix image ID. `byName` tells rmi whether a tag was named.
   */
  resolveImageRef(text: string): { image: ImageRecord; byName?: NamedRef } {
    let named: NamedRef | undefined;
    try {
      named = parseReference(text);
    } catch {
      named = undefined;
    }
    if (named) {
      const r = this.db.prepare('SELECT image_id FROM tags WHERE repository = ? AND tag = ?').get(named.repository, named.tag) as { image_id: string } | undefined;
      if (r) return { image: this.image(r.image_id)!, byName: named };
    }
    const prefix = idPrefixOf(text);
    if (prefix) {
      const rows = this.db.prepare("SELECT id FROM images WHERE id >= ? AND id < ? ORDER BY id LIMIT 2").all(`sha256:${prefix}`, `sha256:${prefix}g`) as Array<{ id: string }>;
      if (rows.length > 1) throw new Error(`ambiguous image ID prefix '${text}': matches ${rows.map((r) => shortId(r.id)).join(', ')}, ...`);
      if (rows.length === 1) return { image: this.image(rows[0]!.id)! };
    }
    throw new Error(`No such image: ${text}`);
  }

  resolveImage(text: string): ImageRecord {
    return this.resolveImageRef(text).image;
  }

  /** strata tag SRC DST: DST now names SRC's image (moved from any image it named before). */
  tag(src: string, dst: string): void {
    const img = this.resolveImage(src);
    this.setTag(parseReference(dst), img.id);
  }

  // ---- containers (rows only; the container machinery comes with issue 6) ------------

  addContainer(c: { name: string; imageId: string; id?: string }): ContainerRecord {
    const rec: ContainerRecord = { id: c.id ?? randomBytes(32).toString('hex'), name: c.name, imageId: c.imageId, created: now() };
    this.db.prepare('INSERT INTO containers (id, name, image_id, created) VALUES (?, ?, ?, ?)').run(rec.id, rec.name, rec.imageId, rec.created);
    return rec;
  }

  removeContainer(id: string): void {
    this.db.prepare('DELETE FROM containers WHERE id = ?').run(id);
  }

  containers(): ContainerRecord[] {
    return (this.db.prepare('SELECT id, name, image_id AS imageId, created FROM containers ORDER BY created').all() as ContainerRecord[]);
  }

  /** A container by name, full ID or unique ID prefix of 3+ characters. */
  resolveContainer(text: string): ContainerRecord {
    const all = this.containers();
    const byName = all.find((c) => c.name === text);
    if (byName) return byName;
    const hits = /^[0-9a-f]{3,64}$/.test(text) ? all.filter((c) => c.id.startsWith(text)) : [];
    if (hits.length > 1) throw new Error(`ambiguous container ID prefix '${text}'`);
    if (hits.length === 1) return hits[0]!;
    throw new Error(`No such container: ${text}`);
  }

  private containersUsing(imageId: string): ContainerRecord[] {
    return this.containers().filter((c) => c.imageId === imageId);
  }

  // ---- removal ------------------------------------------------------------------------

  /**
   * strata rmi: untags, and deletes the image once no tag names it, then each of its
   * layers no other image uses. Lines follow docker ("Untagged: r:t", "Deleted: sha256:…").
   * An image a container uses is refused unless `force`; forced, it is untagged but kept
   * (its container still needs its layers) and goes with a prune after the container.
   */
  remove(text: string, force = false): RemoveResult {
    const { image, byName } = this.resolveImageRef(text);
    const users = this.containersUsing(image.id);
    let untag: NamedRef[];
    if (byName) {
      untag = [byName];
      const last = image.tags.length === 1;
      if (last && users.length && !force) {
        throw new Error(`conflict: unable to remove repository reference "${text}" (must force) - container ${shortId(users[0]!.id)} is using its referenced image ${shortId(image.id)}`);
      }
    } else {
      const repos = new Set(image.tags.map((t) => t.repository));
      if (repos.size > 1 && !force) throw new Error(`conflict: unable to delete ${shortId(image.id)} (must be forced) - image is referenced in multiple repositories`);
      if (users.length && !force) throw new Error(`conflict: unable to delete ${shortId(image.id)} (must be forced) - image is being used by stopped container ${shortId(users[0]!.id)}`);
      untag = image.tags;
    }
    const lines: string[] = [];
    let reclaimed = 0;
    const doomed: string[] = [];
    this.db.transaction(() => {
      lines.push(...this.untag(image, untag, 'Untagged'));
      const left = image.tags.length - untag.length;
      if (left > 0 || users.length) return;
      const r = this.deleteImageRows(image.id, 'Deleted');
      lines.push(...r.lines);
      reclaimed = r.reclaimed;
      doomed.push(...r.layers);
    })();
    return { lines, reclaimed, removedDirs: this.removeLayerDirs(doomed) };
  }

  /**
   * strata image prune: deletes dangling images (no tag), or with `all` every image no
   * container uses. Images under a container are always kept.
   */
  prune(all = false): RemoveResult {
    const lines: string[] = [];
    let reclaimed = 0;
    const doomed: string[] = [];
    const inUse = new Set(this.containers().map((c) => c.imageId));
    this.db.transaction(() => {
      for (const img of this.images()) {
        if (inUse.has(img.id) || (!all && img.tags.length)) continue;
        lines.push(...this.untag(img, img.tags, 'untagged'));
        const r = this.deleteImageRows(img.id, 'deleted');
        lines.push(...r.lines);
        reclaimed += r.reclaimed;
        doomed.push(...r.layers);
      }
    })();
    return { lines, reclaimed, removedDirs: this.removeLayerDirs(doomed) };
  }

  private untag(img: ImageRecord, tags: NamedRef[], word: string): string[] {
    const lines: string[] = [];
    const same = (a: NamedRef, b: NamedRef): boolean => a.repository === b.repository && a.tag === b.tag;
    const remaining = img.tags.filter((o) => !tags.some((x) => same(x, o)));
    for (const t of tags) {
      this.db.prepare('DELETE FROM tags WHERE repository = ? AND tag = ?').run(t.repository, t.tag);
      lines.push(`${word}: ${formatReference(t)}`);
    }
    // The repo digest goes with the last tag of its repository, as docker prints it.
    if (img.digest) {
      for (const repo of new Set(tags.map((t) => t.repository))) {
        if (!remaining.some((o) => o.repository === repo)) lines.push(`${word}: ${repo}@${img.digest}`);
      }
    }
    return lines;
  }

  /** Deletes an image's rows and those of layers nobody else uses; returns their diff_ids. */
  private deleteImageRows(id: string, word: string): { lines: string[]; layers: string[]; reclaimed: number } {
    const layers = (this.db.prepare('SELECT DISTINCT diff_id FROM image_layers WHERE image_id = ? ORDER BY position DESC').all(id) as Array<{ diff_id: string }>).map((r) => r.diff_id);
    this.db.prepare('DELETE FROM images WHERE id = ?').run(id);
    const lines = [`${word}: ${id}`];
    const gone: string[] = [];
    let reclaimed = 0;
    for (const diffId of layers) {
      if (this.db.prepare('SELECT 1 FROM image_layers WHERE diff_id = ? LIMIT 1').get(diffId)) continue;
      reclaimed += this.layer(diffId)?.size ?? 0;
      this.db.prepare('DELETE FROM layers WHERE diff_id = ?').run(diffId);
      lines.push(`${word}: ${diffId}`);
      gone.push(diffId);
    }
    return { lines, layers: gone, reclaimed };
  }

  /** After the rows are gone: move each dir out of layers/ (atomic), then delete it. Returns the real paths removed. */
  private removeLayerDirs(diffIds: string[]): string[] {
    const removed: string[] = [];
    for (const d of diffIds) {
      const dir = this.paths.layerDir(d);
      const trash = path.join(this.paths.tmpDir, `deleted-${hexOf(d)}-${process.pid}`);
      try {
        const real = fs.realpathSync(dir);
        fs.renameSync(dir, trash);
        removed.push(real);
        removeTree(trash);
      } catch (e) {
        log.warn({ err: e, dir }, 'could not remove layer directory');
      }
    }
    return removed;
  }
}
