// Progress on commit and export of a large layer: the jobs report file bytes against a
// total known before the first byte is written, and the CLI's bar draws only on a
// terminal and only for large layers.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { phaseProgress } from '../../src/cli/progress.js';
import { commitContainer, type CommitProgress } from '../../src/containers/commit.js';
import { createContainer } from '../../src/containers/create.js';
import { exportContainer } from '../../src/containers/export.js';
import { ContainerDirs } from '../../src/containers/layout.js';
import { ImageStore } from '../../src/store/images.js';
import { tmpdir } from '../helpers/mount.js';
import { makeImage } from './helpers.js';

const BIG = 24 << 20;

let work: string;
let store: ImageStore;
let id: string;

beforeAll(async () => {
  work = tmpdir('containers-progress');
  const root = path.join(work, 'store');
  await makeImage(root, [{ 'etc/os-release': 'ID=test\n' }], 'small:1');
  store = ImageStore.open(root);
  id = createContainer(store, 'small:1', 'big').id;
  // A file added to the container layer without a mount: the upper dir is plain overlayfs format.
  const data = Buffer.alloc(BIG);
  for (let i = 0; i < BIG; i += 4096) data.writeUInt32LE(i, i);
  fs.writeFileSync(path.join(new ContainerDirs(store.paths, id).upper, 'blob'), data);
});

afterAll(() => {
  store?.close();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** A stand-in terminal that keeps what is drawn. */
function fakeTty(): { stream: NodeJS.WriteStream; text: () => string } {
  let text = '';
  const stream = Object.assign(new Writable({ write: (c, _e, cb) => ((text += String(c)), cb()) }), { isTTY: true }) as unknown as NodeJS.WriteStream;
  return { stream, text: () => text };
}

describe('progress of commit and export', () => {
  it('commit reports writing then extracting, each up to its total', async () => {
    const seen: CommitProgress[] = [];
    await commitContainer(store, 'big', { onProgress: (p) => seen.push(p) });
    const writing = seen.filter((p) => p.phase === 'writing');
    const extracting = seen.filter((p) => p.phase === 'extracting');
    expect(writing.length).toBeGreaterThan(5);
    expect(writing.at(-1)).toMatchObject({ bytes: BIG, total: BIG });
    expect(extracting.length).toBeGreaterThan(1);
    expect(extracting.at(-1)!.bytes).toBe(extracting.at(-1)!.total);
    expect(seen.findIndex((p) => p.phase === 'extracting')).toBe(writing.length);
  });

  it('export reports its file bytes up to the total', async () => {
    const seen: Array<[number, number]> = [];
    await exportContainer(store, 'big', new Writable({ write: (_c, _e, cb) => cb() }), { onProgress: (b, t) => seen.push([b, t]) });
    const total = BIG + 'ID=test\n'.length;
    expect(seen.at(-1)).toEqual([total, total]);
  });

  it('the bar is drawn on a terminal, for large jobs only, ending each phase with a newline', () => {
    const t = fakeTty();
    const draw = phaseProgress(t.stream)!;
    draw('Writing layer', 1 << 20, 2 << 20);
    expect(t.text()).toBe('');
    draw('Writing layer', 0, BIG);
    draw('Writing layer', BIG, BIG);
    draw('Writing layer', BIG, BIG);
    expect(t.text()).toMatch(/Writing layer \[>\s+\] 0B\/25.2MB/);
    expect(t.text().match(/Writing layer \[={40}\] 25.2MB\/25.2MB\n/g)).toHaveLength(1);
    expect(phaseProgress(Object.assign(new Writable(), { isTTY: false }) as unknown as NodeJS.WriteStream)).toBeUndefined();
  });
});
