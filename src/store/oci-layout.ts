// OCI image layouts (a directory or an oci-archive tar): index.json lists manifests, or
// nested indexes for multi-platform images, all stored as blobs/sha256/<hex>. Every blob
// read here is checked against the digest its descriptor gives.

import type { BlobSource } from './archive-source.js';
import { readJson } from './archive-source.js';
import { sha256Digest, verifyDigest } from './digest.js';
import { blobNameOf, type ImageToLoad } from './image-source.js';
import { formatPlatform, platformMatches, type Platform } from './platform.js';
import { parseReference, type NamedRef } from './reference.js';

interface Descriptor {
  mediaType?: string;
  digest: string;
  size?: number;
  platform?: Partial<Platform>;
  annotations?: Record<string, string>;
}

interface Index {
  manifests?: Descriptor[];
}

interface Manifest {
  mediaType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
}

const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);

async function readBlobJson<T>(src: BlobSource, d: Descriptor): Promise<{ value: T; digest: string }> {
  const name = blobNameOf(d.digest);
  const { raw, value } = await readJson<T>(src, name);
  verifyDigest(`${src.description}: ${name}`, d.digest, sha256Digest(raw));
  return { value, digest: d.digest };
}

/** Names from the ref annotations: a full reference is kept; a bare tag ("latest") names no repository. */
function tagsOf(d: Descriptor): NamedRef[] {
  const full = d.annotations?.['io.containerd.image.name'] ?? d.annotations?.['org.opencontainers.image.ref.name'];
  if (!full || !/[:/]/.test(full)) return [];
  try {
    return [parseReference(full)];
  } catch {
    return [];
  }
}

export async function readOciLayout(src: BlobSource, want: Platform): Promise<ImageToLoad[]> {
  const { value: index } = await readJson<Index>(src, 'index.json');
  if (!Array.isArray(index.manifests)) throw new Error(`${src.description}: index.json has no manifests`);

  /**
   * Picks from an index: descriptors without a platform always, and of those with one the
   * first matching `want` (registries list the best match first; attestation manifests
   * say unknown/unknown and drop out). A lone manifest is taken whatever its platform.
   */
  const pick = (ds: Descriptor[], where: string): Descriptor[] => {
    if (ds.length === 1) return ds;
    const withPlatform = ds.filter((d) => d.platform);
    const match = withPlatform.find((d) => platformMatches(d.platform!, want));
    if (withPlatform.length && !match) {
      throw new Error(`${where}: no image for platform ${formatPlatform(want)} (available: ${withPlatform.map((d) => formatPlatform(d.platform!)).join(', ')})`);
    }
    return ds.filter((d) => !d.platform || d === match);
  };

  const out: ImageToLoad[] = [];
  const visit = async (d: Descriptor, names: NamedRef[], depth: number): Promise<void> => {
    if (depth > 4) throw new Error(`${src.description}: indexes nested too deep`);
    const { value: m } = await readBlobJson<Manifest>(src, d);
    if (INDEX_TYPES.has(d.mediaType ?? m.mediaType ?? '') || Array.isArray(m.manifests)) {
      for (const sub of pick(m.manifests ?? [], `${src.description}: index ${d.digest}`)) await visit(sub, names, depth + 1);
      return;
    }
    if (!m.config?.digest || !Array.isArray(m.layers)) throw new Error(`${src.description}: manifest ${d.digest} lacks config or layers`);
    out.push({
      configName: blobNameOf(m.config.digest),
      configDigest: m.config.digest,
      layers: m.layers.map((l) => ({ name: blobNameOf(l.digest), digest: l.digest, mediaType: l.mediaType })),
      tags: names,
      manifestDigest: d.digest,
    });
  };
  for (const d of pick(index.manifests, `${src.description}: index.json`)) await visit(d, tagsOf(d), 0);
  return out;
}
