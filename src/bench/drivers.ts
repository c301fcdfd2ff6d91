// The drivers `strata bench` compares, each over the same layers: stratafs with passthrough
// on and off (`strata mount` in its own daemon), and on request with -o volatile (no fsync,
// as fuse-overlayfs never fsyncs a copy-up), the kernel's overlayfs (the reference every
// ratio is taken against), fuse-overlayfs when installed, and "native": a copy of the merged
// tree on the plain disk, the physical limit. A driver that cannot run here says why, and the
// report shows it as skipped with that reason.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fuseOverlayfsMount, kernelOverlayMount, onPath, STRATA_CLI, strataMount } from './mounts.js';
import type { Stage } from './stage.js';

/** Fresh dirs of one run of one workload; `dir` holds them all. */
export interface RunDirs {
  dir: string;
  upper: string;
  work: string;
  mnt: string;
}

export interface Mounted {
  /** Where the workload runs. */
  root: string;
  upper?: string;
  unmount(): void;
}

export interface Driver {
  name: string;
  label: string;
  /** Why it cannot run on this machine, or undefined. */
  unavailable(): string | undefined;
  mount(s: Stage, d: RunDirs): Mounted;
  /** Run only when asked for by name (--drivers). */
  onRequest?: boolean;
}

export const REFERENCE_DRIVER = 'overlay';

const isRoot = (): boolean => process.getuid?.() === 0;

function kernelAtLeast(major: number, minor: number): boolean {
  const [a = 0, b = 0] = os.release().split('.').map((x) => parseInt(x, 10));
  return a > major || (a === major && b >= minor);
}

function fuseUnavailable(): string | undefined {
  if (!fs.existsSync('/dev/fuse')) return '/dev/fuse is missing';
  if (!isRoot()) return 'mounting needs root';
  return undefined;
}

function stratafs(passthrough: boolean, cli: string[], volatile = false): Driver {
  return {
    name: volatile ? 'stratafs-volatile' : passthrough ? 'stratafs' : 'stratafs-nopt',
    label: `stratafs (passthrough ${passthrough ? 'on' : 'off'}${volatile ? ', volatile' : ''})`,
    unavailable: () => fuseUnavailable() ?? (passthrough && !kernelAtLeast(6, 9) ? `FUSE passthrough needs Linux 6.9 or later (this is ${os.release()})` : undefined),
    mount(s, d) {
      const args = ['mount', '--lower', s.layers.join(':'), '--upper', d.upper, '--work', d.work];
      if (!passthrough) args.push('--no-passthrough');
      if (volatile) args.push('-o', 'volatile');
      const m = strataMount(args, d.mnt, cli);
      return { root: d.mnt, upper: d.upper, unmount: () => m.unmount() };
    },
    onRequest: volatile,
  };
}

/** All drivers, in report order; `cli` runs the strata CLI. */
export function allDrivers(cli: string[] = STRATA_CLI): Driver[] {
  return [
    stratafs(true, cli),
    stratafs(false, cli),
    stratafs(true, cli, true),
    {
      name: 'overlay',
      label: 'overlayfs (kernel)',
      unavailable: () => (!isRoot() ? 'mounting needs root' : fs.readFileSync('/proc/filesystems', 'utf8').includes('\toverlay\n') ? undefined : 'the kernel has no overlay filesystem (modprobe overlay)'),
      mount(s, d) {
        const m = kernelOverlayMount(s.layers, d.mnt, d.upper, d.work);
        return { root: d.mnt, upper: d.upper, unmount: () => m.unmount() };
      },
    },
    {
      name: 'fuse-overlayfs',
      label: 'fuse-overlayfs',
      unavailable: () => (onPath('fuse-overlayfs') ? fuseUnavailable() : 'fuse-overlayfs is not installed (apt-get install fuse-overlayfs)'),
      mount(s, d) {
        const m = fuseOverlayfsMount(s.layers, d.upper, d.work, d.mnt);
        return { root: d.mnt, upper: d.upper, unmount: () => m.unmount() };
      },
    },
    {
      name: 'native',
      label: 'native (merged tree on the disk)',
      unavailable: () => undefined,
      mount(s, d) {
        // A fresh copy per run, as the unions get a fresh upper dir: the write workloads change it.
        const root = path.join(d.dir, 'tree');
        execFileSync('cp', ['-a', s.nativeBase, root]);
        return { root, unmount: () => {} };
      },
    },
  ];
}

export function selectDrivers(names: string[] | undefined, cli?: string[]): Driver[] {
  const all = allDrivers(cli);
  if (!names?.length) return all.filter((d) => !d.onRequest);
  for (const n of names) if (!all.some((d) => d.name === n)) throw new Error(`unknown driver '${n}' (known: ${all.map((d) => d.name).join(', ')})`);
  return all.filter((d) => names.includes(d.name));
}
