// The image commands end to end through bin/strata (the compiled CLI: `npm test` builds
// dist/ first): demo image, images and its --format/-q/--filter/--json, tag, history,
// inspect, save | load through a pipe, import, rmi lines and exit status, prune.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { importCommand, loadCommand } from '../../src/cli/images.js';
import { indexImage } from '../../src/cli/index-layers.js';
import { PathIndex } from '../../src/index/path-index.js';
import { ImageStore } from '../../src/store/images.js';
import { saveImages } from '../../src/store/save.js';
import { STRATA, tmpdir } from '../helpers/mount.js';
import { importFiles, layerTar } from './helpers.js';

let work: string;
let env: NodeJS.ProcessEnv;

function strata(args: string[], input?: Buffer | string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(STRATA, args, { env, input, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function ok(args: string[], input?: Buffer | string): string {
  const r = strata(args, input);
  if (r.status !== 0) throw new Error(`strata ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

beforeAll(() => {
  work = tmpdir('cli');
  env = { ...process.env, STRATAFS_ROOT: path.join(work, 'store') };
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

describe('strata image commands', () => {
  let id: string;

  it('load-demo, images, --format, -q, --filter, --json', () => {
    const out = ok(['image', 'load-demo']);
    expect(out).toMatch(/^Loaded image: demo:latest\nsha256:[0-9a-f]{64}\n$/);
    id = out.split('\n')[1]!;
    ok(['tag', 'demo', 'demo:v1']);
    const table = ok(['images']).split('\n');
    expect(table[0]).toMatch(/^REPOSITORY +TAG +IMAGE ID +CREATED +SIZE$/);
    expect(table[1]).toMatch(new RegExp(`^demo +latest +${id.slice(7, 19)} +\\S.* ago +[0-9.]+[kM]B$`));
    expect(ok(['images', '-q'])).toBe(`${id.slice(7, 19)}\n`);
    expect(ok(['images', '--no-trunc', '-q'])).toBe(`${id}\n`);
    expect(ok(['images', '--format', '{{.ID}}: {{.Repository}}:{{.Tag}}'])).toBe(`${id.slice(7, 19)}: demo:latest\n${id.slice(7, 19)}: demo:v1\n`);
    expect(ok(['images', '--format', 'table {{.ID}}\\t{{.Tag}}'])).toBe(`IMAGE ID       TAG\n${id.slice(7, 19)}   latest\n${id.slice(7, 19)}   v1\n`);
    expect(ok(['images', '--filter', 'dangling=true'])).toBe('REPOSITORY   TAG   IMAGE ID   CREATED   SIZE\n');
    expect(ok(['images', '--filter', 'reference=dem*:v?', '-q'])).toBe(`${id.slice(7, 19)}\n`);
    expect(ok(['images', '--filter', 'reference=nothing*', '-q'])).toBe('');
    const json = JSON.parse(ok(['images', '--json'])) as Array<{ Repository: string; Tag: string }>;
    expect(json.map((r) => `${r.Repository}:${r.Tag}`)).toEqual(['demo:latest', 'demo:v1']);
    expect(ok(['images', '--digests']).split('\n')[0]).toMatch(/^REPOSITORY +TAG +DIGEST +IMAGE ID/);
  });

  it('inspect and history', () => {
    const [view] = JSON.parse(ok(['image', 'inspect', 'demo'])) as Array<{ Id: string; RepoTags: string[]; RootFS: { Layers: string[] } }>;
    expect(view!.Id).toBe(id);
    expect(view!.RepoTags).toEqual(['demo:latest', 'demo:v1']);
    expect(view!.RootFS.Layers).toHaveLength(1);
    expect(ok(['inspect', '--format', '{{.Id}} {{json .RepoTags}}', id.slice(7, 10)])).toBe(`${id} ["demo:latest","demo:v1"]\n`);
    const hist = ok(['history', 'demo']).split('\n');
    expect(hist[0]).toMatch(/^IMAGE +CREATED +CREATED BY +SIZE +COMMENT$/);
    expect(hist[1]).toMatch(new RegExp(`^${id.slice(7, 19)} .*strata image load-demo .*stratafs built-in demo image$`));
  });

  it('save | load through a pipe, and import', () => {
    const archive = path.join(work, 'demo.tar');
    ok(['save', '-o', archive, 'demo:v1']);
    const loaded = ok(['load'], fs.readFileSync(archive));
    expect(loaded).toBe('Loaded image: demo:v1\n');
    const rootfs = path.join(work, 'rootfs.tar');
    fs.writeFileSync(rootfs, layerTar({ 'etc/motd': 'hello\n' }));
    expect(ok(['import', rootfs, 'flat:1'])).toMatch(/^sha256:[0-9a-f]{64}\n$/);
    expect(ok(['images', 'flat', '--format', '{{.Repository}}:{{.Tag}} {{.Size}}'])).toBe('flat:1 6B\n');
    // The store indexes the layers it takes in, so a first mount has nothing to walk.
    const layersOf = (ref: string): string[] => (JSON.parse(ok(['image', 'inspect', ref])) as Array<{ RootFS: { Layers: string[] } }>)[0]!.RootFS.Layers.map((d) => d.slice('sha256:'.length));
    const index = PathIndex.open(path.join(work, 'store', 'index.db'));
    try {
      const indexed = index.stats().layers.filter((l) => l.complete).map((l) => path.basename(l.dir));
      expect(indexed).toEqual(expect.arrayContaining([...layersOf('demo:v1'), ...layersOf('flat:1')]));
    } finally {
      index.close();
    }
  });

  it('rmi prints Untagged/Deleted lines, fails for unknown images; prune; the path index forgets deleted layers', () => {
    const indexed = (): string[] => (JSON.parse(ok(['index', 'stats', '--json'])) as { layers: Array<{ dir: string }> }).layers.map((l) => l.dir);
    const flatDirs = (JSON.parse(ok(['inspect', 'flat:1'])) as Array<{ RootFS: { Layers: string[] } }>)[0]!.RootFS.Layers.map((d) => path.join(work, 'store', 'layers', d.replace(':', '/')));
    for (const d of flatDirs) expect(indexed()).toContain(d);
    expect(ok(['rmi', 'flat:1'])).toMatch(/^Untagged: flat:1\nDeleted: sha256:[0-9a-f]{64}\nDeleted: sha256:[0-9a-f]{64}\n$/);
    for (const d of flatDirs) expect(indexed()).not.toContain(d);
    const r = strata(['rmi', 'nope']);
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('strata: No such image: nope\n');
    const bad = strata(['load', '-i', path.join(work, 'missing.tar')]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/^strata: ENOENT: no such file or directory, stat '.*missing.tar'\n$/);
    expect(ok(['image', 'prune'])).toBe('Total reclaimed space: 0B\n');
    const all = ok(['image', 'prune', '-a']);
    expect(all).toMatch(/^Deleted Images:\nuntagged: demo:/);
    expect(all).toMatch(/Total reclaimed space: [0-9.]+MB\n$/);
    expect(ok(['images', '-q'])).toBe('');
    expect(indexed()).toEqual([]);
    const stats = JSON.parse(ok(['index', 'stats', '--json'])) as { entries: number; paths: number };
    expect(stats.entries).toBe(0);
    // Only the root's name is left (its id is fixed); the deleted layers' paths are gone.
    expect(stats.paths).toBe(1);
  });
});

// In-process: the command functions themselves, with what they print and when.
describe('indexing images as the store takes them in', () => {
  it('a failure anywhere in indexing an image (even reading its record) is a warning: the image is stored', async () => {
    const store = ImageStore.open(path.join(work, 'store-index-fail'));
    const id = await importFiles(store, { 'etc/motd': 'hi\n' }, 'fail:1');
    // A store that no longer answers: reading the image record itself throws.
    store.close();
    expect(() => indexImage(store, id)).not.toThrow();
  });

  it('load and import print what they stored before indexing it', async () => {
    const src = ImageStore.open(path.join(work, 'store-order-src'));
    const archive = path.join(work, 'order.tar');
    try {
      await importFiles(src, { 'etc/motd': 'order\n' }, 'order:1');
      await saveImages(src, ['order:1'], fs.createWriteStream(archive));
    } finally {
      src.close();
    }
    const rootfs = path.join(work, 'order-rootfs.tar');
    fs.writeFileSync(rootfs, layerTar({ 'etc/issue': 'order\n' }));
    // Indexing shows its progress on a terminal: that line tells when it started.
    const seen: string[] = [];
    const tty = process.stderr.isTTY;
    process.stderr.isTTY = true;
    const outSpy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => (seen.push(`out ${String(chunk)}`), true));
    const errSpy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => (seen.push(`err ${String(chunk)}`), true));
    try {
      const root = path.join(work, 'store-order');
      expect(await loadCommand(['-q', '-i', archive, '--root', root])).toBe(0);
      expect(await importCommand(['--root', root, rootfs, 'flat:order'])).toBe(0);
    } finally {
      outSpy.mockRestore();
      errSpy.mockRestore();
      process.stderr.isTTY = tty;
    }
    const loaded = seen.indexOf('out Loaded image: order:1\n');
    const imported = seen.findIndex((l) => /^out sha256:[0-9a-f]{64}\n$/.test(l));
    const indexing = seen.map((l, i) => (l.startsWith('err \r\x1b[2Kindexing ') ? i : -1)).filter((i) => i >= 0);
    expect(loaded).toBeGreaterThanOrEqual(0);
    expect(imported).toBeGreaterThan(loaded);
    // Each command indexed its image, after saying it had it.
    expect(indexing.some((i) => i > loaded && i < imported)).toBe(true);
    expect(indexing.some((i) => i > imported)).toBe(true);
    expect(indexing.every((i) => i > loaded)).toBe(true);
  });
});
