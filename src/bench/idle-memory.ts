// The memory of each FUSE driver's daemon once it has been idle: what a host running many
// containers pays for every mounted but quiet one. All FUSE drivers are mounted over the
// image at once and each mount is walked once (its daemon then knows every entry, as after
// a `find /` in a container); memory is read right after the walk and again after
// IDLE_WAIT_MS without a request (stratafs gives memory back after MEMORY_IDLE_MS of
// quiet: src/fs/idle-memory.ts). One wait serves every driver.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { MEMORY_IDLE_MS } from '../fs/idle-memory.js';
import type { Driver, Mounted } from './drivers.js';
import { walkTree } from './file-workloads.js';
import { daemonMemory, type DaemonMemory } from './mounts.js';
import type { Stage } from './stage.js';

/** Long enough for the idle watch to see one quiet period whole, whenever it checks. */
export const IDLE_WAIT_MS = 2 * MEMORY_IDLE_MS + 1000;

export interface IdleMemory {
  waitedMs: number;
  /** Entries the walk saw (the same on every driver: the workloads' checks compare trees). */
  entries: number;
  /** By driver name: after the walk, and after the wait. */
  drivers: Record<string, { busy: DaemonMemory; idle: DaemonMemory }>;
}

/**
 * Mounts each driver in `drivers` under `runsDir`, walks it, waits, measures, and unmounts
 * them all, also on failure. Drivers no process serves (kernel ones) are left out;
 * undefined when none is left.
 */
export async function measureIdleMemory(stage: Stage, drivers: Driver[], runsDir: string, progress: (s: string) => void): Promise<IdleMemory | undefined> {
  const mounted: Array<{ name: string; m: Mounted; busy?: DaemonMemory }> = [];
  let entries = 0;
  try {
    for (const d of drivers) {
      const dir = fs.mkdtempSync(path.join(runsDir, `${d.name}-idle-`));
      const dirs = { dir, upper: path.join(dir, 'upper'), work: path.join(dir, 'work'), mnt: path.join(dir, 'mnt') };
      for (const p of [dirs.upper, dirs.work, dirs.mnt]) fs.mkdirSync(p);
      const x: (typeof mounted)[number] = { name: d.name, m: d.mount(stage, dirs) };
      mounted.push(x);
      entries = walkTree(x.m.root).entries;
      x.busy = daemonMemory(x.m.root);
    }
    const served = mounted.filter((x) => x.busy);
    if (!served.length) return undefined;
    progress(`idle memory: ${served.map((x) => x.name).join(', ')} walked; waiting ${IDLE_WAIT_MS / 1000} s without requests`);
    await new Promise((r) => setTimeout(r, IDLE_WAIT_MS));
    const out: IdleMemory = { waitedMs: IDLE_WAIT_MS, entries, drivers: {} };
    for (const x of served) {
      const idle = daemonMemory(x.m.root);
      if (idle) out.drivers[x.name] = { busy: x.busy!, idle };
    }
    return out;
  } finally {
    for (const x of mounted) x.m.unmount();
  }
}
