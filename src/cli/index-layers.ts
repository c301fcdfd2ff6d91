// Layers go into the path index when the store takes them in (load, import, commit, the demo
// image), while their files are still in the page cache, so the first mount of an image does
// not walk them first; a mount indexes whatever is still missing (layers of older stores,
// plain `--lower` dirs) the same way.

import * as fs from 'node:fs';
import { PathIndex } from '../index/path-index.js';
import type { ImageStore } from '../store/images.js';
import { log } from '../util/log.js';
import { progressLine } from './daemon.js';

/** The path index's progress, as "indexing DIR: N entries" lines for `draw`; undefined when nobody watches. */
export function indexingProgress(draw: ((text: string) => void) | undefined): ((dir: string, entries: number) => void) | undefined {
  return draw && ((dir, n) => draw(`indexing ${dir}: ${n} entries`));
}

/** Indexes the layer dirs of a stack (top first) and the stack itself, with a progress line on a terminal. */
export function indexLayers(file: string, lowers: readonly string[]): void {
  const index = PathIndex.open(file);
  const draw = progressLine();
  try {
    index.stack(lowers, indexingProgress(draw));
  } finally {
    draw?.('');
    index.close();
  }
}

/**
 * Indexes an image the store has just taken in. The image is in the store whatever happens
 * here, reading its record included: a failure is logged, and its first mount indexes the
 * layers instead.
 */
export function indexImage(store: ImageStore, imageId: string): void {
  let file: string | undefined;
  try {
    file = store.paths.indexFile;
    const image = store.image(imageId);
    if (image) indexLayers(file, store.lowerDirs(image));
  } catch (e) {
    log.warn({ err: e, image: imageId, index: file }, 'could not index the image now: its first mount will');
  }
}

/**
 * Drops deleted layers from the store's path index (rmi, image prune). The index is a cache:
 * a failure is logged, and the rows left behind only take space.
 */
export function forgetLayers(store: ImageStore, realDirs: readonly string[]): void {
  if (realDirs.length === 0 || !fs.existsSync(store.paths.indexFile)) return;
  try {
    const index = PathIndex.open(store.paths.indexFile);
    try {
      let dropped = false;
      for (const d of realDirs) dropped = index.forgetLayer(d) || dropped;
      if (dropped) index.dropUnusedNames();
    } finally {
      index.close();
    }
  } catch (e) {
    log.warn({ err: e, index: store.paths.indexFile }, 'could not drop deleted layers from the path index');
  }
}
