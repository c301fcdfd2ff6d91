// OCI layouts: a multi-platform index picks the host's platform (or --platform's), blobs
// are checked against their descriptors, gzip layers load, and a failed load leaves nothing.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Digest } from '../../src/store/digest.js';
import { ImageStore } from '../../src/store/images.js';
import { loadImages } from '../../src/store/load.js';
import { hostPlatform } from '../../src/store/platform.js';
import { tmpdir } from '../helpers/mount.js';
import { layerTar } from './helpers.js';

let work: string;

beforeAll(() => {
  work = tmpdir('oci');
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/** Writes an OCI layout with one image per architecture under a nested index; returns its dir. */
function multiPlatformLayout(name: string, archs: string[], corrupt = false): string {
  const dir = path.join(work, name);
  fs.mkdirSync(path.join(dir, 'blobs/sha256'), { recursive: true });
  const put = (data: Buffer): { digest: string; size: number } => {
    const digest = sha256Digest(data);
    fs.writeFileSync(path.join(dir, 'blobs/sha256', digest.slice(7)), data);
    return { digest, size: data.length };
  };
  const manifests = archs.map((arch) => {
    const tar = layerTar({ 'etc/arch': `${arch}\n` });
    const gz = gzipSync(tar);
    const layer = put(gz);
    if (corrupt) fs.appendFileSync(path.join(dir, 'blobs/sha256', layer.digest.slice(7)), 'x');
    const config = put(Buffer.from(JSON.stringify({ architecture: arch, os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256Digest(tar)] }, history: [{ created_by: `build ${arch}` }] })));
    const m = put(Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }],
    })));
    return { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...m, platform: { os: 'linux', architecture: arch } };
  });
  const index = put(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests })));
  fs.writeFileSync(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: 'application/vnd.oci.image.index.v1+json', ...index, annotations: { 'org.opencontainers.image.ref.name': 'docker.io/library/multi:1' } }],
  }));
  return dir;
}

const archOf = (store: ImageStore, id: string): string => (JSON.parse(store.image(id)!.config.toString()) as { architecture: string }).architecture;

describe('OCI layouts', () => {
  const host = hostPlatform().architecture;
  const other = host === 'arm64' ? 'amd64' : 'arm64';

  it('picks the host platform from a multi-platform index, or --platform', async () => {
    const layout = multiPlatformLayout('multi', [other, host]);
    const store = ImageStore.open(path.join(work, 'store1'));
    try {
      const [img] = await loadImages(store, layout);
      expect(img!.tags).toEqual([{ repository: 'multi', tag: '1' }]);
      expect(archOf(store, img!.id)).toBe(host);
      expect(store.image(img!.id)!.digest).toMatch(/^sha256:/);
      const [img2] = await loadImages(store, layout, { platform: { os: 'linux', architecture: other } });
      expect(archOf(store, img2!.id)).toBe(other);
      await expect(loadImages(store, layout, { platform: { os: 'linux', architecture: 's390x' } })).rejects.toThrow(
        new RegExp(`no image for platform linux/s390x \\(available: linux/${other}, linux/${host}\\)`),
      );
    } finally {
      store.close();
    }
  });

  it('refuses a blob whose digest does not match its descriptor, leaving nothing', async () => {
    const layout = multiPlatformLayout('corrupt', [host], true);
    const store = ImageStore.open(path.join(work, 'store2'));
    try {
      await expect(loadImages(store, layout)).rejects.toThrow(/layer blobs\/sha256\/[0-9a-f]{64}: (digest mismatch|corrupt gzip data)/);
      expect(store.images()).toEqual([]);
      expect(fs.readdirSync(store.paths.layersDir)).toEqual([]);
      expect(fs.readdirSync(store.paths.tmpDir)).toEqual([]);
    } finally {
      store.close();
    }
  });
});
