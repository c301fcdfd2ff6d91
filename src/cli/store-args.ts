// What every store command shares: --root, strict parsing, opening and closing the store.

import * as fs from 'node:fs';
import type { Writable } from 'node:stream';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ImageStore } from '../store/images.js';

const rootOpt = { root: { type: 'string' } } as const;

export function parse<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T) {
  return parseArgs({ args: argv, options: { ...rootOpt, ...options }, allowPositionals: true, strict: true });
}

export async function withStore<R>(root: string | undefined, fn: (s: ImageStore) => Promise<R> | R): Promise<R> {
  const store = ImageStore.open(root);
  try {
    return await fn(store);
  } finally {
    store.close();
  }
}

export const out = (s: string): void => {
  process.stdout.write(s);
};

/**
 * Runs `write` into FILE (via FILE.partial, renamed once complete, so a failed run leaves
 * no truncated archive under the real name) or, without one, into stdout unless it is a
 * terminal.
 */
export async function writeArchive(file: string | undefined, write: (sink: Writable) => Promise<unknown>): Promise<void> {
  if (!file && process.stdout.isTTY) throw new Error('cowardly refusing to write an archive to a terminal (use -o FILE or redirect)');
  if (!file) {
    await write(process.stdout);
    return;
  }
  const partial = `${file}.partial`;
  try {
    await write(fs.createWriteStream(partial));
    fs.renameSync(partial, file);
  } catch (e) {
    fs.rmSync(partial, { force: true });
    throw e;
  }
}

/**
 * Runs `fn` for every argument, as docker's rm and rmi do: each is tried, failures are
 * reported and make the exit status 1.
 */
export async function forEachReported(items: string[], fn: (item: string) => Promise<void> | void): Promise<number> {
  let failed = 0;
  for (const item of items) {
    try {
      await fn(item);
    } catch (e) {
      process.stderr.write(`strata: ${(e as Error).message}\n`);
      failed++;
    }
  }
  return failed ? 1 : 0;
}
