// What the archive readers (docker-archive.ts, oci-layout.ts) hand to the loader: for each
// image, where its config and layer blobs are in the archive, which digests they must
// have, and the names it should get.

import type { NamedRef } from './reference.js';

export interface LayerBlob {
  /** Member name in the archive. */
  name: string;
  /** Digest the blob must have, when the format says (OCI descriptors, docker's blobs/ paths). */
  digest?: string;
  mediaType?: string;
}

export interface ImageToLoad {
  configName: string;
  /** Digest the config must have, when the format says. */
  configDigest?: string;
  layers: LayerBlob[];
  tags: NamedRef[];
  /** Digest of the manifest it came from (OCI), recorded as the repo digest. */
  manifestDigest?: string;
}

/** docker save and OCI name blobs "blobs/<alg>/<hex>": the name states the digest. */
export function digestFromBlobName(name: string): string | undefined {
  const m = /^blobs\/sha256\/([0-9a-f]{64})$/.exec(name.replace(/^\.\//, ''));
  return m ? `sha256:${m[1]}` : undefined;
}

export function blobNameOf(digest: string): string {
  const [alg, hex] = digest.split(':');
  if (alg !== 'sha256' || !hex || !/^[0-9a-f]{64}$/.test(hex)) throw new Error(`unsupported digest '${digest}' (only sha256 is supported)`);
  return `blobs/${alg}/${hex}`;
}
