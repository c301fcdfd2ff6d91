// Layer extraction keeps what a layer tar says (modes, owners, nanosecond times, xattrs
// with binary values, hard links, symlinks, fifos, devices, long and non-UTF-8 names),
// turns OCI whiteouts into overlayfs's form, and layer-pack gives the same tree back.
// Reference tars come from GNU tar, not from our own writer.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native } from '../../src/native/binding.js';
import { sha256Digest } from '../../src/store/digest.js';
import { packLayer } from '../../src/store/layer-pack.js';
import { extractLayer } from '../../src/store/tar-extract.js';
import { diffTrees, snapshotTree } from '../../src/util/tree.js';
import { tmpdir } from '../helpers/mount.js';
import { layerTar } from './helpers.js';

let work: string;
const SNAP = { mtime: true, nlink: true } as const;

beforeAll(() => {
  work = tmpdir('extract');
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

function fresh(name: string): string {
  const d = path.join(work, name);
  fs.mkdirSync(d);
  return d;
}

/** A tree with one of everything a layer can hold. */
function makeSource(): string {
  const src = fresh('src');
  const p = (rel: string): string => path.join(src, rel);
  fs.mkdirSync(p('etc/deep/'.repeat(1) + 'a'.repeat(120) + '/b'.repeat(40)), { recursive: true });
  fs.writeFileSync(p('etc/passwd'), 'root:x:0:0::/root:/bin/sh\n');
  fs.writeFileSync(p(`etc/deep/${'a'.repeat(120)}/${'long-name-'.repeat(12)}`), 'long\n');
  fs.writeFileSync(p('suid'), '#!/bin/sh\n', { mode: 0o755 });
  fs.chmodSync(p('suid'), 0o4755);
  fs.writeFileSync(p('owned'), 'x');
  native.lchown(p('owned'), 1000, 1001);
  fs.symlinkSync('etc/passwd', p('link'));
  fs.symlinkSync('/nowhere/at/all', p('dangling'));
  fs.linkSync(p('etc/passwd'), p('hard'));
  native.mknod(p('fifo'), 0o010644, 0, 0);
  native.mknod(p('null'), 0o020666, 1, 3);
  native.mknod(p('loop'), 0o060660, 7, 300);
  native.lsetxattr(p('etc/passwd'), 'user.bin', Buffer.from([0, 1, 0xff, 0xfe, 0x80, 0x41]), 0);
  native.lsetxattr(p('suid'), 'security.capability', Buffer.from('0100000200200000000000000000000000000000', 'hex'), 0);
  fs.writeFileSync(Buffer.from(`${src}/caf\xe9-latin1`, 'latin1'), 'not utf-8 name\n');
  fs.mkdirSync(p('ro'));
  fs.writeFileSync(p('ro/inside'), 'x');
  fs.chmodSync(p('ro'), 0o555);
  // Nanosecond times everywhere, directories last (writing into them changes theirs).
  const all = Object.keys(snapshotTree(src)).sort((a, b) => b.length - a.length);
  for (const rel of all) native.utimens(rel === '.' ? src : Buffer.from(`${src}/${rel}`, 'latin1'), 1_600_000_000, 123_456_789, 1_650_000_000, 987_654_321, true);
  return src;
}

describe('extractLayer', () => {
  let src: string;
  let tarFile: string;

  beforeAll(() => {
    src = makeSource();
    tarFile = path.join(work, 'gnu.tar');
    execFileSync('tar', ['--xattrs', '--xattrs-include=*', '--format=pax', '--numeric-owner', '-cf', tarFile, '-C', src, '.']);
  });

  it('reproduces a GNU tar of every kind of entry', async () => {
    const dest = fresh('out1');
    const r = await extractLayer(fs.createReadStream(tarFile), dest, { inputSize: fs.statSync(tarFile).size });
    expect(r.compressed).toBe(false);
    expect(r.diffId).toBe(sha256Digest(fs.readFileSync(tarFile)));
    expect(r.blobDigest).toBe(r.diffId);
    expect(r.files).toBe(Object.keys(snapshotTree(src)).length - 1);
    expect(diffTrees(snapshotTree(src, SNAP), snapshotTree(dest, SNAP))).toEqual([]);
  });

  it('hashes blob and diff_id separately for gzip layers', async () => {
    const gz = gzipSync(fs.readFileSync(tarFile));
    const dest = fresh('out-gz');
    const r = await extractLayer(Readable.from([gz]), dest);
    expect(r.compressed).toBe(true);
    expect(r.blobDigest).toBe(sha256Digest(gz));
    expect(r.diffId).toBe(sha256Digest(fs.readFileSync(tarFile)));
    expect(diffTrees(snapshotTree(src, SNAP), snapshotTree(dest, SNAP))).toEqual([]);
  });

  it('layer-pack writes a tar that extracts to the same tree (and GNU tar reads)', async () => {
    const dest = fresh('out2');
    await extractLayer(fs.createReadStream(tarFile), dest);
    const packed = path.join(work, 'packed.tar');
    await pipeline(Readable.from(packLayer(dest)), fs.createWriteStream(packed));
    execFileSync('tar', ['-tf', packed]);
    const again = fresh('out3');
    await extractLayer(fs.createReadStream(packed), again);
    const a = snapshotTree(dest, SNAP);
    const b = snapshotTree(again, SNAP);
    delete a['.'];
    delete b['.'];
    expect(diffTrees(a, b)).toEqual([]);
  });

  it('turns OCI whiteouts into overlayfs whiteouts and back', async () => {
    const tar = layerTar({ 'd/.wh.gone': '', 'o/.wh..wh..opq': '', 'o/new': 'n\n', '.wh.top': '' });
    const dest = fresh('wh');
    await extractLayer(Readable.from([tar]), dest);
    const t = snapshotTree(dest);
    expect(t['d/gone']).toMatchObject({ type: 'chardev', rdev: 0 });
    expect(t.top).toMatchObject({ type: 'chardev', rdev: 0 });
    expect(t.o!.xattrs).toEqual({ 'trusted.overlay.opaque': Buffer.from('y').toString('base64') });
    expect(t['d/.wh.gone']).toBeUndefined();
    expect(t['o/.wh..wh..opq']).toBeUndefined();
    const packed = path.join(work, 'wh.tar');
    await pipeline(Readable.from(packLayer(dest)), fs.createWriteStream(packed));
    expect(execFileSync('tar', ['-tf', packed], { encoding: 'utf8' }).split('\n').filter(Boolean).sort()).toEqual(['./', '.wh.top', 'd/', 'd/.wh.gone', 'o/', 'o/.wh..wh..opq', 'o/new']);
  });

  it('a layer with no entry for its root gets a 0755 root, as docker and containerd make it; one with ./ keeps its own', async () => {
    const bare = path.join(work, 'bare-root');
    fs.mkdirSync(bare, { mode: 0o700 });
    await extractLayer(Readable.from([layerTar({ 'etc/hostname': 'box\n' })]), bare);
    expect(fs.statSync(bare).mode & 0o7777).toBe(0o755);
    const own = path.join(work, 'own-root');
    fs.mkdirSync(own, { mode: 0o700 });
    const src = fresh('own-root-src');
    fs.chmodSync(src, 0o750);
    execFileSync('tar', ['-cf', path.join(work, 'own-root.tar'), '-C', src, '.']);
    await extractLayer(fs.createReadStream(path.join(work, 'own-root.tar')), own);
    expect(fs.statSync(own).mode & 0o7777).toBe(0o750);
  });

  it('drops overlayfs xattrs a layer tries to set', async () => {
    const src2 = fresh('forge-src');
    fs.mkdirSync(path.join(src2, 'd'));
    native.lsetxattr(path.join(src2, 'd'), 'trusted.overlay.redirect', Buffer.from('/etc'), 0);
    native.lsetxattr(path.join(src2, 'd'), 'user.keep', Buffer.from('1'), 0);
    const t = path.join(work, 'forge.tar');
    execFileSync('tar', ['--xattrs', '--xattrs-include=*', '--format=pax', '-cf', t, '-C', src2, 'd']);
    const dest = fresh('forge');
    await extractLayer(fs.createReadStream(t), dest);
    expect(snapshotTree(dest).d!.xattrs).toEqual({ 'user.keep': Buffer.from('1').toString('base64') });
  });
});
