// strata diff: the container layer's changes in docker's terms (A added, C changed, D
// deleted; parents of changes count as changed), read from the path index's journal of
// the container's upper dir. The journal is written by the mount daemon as it changes the
// upper dir, so reading it costs the number of changes, never a walk of the image; after a
// daemon death the index repairs it from the upper dir first (src/index/journal.ts).

import { PathIndex, type UpperChange } from '../index/path-index.js';
import type { ImageStore } from '../store/images.js';
import { ContainerDirs } from './layout.js';

export type { UpperChange } from '../index/path-index.js';

export function containerChanges(store: ImageStore, ref: string): UpperChange[] {
  const container = store.resolveContainer(ref);
  const dirs = new ContainerDirs(store.paths, container.id);
  const index = PathIndex.open(store.paths.indexFile);
  try {
    return index.upperChanges(dirs.upper);
  } finally {
    index.close();
  }
}
