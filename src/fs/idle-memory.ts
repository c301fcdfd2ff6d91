// Gives memory back once a mount has been idle a while. A container's daemon lives as long
// as its container and is idle most of that time, but V8 keeps its young generation at the
// size the last busy spell grew it to (up to 2 x 16 MiB) and glibc keeps the heap it freed:
// a memory-reducing collection (native.lowMemory) returns both. Measured in
// docs/benchmarks.md ("Idle memory").

import * as v8 from 'node:v8';
import { native } from '../native/binding.js';
import { log } from '../util/log.js';

/** Default quiet time before memory is given back (-o memory_idle_ms; 0 turns it off). */
export const MEMORY_IDLE_MS = 5000;

export interface IdleOptions {
  /** Milliseconds without a request after which the daemon gives memory back; 0 = never. */
  memoryIdleMs?: number;
}

/** What the watch reads from a FUSE session. */
export interface Activity {
  /** Requests read from the device so far. */
  readonly requestsRead: number;
  /** Requests still being answered (a copy-up in the thread pool). */
  readonly pendingCount: number;
}

/**
 * Checks every `idleMs` whether a request came since the last check; after a quiet period
 * (between one and two periods) it gives memory back, once, until requests come again.
 * The timer is unreferenced: it never keeps the process alive.
 */
export function watchIdle(activity: Activity, idleMs: number): { stop(): void } {
  // A memory-reducing collection also drops the bytecode of functions not run lately,
  // which for a daemon back from idle is every request handler: its first requests then
  // ran 20-40 ms slower, recompiling. Bytecode is a small part of the heap; keep it. (V8
  // reads this flag at each collection, so setting it now takes effect.)
  v8.setFlagsFromString('--no-flush-bytecode');
  let seen = -1;
  let given = false;
  const timer = setInterval(() => {
    const n = activity.requestsRead;
    if (n !== seen) {
      seen = n;
      given = false;
      return;
    }
    if (given || activity.pendingCount > 0) return;
    given = true;
    const before = process.memoryUsage.rss();
    const t0 = performance.now();
    native.lowMemory();
    log.debug({ ms: Math.round(performance.now() - t0), rssBefore: before, rssAfter: process.memoryUsage.rss() }, 'idle: memory given back');
  }, idleMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
