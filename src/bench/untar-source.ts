// The tarball of the untar workload: small files (1-16 KiB, in dirs of 100) adding up to a
// given size, packed by GNU tar with fixed names order, owners and times so the archive is
// the same on every machine. The workload extracts it with the system's tar, as a user would.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { seededData } from './seeded-data.js';

const UNTAR_SEED = 0x7a2b;

export function makeUntarTarball(tarFile: string, bytes: number): { files: number } {
  const { int, bytes: noise } = seededData(UNTAR_SEED);
  const src = `${tarFile}.src`;
  fs.rmSync(src, { recursive: true, force: true });
  let total = 0;
  let files = 0;
  for (; total < bytes; files++) {
    const dir = path.join(src, `u${Math.floor(files / 1000)}`, `d${Math.floor(files / 100) % 10}`);
    if (files % 100 === 0) fs.mkdirSync(dir, { recursive: true });
    const n = Math.min(int(1 << 10, 16 << 10), bytes - total);
    fs.writeFileSync(path.join(dir, `f${files}`), noise(n));
    total += n;
  }
  execFileSync('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@1500000000', '-C', src, '-cf', tarFile, '.']);
  fs.rmSync(src, { recursive: true });
  return { files };
}
