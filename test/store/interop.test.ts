// Interop with Debian's umoci and skopeo: an image umoci builds loads into stratafs, and
// the kernel's overlayfs mounting our layer dirs (lowerdir=top:bottom) shows exactly the
// tree `umoci unpack` produces; skopeo's docker-archive copy of it loads as the same image
// ID; what `strata save` writes is accepted by `skopeo inspect` (oci-archive and
// docker-archive) and unpacked by umoci to the same tree again.

import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native } from '../../src/native/binding.js';
import { ImageStore } from '../../src/store/images.js';
import { loadImages } from '../../src/store/load.js';
import { saveImages } from '../../src/store/save.js';
import { diffTrees, snapshotTree, type TreeEntry } from '../../src/util/tree.js';
import { mountWith, tmpdir } from '../helpers/mount.js';

const have = (cmd: string): boolean => spawnSync(cmd, ['--version']).status === 0;
const tools = have('umoci') && have('skopeo');
const run = (cmd: string, args: string[], cwd?: string): string => execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

let work: string;
let store: ImageStore;
let mnt: string | undefined;
const SNAP = { mtime: true, nlink: true, skipXattr: (n: string) => n.startsWith('trusted.overlay.') };

/**
 * A rootfs snapshot without its root entry (umoci and overlayfs make the root differently)
 * and without directory mtimes: a layer tar that lacks an entry for a parent directory
 * (umoci's second layer has "d/.wh.gone" but no "d/") gets that directory created at
 * extraction time, as docker's overlay2 driver does, and overlayfs shows the upper copy;
 * umoci instead keeps the lower layer's time. Files, links and devices keep exact times,
 * and test/store/extract.test.ts checks directory times of explicit entries.
 */
function rootfs(dir: string): Record<string, TreeEntry> {
  const t = snapshotTree(dir, SNAP);
  delete t['.'];
  for (const e of Object.values(t)) if (e.type === 'dir') delete e.mtimeNs;
  return t;
}

beforeAll(() => {
  if (!tools) return;
  work = tmpdir('interop');
  store = ImageStore.open(path.join(work, 'store'));
  const L = path.join(work, 'layout');
  run('umoci', ['init', '--layout', L]);
  run('umoci', ['new', '--image', `${L}:t`]);
  // Layer 1: a little of everything.
  const b1 = path.join(work, 'b1');
  run('umoci', ['unpack', '--image', `${L}:t`, b1]);
  const r1 = path.join(b1, 'rootfs');
  fs.mkdirSync(path.join(r1, 'etc/conf.d'), { recursive: true });
  fs.mkdirSync(path.join(r1, 'd/sub'), { recursive: true });
  fs.mkdirSync(path.join(r1, 'opq'));
  fs.writeFileSync(path.join(r1, 'etc/hello'), 'hello\n');
  fs.writeFileSync(path.join(r1, 'etc/conf.d/a.conf'), 'a=1\n');
  fs.writeFileSync(path.join(r1, 'd/gone'), 'to be deleted\n');
  fs.writeFileSync(path.join(r1, 'd/sub/x'), 'x\n');
  fs.writeFileSync(path.join(r1, 'opq/old'), 'old\n');
  fs.writeFileSync(path.join(r1, 'tool'), '#!/bin/sh\n', { mode: 0o755 });
  fs.chmodSync(path.join(r1, 'tool'), 0o4755);
  native.lchown(path.join(r1, 'etc/hello'), 1000, 1000);
  fs.symlinkSync('hello', path.join(r1, 'etc/link'));
  fs.linkSync(path.join(r1, 'etc/hello'), path.join(r1, 'etc/hard'));
  native.mknod(path.join(r1, 'fifo'), 0o010600, 0, 0);
  native.lsetxattr(path.join(r1, 'etc/conf.d/a.conf'), 'user.note', Buffer.from('kept'), 0);
  native.utimens(path.join(r1, 'etc/conf.d/a.conf'), 1_600_000_000, 5, 1_600_000_000, 123_456_789, true);
  run('umoci', ['repack', '--image', `${L}:t`, b1]);
  // Layer 2: a deletion, a directory replaced (whiteouts), an addition.
  const b2 = path.join(work, 'b2');
  run('umoci', ['unpack', '--image', `${L}:t`, b2]);
  const r2 = path.join(b2, 'rootfs');
  fs.rmSync(path.join(r2, 'd/gone'));
  fs.rmSync(path.join(r2, 'opq'), { recursive: true });
  fs.mkdirSync(path.join(r2, 'opq'));
  fs.writeFileSync(path.join(r2, 'opq/new'), 'new\n');
  fs.writeFileSync(path.join(r2, 'etc/added'), 'added\n');
  run('umoci', ['repack', '--image', `${L}:t`, b2]);
  run('umoci', ['unpack', '--image', `${L}:t`, path.join(work, 'ref')]);
});

