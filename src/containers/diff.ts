// strata diff: the container layer's changes in docker's terms (A added, C changed, D
// deleted; parents of changes count as changed), read from the path index's journal of
// the container's upper dir. The journal is written by the mount daemon as it changes the
// upper dir, so reading it costs the number of changes, never a walk of the image; after a
// daemon death the index repairs it from the upper dir first (src/index/journal.ts).
// A live daemon writes its journal records a few milliseconds after the changes, several
// to a transaction; `strata diff` of a mounted container first has it write them
// (settleMount), and waits while they wait for another process's lock on the index.

import * as fs from 'node:fs';
import { PathIndex, type UpperChange } from '../index/path-index.js';
import type { ImageStore } from '../store/images.js';
import { journalWaitingMarker } from '../union/stack.js';
import { sleepSync } from '../util/process.js';
import { ContainerDirs } from './layout.js';
import { mountStatus, settleMount } from './mount-state.js';

export type { UpperChange } from '../index/path-index.js';

/** How long `strata diff` waits for a daemon whose journal records wait for the index lock. */
export const JOURNAL_WAIT_MS = 15_000;

/**
 * Has a mounted container's daemon write what it holds; while its records wait for
 * another process's lock on the index (the daemon's marker), waits for them, asking again
 * every half second, and fails after `waitMs` rather than answer without them.
 */
function settleJournal(mnt: string, work: string, name: string, waitMs: number): void {
  const end = Date.now() + waitMs;
  for (;;) {
    settleMount(mnt);
    if (!fs.existsSync(journalWaitingMarker(work))) return;
    if (Date.now() >= end) {
      throw new Error(`${name}: its mount's change records wait for the path index, which another process has kept locked for over ${Math.round(waitMs / 1000)} s; try again once it is free`);
    }
    sleepSync(500);
  }
}

export function containerChanges(store: ImageStore, ref: string, waitMs = JOURNAL_WAIT_MS): UpperChange[] {
  const container = store.resolveContainer(ref);
  const dirs = new ContainerDirs(store.paths, container.id);
  const m = mountStatus(dirs);
  if (m.state === 'mounted' && m.record) settleJournal(m.record.path, dirs.work, container.name, waitMs);
  const index = PathIndex.open(store.paths.indexFile);
  try {
    return index.upperChanges(dirs.upper);
  } finally {
    index.close();
  }
}
