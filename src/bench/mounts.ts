// Mounts for benchmarks: always a separate daemon process (a daemon must never be driven
// from its own event loop), started through the strata CLI or the peer's own command, and
// unmounted in finally blocks. Unmounting waits for the daemon to exit, so a benchmark never
// leaves one running (and the next run does not share the CPU with a dying one).

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { servingPids } from '../fuse/mount.js';
import { log } from '../util/log.js';
import { pidAlive, sleepSync } from '../util/process.js';

/** How to run the strata CLI: this build's dist/cli/main.js under this node. */
export const STRATA_CLI = [process.execPath, fileURLToPath(new URL('../cli/main.js', import.meta.url))];

export interface BenchMount {
  mnt: string;
  unmount(): void;
}

/** Runs a command to completion; throws with its stderr when it fails. */
export function run(cmd: string, args: string[], timeoutMs = 120_000): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  // The command's own message first: the command line (long paths) goes to the debug log.
  if (r.status !== 0) {
    log.debug({ cmd, args, stderr: r.stderr }, 'command failed');
    throw new Error(`${path.basename(cmd)} failed: ${(r.stderr || r.stdout).trim().replace(/\s*\n\s*/g, ' ') || `exit ${r.status ?? r.signal}`}`);
  }
  return r.stdout;
}

function mountPoints(): string[] {
  // Field 5 of mountinfo is the mount point, with spaces and such escaped as \ooo.
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(' ')[4]!.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))));
}

export function isMounted(mnt: string): boolean {
  return mountPoints().includes(mnt);
}

/** Mount points at or below dir, deepest first (the order to unmount them in). */
export function mountsUnder(dir: string): string[] {
  return mountPoints()
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/** Unmounts (lazily if busy), then waits up to 10 s for the daemons serving mnt to exit; kills what is left. */
export function unmount(mnt: string): void {
  const daemons = servingPids(mnt);
  if (isMounted(mnt)) {
    const r = spawnSync('umount', [mnt], { encoding: 'utf8' });
    if (r.status !== 0 && isMounted(mnt)) {
      log.warn({ mnt, stderr: r.stderr.trim() }, 'umount failed; detaching lazily');
      spawnSync('umount', ['-l', mnt]);
    }
  }
  const end = Date.now() + 10_000;
  for (const pid of daemons) {
    while (pidAlive(pid) && Date.now() < end) sleepSync(10);
    if (pidAlive(pid)) {
      log.warn({ mnt, pid }, 'daemon still running 10 s after its unmount; killing it');
      process.kill(pid, 'SIGKILL');
    }
  }
}

/**
 * Memory of the processes serving a FUSE mount, in bytes: resident now (VmRSS), at its peak
 * (VmHWM), and the part of it that is the process's own (RssAnon: not pages of the program
 * and its libraries, which every daemon running them shares).
 */
export interface DaemonMemory {
  rss: number;
  hwm: number;
  anon: number;
}

/**
 * The memory of the daemons serving mnt (found by their /dev/fuse connection), summed;
 * undefined when no process serves it (a kernel filesystem, or the daemon is gone).
 */
export function daemonMemory(mnt: string): DaemonMemory | undefined {
  let out: DaemonMemory | undefined;
  for (const pid of servingPids(mnt)) {
    try {
      const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
      const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
      out = { rss: (out?.rss ?? 0) + kb('VmRSS'), hwm: (out?.hwm ?? 0) + kb('VmHWM'), anon: (out?.anon ?? 0) + kb('RssAnon') };
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** Starts `strata <args> MNT` in the background; returns once the mount answers. */
export function strataMount(args: string[], mnt: string, cli: string[] = STRATA_CLI): BenchMount {
  fs.mkdirSync(mnt, { recursive: true });
  try {
    run(cli[0]!, [...cli.slice(1), ...args, mnt], 60_000);
  } catch (e) {
    throw new Error(`strata ${args[0]}: ${(e as Error).message.replace(/^\S+ failed: /, '')}`);
  }
  return { mnt, unmount: () => unmount(mnt) };
}

/** overlayfs's lowerdir/upperdir/workdir options; paths must not hold its separators. */
export function overlayOptions(lower: string[], upper?: string, work?: string): string {
  for (const p of [...lower, upper ?? '', work ?? '']) {
    if (/[,:\\]/.test(p)) throw new Error(`path not usable in overlay options: ${p}`);
  }
  return [`lowerdir=${lower.join(':')}`, ...(upper ? [`upperdir=${upper}`, `workdir=${work}`] : [])].join(',');
}

/** The kernel's overlayfs with the module's default features; read-only without an upper dir. */
export function kernelOverlayMount(lower: string[], mnt: string, upper?: string, work?: string): BenchMount {
  run('mount', ['-t', 'overlay', 'overlay', '-o', `${upper ? '' : 'ro,'}${overlayOptions(lower, upper, work)}`, mnt]);
  return { mnt, unmount: () => unmount(mnt) };
}

export function fuseOverlayfsMount(lower: string[], upper: string, work: string, mnt: string): BenchMount {
  run('fuse-overlayfs', ['-o', overlayOptions(lower, upper, work), mnt]);
  return { mnt, unmount: () => unmount(mnt) };
}

/** Is `cmd` an executable on PATH? */
export function onPath(cmd: string, pathVar = process.env.PATH ?? '/usr/bin:/bin'): boolean {
  return pathVar.split(':').some((d) => {
    try {
      fs.accessSync(path.join(d, cmd), fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}
