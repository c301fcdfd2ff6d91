// Background mounts: the command re-runs itself in the foreground as a detached child and
// returns once the child reports on fd 3 that the mount answers (or why it failed).
// Detached children get no inherited stdio: a daemon holding the caller's pipes open would
// make anyone who waits for the command's output wait for the daemon's death.

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';

const READY_FD_ENV = 'STRATAFS_READY_FD';
const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

/** In the child: tell the waiting parent the outcome. No-op in a plain foreground run. */
export function reportReady(error?: string): void {
  const fd = Number(process.env[READY_FD_ENV]);
  if (!Number.isInteger(fd) || fd <= 0) return;
  try {
    fs.writeSync(fd, error === undefined ? 'ready\n' : `error ${error}\n`);
    fs.closeSync(fd);
  } catch {
    // The parent is gone; nobody is waiting.
  }
  delete process.env[READY_FD_ENV];
}

/**
 * In the parent: start `strata <args> --foreground` detached and wait for its report.
 * Resolves with the child's pid; rejects with the child's error message.
 */
export function spawnDaemon(args: string[], logFile?: string): Promise<number> {
  const logFd = logFile ? fs.openSync(logFile, 'a') : 'ignore';
  const child = spawn(process.execPath, [MAIN, ...args, '--foreground'], {
    detached: true,
    stdio: ['ignore', 'ignore', logFd, 'pipe'],
    env: { ...process.env, [READY_FD_ENV]: '3' },
  });
  if (typeof logFd === 'number') fs.closeSync(logFd);
  return new Promise((resolve, reject) => {
    let text = '';
    const pipe = child.stdio[3] as NodeJS.ReadableStream;
    pipe.setEncoding('utf8');
    pipe.on('data', (d: string) => (text += d));
    const onExit = (code: number | null, signal: string | null): void => {
      reject(new Error(text.startsWith('error ') ? text.slice(6).trim() : `daemon exited (${signal ?? `code ${code}`}) before the mount was ready`));
    };
    child.once('exit', onExit);
    pipe.on('end', () => {
      if (text.startsWith('ready')) {
        child.off('exit', onExit);
        child.unref();
        resolve(child.pid!);
      } else if (text.startsWith('error ')) {
        child.off('exit', onExit);
        child.unref();
        reject(new Error(text.slice(6).trim()));
      }
    });
  });
}
