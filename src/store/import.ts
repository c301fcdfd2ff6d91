// strata import: a flat rootfs tarball (plain or gzip) as a one-layer image, with a config
// and a history entry written here. Shares the extractor, and its safety rules, with load.

import type { Readable } from 'node:stream';
import { sha256Digest } from './digest.js';
import type { ImageStore, NewLayer } from './images.js';
import { removeTree } from './paths.js';
import { hostPlatform } from './platform.js';
import { parseReference } from './reference.js';
import { extractLayer } from './tar-extract.js';

export interface ImportOptions {
  /** NAME[:TAG]; without it the image is dangling (<none>:<none>). */
  reference?: string;
  /** Where the tarball came from, for the history entry. */
  source?: string;
  comment?: string;
  /** The image's created time (ISO 8601); default now. Fixed for reproducible images. */
  created?: string;
  /** The config's "config" section (Cmd, Env, ...). */
  runConfig?: Record<string, unknown>;
  createdBy?: string;
  /** Bytes of the input, when known (a file): bounds entry sizes before anything is written. */
  inputSize?: number;
}

/** Returns the new image's ID ("sha256:…"). */
export async function importTarball(store: ImageStore, input: Readable, opts: ImportOptions = {}): Promise<string> {
  const tags = opts.reference ? [parseReference(opts.reference)] : [];
  const tmp = store.paths.makeTemp('import');
  try {
    const r = await extractLayer(input, tmp, { inputSize: opts.inputSize });
    const created = opts.created ?? new Date().toISOString();
    const { os, architecture, variant } = hostPlatform();
    const config = Buffer.from(
      JSON.stringify({
        architecture,
        ...(variant ? { variant } : {}),
        os,
        created,
        config: opts.runConfig ?? { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'] },
        rootfs: { type: 'layers', diff_ids: [r.diffId] },
        history: [{ created, created_by: opts.createdBy ?? `strata import ${opts.source ?? '-'}`, ...(opts.comment ? { comment: opts.comment } : {}) }],
      }),
    );
    const id = sha256Digest(config);
    const layer: NewLayer = store.hasLayer(r.diffId)
      ? { diffId: r.diffId, size: r.size, files: r.files }
      : { diffId: r.diffId, tempDir: tmp, blobDigest: r.blobDigest, mediaType: r.compressed ? 'application/vnd.oci.image.layer.v1.tar+gzip' : 'application/vnd.oci.image.layer.v1.tar', blobSize: r.blobSize, size: r.size, files: r.files };
    store.commitImage({ id, config, layers: [layer], tags });
    return id;
  } finally {
    removeTree(tmp);
  }
}
