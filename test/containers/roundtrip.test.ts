// The container round trip through the real CLI and real mounts: a scripted set of
// changes in a mounted container -> `strata diff` shows exactly the expected A/C/D lines;
// `strata commit` -> a container of the new image mounts to a tree identical to the first
// one (content, mode, owner, nanosecond mtimes, xattrs, hard links); `umoci unpack` of the
// saved new image gives that tree too; `strata export` is the same tree as one flat tar;
// the committed layer is byte-for-byte reproducible.

import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commitContainer } from '../../src/containers/commit.js';
import { native } from '../../src/native/binding.js';
import { ImageStore } from '../../src/store/images.js';
import { diffTrees, snapshotTree, type TreeEntry } from '../../src/util/tree.js';
import { f, hl, wh } from '../helpers/layers.js';
import { tmpdir } from '../helpers/mount.js';
import { Cli, makeImage } from './helpers.js';

const have = (cmd: string): boolean => spawnSync(cmd, ['--version']).status === 0;
const SNAP = { mtime: true, nlink: true };

const BOTTOM = {
  'etc/passwd': 'root:x:0:0:root:/root:/bin/sh\n',
  'etc/hosts': '127.0.0.1 localhost\n',
  'etc/motd': 'welcome\n',
  'bin/tool': f('#!/bin/sh\necho tool\n', { mode: 0o755 }),
  'data/keep': 'keep\n',
  'data/gone': 'gone\n',
  'olddir/a': 'a\n',
  'olddir/sub/b': 'b\n',
  'redo/x': 'x\n',
  'redo/y': 'y\n',
  'moveme/f1': f('one\n', { xattrs: { 'user.origin': 'lower' } }),
  'moveme/deep/f2': f('two\n', { uid: 1000, gid: 1000 }),
  linkme: 'linked\n',
  'pair/one': 'shared\n',
  'pair/two': hl('pair/one'),
  'usr/share/doc/readme': 'doc\n',
};
const TOP = {
  'etc/hosts': '127.0.0.1 localhost\n::1 localhost\n',
  'etc/motd': wh,
  'opt/app/run': f('#!/bin/sh\n', { mode: 0o755 }),
};

/** The list: add, modify, chmod only, delete a lower file and dir, rmdir+mkdir, rename a lower dir, hard link, symlink, xattr. */
function script(mnt: string): void {
  const p = (rel: string): string => path.join(mnt, rel);
  fs.writeFileSync(p('newfile'), 'new\n');
  fs.writeFileSync(p('etc/added'), 'added\n');
  fs.appendFileSync(p('etc/passwd'), 'user:x:1000:1000::/home/user:/bin/sh\n');
  fs.chmodSync(p('bin/tool'), 0o700);
  fs.rmSync(p('data/gone'));
  fs.rmSync(p('olddir'), { recursive: true });
  fs.rmSync(p('redo/x'));
  fs.rmSync(p('redo/y'));
  fs.rmdirSync(p('redo'));
  fs.mkdirSync(p('redo'));
  fs.writeFileSync(p('redo/new'), 'fresh\n');
  fs.renameSync(p('moveme'), p('moved'));
  fs.linkSync(p('linkme'), p('linkme2'));
  fs.linkSync(p('newfile'), p('newfile.hl'));
  fs.symlinkSync('etc/passwd', p('sym'));
  native.lsetxattr(p('etc/hosts'), 'user.test', Buffer.from('hello'), 0);
}

const EXPECTED_DIFF = `C /bin
C /bin/tool
C /data
D /data/gone
C /etc
A /etc/added
C /etc/hosts
C /etc/passwd
C /linkme
A /linkme2
A /moved
A /moved/deep
A /moved/deep/f2
A /moved/f1
D /moveme
A /newfile
A /newfile.hl
D /olddir
C /redo
A /redo/new
D /redo/x
D /redo/y
A /sym
`;

/** The layer diff_ids of an image, from strata image inspect. */
function layersOf(cli: Cli, image: string): string[] {
  return JSON.parse(cli.ok(['image', 'inspect', '--format', '{{json .RootFS.Layers}}', image])) as string[];
}

/** Sets every entry of a container layer to one time, so two layers made at different moments compare. */
function pinTimes(upper: string): void {
  const walk = (dir: string): void => {
    for (const n of fs.readdirSync(dir)) {
      const p = path.join(dir, n);
      if (fs.lstatSync(p).isDirectory()) walk(p);
      native.utimens(p, 1_600_000_000, 5, 1_600_000_000, 123_456_789, true);
    }
  };
  walk(upper);
  native.utimens(upper, 1_600_000_000, 5, 1_600_000_000, 123_456_789, true);
}

let work: string;
let root: string;
let cli: Cli;
let c1: string;
let before: Record<string, TreeEntry>;

beforeAll(async () => {
  work = tmpdir('containers-rt');
  root = path.join(work, 'store');
  cli = new Cli(root);
  await makeImage(root, [BOTTOM, TOP], 'base:v1');
  c1 = cli.ok(['create', '--name', 'c1', 'base:v1']).trim();
  const mnt = path.join(work, 'mnt1');
  cli.mount('c1', mnt);
  script(mnt);
  before = snapshotTree(mnt, SNAP);
});

