// strata save: images into one tar that is both a docker-save archive (manifest.json) and
// an OCI image layout (oci-layout, index.json, blobs/sha256), as docker 25+ writes it;
// --format oci leaves manifest.json out. Layers are re-packed from their directories
// (layer-pack.ts). The store keeps no copy of the original tars, so a re-packed layer
// can differ in bytes from the one loaded; then the saved config carries the new
// diff_ids (and the saved image has a new ID) so the archive stays self-consistent.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { log } from '../util/log.js';
import { HashingStream, sha256Digest } from './digest.js';
import type { ImageStore } from './images.js';
import { blobNameOf } from './image-source.js';
import { packLayer } from './layer-pack.js';
import { removeTree } from './paths.js';
import { formatReference, type NamedRef } from './reference.js';
import { encodeHeader, END_OF_ARCHIVE, fileEntry, padding } from './tar-write.js';

export type SaveFormat = 'docker' | 'oci';

const MT_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const MT_CONFIG = 'application/vnd.oci.image.config.v1+json';
const MT_LAYER = 'application/vnd.oci.image.layer.v1.tar';

interface PackedLayer {
  file: string;
  digest: string;
  size: number;
}

interface SavedImage {
  config: Buffer;
  configDigest: string;
  manifest: Buffer;
  manifestDigest: string;
  layers: PackedLayer[];
  tags: NamedRef[];
}

async function packToFile(dir: string, file: string): Promise<PackedLayer> {
  const h = new HashingStream();
  await pipeline(Readable.from(packLayer(dir)), h, fs.createWriteStream(file, { mode: 0o600 }));
  return { file, digest: h.digest(), size: h.bytes };
}

export async function saveImages(store: ImageStore, refs: string[], sink: Writable, format: SaveFormat = 'docker'): Promise<void> {
  const work = store.paths.makeTemp('save');
  try {
    // A name saves that tag; an ID saves the image without names (as docker does).
    const wanted = new Map<string, { tags: NamedRef[] }>();
    for (const r of refs) {
      const { image, byName } = store.resolveImageRef(r);
      const w = wanted.get(image.id) ?? { tags: [] };
      if (byName && !w.tags.some((t) => formatReference(t) === formatReference(byName))) w.tags.push(byName);
      wanted.set(image.id, w);
    }
    const packed = new Map<string, PackedLayer>();
    const images: SavedImage[] = [];
    for (const [id, w] of wanted) {
      const img = store.image(id)!;
      const layers: PackedLayer[] = [];
      for (const diffId of img.layers) {
        let p = packed.get(diffId);
        if (!p) {
          p = await packToFile(store.paths.layerDir(diffId), path.join(work, `layer-${packed.size}.tar`));
          packed.set(diffId, p);
        }
        layers.push(p);
      }
      let config = img.config;
      if (layers.some((l, i) => l.digest !== img.layers[i])) {
        const c = JSON.parse(config.toString('utf8')) as { rootfs: { diff_ids: string[] } };
        c.rootfs.diff_ids = layers.map((l) => l.digest);
        config = Buffer.from(JSON.stringify(c));
        log.info({ image: id }, 'repacked layers differ from the loaded tars; saving with new diff_ids');
      }
      const configDigest = sha256Digest(config);
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MT_MANIFEST,
          config: { mediaType: MT_CONFIG, digest: configDigest, size: config.length },
          layers: layers.map((l) => ({ mediaType: MT_LAYER, digest: l.digest, size: l.size })),
        }),
      );
      images.push({ config, configDigest, manifest, manifestDigest: sha256Digest(manifest), layers, tags: w.tags });
    }

    async function* archive(): AsyncGenerator<Buffer> {
      yield encodeHeader({ name: 'blobs', type: 'dir', mode: 0o755 });
      yield encodeHeader({ name: 'blobs/sha256', type: 'dir', mode: 0o755 });
      const written = new Set<string>();
      const blob = function* (digest: string, data: Buffer): Generator<Buffer> {
        if (written.has(digest)) return;
        written.add(digest);
        yield* fileEntry(blobNameOf(digest), data);
      };
      for (const l of packed.values()) {
        if (written.has(l.digest)) continue;
        written.add(l.digest);
        yield encodeHeader({ name: blobNameOf(l.digest), type: 'file', mode: 0o644, size: l.size });
        for await (const c of fs.createReadStream(l.file)) yield c as Buffer;
        yield padding(l.size);
      }
      for (const i of images) {
        yield* blob(i.configDigest, i.config);
        yield* blob(i.manifestDigest, i.manifest);
      }
      yield* fileEntry('oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })));
      const descriptors = images.flatMap((i) => {
        const d = { mediaType: MT_MANIFEST, digest: i.manifestDigest, size: i.manifest.length };
        if (!i.tags.length) return [d];
        return i.tags.map((t) => ({ ...d, annotations: { 'io.containerd.image.name': formatReference(t), 'org.opencontainers.image.ref.name': t.tag } }));
      });
      yield* fileEntry('index.json', Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: descriptors })));
      if (format === 'docker') {
        const manifestJson = images.map((i) => ({ Config: blobNameOf(i.configDigest), RepoTags: i.tags.map(formatReference), Layers: i.layers.map((l) => blobNameOf(l.digest)) }));
        yield* fileEntry('manifest.json', Buffer.from(JSON.stringify(manifestJson)));
      }
      yield END_OF_ARCHIVE;
    }
    await pipeline(Readable.from(archive()), sink);
  } finally {
    removeTree(work);
  }
}
