// Everything a benchmark run works on, laid out on one scratch filesystem (an ext4 on a
// RAM-backed loop device unless --dir is given: the VM's block device is throttled by its
// host, docs/benchmarks.md): copies of the image's layers (the cache and the store are never
// mounted by a driver), the big top layer, the merged tree on plain disk (the native driver's
// starting point and every result check's reference), and the untar workload's tarball with
// its extracted reference tree.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { log } from '../util/log.js';
import { snapshotTree } from '../util/tree.js';
import { driverXattr } from './checks.js';
import { cachedSyntheticImage, cachedTarball } from './image-cache.js';
import { imageTargets, type ImageTargets, type Snapshot } from './image-targets.js';
import { kernelOverlayMount, mountsUnder, unmount } from './mounts.js';
import { ramExt4, type ScratchFs } from './scratch-fs.js';
import type { SizeProfile } from './sizes.js';
import { BIG_FILE, RM_TREE, writeBigLayer, type ImageModel } from './synthetic-image.js';

export interface StageOptions {
  profile: SizeProfile;
  cacheDir: string;
  /** A store image instead of the synthetic one: its layer dirs, top first. */
  image?: { name: string; layers: string[] };
  /** Work in a new dir under this one instead of on a RAM-backed ext4. */
  dir?: string;
  /** Where the RAM-backed ext4 is mounted (a new dir under it); default the system's tmpdir. */
  scratchParent?: string;
  progress: (s: string) => void;
}

export interface Stage {
  /** A human description of the image. */
  label: string;
  /** Where the work happens, for the report. */
  disk: string;
  /** The dir on the scratch filesystem that holds everything. */
  base: string;
  /** Layer dirs, top first (the order of overlayfs's lowerdir). */
  layers: string[];
  /** The merged tree on plain disk. */
  nativeBase: string;
  /** Snapshot of nativeBase without contents ('.' left out): the expected merged view. */
  ref: Snapshot;
  targets: ImageTargets;
  tarball: string;
  /** Snapshot of the tarball extracted on plain disk, with contents and mtimes ('.' left out). */
  untarRef: Snapshot;
  untarFiles: number;
  untarBytes: number;
  remove(): void;
}

function withoutRoot(s: Snapshot): Snapshot {
  delete s['.'];
  return s;
}

/** Bytes a tree takes on disk, for sizing the scratch filesystem. */
function diskBytes(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { recursive: true }) as string[]) n += fs.lstatSync(path.join(dir, e)).blocks * 512 + 256;
  return n;
}

/** The synthetic image's model against the merged tree the kernel's overlayfs showed. */
function modelMismatches(model: ImageModel, ref: Snapshot, bigBytes: number): string[] {
  const want = new Map(model.map(([k, kind, size]) => [k, { kind, size }]));
  want.set(path.dirname(BIG_FILE), { kind: 'dir', size: 0 });
  want.set(BIG_FILE, { kind: 'file', size: bigBytes });
  const out: string[] = [];
  for (const [k, e] of Object.entries(ref)) {
    const w = want.get(k);
    const size = e.type === 'file' ? e.size : e.type === 'symlink' ? Buffer.byteLength(e.target!, 'latin1') : 0;
    if (!w) out.push(`${k}: not in the model`);
    else if (w.kind !== e.type || w.size !== size) out.push(`${k}: ${e.type} of ${size}, model says ${w.kind} of ${w.size}`);
  }
  for (const k of want.keys()) if (!ref[k]) out.push(`${k}: missing`);
  return out;
}

export function makeStage(o: StageOptions): Stage {
  const MiB = 1 << 20;
  const synthetic = o.image ? undefined : cachedSyntheticImage(o.cacheDir, o.profile, o.progress);
  const tarSource = cachedTarball(o.cacheDir, o.profile, o.progress);
  const sourceLayers = o.image?.layers ?? synthetic!.layers;
  const layerMiB = sourceLayers.reduce((a, l) => a + diskBytes(l), 0) / MiB;
  const bigMiB = o.profile.image.bigBytes / MiB;
  const untarMiB = o.profile.counts.untarBytes / MiB;
  // Three of each at once at most: the layers, the merged tree, and one run's copy of it
  // (native) or copy-up (a union); the tarball, its reference tree, one run's extraction.
  const sizeMiB = Math.ceil(3 * (bigMiB + layerMiB) * 1.1 + 3 * untarMiB * 1.3 + 256);

  let scratch: ScratchFs | undefined;
  let base: string;
  if (o.dir) {
    base = fs.mkdtempSync(path.join(o.dir, 'strata-bench-'));
  } else {
    scratch = ramExt4(sizeMiB, o.scratchParent);
    base = path.join(scratch.dir, 'bench');
    fs.mkdirSync(base);
  }
  const remove = (): void => {
    for (const m of mountsUnder(base)) unmount(m);
    if (scratch) scratch.remove();
    else fs.rmSync(base, { recursive: true, force: true });
  };
  try {
    o.progress(`staging ${o.image ? `image ${o.image.name}` : `the synthetic image (${o.profile.name})`} on ${o.dir ? o.dir : `a ${sizeMiB} MiB RAM-backed ext4`}`);
    const layers = [path.join(base, 'layers', 'top')];
    writeBigLayer(layers[0]!, o.profile.image.bigBytes);
    sourceLayers.forEach((l, i) => {
      const dest = path.join(base, 'layers', `l${i}`);
      execFileSync('cp', ['-a', l, dest]);
      layers.push(dest);
    });

    // The merged tree on plain disk, as the kernel's overlayfs shows the layers.
    const nativeBase = path.join(base, 'native');
    const ro = path.join(base, 'ro');
    fs.mkdirSync(ro);
    const m = kernelOverlayMount(layers, ro);
    try {
      execFileSync('cp', ['-a', ro, nativeBase]);
    } finally {
      m.unmount();
      fs.rmdirSync(ro);
    }
    const ref = withoutRoot(snapshotTree(nativeBase, { content: false, skipXattr: driverXattr }));
    if (synthetic) {
      const bad = modelMismatches(synthetic.model, ref, o.profile.image.bigBytes);
      if (bad.length) throw new Error(`the merged view of the synthetic image differs from its model (${bad.length}): ${bad.slice(0, 3).join('; ')}`);
    }
    const targets = imageTargets(ref, nativeBase, { bigFile: BIG_FILE, rmTree: synthetic ? RM_TREE : undefined, rmTreeEntries: o.profile.counts.rmTreeEntries });

    const tarball = path.join(base, 'untar.tar');
    fs.copyFileSync(tarSource, tarball);
    const untarDir = path.join(base, 'untar-ref');
    fs.mkdirSync(untarDir);
    execFileSync('tar', ['-xf', tarball, '-C', untarDir]);
    const untarRef = withoutRoot(snapshotTree(untarDir, { mtime: true }));
    const untarFiles = Object.values(untarRef).filter((e) => e.type === 'file');
    log.debug({ base, layers, entries: targets.entries }, 'bench stage ready');
    return {
      label: o.image ? `store image ${o.image.name} (${sourceLayers.length} layer${sourceLayers.length === 1 ? '' : 's'}) under a top layer with a ${bigMiB} MiB file` : `synthetic image, size ${o.profile.name} (3 layers)`,
      disk: o.dir ?? 'ext4 on a RAM-backed loop device',
      base,
      layers,
      nativeBase,
      ref,
      targets,
      tarball,
      untarRef,
      untarFiles: untarFiles.length,
      untarBytes: untarFiles.reduce((a, e) => a + e.size!, 0),
      remove,
    };
  } catch (e) {
    remove();
    throw e;
  }
}
