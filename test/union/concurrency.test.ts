// Eight processes work in one union tree at once for a bounded number of steps: each owns a
// directory (so the final state is known) where it copies up lower files, creates, renames
// and deletes, and all of them append to one shared lower file, racing its copy-up. No
// operation may fail, and the final tree must be exactly what the workers did.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountWith, tmpdir, type Mounted } from '../helpers/mount.js';

const WORKERS = 8;
const STEPS = 60;

// Each step: append to a lower file (copy-up), create a file, rename it within the dir,
// move an older one to a shared dir, delete a lower file, mkdir and rmdir, and append one
// line to the shared lower file. Records what it expects to find.
const WORKER = `
const fs = require('fs');
const [mnt, id, steps] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
const dir = mnt + '/w' + id;
const expect = {};
for (let s = 0; s < steps; s++) {
  const lower = dir + '/lower-' + s;
  fs.appendFileSync(lower, 'step ' + s + '\\n');
  expect['w' + id + '/lower-' + s] = 'lower ' + id + ' ' + s + '\\nstep ' + s + '\\n';
  fs.writeFileSync(dir + '/tmp-' + s, 'new ' + s);
  fs.renameSync(dir + '/tmp-' + s, dir + '/new-' + s);
  expect['w' + id + '/new-' + s] = 'new ' + s;
  if (s % 3 === 0) {
    fs.renameSync(dir + '/new-' + s, mnt + '/shared/from-' + id + '-' + s);
    delete expect['w' + id + '/new-' + s];
    expect['shared/from-' + id + '-' + s] = 'new ' + s;
  }
  if (s % 4 === 1) {
    fs.unlinkSync(dir + '/lower-' + s);
    delete expect['w' + id + '/lower-' + s];
  }
  fs.mkdirSync(dir + '/d' + s);
  if (s % 2 === 0) fs.rmdirSync(dir + '/d' + s); else expect['w' + id + '/d' + s + '/'] = '';
  fs.appendFileSync(mnt + '/shared/log', 'worker ' + id + ' step ' + s + '\\n');
}
process.stdout.write(JSON.stringify(expect));
`;

describe('union mount under concurrent use', () => {
  let base = '';
  let m: Mounted | undefined;

  beforeAll(() => {
    base = tmpdir('concurrent');
    const lower = path.join(base, 'lower');
    for (let id = 0; id < WORKERS; id++) {
      fs.mkdirSync(path.join(lower, `w${id}`), { recursive: true });
      for (let s = 0; s < STEPS; s++) fs.writeFileSync(path.join(lower, `w${id}`, `lower-${s}`), `lower ${id} ${s}\n`);
    }
    fs.mkdirSync(path.join(lower, 'shared'));
    fs.writeFileSync(path.join(lower, 'shared', 'log'), 'from the image\n');
    for (const d of ['upper', 'work', 'mnt']) fs.mkdirSync(path.join(base, d));
    m = mountWith(['mount', '--lower', lower, '--upper', path.join(base, 'upper'), '--work', path.join(base, 'work')], path.join(base, 'mnt'));
  });

  afterAll(async () => {
    await m?.cleanup();
    fs.rmSync(base, { recursive: true, force: true });
  });

  it(`${WORKERS} processes x ${STEPS} steps: no errors, and the tree is exactly what they did`, async () => {
    const mnt = m!.mnt;
    const runs = Array.from({ length: WORKERS }, (_, id) =>
      new Promise<Record<string, string>>((resolve, reject) => {
        const p = spawn(process.execPath, ['-e', WORKER, mnt, String(id), String(STEPS)], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        p.stdout.on('data', (d: Buffer) => (out += d));
        p.stderr.on('data', (d: Buffer) => (err += d));
        // 'close', not 'exit': a busy machine may report the exit before the pipe's last
        // data (the whole output, written at the end), which failed the suite once.
        p.once('close', (code) => {
          try {
            if (code !== 0) throw new Error(`worker ${id} exited ${code}: ${err}`);
            resolve(JSON.parse(out) as Record<string, string>);
          } catch (e) {
            reject(e instanceof Error ? e : new Error(String(e)));
          }
        });
      }),
    );
    const expected: Record<string, string> = Object.assign({}, ...(await Promise.all(runs)));
    const actual: Record<string, string> = {};
    for (let id = 0; id < WORKERS; id++) {
      for (const n of fs.readdirSync(path.join(mnt, `w${id}`))) {
        const p = path.join(mnt, `w${id}`, n);
        actual[`w${id}/${n}${fs.statSync(p).isDirectory() ? '/' : ''}`] = fs.statSync(p).isDirectory() ? '' : fs.readFileSync(p, 'utf8');
      }
    }
    for (const n of fs.readdirSync(path.join(mnt, 'shared'))) if (n !== 'log') actual[`shared/${n}`] = fs.readFileSync(path.join(mnt, 'shared', n), 'utf8');
    expect(actual).toEqual(expected);
    // Every append to the shared file survived its concurrent copy-up, after the image's line.
    const log = fs.readFileSync(path.join(mnt, 'shared', 'log'), 'utf8').split('\n').filter(Boolean);
    expect(log[0]).toBe('from the image');
    expect(log.slice(1).sort()).toEqual(Array.from({ length: WORKERS * STEPS }, (_, i) => `worker ${Math.floor(i / STEPS)} step ${i % STEPS}`).sort());
    expect(fs.readdirSync(path.join(base, 'work', 'stratafs'))).toEqual([]);
  });
});
