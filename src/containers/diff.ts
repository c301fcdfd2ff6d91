// strata diff: the container layer's changes in docker's terms (A added, C changed, D
// deleted; parents of changes count as changed), read from the path index's journal of
// the container's upper dir. The journal is written by the mount daemon as it changes the
// upper dir, so reading it costs the number of changes, never a walk of the image; after a
// daemon death the index repairs it from the upper dir first (src/index/journal.ts).
// A live daemon writes its journal records a few milliseconds after the changes, several
// to a transaction; an fsync of a directory of the mount makes it write them at once, so
// `strata diff` of a mounted container starts with one.

import * as fs from 'node:fs';
import { PathIndex, type UpperChange } from '../index/path-index.js';
import type { ImageStore } from '../store/images.js';
import { ContainerDirs } from './layout.js';
import { mountStatus } from './mount-state.js';

export type { UpperChange } from '../index/path-index.js';

export function containerChanges(store: ImageStore, ref: string): UpperChange[] {
  const container = store.resolveContainer(ref);
  const dirs = new ContainerDirs(store.paths, container.id);
  const m = mountStatus(dirs);
  if (m.state === 'mounted' && m.record) syncJournal(m.record.path);
  const index = PathIndex.open(store.paths.indexFile);
  try {
    return index.upperChanges(dirs.upper);
  } finally {
    index.close();
  }
}

/** Has the daemon serving the union mount at `mnt` write its pending journal records (FSYNCDIR). */
export function syncJournal(mnt: string): void {
  const fd = fs.openSync(mnt, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
