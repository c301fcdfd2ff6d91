// Who holds a row of the index: '<boot id>:<pid>' of a running process (a daemon holding
// an upper dir's journal, a process indexing a layer). The boot id keeps a pid recorded
// before a reboot from being taken for a live one.

import * as fs from 'node:fs';
import { pidAlive } from '../util/process.js';

/** Identifies this boot. */
function bootId(): string {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return 'unknown-boot';
  }
}

/** This process, as an owner. */
export function selfOwner(): string {
  return `${bootId()}:${process.pid}`;
}

/** The pid of an owner that is still running, else undefined. */
export function ownerAlive(owner: string): number | undefined {
  const [boot, pid] = owner.split(':');
  return boot === bootId() && pidAlive(Number(pid)) ? Number(pid) : undefined;
}

/** The pid of a running process other than this one that holds `owner`, else undefined. */
export function otherOwnerAlive(owner: string | null): number | undefined {
  const pid = owner === null ? undefined : ownerAlive(owner);
  return pid === process.pid ? undefined : pid;
}
