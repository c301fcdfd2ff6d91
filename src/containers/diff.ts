// strata diff: the container layer's changes in docker's terms (A added, C changed, D
// deleted; parents of changes count as changed), read from the path index's journal of
// the container's upper dir. The journal is written by the mount daemon as it changes the
// upper dir, so reading it costs the number of changes, never a walk of the image; after a
// daemon death the index repairs it from the upper dir first (src/index/journal.ts).
// A live daemon writes its journal records a few milliseconds after the changes, several
// to a transaction; `strata diff` of a mounted container first has it write them
// (settleMount).

import { PathIndex, type UpperChange } from '../index/path-index.js';
import type { ImageStore } from '../store/images.js';
import { ContainerDirs } from './layout.js';
import { mountStatus, settleMount } from './mount-state.js';

export type { UpperChange } from '../index/path-index.js';

export function containerChanges(store: ImageStore, ref: string): UpperChange[] {
  const container = store.resolveContainer(ref);
  const dirs = new ContainerDirs(store.paths, container.id);
  const m = mountStatus(dirs);
  if (m.state === 'mounted' && m.record) settleMount(m.record.path);
  const index = PathIndex.open(store.paths.indexFile);
  try {
    return index.upperChanges(dirs.upper);
  } finally {
    index.close();
  }
}
