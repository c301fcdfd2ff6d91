// `strata index prune`: an index shared by plain mounts (-o index=FILE, as a mount
// program's containers can share one) drops the journals of deleted upper dirs, the layers
// whose dirs are gone and the names nobody has left, and nothing still in use. Real mounts,
// real deletions.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupsAfterEach, mountWith, STRATA, tmpdir } from '../helpers/mount.js';

const root = tmpdir('index-prune');
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

function strata(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(STRATA, args, { encoding: 'utf8' });
}

interface Stats {
  paths: number;
  layers: Array<{ dir: string }>;
  uppers: Array<{ dir: string }>;
}
const stats = (index: string): Stats => JSON.parse(strata('index', 'stats', '--json', '--index', index).stdout) as Stats;

describe('strata index prune', () => {
  const cleanups = cleanupsAfterEach();

  /** A layer dir with files of its own under `name/`. */
  function layer(name: string, files: number): string {
    const d = path.join(root, name);
    fs.mkdirSync(path.join(d, name, 'sub'), { recursive: true });
    for (let i = 0; i < files; i++) fs.writeFileSync(path.join(d, name, 'sub', `f${i}`), `${name} ${i}\n`);
    return d;
  }

  /** A container: an upper and work dir, mounted over `lowers` with the shared index, changed, unmounted. */
  async function container(name: string, lowers: string[], index: string): Promise<string> {
    const [upper, work, mnt] = ['upper', 'work', 'mnt'].map((d) => path.join(root, name, d)) as [string, string, string];
    for (const d of [upper, work, mnt]) fs.mkdirSync(d, { recursive: true });
    const m = mountWith(['mount', '-o', `lowerdir=${lowers.join(':')},upperdir=${upper},workdir=${work},index=${index}`], mnt);
    cleanups.push(() => m.cleanup());
    fs.writeFileSync(path.join(mnt, `${name}.txt`), name);
    await m.cleanup();
    return path.join(root, name);
  }

  it('drops deleted containers and layers, keeps a layer a remaining container reads, and leaves an index that agrees with the dirs', async () => {
    const index = path.join(root, 'shared-index.db');
    const base = layer('base', 5);
    const app = layer('app', 20);
    const c1 = await container('c1', [base], index);
    const c2 = await container('c2', [app, base], index);
    const before = stats(index);
    expect(before.layers.map((l) => path.basename(l.dir)).sort()).toEqual(['app', 'base']);
    expect(before.uppers).toHaveLength(2);

    // Nothing is gone: nothing is dropped.
    expect(strata('index', 'prune', '--index', index).stderr).toContain('dropped 0 journals of deleted upper dirs, 0 deleted layers, 0 paths');

    // c2 and its top layer deleted: both go, and app's own paths with them.
    fs.rmSync(c2, { recursive: true });
    fs.rmSync(app, { recursive: true });
    const r = strata('index', 'prune', '--index', index);
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/dropped 1 journal of deleted upper dirs, 1 deleted layer, (\d+) paths/);
    const after = stats(index);
    expect(after.layers.map((l) => path.basename(l.dir))).toEqual(['base']);
    expect(after.uppers.map((u) => path.basename(path.dirname(u.dir)))).toEqual(['c1']);
    // app/, app/sub and its 20 files.
    expect(before.paths - after.paths).toBe(22);
    expect(strata('index', 'check', '--index', index).status).toBe(0);

    // A deleted layer that c1's journal still reads stays until c1 is gone too.
    const moved = `${base}.moved`;
    fs.renameSync(base, moved);
    expect(strata('index', 'prune', '--index', index).stderr).toContain('0 deleted layers');
    expect(stats(index).layers).toHaveLength(1);
    fs.rmSync(c1, { recursive: true });
    expect(strata('index', 'prune', '--index', index).stderr).toContain('dropped 1 journal of deleted upper dirs, 1 deleted layer');
    const empty = stats(index);
    expect(empty.layers).toEqual([]);
    expect(empty.uppers).toEqual([]);
    expect(empty.paths).toBe(1);
  });
});
