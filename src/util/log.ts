// One pino logger for the whole program: structured JSON on stderr, quiet by default.
// STRATAFS_LOG=debug|info|warn|error|silent chooses the level.

import { pino } from 'pino';

export const log = pino(
  { name: 'stratafs', level: process.env.STRATAFS_LOG ?? 'warn', base: { pid: process.pid } },
  pino.destination({ fd: 2, sync: true }),
);

export type Logger = typeof log;
