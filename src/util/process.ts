// Is a process still running? Shared by the path index (who holds an upper dir's journal)
// and containers (is a mount's daemon alive).

import * as fs from 'node:fs';

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
