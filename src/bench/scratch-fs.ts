// A scratch ext4 filesystem on a RAM-backed loop device, for benchmarks whose figures must
// not depend on the host's disk (a VM's block device is rate-limited by its host).

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface ScratchFs {
  dir: string;
  remove(): void;
}

/** An ext4 of sizeMiB (its pages are taken only as they are written), mounted in a new dir under parent. */
export function ramExt4(sizeMiB: number, parent = os.tmpdir()): ScratchFs {
  const work = fs.mkdtempSync(path.join(parent, 'strata-scratch-'));
  const image = path.join('/dev/shm', `${path.basename(work)}.ext4`);
  const dir = path.join(work, 'disk');
  fs.mkdirSync(dir);
  fs.closeSync(fs.openSync(image, 'w'));
  fs.truncateSync(image, sizeMiB * 1024 * 1024);
  let mounted = false;
  try {
    execFileSync('mkfs.ext4', ['-q', '-F', image]);
    execFileSync('mount', ['-o', 'loop', image, dir]);
    mounted = true;
  } catch (e) {
    fs.rmSync(image, { force: true });
    fs.rmSync(work, { recursive: true, force: true });
    throw new Error(`cannot make a RAM-backed ext4 for the benchmark (needs root, mkfs.ext4, loop devices): ${(e as Error).message}`);
  }
  return {
    dir,
    remove() {
      if (mounted) {
        // Lazily if something still holds it: the RAM behind the image must be given back.
        try {
          execFileSync('umount', [dir], { stdio: 'ignore' });
        } catch {
          execFileSync('umount', ['-l', dir]);
        }
      }
      mounted = false;
      fs.rmSync(image, { force: true });
      fs.rmSync(work, { recursive: true, force: true });
    },
  };
}
