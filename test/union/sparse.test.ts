// Sparse lower files through the union: what SEEK_DATA/SEEK_HOLE and st_blocks show, on
// stratafs and on the kernel's overlayfs over copies of the same layer, before a copy-up,
// after a metadata-only one (chmod: the data still lies below) and after a copy of the data
// (a 1-byte write). stratafs copies the data segments only (copy_file_range over what
// SEEK_DATA finds), so every hole stays one; overlayfs copies 1 MiB chunks from each data
// start, so a hole that begins inside such a chunk is filled with zeros (docs/union.md, "Where
// stratafs differs").
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { native, SEEK_DATA, SEEK_HOLE } from '../../src/native/binding.js';
import { cleanupsAfterEach, tmpdir } from '../helpers/mount.js';
import { kernelDriver, strataDriver, type UnionDriver } from './overlay.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** 64 KiB of data at 0 and at 1 MiB, one byte at 3 MiB: holes between, none at the end. */
function writeSparse(p: string): void {
  const fd = fs.openSync(p, 'w');
  try {
    fs.writeSync(fd, Buffer.alloc(64 * KiB, 'a'), 0, 64 * KiB, 0);
    fs.writeSync(fd, Buffer.alloc(64 * KiB, 'b'), 0, 64 * KiB, 1 * MiB);
    fs.writeSync(fd, Buffer.from('c'), 0, 1, 3 * MiB);
  } finally {
    fs.closeSync(fd);
  }
}

/** The data extents SEEK_DATA/SEEK_HOLE report, as [start, end) pairs. */
function extents(p: string): Array<[number, number]> {
  const fd = fs.openSync(p, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const out: Array<[number, number]> = [];
    for (let at = 0; at < size; ) {
      let start: number;
      try {
        start = native.lseek(fd, at, SEEK_DATA);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENXIO') break;
        throw e;
      }
      const end = native.lseek(fd, start, SEEK_HOLE);
      out.push([start, end]);
      at = end;
    }
    return out;
  } finally {
    fs.closeSync(fd);
  }
}

const LOWER_EXTENTS: Array<[number, number]> = [
  [0, 64 * KiB],
  [1 * MiB, 1 * MiB + 64 * KiB],
  [3 * MiB, 3 * MiB + 1],
];

describe('sparse lower files', () => {
  const cleanups = cleanupsAfterEach();

  async function view(driver: UnionDriver) {
    const base = tmpdir('sparse');
    cleanups.push(() => fs.rmSync(base, { recursive: true, force: true }));
    const [lower, upper, work, mnt] = ['lower', 'upper', 'work', 'mnt'].map((d) => path.join(base, d)) as [string, string, string, string];
    for (const d of [lower, upper, work, mnt]) fs.mkdirSync(d);
    for (const f of ['plain', 'chmodded', 'written']) writeSparse(path.join(lower, f));
    const m = driver.mount([lower], upper, work, mnt);
    cleanups.push(() => m.cleanup());
    fs.chmodSync(path.join(mnt, 'chmodded'), 0o600);
    const w = fs.openSync(path.join(mnt, 'written'), 'r+');
    try {
      fs.writeSync(w, Buffer.from('W'), 0, 1, 10);
    } finally {
      fs.closeSync(w);
    }
    const seen = (f: string) => {
      const { blocks, size } = fs.statSync(path.join(mnt, f));
      return { extents: extents(path.join(mnt, f)), blocks, size };
    };
    const out = { plain: seen('plain'), chmodded: seen('chmodded'), written: seen('written'), upperWritten: extents(path.join(upper, 'written')) };
    expect(fs.readFileSync(path.join(mnt, 'written')).subarray(0, 12).toString()).toBe('aaaaaaaaaaWa');
    await m.cleanup();
    return out;
  }

  it('show the lower layout before a copy-up and after a metadata-only one; a copy of the data keeps every hole (overlayfs fills those inside its 1 MiB chunks)', async () => {
    const s = await view(strataDriver);
    const k = await view(kernelDriver);
    const lowerBlocks = s.plain.blocks;
    // Not copied, or copied for metadata only: the lower file's own layout and blocks, on both.
    for (const v of [s, k]) {
      expect(v.plain).toEqual({ extents: LOWER_EXTENTS, blocks: lowerBlocks, size: 3 * MiB + 1 });
      expect(v.chmodded).toEqual({ extents: LOWER_EXTENTS, blocks: lowerBlocks, size: 3 * MiB + 1 });
    }
    // Copied: stratafs's copy has exactly the lower data segments (the write fell in the
    // first one), through the mount and on disk; no more blocks than the lower file.
    expect(s.written.extents).toEqual(LOWER_EXTENTS);
    expect(s.upperWritten).toEqual(LOWER_EXTENTS);
    expect(s.written.blocks).toBe(lowerBlocks);
    // The kernel's copy (6.18): the 1 MiB chunks from 0 and from 1 MiB are copied whole,
    // zeros included ([0, 2 MiB) and [3 MiB, EOF)); asserted loosely, as more blocks than
    // the lower file, so another chunk size would still pass.
    expect(k.written.extents).not.toEqual(LOWER_EXTENTS);
    expect(k.written.blocks).toBeGreaterThan(lowerBlocks);
  });
});
