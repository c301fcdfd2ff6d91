// Mounting from tests: the daemon is always another process (`bin/strata ... ` returns once
// the mount answers), so the test process can use the mount freely. cleanup() unmounts and
// makes sure the daemon is gone, and runs in teardown even when a test failed.

import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach } from 'vitest';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const STRATA = path.join(ROOT, 'bin/strata');

export function tmpdir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `strata-test-${prefix}-`));
}

export function isMounted(mnt: string): boolean {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === mnt);
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function waitFor(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface Mounted {
  mnt: string;
  pid: number;
  log: string;
  /** Unmounts (lazily if busy), waits for the daemon to exit, kills it if it does not. */
  cleanup(): Promise<void>;
}

/** Runs `strata <args...> <mnt>` in background mode and returns the daemon's pid. */
export function mountWith(args: string[], mnt: string, env: Record<string, string> = {}): Mounted {
  const logFile = `${mnt}.log`;
  const r = spawnSync(STRATA, [...args, '--log-file', logFile, mnt], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 30_000 });
  if (r.status !== 0) throw new Error(`strata ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  const m = /daemon pid (\d+)/.exec(r.stderr);
  if (!m) throw new Error(`no daemon pid in: ${r.stderr}`);
  const pid = Number(m[1]);
  return {
    mnt,
    pid,
    log: logFile,
    async cleanup() {
      if (isMounted(mnt)) spawnSync('umount', ['-l', mnt]);
      try {
        await waitFor(() => !alive(pid), 5000, `daemon ${pid} to exit`);
      } catch {
        process.kill(pid, 'SIGKILL');
      }
    },
  };
}

/** Runs a shell command as another user (uid:gid) — for ownership tests on allow_other mounts. */
export function runAs(uid: number, gid: number, cmd: string): string {
  return execFileSync('setpriv', [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', 'sh', '-c', cmd], { encoding: 'utf8' });
}

/** errno code of a throwing call, or 'OK'. */
export function errnoOf(f: () => unknown): string {
  try {
    f();
    return 'OK';
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? String(e);
  }
}

/**
 * Teardown steps pushed by a test, run after it in reverse order (also when it failed):
 * unmount before removing the dirs below the mount.
 */
export function cleanupsAfterEach(): Array<() => Promise<void> | void> {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  return cleanups;
}
