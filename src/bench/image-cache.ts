// The synthetic inputs are made once per size and kept between runs: the image's two lower
// layers with the model of their merged view, and the untar workload's tarball. They live
// under the cache dir (--cache; default /var/cache/stratafs/bench for root, else
// $XDG_CACHE_HOME/stratafs/bench). A run copies them onto its scratch filesystem, so the
// cache is never mounted or written by a driver. Bump CACHE_VERSION when a generator's
// output changes.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { log } from '../util/log.js';
import { seconds } from './measure.js';
import type { SizeProfile } from './sizes.js';
import { makeSyntheticLayers, type ImageModel } from './synthetic-image.js';
import { makeUntarTarball } from './untar-source.js';

const CACHE_VERSION = 1;

export interface CachedImage {
  /** Layer dirs in the cache, top first. */
  layers: string[];
  model: ImageModel;
}

export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.STRATAFS_BENCH_CACHE) return path.resolve(env.STRATAFS_BENCH_CACHE);
  if (process.getuid?.() === 0) return '/var/cache/stratafs/bench';
  return path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'stratafs', 'bench');
}

/**
 * The cache entry `name`, made by `make` in a dir beside it and renamed into place when
 * complete, so an interrupted run leaves no half-made entry behind.
 */
function cached(cacheDir: string, name: string, what: string, progress: (s: string) => void, make: (dir: string) => void): string {
  const dir = path.join(cacheDir, `${name}-v${CACHE_VERSION}`);
  if (fs.existsSync(dir)) {
    log.debug({ dir }, 'bench input from the cache');
    return dir;
  }
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  progress(`making ${what} in ${dir} (once; kept for later runs)`);
  try {
    const t = seconds(() => make(tmp));
    fs.renameSync(tmp, dir);
    progress(`  made in ${t.toFixed(1)} s`);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return dir;
}

export function cachedSyntheticImage(cacheDir: string, profile: SizeProfile, progress: (s: string) => void): CachedImage {
  const dir = cached(cacheDir, `synthetic-${profile.name}`, `the synthetic image (size ${profile.name})`, progress, (tmp) => {
    fs.writeFileSync(path.join(tmp, 'model.json'), JSON.stringify(makeSyntheticLayers(tmp, profile.image)));
  });
  return {
    layers: [path.join(dir, 'middle'), path.join(dir, 'bottom')],
    model: JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8')) as ImageModel,
  };
}

/** The untar workload's tarball. */
export function cachedTarball(cacheDir: string, profile: SizeProfile, progress: (s: string) => void): string {
  const dir = cached(cacheDir, `untar-${profile.name}`, `the untar tarball (size ${profile.name})`, progress, (tmp) => {
    makeUntarTarball(path.join(tmp, 'untar.tar'), profile.counts.untarBytes);
  });
  return path.join(dir, 'untar.tar');
}
