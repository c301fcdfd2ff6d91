// One pino logger for the whole program: structured JSON on stderr, quiet by default.
// STRATAFS_LOG=trace|debug|info|warn|error|fatal|silent chooses the level.
//
// pino itself is loaded at the first message at or above the level: loading it costs
// ~15 ms, paid twice by every mount (the command and its daemon), and at the default level
// most runs log nothing.

import { createRequire } from 'node:module';
import type { Logger as PinoLogger } from 'pino';

const LEVELS: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };
const LEVEL = process.env.STRATAFS_LOG ?? 'warn';
const THRESHOLD = LEVELS[LEVEL] ?? LEVELS.warn!;

let real: PinoLogger | undefined;

function pinoLogger(): PinoLogger {
  if (!real) {
    const { pino } = createRequire(import.meta.url)('pino') as typeof import('pino');
    const dest = pino.destination({ fd: 2, sync: true });
    // A log that cannot be written (a daemon's log file on the full upper filesystem) must
    // not take the mount down: an unheard 'error' event would end the process.
    dest.on('error', () => {});
    real = pino({ name: 'stratafs', level: LEVEL, base: { pid: process.pid } }, dest);
  }
  return real;
}

type Method = 'debug' | 'info' | 'warn' | 'error';
type LogFn = (objOrMsg: object | string, msg?: string) => void;

function method(name: Method): LogFn {
  const value = LEVELS[name]!;
  return (objOrMsg, msg) => {
    if (value < THRESHOLD) return;
    try {
      const l = pinoLogger();
      if (typeof objOrMsg === 'string') l[name](objOrMsg);
      else l[name](objOrMsg, msg);
    } catch {
      // The message is lost (ENOSPC, EIO, a closed stderr); the work goes on.
    }
  };
}

export const log = { debug: method('debug'), info: method('info'), warn: method('warn'), error: method('error') };

export type Logger = typeof log;