afterAll(() => {
  if (mnt) spawnSync('umount', ['-l', mnt]);
  store?.close();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe.skipIf(!tools)('interop with umoci and skopeo', () => {
  let id: string;

  it('loads umoci\'s OCI layout; overlayfs over our layer dirs equals umoci unpack', async () => {
    const loaded = await loadImages(store, path.join(work, 'layout'));
    expect(loaded).toHaveLength(1);
    id = loaded[0]!.id;
    store.tag(id, 'interop:v1');
    const img = store.image(id)!;
    expect(img.layers).toHaveLength(2);
    mnt = path.join(work, 'merged');
    fs.mkdirSync(mnt);
    const lower = [...img.layers].reverse().map((d) => store.paths.layerDir(d)).join(':');
    run('mount', ['-t', 'overlay', 'overlay', '-o', `ro,lowerdir=${lower}`, mnt]);
    try {
      expect(diffTrees(rootfs(path.join(work, 'ref/rootfs')), rootfs(mnt))).toEqual([]);
    } finally {
      run('umount', [mnt]);
      mnt = undefined;
    }
  });

  it('the stratafs union mount of the loaded image equals umoci unpack, read-only and with a writable layer', async () => {
    const img = store.image(id)!;
    const lower = [...img.layers].reverse().map((d) => store.paths.layerDir(d)).join(':');
    const expected = rootfs(path.join(work, 'ref/rootfs'));
    for (const withUpper of [false, true]) {
      const m = path.join(work, `strata-${withUpper}`);
      const rw = withUpper ? ['--upper', path.join(work, `up-${withUpper}`), '--work', path.join(work, `wk-${withUpper}`)] : [];
      for (const d of [m, ...rw.filter((_, i) => i % 2 === 1)]) fs.mkdirSync(d);
      const mounted = mountWith(['mount', '--lower', lower, ...rw], m);
      try {
        expect(diffTrees(expected, rootfs(m))).toEqual([]);
      } finally {
        await mounted.cleanup();
      }
    }
  });

  it('skopeo\'s docker-archive copy (its config rewritten by skopeo) loads sharing our layers', async () => {
    const arch = path.join(work, 'skopeo-docker.tar');
    run('skopeo', ['copy', '--quiet', `oci:${path.join(work, 'layout')}:t`, `docker-archive:${arch}:skopeo/copy:latest`]);
    const before = fs.readdirSync(store.paths.layersDir).sort();
    const loaded = await loadImages(store, arch);
    expect(loaded).toHaveLength(1);
    expect(loaded[0]!.tags).toEqual([{ repository: 'skopeo/copy', tag: 'latest' }]);
    expect(store.image(loaded[0]!.id)!.layers).toEqual(store.image(id)!.layers);
    expect(fs.readdirSync(store.paths.layersDir).sort()).toEqual(before);
  });

  for (const format of ['oci', 'docker'] as const) {
    it(`strata save --format ${format}: skopeo inspects it, umoci unpacks the same tree`, async () => {
      const out = path.join(work, `saved-${format}.tar`);
      await saveImages(store, ['interop:v1'], fs.createWriteStream(out), format);
      const oci = JSON.parse(run('skopeo', ['inspect', `oci-archive:${out}:v1`])) as { Layers: string[] };
      expect(oci.Layers).toHaveLength(2);
      if (format === 'docker') {
        const dock = JSON.parse(run('skopeo', ['inspect', `docker-archive:${out}`])) as { RepoTags: string[]; Layers: string[] };
        expect(dock.Layers).toHaveLength(2);
      }
      const layout = path.join(work, `saved-${format}`);
      fs.mkdirSync(layout);
      run('tar', ['-xf', out, '-C', layout]);
      const bundle = path.join(work, `unpacked-${format}`);
      run('umoci', ['unpack', '--image', `${layout}:v1`, bundle]);
      expect(diffTrees(rootfs(path.join(work, 'ref/rootfs')), rootfs(path.join(bundle, 'rootfs')))).toEqual([]);
    });
  }
});