afterAll(async () => {
  await cli?.cleanup();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe('container round trip', () => {
  it('strata diff lists exactly the changes, mounted and not', () => {
    expect(cli.ok(['diff', 'c1'])).toBe(EXPECTED_DIFF);
    const json = JSON.parse(cli.ok(['diff', '--json', 'c1'])) as Array<{ path: string; kind: string; opaque?: boolean }>;
    expect(json.map((c) => `${c.kind} ${c.path}\n`).join('')).toBe(EXPECTED_DIFF);
    expect(json.find((c) => c.path === '/redo')?.opaque).toBe(true);
    cli.ok(['umount', 'c1']);
    expect(cli.ok(['diff', c1.slice(0, 8)])).toBe(EXPECTED_DIFF);
  });

  it('commit, create from the new image, mount: the same tree to the nanosecond', async () => {
    const id = cli.ok(['commit', '-m', 'scripted changes', '--author', 'Tester <t@example.com>', 'c1', 'base:v2']).trim();
    expect(id).toMatch(/^sha256:[0-9a-f]{64}$/);
    const base = layersOf(cli, 'base:v1');
    const next = layersOf(cli, 'base:v2');
    expect(next.slice(0, 2)).toEqual(base);
    expect(next).toHaveLength(3);
    const hist = cli.ok(['history', '--format', '{{.CreatedBy}}|{{.Comment}}', 'base:v2']).split('\n');
    expect(hist[0]).toBe('/bin/sh|scripted changes');
    const config = JSON.parse(cli.ok(['image', 'inspect', '--format', '{{json .Author}}', 'base:v2'])) as string;
    expect(config).toBe('Tester <t@example.com>');

    // What the comparison below covers, among the rest:
    const b64 = (s: string): string => Buffer.from(s).toString('base64');
    expect(before['etc/hosts']!.xattrs).toEqual({ 'user.test': b64('hello') });
    expect(before['moved/f1']!.xattrs).toEqual({ 'user.origin': b64('lower') });
    expect(before['moved/deep/f2']!.uid).toBe(1000);
    expect(before['bin/tool']!.mode).toBe(0o700);
    expect([before['linkme']!.nlink, before['newfile.hl']!.nlink, before['pair/two']!.nlink]).toEqual([2, 2, 2]);
    expect(before['sym']!.target).toBe('etc/passwd');
    expect(before['newfile']!.mtimeNs).toMatch(/[1-9]\d{0,8}$/);
    expect(before['etc/motd']).toBeUndefined();

    cli.ok(['create', '--name', 'c2', 'base:v2']);
    const mnt2 = path.join(work, 'mnt2');
    cli.mount('c2', mnt2);
    expect(diffTrees(before, snapshotTree(mnt2, SNAP))).toEqual([]);
    expect(cli.ok(['diff', 'c2'])).toBe('');
    cli.ok(['umount', mnt2]);
  });

  it.skipIf(!have('umoci'))('umoci unpack of the saved new image gives the same tree', () => {
    const archive = path.join(work, 'saved.tar');
    cli.ok(['save', '-o', archive, 'base:v2']);
    const layout = path.join(work, 'layout');
    fs.mkdirSync(layout);
    execFileSync('tar', ['-xf', archive, '-C', layout]);
    const bundle = path.join(work, 'bundle');
    execFileSync('umoci', ['unpack', '--image', `${layout}:v2`, bundle], { stdio: 'pipe' });
    // The root dir is made by umoci itself (strata save re-packs layers without a "./" entry).
    const strip = (t: Record<string, TreeEntry>): Record<string, TreeEntry> => {
      const c = { ...t };
      delete c['.'];
      return c;
    };
    expect(diffTrees(strip(before), strip(snapshotTree(path.join(bundle, 'rootfs'), SNAP)))).toEqual([]);
  });

  it('export is the merged tree as one flat tar, with no whiteouts', () => {
    const tar = path.join(work, 'c1.tar');
    cli.ok(['export', 'c1', '-o', tar]);
    const names = execFileSync('tar', ['-tf', tar], { encoding: 'utf8' }).split('\n');
    expect(names.filter((n) => n.includes('.wh.'))).toEqual([]);
    expect(names).toContain('moved/deep/f2');
    const out = path.join(work, 'exported');
    fs.mkdirSync(out);
    execFileSync('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '-xpf', tar, '-C', out]);
    expect(diffTrees(before, snapshotTree(out, SNAP))).toEqual([]);
  });

  it('the committed layer is reproducible: same changes, same digest', async () => {
    const v2 = layersOf(cli, 'base:v2')[2];
    cli.ok(['commit', 'c1', 'base:again']);
    expect(layersOf(cli, 'base:again')[2]).toBe(v2);
    // gzip: the same blob twice, and the diff_id of the plain tar.
    const store = ImageStore.open(root);
    try {
      const a = await commitContainer(store, 'c1', { compress: true });
      const b = await commitContainer(store, 'c1', { compress: true });
      expect(a.blobDigest).toBe(b.blobDigest);
      expect(a.blobDigest).not.toBe(a.diffId);
      expect(a.diffId).toBe(v2);
    } finally {
      store.close();
    }
    // Two containers given the same changes at different moments: once their times are
    // the same, their layers are the same bytes (inode numbers, whiteout times and our own
    // xattrs never reach the tar).
    const ids: string[] = [];
    for (const name of ['r1', 'r2']) {
      const id = cli.ok(['create', '--name', name, 'base:v1']).trim();
      const mnt = path.join(work, `mnt-${name}`);
      cli.mount(name, mnt);
      script(mnt);
      cli.ok(['umount', name]);
      pinTimes(cli.upper(id));
      cli.ok(['commit', name, `repro:${name}`]);
      ids.push(layersOf(cli, `repro:${name}`)[2]!);
    }
    expect(ids[0]).toBe(ids[1]);
  });
});
