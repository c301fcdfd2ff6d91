// Every archive of the hostile corpus is refused with its message, both as a flat import
// and as a layer of a docker-save archive, and nothing is left: no file outside the store,
// no layer dir, nothing in tmp/, no database row.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Digest } from '../../src/store/digest.js';
import { ImageStore } from '../../src/store/images.js';
import { importTarball } from '../../src/store/import.js';
import { loadImages } from '../../src/store/load.js';
import { encodeHeader, END_OF_ARCHIVE, fileEntry, padding } from '../../src/store/tar-write.js';
import { ROOT, tmpdir } from '../helpers/mount.js';
import { hostileCases, OUTSIDE, writeCorpus } from './hostile-corpus.js';

const FIXTURES = path.join(ROOT, 'test/fixtures/hostile');
let work: string;
let store: ImageStore;

beforeAll(() => {
  work = tmpdir('hostile');
  store = ImageStore.open(path.join(work, 'store'));
  writeCorpus(FIXTURES);
});
afterAll(() => {
  store?.close();
  fs.rmSync(work, { recursive: true, force: true });
  fs.rmSync(OUTSIDE, { recursive: true, force: true });
});

function expectNothingLeft(): void {
  expect(fs.existsSync(OUTSIDE)).toBe(false);
  expect(fs.readdirSync(store.paths.layersDir)).toEqual([]);
  expect(fs.readdirSync(store.paths.tmpDir)).toEqual([]);
  expect(fs.readdirSync(work).sort()).toEqual(['store']);
  expect(store.images()).toEqual([]);
  expect(store.db.prepare('SELECT COUNT(*) AS n FROM layers').get()).toEqual({ n: 0 });
}

/** A docker-save archive holding `layer` as its only layer, with a config that claims it. */
function dockerArchive(layer: Buffer): Buffer {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256Digest(layer)] } }));
  const cfgName = `${sha256Digest(config).slice(7)}.json`;
  const manifest = Buffer.from(JSON.stringify([{ Config: cfgName, RepoTags: ['hostile:latest'], Layers: ['l1/layer.tar'] }]));
  return Buffer.concat([
    encodeHeader({ name: 'l1', type: 'dir', mode: 0o755 }),
    encodeHeader({ name: 'l1/layer.tar', type: 'file', mode: 0o644, size: layer.length }),
    layer,
    padding(layer.length),
    ...fileEntry(cfgName, config),
    ...fileEntry('manifest.json', manifest),
    END_OF_ARCHIVE,
  ]);
}

describe('hostile layer tars', () => {
  it('the corpus is on disk in test/fixtures/hostile', () => {
    for (const c of hostileCases()) expect(fs.readFileSync(path.join(FIXTURES, `${c.name}.tar`)).equals(c.data)).toBe(true);
  });

  for (const c of hostileCases()) {
    it(`refuses ${c.name} (import)`, async () => {
      const file = path.join(FIXTURES, `${c.name}.tar`);
      await expect(importTarball(store, fs.createReadStream(file), { reference: 'hostile:latest', inputSize: fs.statSync(file).size })).rejects.toThrow(c.expect);
      expectNothingLeft();
    });
    it(`refuses ${c.name} (load of a docker archive)`, async () => {
      const file = path.join(work, 'archive.tar');
      fs.writeFileSync(file, dockerArchive(c.data));
      try {
        await expect(loadImages(store, file)).rejects.toThrow(c.expect);
      } finally {
        fs.rmSync(file);
      }
      expectNothingLeft();
    });
  }
});

describe('hostile archives around the layers', () => {
  it('refuses a manifest naming a blob outside the archive', async () => {
    const file = path.join(work, 'escape.tar');
    fs.writeFileSync(file, Buffer.concat([...fileEntry('manifest.json', Buffer.from(JSON.stringify([{ Config: '../../etc/passwd', Layers: [] }]))), END_OF_ARCHIVE]));
    await expect(loadImages(store, file)).rejects.toThrow(/bad blob name: path '..\/..\/etc\/passwd' contains '..'/);
    fs.rmSync(file);
    expectNothingLeft();
  });

  it('refuses a layer whose diff_id does not match the config, leaving nothing', async () => {
    const layer = Buffer.concat([...fileEntry('ok', Buffer.from('fine\n')), END_OF_ARCHIVE]);
    // The config claims another diff_id (its file named for its own digest, so only the diff_id is wrong).
    const file = path.join(work, 'mismatch.tar');
    const cfg = JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256Digest('something else')] } });
    const cfgName = `${sha256Digest(cfg).slice(7)}.json`;
    fs.writeFileSync(
      file,
      Buffer.concat([
        encodeHeader({ name: 'l1/layer.tar', type: 'file', mode: 0o644, size: layer.length }),
        layer,
        padding(layer.length),
        ...fileEntry(cfgName, Buffer.from(cfg)),
        ...fileEntry('manifest.json', Buffer.from(JSON.stringify([{ Config: cfgName, RepoTags: ['bad:latest'], Layers: ['l1/layer.tar'] }]))),
        END_OF_ARCHIVE,
      ]),
    );
    await expect(loadImages(store, file)).rejects.toThrow(/diff_id: digest mismatch/);
    fs.rmSync(file);
    expectNothingLeft();
  });

  it('refuses a non-tar archive file', async () => {
    const file = path.join(work, 'junk.tar');
    fs.writeFileSync(file, 'not an archive at all\n'.repeat(50));
    await expect(loadImages(store, file)).rejects.toThrow(/not a tar archive or OCI layout/);
    fs.rmSync(file);
    expectNothingLeft();
  });
});
