// Background mounts: the command re-runs itself in the foreground as a detached child and
// returns once the child reports on fd 3 that the mount answers (or why it failed). The
// child does all the work (checking the layers, indexing them, mounting), so the command
// loads none of it; while it works it may send progress lines, which the command draws on
// its terminal.
// Detached children get no inherited stdio: a daemon holding the caller's pipes open would
// make anyone who waits for the command's output wait for the daemon's death.

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';

const READY_FD_ENV = 'STRATAFS_READY_FD';
/** Set for a child whose parent draws progress (its stderr is a terminal). */
const PROGRESS_ENV = 'STRATAFS_PROGRESS';
const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

/** Redraws the progress line on this process's terminal; '' clears it. */
function drawProgress(text: string): void {
  process.stderr.write(text === '' ? '\r\x1b[2K' : `\r\x1b[2K${text}`);
}

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
  delete process.env[PROGRESS_ENV];
}

/**
 * Where the child's progress goes: to the waiting parent's terminal through fd 3, to its
 * own terminal in a plain foreground run, else nowhere (undefined).
 */
export function progressLine(): ((text: string) => void) | undefined {
  const fd = Number(process.env[READY_FD_ENV]);
  if (Number.isInteger(fd) && fd > 0) {
    if (process.env[PROGRESS_ENV] !== '1') return undefined;
    return (text) => {
      try {
        fs.writeSync(fd, `progress ${text.replace(/\n/g, ' ')}\n`);
      } catch {
        // The parent is gone; nobody is watching.
      }
    };
  }
  return process.stderr.isTTY ? drawProgress : undefined;
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
    env: { ...process.env, [READY_FD_ENV]: '3', [PROGRESS_ENV]: process.stderr.isTTY ? '1' : '0' },
  });
  if (typeof logFd === 'number') fs.closeSync(logFd);
  return new Promise((resolve, reject) => {
    let text = '';
    let drawn = false;
    const pipe = child.stdio[3] as NodeJS.ReadableStream;
    pipe.setEncoding('utf8');
    pipe.on('data', (d: string) => {
      text += d;
      // Progress lines come first, one per line; the outcome is the last line.
      for (let nl = text.indexOf('\n'); nl >= 0 && text.startsWith('progress '); nl = text.indexOf('\n')) {
        const line = text.slice('progress '.length, nl);
        text = text.slice(nl + 1);
        drawProgress(line);
        drawn = line !== '';
      }
    });
    const clear = (): void => {
      if (drawn) drawProgress('');
      drawn = false;
    };
    const onExit = (code: number | null, signal: string | null): void => {
      clear();
      reject(new Error(text.startsWith('error ') ? text.slice(6).trim() : `daemon exited (${signal ?? `code ${code}`}) before the mount was ready`));
    };
    child.once('exit', onExit);
    pipe.on('end', () => {
      clear();
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
