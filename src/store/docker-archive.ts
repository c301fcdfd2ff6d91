// docker save archives: manifest.json lists, per image, its config file, its layer files
// (bottom first) and its RepoTags. Layer files are "<id>/layer.tar" (legacy, possibly
// symlinks to a shared layer) or "blobs/sha256/<hex>" (docker 25+).

import type { BlobSource } from './archive-source.js';
import { readJson } from './archive-source.js';
import { digestFromBlobName, type ImageToLoad } from './image-source.js';
import { parseReference } from './reference.js';

interface DockerManifestEntry {
  Config?: string;
  RepoTags?: string[] | null;
  Layers?: string[];
}

export async function readDockerArchive(src: BlobSource): Promise<ImageToLoad[]> {
  const { value } = await readJson<DockerManifestEntry[]>(src, 'manifest.json');
  if (!Array.isArray(value)) throw new Error(`${src.description}: manifest.json is not a list of images`);
  return value.map((e, i) => {
    if (typeof e.Config !== 'string' || !Array.isArray(e.Layers)) throw new Error(`${src.description}: manifest.json entry ${i} lacks Config or Layers`);
    const legacyConfig = /^([0-9a-f]{64})\.json$/.exec(e.Config);
    return {
      configName: e.Config,
      configDigest: digestFromBlobName(e.Config) ?? (legacyConfig ? `sha256:${legacyConfig[1]}` : undefined),
      layers: e.Layers.map((name) => ({ name, digest: digestFromBlobName(name) })),
      tags: (e.RepoTags ?? []).map(parseReference),
    };
  });
}
