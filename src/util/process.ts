// Is a process still running? Shared by the path index (who holds an upper dir's journal),
// containers (is a mount's daemon alive) and unmounting (wait for the daemon to finish).

import * as fs from 'node:fs';
import { log } from './log.js';

/**
 * Whether a process runs. A zombie does not: a daemon killed with SIGKILL stays one until
 * its parent (init, for our detached daemons) reaps it, and its mount is dead meanwhile.
 */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    // EPERM: it exists but belongs to someone else.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    // /proc/PID/stat: "pid (comm) S ...", comm may hold spaces and parentheses.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false; // gone between the two looks
  }
}

/**
 * Waits until none of the processes runs (a mount daemon finishing its writes after its
 * unmount); after `ms` it logs a warning and returns.
 */
export async function waitForExit(pids: number[], ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  for (const pid of pids) {
    while (pidAlive(pid)) {
      if (Date.now() > end) {
        log.warn({ pid }, 'mount daemon still running after unmount');
        return;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/** Blocks this thread for `ms` (synchronous code that must wait for another process). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
