// Refcounting of tags, images and layers (rmi, tag, prune) and name resolution, on a real
// store in a temp dir; the seeds' cases: an image with two tags, an image under a stopped
// container, a layer shared by two images.

import * as fs from 'node:fs';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ImageStore } from '../../src/store/images.js';
import { tmpdir } from '../helpers/mount.js';
import { importFiles } from './helpers.js';

const dirs: string[] = [];
let store: ImageStore;

beforeEach(() => {
  const d = tmpdir('images');
  dirs.push(d);
  store = ImageStore.open(d);
});
afterEach(() => store?.close());
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

const layerDirs = (): string[] => fs.readdirSync(store.paths.layersDir);

describe('tags and rmi', () => {
  it('an image with two tags: removing one only untags', async () => {
    const id = await importFiles(store, { 'etc/hello': 'hi\n' }, 'app:1.0');
    store.tag('app:1.0', 'app:latest');
    expect(store.image(id)!.tags).toEqual([{ repository: 'app', tag: '1.0' }, { repository: 'app', tag: 'latest' }]);
    expect(store.remove('app:1.0').lines).toEqual(['Untagged: app:1.0']);
    expect(store.image(id)).toBeDefined();
    const diffId = store.image(id)!.layers[0]!;
    const r = store.remove('app');
    expect(r.lines).toEqual(['Untagged: app:latest', `Deleted: ${id}`, `Deleted: ${diffId}`]);
    expect(r.reclaimed).toBe(3);
    expect(store.images()).toEqual([]);
    expect(layerDirs()).toEqual([]);
  });

  it('by ID, an image in several repositories needs -f', async () => {
    const id = await importFiles(store, { a: 'a' }, 'one:latest');
    store.tag(id.slice(7, 14), 'two:v2');
    expect(() => store.remove(id.slice(7, 19))).toThrow(/conflict: unable to delete [0-9a-f]{12} \(must be forced\) - image is referenced in multiple repositories/);
    const r = store.remove(id.slice(7, 19), true);
    expect(r.lines.slice(0, 3)).toEqual(['Untagged: one:latest', 'Untagged: two:v2', `Deleted: ${id}`]);
  });

  it('an image under a stopped container is refused unless -f, and kept until the container goes', async () => {
    const id = await importFiles(store, { bin: 'x' }, 'base:latest');
    const c = store.addContainer({ name: 'web', imageId: id });
    expect(() => store.remove('base:latest')).toThrow(`conflict: unable to remove repository reference "base:latest" (must force) - container ${c.id.slice(0, 12)} is using its referenced image ${id.slice(7, 19)}`);
    expect(() => store.remove(id.slice(7, 10))).toThrow(/image is being used by stopped container/);
    expect(store.remove('base:latest', true).lines).toEqual(['Untagged: base:latest']);
    expect(store.image(id)!.tags).toEqual([]);
    expect(layerDirs()).toHaveLength(1);
    expect(store.prune(true).lines).toEqual([]); // still under the container
    store.removeContainer(c.id);
    const p = store.prune();
    expect(p.lines[0]).toBe(`deleted: ${id}`);
    expect(layerDirs()).toEqual([]);
  });

  it('a layer shared by two images is deleted with the last of them', async () => {
    const a = await importFiles(store, { shared: 'base\n' }, 'a:latest', '2024-01-01T00:00:00Z');
    const b = await importFiles(store, { shared: 'base\n' }, 'b:latest', '2024-02-01T00:00:00Z');
    expect(a).not.toBe(b);
    const diffId = store.image(a)!.layers[0]!;
    expect(store.image(b)!.layers).toEqual([diffId]);
    expect(layerDirs()).toEqual([diffId.slice(7)]);
    expect(store.remove('a').lines).toEqual(['Untagged: a:latest', `Deleted: ${a}`]);
    expect(layerDirs()).toEqual([diffId.slice(7)]);
    expect(store.remove('b').lines).toEqual(['Untagged: b:latest', `Deleted: ${b}`, `Deleted: ${diffId}`]);
    expect(layerDirs()).toEqual([]);
  });

  it('moving a tag leaves a dangling image that prune removes; prune -a removes the rest', async () => {
    const old = await importFiles(store, { v: '1' }, 'app:latest');
    const cur = await importFiles(store, { v: '2' }, 'app:latest');
    expect(store.image(old)!.tags).toEqual([]);
    const oldLayer = store.image(old)!.layers[0]!;
    expect(store.prune().lines).toEqual([`deleted: ${old}`, `deleted: ${oldLayer}`]);
    expect(store.image(cur)).toBeDefined();
    expect(store.prune(true).lines[0]).toBe('untagged: app:latest');
    expect(store.images()).toEqual([]);
    expect(layerDirs()).toEqual([]);
  });
});

describe('name resolution', () => {
  it('takes name[:tag], full IDs, sha256: IDs and unique prefixes of 3+ digits', async () => {
    const id = await importFiles(store, { f: 'x' }, 'localhost:5000/team/app:v1');
    expect(store.resolveImage('localhost:5000/team/app:v1').id).toBe(id);
    expect(store.resolveImage(id).id).toBe(id);
    expect(store.resolveImage(id.slice(7)).id).toBe(id);
    expect(store.resolveImage(`sha256:${id.slice(7, 12)}`).id).toBe(id);
    expect(store.resolveImage(id.slice(7, 10)).id).toBe(id);
    expect(() => store.resolveImage(id.slice(7, 9))).toThrow(`No such image: ${id.slice(7, 9)}`);
    expect(() => store.resolveImage('localhost:5000/team/app')).toThrow(/No such image/);
    expect(() => store.tag(id, 'Bad:Name')).toThrow(/invalid reference format/);
  });

  it('reports an ambiguous prefix (images and containers)', async () => {
    const real = await importFiles(store, { f: 'x' });
    const layer = store.image(real)!.layers[0]!;
    const size = store.layer(layer)!;
    // Rows with chosen IDs: the store does not care how an ID was made, only that it is unique.
    for (const id of [`sha256:abc1${'0'.repeat(60)}`, `sha256:abc2${'0'.repeat(60)}`]) {
      store.commitImage({ id, config: Buffer.from('{}'), layers: [{ diffId: layer, size: size.size, files: size.files }], tags: [] });
    }
    expect(() => store.resolveImage('abc')).toThrow(/ambiguous image ID prefix 'abc': matches abc100000000, abc200000000/);
    expect(store.resolveImage('abc1').id).toBe(`sha256:abc1${'0'.repeat(60)}`);
    store.addContainer({ name: 'c1', imageId: real, id: `fed1${'0'.repeat(60)}` });
    store.addContainer({ name: 'c2', imageId: real, id: `fed2${'0'.repeat(60)}` });
    expect(() => store.resolveContainer('fed')).toThrow(/ambiguous container ID prefix 'fed'/);
    expect(store.resolveContainer('fed2').name).toBe('c2');
    expect(store.resolveContainer('c1').id.startsWith('fed1')).toBe(true);
  });
});
