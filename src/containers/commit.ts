// strata commit: the container layer as a new image layer on top of the container's image.
// The layer tar (layer-plan.ts) is written once to the store's tmp/, hashed on the way
// (diff_id of the tar, digest of the blob, gzip with `compress`), then extracted into a
// layer dir by the very extractor `strata load` uses, and committed with a config that
// adds its diff_id and a history entry to the old image's. The new image is mountable at
// once; a commit of the same changes gives the same tar, hence the same layer.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { HashingStream, sha256Digest, verifyDigest } from '../store/digest.js';
import type { ImageRecord, ImageStore, NewLayer } from '../store/images.js';
import { removeTree } from '../store/paths.js';
import { parseReference } from '../store/reference.js';
import { extractLayer } from '../store/tar-extract.js';
import { planLayer } from './layer-plan.js';
import { TarPlan, tarChunks } from './tar-plan.js';
import { ContainerView } from './view.js';

export interface CommitProgress {
  phase: 'writing' | 'extracting';
  bytes: number;
  total: number;
}

export interface CommitOptions {
  /** REPO[:TAG] for the new image; without it the image is dangling, as with docker. */
  reference?: string;
  message?: string;
  author?: string;
  compress?: boolean;
  /** The image's created time (ISO 8601), default now. */
  created?: string;
  onProgress?: (p: CommitProgress) => void;
}

export interface CommitResult {
  imageId: string;
  diffId: string;
  /** Digest and size of the layer blob as written (gzip with `compress`). */
  blobDigest: string;
  blobSize: number;
  /** Entries in the layer tar. */
  entries: number;
}

interface ImageConfig {
  author?: string;
  config?: { Cmd?: unknown };
  rootfs?: { type?: string; diff_ids?: string[] };
  history?: unknown[];
  [k: string]: unknown;
}

/**
 * The new config: the old one with the new layer's diff_id, a history entry, the author
 * and created time. created_by is the image's command, as docker's commit records the
 * container's command (a container here runs none of its own).
 */
function commitConfig(image: ImageRecord, diffId: string, opts: CommitOptions): Buffer {
  const old = JSON.parse(image.config.toString('utf8')) as ImageConfig;
  const created = opts.created ?? new Date().toISOString();
  const cmd = old.config?.Cmd;
  const createdBy = Array.isArray(cmd) && cmd.length ? cmd.join(' ') : 'strata commit';
  const entry = { created, ...(opts.author ? { author: opts.author } : {}), created_by: createdBy, ...(opts.message ? { comment: opts.message } : {}) };
  const config: ImageConfig = { ...old, created, rootfs: { type: 'layers', diff_ids: [...image.layers, diffId] }, history: [...(old.history ?? []), entry] };
  if (opts.author) config.author = opts.author;
  else delete config.author;
  return Buffer.from(JSON.stringify(config));
}

/** Writes the tar to `file`; returns the diff_id (tar) and the blob's digest and size. */
async function writeLayer(plan: TarPlan, file: string, opts: CommitOptions): Promise<{ diffId: string; blobDigest: string; blobSize: number }> {
  const tarHash = new HashingStream();
  const blobHash = new HashingStream();
  const stages: Transform[] = opts.compress ? [tarHash, createGzip(), blobHash] : [tarHash];
  const total = plan.dataBytes;
  const source = Readable.from(tarChunks(plan, (bytes) => opts.onProgress?.({ phase: 'writing', bytes, total })));
  await pipeline([source, ...stages, fs.createWriteStream(file, { mode: 0o600 })]);
  const blob = opts.compress ? blobHash : tarHash;
  return { diffId: tarHash.digest(), blobDigest: blob.digest(), blobSize: blob.bytes };
}

export async function commitContainer(store: ImageStore, ref: string, opts: CommitOptions = {}): Promise<CommitResult> {
  const container = store.resolveContainer(ref);
  const tags = opts.reference ? [parseReference(opts.reference)] : [];
  const view = ContainerView.open(store, container);
  const work = store.paths.makeTemp('commit');
  let layerTemp: string | undefined;
  try {
    const image = store.image(container.imageId)!;
    const plan = new TarPlan();
    planLayer(plan, view);
    const file = path.join(work, opts.compress ? 'layer.tar.gz' : 'layer.tar');
    const w = await writeLayer(plan, file, opts);
    const mediaType = opts.compress ? 'application/vnd.oci.image.layer.v1.tar+gzip' : 'application/vnd.oci.image.layer.v1.tar';
    let layer: NewLayer;
    const known = store.hasLayer(w.diffId) ? store.layer(w.diffId) : undefined;
    if (known) layer = { diffId: w.diffId, blobDigest: w.blobDigest, mediaType, blobSize: w.blobSize, size: known.size, files: known.files };
    else {
      layerTemp = store.paths.makeTemp('layer');
      const r = await extractLayer(fs.createReadStream(file), layerTemp, {
        inputSize: w.blobSize,
        onProgress: (bytes) => opts.onProgress?.({ phase: 'extracting', bytes, total: w.blobSize }),
      }).catch((e: Error) => {
        throw new Error(`${file}: committed layer does not extract: ${e.message}`);
      });
      verifyDigest(`${file}: diff_id`, w.diffId, r.diffId);
      layer = { diffId: w.diffId, tempDir: layerTemp, blobDigest: w.blobDigest, mediaType, blobSize: w.blobSize, size: r.size, files: r.files };
    }
    const below: NewLayer[] = image.layers.map((d) => {
      const l = store.layer(d);
      if (!l) throw new Error(`image ${image.id}: layer ${d} is missing from the store`);
      return { diffId: d, size: l.size, files: l.files };
    });
    const config = commitConfig(image, w.diffId, opts);
    const imageId = sha256Digest(config);
    store.commitImage({ id: imageId, config, layers: [...below, layer], tags });
    return { imageId, diffId: w.diffId, blobDigest: w.blobDigest, blobSize: w.blobSize, entries: plan.entries.length };
  } finally {
    view.close();
    removeTree(work);
    // Moved into layers/ by commitImage on success; still here only after a failure.
    if (layerTemp) removeTree(layerTemp);
  }
}
