// stratafs cannot tell a layer's format from the layer itself, so it reads both formats'
// markers in every lower layer. A file named `.wh.x` or `.wh..wh..opq` is therefore always
// a marker, never an ordinary file, even in a layer otherwise in overlay format: the one
// place where stratafs and the kernel's overlayfs differ on the same layers (docs/union.md).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { native } from '../../src/native/binding.js';
import { mountWith, tmpdir, type Mounted } from '../helpers/mount.js';

describe('marker formats in lower layers', () => {
  const base = tmpdir('formats');
  const mounts: Mounted[] = [];
  afterAll(async () => {
    for (const m of mounts) await m.cleanup();
    fs.rmSync(base, { recursive: true, force: true });
  });

  it('`.wh.NAME` and `.wh..wh..opq` act as OCI markers in any lower layer, next to overlay-format markers', () => {
    const [bottom, top, mnt] = ['bottom', 'top', 'mnt'].map((d) => path.join(base, d)) as [string, string, string];
    for (const d of ['d', 'e', 'f']) fs.mkdirSync(path.join(bottom, d), { recursive: true });
    fs.mkdirSync(mnt);
    for (const n of ['d/x', 'd/y', 'e/old', 'f/kept', 'f/gone']) fs.writeFileSync(path.join(bottom, n), n);
    fs.mkdirSync(path.join(top, 'd'), { recursive: true });
    fs.mkdirSync(path.join(top, 'e'));
    fs.mkdirSync(path.join(top, 'f'));
    fs.writeFileSync(path.join(top, 'd/.wh.x'), '');
    fs.writeFileSync(path.join(top, 'e/.wh..wh..opq'), '');
    fs.writeFileSync(path.join(top, 'e/new'), 'new');
    native.mknod(path.join(top, 'f/gone'), 0o020000, 0, 0);
    const m = mountWith(['mount', '--lower', `${top}:${bottom}`], mnt);
    mounts.push(m);
    expect(fs.readdirSync(path.join(mnt, 'd')).sort()).toEqual(['y']);
    expect(fs.readdirSync(path.join(mnt, 'e')).sort()).toEqual(['new']);
    expect(fs.readdirSync(path.join(mnt, 'f')).sort()).toEqual(['kept']);
    expect(fs.existsSync(path.join(mnt, 'd/.wh.x'))).toBe(false);
    expect(fs.existsSync(path.join(mnt, 'd/x'))).toBe(false);
  });
});
