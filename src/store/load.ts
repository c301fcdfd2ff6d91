// strata load: reads a docker-save archive or an OCI layout/archive (file, directory or
// stdin), verifies every blob and every diff_id, extracts the layers the store lacks into
// tmp/, and commits the images only when everything checked out. On any error the
// extracted dirs are removed and nothing reaches the database.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { DirSource, readSmall, TarSource, type BlobSource } from './archive-source.js';
import { HashingStream, sha256Digest, verifyDigest } from './digest.js';
import { readDockerArchive } from './docker-archive.js';
import type { ImageToLoad } from './image-source.js';
import type { ImageStore, NewImage, NewLayer } from './images.js';
import { readOciLayout } from './oci-layout.js';
import { removeTree } from './paths.js';
import { isGzip, peekStream } from './stream-peek.js';
import { hostPlatform, type Platform } from './platform.js';
import type { NamedRef } from './reference.js';
import { shortId } from './reference.js';
import { extractLayer } from './tar-extract.js';

export interface LayerProgress {
  /** Short layer id (diff_id), as docker shows it. */
  id: string;
  phase: 'extracting' | 'exists' | 'done';
  bytes: number;
  total: number;
}

export interface LoadOptions {
  platform?: Platform;
  onProgress?: (p: LayerProgress) => void;
}

export interface LoadedImage {
  id: string;
  tags: NamedRef[];
}

interface ImageConfig {
  rootfs?: { type?: string; diff_ids?: unknown };
}

/** Copies a stream to a file, decompressing gzip (docker load accepts `docker save | gzip`). */
async function stage(source: Readable, file: string): Promise<void> {
  const { head, stream } = await peekStream(source);
  if (head === null) throw new Error('empty input: not an image archive');
  await pipeline([stream, ...(isGzip(head) ? [createGunzip()] : []), fs.createWriteStream(file, { mode: 0o600 })]);
}

async function openSource(store: ImageStore, input: string | Readable, staged: string[]): Promise<BlobSource> {
  if (typeof input === 'string') {
    const st = fs.statSync(input);
    if (st.isDirectory()) return new DirSource(input);
    const head = Buffer.alloc(2);
    const fd = fs.openSync(input, 'r');
    try {
      fs.readSync(fd, head, 0, 2, 0);
    } finally {
      fs.closeSync(fd);
    }
    if (!isGzip(head)) return TarSource.index(input);
    input = fs.createReadStream(input);
  }
  const file = path.join(store.paths.tmpDir, `archive-${process.pid}-${Date.now()}.tar`);
  staged.push(file);
  await stage(input, file);
  return TarSource.index(file);
}

async function hashBlob(src: BlobSource, name: string): Promise<string> {
  const h = new HashingStream();
  await pipeline(src.open(name), h, new Writable({ write: (_c, _e, cb) => cb() }));
  return h.digest();
}

export async function loadImages(store: ImageStore, input: string | Readable, opts: LoadOptions = {}): Promise<LoadedImage[]> {
  const staged: string[] = [];
  const temps: string[] = [];
  try {
    const src = await openSource(store, input, staged);
    let wanted: ImageToLoad[];
    if (src.has('manifest.json')) wanted = await readDockerArchive(src);
    else if (src.has('index.json')) wanted = await readOciLayout(src, opts.platform ?? hostPlatform());
    else throw new Error(`${src.description}: not a docker-save archive or OCI layout (no manifest.json or index.json)`);
    if (!wanted.length) throw new Error(`${src.description}: the archive holds no image`);

    const fresh = new Map<string, NewLayer>();
    const images: NewImage[] = [];
    for (const w of wanted) {
      const config = await readSmall(src, w.configName);
      const id = sha256Digest(config);
      if (w.configDigest) verifyDigest(`${src.description}: config ${w.configName}`, w.configDigest, id);
      let parsed: ImageConfig;
      try {
        parsed = JSON.parse(config.toString('utf8')) as ImageConfig;
      } catch (e) {
        throw new Error(`${src.description}: config ${w.configName} is not valid JSON (${(e as Error).message})`);
      }
      const diffIds = parsed.rootfs?.diff_ids;
      if (!Array.isArray(diffIds) || diffIds.some((d) => typeof d !== 'string')) throw new Error(`${src.description}: config ${w.configName} has no rootfs.diff_ids`);
      if (diffIds.length !== w.layers.length) throw new Error(`${src.description}: config lists ${diffIds.length} diff_ids but the manifest has ${w.layers.length} layers`);

      const layers: NewLayer[] = [];
      for (const [i, blob] of w.layers.entries()) {
        const diffId = diffIds[i] as string;
        const where = `${src.description}: layer ${blob.name}`;
        if (blob.mediaType && /zstd|nondistributable|foreign/.test(blob.mediaType)) throw new Error(`${where}: unsupported layer media type ${blob.mediaType}`);
        const known = fresh.get(diffId) ?? store.layer(diffId);
        if (known && (fresh.has(diffId) || store.hasLayer(diffId))) {
          // Already extracted: the blob is still checked, unless this very blob was before.
          if (blob.digest && store.layerForBlob(blob.digest) !== diffId && fresh.get(diffId)?.blobDigest !== blob.digest) {
            verifyDigest(where, blob.digest, await hashBlob(src, blob.name));
          }
          opts.onProgress?.({ id: shortId(diffId), phase: 'exists', bytes: 0, total: 0 });
          layers.push({ diffId, size: known.size, files: known.files });
          continue;
        }
        const tmp = store.paths.makeTemp('layer');
        temps.push(tmp);
        const total = src.size(blob.name);
        const r = await extractLayer(src.open(blob.name), tmp, {
          inputSize: total,
          onProgress: (bytes) => opts.onProgress?.({ id: shortId(diffId), phase: 'extracting', bytes, total }),
        }).catch((e: Error) => {
          throw new Error(`${where}: ${e.message}`);
        });
        if (blob.digest) verifyDigest(where, blob.digest, r.blobDigest);
        verifyDigest(`${where}: diff_id`, diffId, r.diffId);
        opts.onProgress?.({ id: shortId(diffId), phase: 'done', bytes: total, total });
        const mediaType = blob.mediaType ?? (r.compressed ? 'application/vnd.oci.image.layer.v1.tar+gzip' : 'application/vnd.oci.image.layer.v1.tar');
        const nl: NewLayer = { diffId, tempDir: tmp, blobDigest: r.blobDigest, mediaType, blobSize: r.blobSize, size: r.size, files: r.files };
        fresh.set(diffId, nl);
        layers.push(nl);
      }
      images.push({ id, config, digest: w.manifestDigest, layers, tags: w.tags });
    }
    // Everything verified: commit. A layer shared by two images is moved in by the first.
    for (const img of images) {
      img.layers = img.layers.map((l) => (l.tempDir && !fs.existsSync(l.tempDir) ? { diffId: l.diffId, size: l.size, files: l.files } : l));
      store.commitImage(img);
    }
    return images.map((i) => ({ id: i.id, tags: i.tags }));
  } finally {
    for (const t of [...temps, ...staged]) removeTree(t);
  }
}
