// strata diff of a mounted container while another process keeps the store's path index
// locked (a long `strata load`, another tool): the daemon's change records wait for the
// lock, and diff must wait for them too, or say it cannot answer, never print a list that
// misses them.

import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { containerChanges } from '../../src/containers/diff.js';
import { ImageStore } from '../../src/store/images.js';
import { journalWaitingMarker } from '../../src/union/stack.js';
import { ROOT, tmpdir } from '../helpers/mount.js';
import { Cli, makeImage } from './helpers.js';

let work: string;
let cli: Cli;
const children: ChildProcess[] = [];

beforeAll(async () => {
  work = tmpdir('containers-diff-wait');
  cli = new Cli(path.join(work, 'store'));
  await makeImage(cli.root, [{ 'etc/hostname': 'box\n' }], 'tiny:1');
});

afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});

afterAll(async () => {
  await cli?.cleanup();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** Another process holding the index's write lock for `ms`; resolves once it holds it, with its exit. */
async function lockIndex(file: string, ms: number): Promise<{ released: Promise<void> }> {
  const script = `
    const Database = require('better-sqlite3');
    const db = new Database(${JSON.stringify(file)});
    db.exec('BEGIN IMMEDIATE');
    db.prepare("UPDATE layers SET built = built").run();
    process.stdout.write('locked\\n');
    setTimeout(() => { db.exec('COMMIT'); db.close(); }, ${ms});
  `;
  const child = spawn(process.execPath, ['-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (b: Buffer) => b.toString().includes('locked') && resolve());
    child.on('exit', (code) => reject(new Error(`lock holder exited early (${code})`)));
  });
  // Wrapped: an async function returning the promise itself would wait for it.
  return { released: exited };
}

describe('strata diff while the path index is locked by another process', () => {
  it('waits for the records the daemon holds back, and refuses to answer without them past its wait', async () => {
    const id = cli.ok(['create', '--name', 'c1', 'tiny:1']).trim();
    const mnt = path.join(work, 'mnt');
    cli.mount('c1', mnt);
    const indexFile = path.join(cli.root, 'index.db');
    const marker = journalWaitingMarker(path.join(path.dirname(cli.upper(id)), 'work'));

    // Locked for 2.5 s: the records of /late wait; diff waits past the lock and has them.
    let { released } = await lockIndex(indexFile, 2500);
    fs.writeFileSync(path.join(mnt, 'late'), 'written while the index was locked\n');
    await new Promise((r) => setTimeout(r, 400));
    expect(fs.existsSync(marker)).toBe(true);
    expect(cli.ok(['diff', 'c1'])).toBe('A /late\n');
    expect(fs.existsSync(marker)).toBe(false);
    await released;

    // Locked for longer than diff waits: an error naming the cause, not a short list.
    ({ released } = await lockIndex(indexFile, 2500));
    fs.writeFileSync(path.join(mnt, 'later'), 'also\n');
    const store = ImageStore.open(cli.root);
    try {
      expect(() => containerChanges(store, 'c1', 1000)).toThrow(/c1: its mount's change records wait for the path index, which another process has kept locked/);
    } finally {
      store.close();
    }
    await released;
    expect(cli.ok(['diff', 'c1'])).toBe('A /late\nA /later\n');
  });
});
