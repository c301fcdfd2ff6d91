// Mounts for benchmarks: always a separate daemon process started through the strata CLI
// (a daemon must never be driven from its own event loop), unmounted in finally blocks.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));

export interface BenchMount {
  mnt: string;
  unmount(): void;
}

function isMounted(mnt: string): boolean {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === mnt);
}

/** Starts `strata <args> MNT` in the background; returns once the mount answers. */
export function strataMount(args: string[], mnt: string): BenchMount {
  fs.mkdirSync(mnt, { recursive: true });
  const r = spawnSync(process.execPath, [CLI, ...args, mnt], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`strata ${args.join(' ')} ${mnt}: ${r.stderr.trim()}`);
  return {
    mnt,
    unmount() {
      if (!isMounted(mnt)) return;
      const u = spawnSync('umount', [mnt]);
      if (u.status !== 0) spawnSync('umount', ['-l', mnt]);
    },
  };
}
