// The layer builder itself (test/helpers/layers.ts), without any mount: what the
// differential suite stands on. An OCI-format build converted with toOverlayFormat() must
// be byte-for-byte the overlay-format build of the same spec (names, types, modes, owners,
// nanosecond mtimes, link counts, xattrs including trusted.overlay.opaque); random stacks
// must be deterministic per seed.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native } from '../../src/native/binding.js';
import { snapshotTree } from '../../src/util/tree.js';
import { buildLayer, buildStack, layerTime, randomStack, toOverlayFormat, wh, type LayerSpec } from '../helpers/layers.js';
import { tmpdir } from '../helpers/mount.js';
import { diffFields } from './harness.js';
import { BIGDIR, OPAQUES, STD, TYPE_SWAPS, WHITEOUTS, manyLayers } from './stacks.js';

const exact = { mtime: true, nlink: true };

describe('layer builder', () => {
  let root = '';
  let n = 0;
  const fresh = (): string => path.join(root, String(n++));

  beforeAll(() => {
    root = tmpdir('layers');
  });
  afterAll(() => {
    fs.rmSync(root, { recursive: true, force: true });
  });

  const stacks: Array<[string, LayerSpec[]]> = [
    ['STD', STD],
    ['WHITEOUTS', WHITEOUTS],
    ['OPAQUES', OPAQUES],
    ['BIGDIR', BIGDIR],
    ['TYPE_SWAPS', TYPE_SWAPS],
    ['twenty layers', manyLayers()],
    ['random seed 2', randomStack(2, { layers: 6 }).specs],
    ['random seed 4', randomStack(4, { layers: 20 }).specs],
  ];

  it.each(stacks)('%s: the OCI build converted to overlay format is the overlay build', (_name, specs) => {
    const overlay = buildStack(fresh(), specs, 'overlay');
    const oci = buildStack(fresh(), specs, 'oci');
    overlay.layers.forEach((dir, i) => {
      const converted = toOverlayFormat(oci.layers[i]!);
      expect(diffFields(snapshotTree(converted, exact), snapshotTree(dir, exact)), `layer ${i}`).toEqual([]);
    });
  });

  it('writes the markers of each format and sets times after the contents', () => {
    const spec: LayerSpec = { 'dir/gone': wh, 'o/new': 'n', o: { type: 'dir', opaque: true, mode: 0o700 }, 'x/y': { type: 'file', content: 'y', mtime: [1234, 5] } };
    const ov = fresh();
    buildLayer(ov, spec, 'overlay', 3);
    const wst = fs.lstatSync(`${ov}/dir/gone`);
    expect([wst.isCharacterDevice(), wst.rdev]).toEqual([true, 0]);
    expect(native.lgetxattr(`${ov}/o`, 'trusted.overlay.opaque').toString()).toBe('y');
    const oci = fresh();
    buildLayer(oci, spec, 'oci', 3);
    expect(fs.readdirSync(`${oci}/dir`)).toEqual(['.wh.gone']);
    expect(fs.readdirSync(`${oci}/o`).sort()).toEqual(['.wh..wh..opq', 'new']);
    const [s, ns] = layerTime(3);
    for (const dir of [ov, oci]) {
      expect(fs.lstatSync(`${dir}/o`, { bigint: true }).mtimeNs).toBe(BigInt(s) * 1000000000n + BigInt(ns));
      expect(fs.lstatSync(`${dir}/x/y`, { bigint: true }).mtimeNs).toBe(1234000000005n);
      expect(fs.lstatSync(`${dir}/o`).mode & 0o7777).toBe(0o700);
    }
  });

  it('toOverlayFormat with a destination converts a copy and leaves the source alone', () => {
    const src = fresh();
    buildLayer(src, { 'a/.wh.b': 'x', 'a/c': 'c', d: { type: 'dir', opaque: true } }, 'oci');
    // '.wh.b' written as a plain file in the spec is an OCI whiteout of b once read as OCI
    const before = snapshotTree(src, exact);
    const dest = `${fresh()}-copy`;
    toOverlayFormat(src, dest);
    expect(diffFields(snapshotTree(src, exact), before)).toEqual([]);
    expect(fs.readdirSync(`${dest}/a`).sort()).toEqual(['b', 'c']);
    expect(fs.lstatSync(`${dest}/a/b`).isCharacterDevice()).toBe(true);
    expect(fs.readdirSync(`${dest}/d`)).toEqual([]);
    expect(native.lgetxattr(`${dest}/d`, 'trusted.overlay.opaque').toString()).toBe('y');
  });

  it('random stacks are deterministic per seed and exercise every kind of change', () => {
    expect(JSON.stringify(randomStack(7, { layers: 10 }).specs)).toBe(JSON.stringify(randomStack(7, { layers: 10 }).specs));
    expect(JSON.stringify(randomStack(7, { layers: 10 }).specs)).not.toBe(JSON.stringify(randomStack(8, { layers: 10 }).specs));
    const kinds = new Set<string>();
    for (const seed of [1, 2, 3, 4, 5]) {
      const { specs } = randomStack(seed, { layers: 12 });
      specs.forEach((spec, i) => {
        for (const e of Object.values(spec)) {
          if (typeof e === 'string') continue;
          kinds.add(e.type === 'dir' && e.opaque ? 'opaque' : e.type);
        }
        if (i > 0) for (const k of Object.keys(spec)) if (spec[k] !== undefined && typeof spec[k] !== 'string' && spec[k]!.type === 'link') kinds.add('upper-link');
      });
    }
    expect([...kinds].sort()).toEqual(['dir', 'fifo', 'file', 'link', 'opaque', 'symlink', 'upper-link', 'whiteout']);
  });
});
