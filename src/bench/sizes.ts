// The two sizes of `strata bench`: the shape of the synthetic image and how many files each
// workload touches. "full" is what the issue asks for (a container rootfs: ~15,000 files in
// ~1,500 dirs, a 1 GiB file); "small" is the same shape at about a tenth, for the harness's
// own tests and quick checks.

export type SizeName = 'small' | 'full';

export interface ImageShape {
  /** Bottom layer: topDirs dirs of subDirs subdirs each, `files` files spread over them. */
  topDirs: number;
  subDirs: number;
  files: number;
  /** A tree for rm -rf: rmDirs dirs of rmFiles files (rmDirs * (rmFiles + 1) entries). */
  rmDirs: number;
  rmFiles: number;
  symlinks: number;
  hardLinks: number;
  /** Middle layer: files rewritten, files and dirs deleted (whiteouts), files added in a grid of addDirs x addDirs new dirs. */
  modify: number;
  remove: number;
  removeDirs: number;
  add: number;
  addDirs: number;
  middleSymlinks: number;
  /** Top layer: one file of this size. */
  bigBytes: number;
}

export interface WorkloadCounts {
  copyUp: number;
  chmod: number;
  create: number;
  rename: number;
  /** Names that do not exist, looked up MISSING_ROUNDS times each (workload missing). */
  missing: number;
  /** Entries below the tree removed by rm -rf (for a store image: the closest directory). */
  rmTreeEntries: number;
  /** Bytes of small files in the tarball the untar workload extracts. */
  untarBytes: number;
}

export interface SizeProfile {
  name: SizeName;
  image: ImageShape;
  counts: WorkloadCounts;
}

const MiB = 1 << 20;

export const SIZES: Record<SizeName, SizeProfile> = {
  full: {
    name: 'full',
    image: {
      topDirs: 40,
      subDirs: 24,
      files: 9000,
      rmDirs: 30,
      rmFiles: 99,
      symlinks: 200,
      hardLinks: 100,
      modify: 1000,
      remove: 500,
      removeDirs: 2,
      add: 3500,
      addDirs: 20,
      middleSymlinks: 50,
      bigBytes: 1024 * MiB,
    },
    counts: { copyUp: 2000, chmod: 2000, create: 10000, rename: 1000, missing: 2000, rmTreeEntries: 3000, untarBytes: 100 * MiB },
  },
  small: {
    name: 'small',
    image: {
      topDirs: 8,
      subDirs: 12,
      files: 900,
      rmDirs: 10,
      rmFiles: 29,
      symlinks: 20,
      hardLinks: 10,
      modify: 100,
      remove: 50,
      removeDirs: 2,
      add: 350,
      addDirs: 5,
      middleSymlinks: 10,
      bigBytes: 16 * MiB,
    },
    counts: { copyUp: 200, chmod: 200, create: 1000, rename: 100, missing: 200, rmTreeEntries: 300, untarBytes: 4 * MiB },
  },
};

export function sizeProfile(name: string): SizeProfile {
  if (name !== 'small' && name !== 'full') throw new Error(`--size: expected small or full, got '${name}'`);
  return SIZES[name];
}
