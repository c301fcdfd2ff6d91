// Where the image store lives and how it is laid out on disk. Everything that names a
// path inside the store root goes through here, so the layout has one description
// (docs/on-disk-format.md mirrors it).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** The store root: --root, else $STRATAFS_ROOT, else /var/lib/stratafs for root, else $XDG_DATA_HOME/stratafs. */
export function defaultStoreRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.STRATAFS_ROOT) return path.resolve(env.STRATAFS_ROOT);
  if (process.getuid?.() === 0) return '/var/lib/stratafs';
  const data = env.XDG_DATA_HOME || path.join(os.homedir(), '.local', 'share');
  return path.join(data, 'stratafs');
}

export class StorePaths {
  constructor(readonly root: string) {}

  /** The SQLite database: layers, images, tags, containers. */
  get db(): string {
    return path.join(this.root, 'store.db');
  }

  /**
   * The path index (src/index/): per-layer entry tables, stack views and the journal of
   * every container's upper-layer changes. Rebuildable from the dirs alone.
   */
  get indexFile(): string {
    return path.join(this.root, 'index.db');
  }

  /** Extracted layers, one directory per diff_id (hex, without "sha256:"). */
  get layersDir(): string {
    return path.join(this.root, 'layers', 'sha256');
  }

  layerDir(diffId: string): string {
    return path.join(this.layersDir, hexOf(diffId));
  }

  /**
   * Scratch space on the same filesystem as layers/, so a finished extraction is a
   * rename(2) into place; anything left here after a crash is garbage.
   */
  get tmpDir(): string {
    return path.join(this.root, 'tmp');
  }

  /** Creates the directories (not the database) if missing. */
  ensure(): void {
    fs.mkdirSync(this.layersDir, { recursive: true, mode: 0o700 });
    fs.mkdirSync(this.tmpDir, { recursive: true, mode: 0o700 });
  }

  /** A fresh private directory under tmp/. */
  makeTemp(prefix: string): string {
    return fs.mkdtempSync(path.join(this.tmpDir, `${prefix}-`));
  }
}

/** "sha256:abc…" or "abc…" -> "abc…" (validated: 64 lowercase hex digits). */
export function hexOf(digest: string): string {
  const hex = digest.startsWith('sha256:') ? digest.slice(7) : digest;
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error(`invalid sha256 digest '${digest}'`);
  return hex;
}

/** Removes a tree we own; never throws (cleanup paths must not hide the real error). */
export function removeTree(p: string): void {
  try {
    fs.rmSync(p, { recursive: true, force: true });
  } catch {
    /* best effort */
  }
}
