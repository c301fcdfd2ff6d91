// Overlay upper dirs stacked as lower layers (podman's layers made under metacopy=on, or
// an old container's upper dir reused as a layer): a lower file that is a metadata-only
// copy must show the data of the file below it, as the kernel's overlayfs does with
// metacopy=on. The layer in the middle is made by the kernel itself; both drivers then
// mount the same lowers with their own upper dirs, run the same script, and must show the
// same tree; the kernel must also show that tree over stratafs's upper dir.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { native } from '../../src/native/binding.js';
import { cleanupsAfterEach, tmpdir } from '../helpers/mount.js';
import { diffViews, mergedView, nowNs, nowed, type MergedView } from './harness.js';
import { mountKernelOverlay, strataDriver, type UnionMount } from './overlay.js';

const XATTR_METACOPY = 'trusted.overlay.metacopy';

function hasXattr(p: string, name: string): boolean {
  return native.llistxattr(p).includes(name);
}

/** The layer below: plain files with data. */
function makeBottom(dir: string): void {
  fs.mkdirSync(path.join(dir, 'd'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'e'));
  fs.mkdirSync(path.join(dir, 'far'));
  fs.writeFileSync(path.join(dir, 'f'), 'data of f\n');
  fs.writeFileSync(path.join(dir, 'd/g'), 'data of g\n');
  fs.writeFileSync(path.join(dir, 'e/x'), 'data of x\n');
  fs.writeFileSync(path.join(dir, 'e/y'), 'data of y\n');
  fs.writeFileSync(path.join(dir, 'far/k'), 'data of k\n');
  // A big sparse file: its metacopy is sparse too, the case a blocks-vs-size check sees.
  const fd = fs.openSync(path.join(dir, 'big'), 'w');
  fs.writeSync(fd, 'tail of big\n', 1 << 20);
  fs.closeSync(fd);
}

/**
 * The layer in the middle: a kernel overlayfs upper dir over the bottom one, with the
 * metadata-only copies a chmod, a chown and renames leave (the renamed ones with a bare-name
 * redirect, one under a renamed directory, one with an absolute redirect).
 */
function makeMiddle(base: string, bottom: string): string {
  const [upper, work, mnt] = ['mid', 'mid-work', 'mid-mnt'].map((d) => path.join(base, d));
  for (const d of [upper!, work!, mnt!]) fs.mkdirSync(d);
  const k = mountKernelOverlay([bottom], upper!, work!, mnt!);
  try {
    fs.chmodSync(path.join(mnt!, 'f'), 0o600);
    fs.chownSync(path.join(mnt!, 'big'), 12, 34);
    fs.renameSync(path.join(mnt!, 'd/g'), path.join(mnt!, 'd/h'));
    fs.renameSync(path.join(mnt!, 'e'), path.join(mnt!, 'e2'));
    fs.chmodSync(path.join(mnt!, 'e2/x'), 0o640);
    fs.chmodSync(path.join(mnt!, 'e2/y'), 0o604); // a metacopy under a renamed directory
    fs.renameSync(path.join(mnt!, 'far/k'), path.join(mnt!, 'k-moved'));
  } finally {
    void k.cleanup();
  }
  return upper!;
}

describe('lower layers holding metadata-only copies (an overlay upper dir used as a layer)', () => {
  const cleanups = cleanupsAfterEach();

  /** A temp dir with the bottom layer and the kernel-made middle layer over it. */
  const twoLayers = (prefix: string): { base: string; bottom: string; mid: string } => {
    const base = tmpdir(prefix);
    cleanups.push(() => fs.rmSync(base, { recursive: true, force: true }));
    const bottom = path.join(base, 'bottom');
    makeBottom(bottom);
    return { base, bottom, mid: makeMiddle(base, bottom) };
  };

  it('show, copy up and move the data below them, as the kernel overlayfs does', async () => {
    const { base, bottom, mid } = twoLayers('lower-metacopy');
    // The middle layer is what this test is about: data-less files marked as metacopies.
    for (const p of ['f', 'big', 'd/h', 'e2/x', 'e2/y', 'k-moved']) expect(hasXattr(path.join(mid, p), XATTR_METACOPY), p).toBe(true);
    expect(fs.readFileSync(path.join(mid, 'f'), 'utf8')).not.toBe('data of f\n');

    const lowers = [mid, bottom];
    const script = (mnt: string): string[] => {
      const seen = ['f', 'big', 'd/h', 'e2/x', 'e2/y', 'k-moved'].map((p) => {
        const b = fs.readFileSync(path.join(mnt, p));
        return `${p}: ${b.subarray(-12).toString('latin1')}`;
      });
      fs.appendFileSync(path.join(mnt, 'f'), 'more\n'); // data copy-up from two layers down
      fs.chmodSync(path.join(mnt, 'big'), 0o700); // metacopy over a metacopy
      fs.renameSync(path.join(mnt, 'd/h'), path.join(mnt, 'h3')); // a redirect to a redirect
      fs.truncateSync(path.join(mnt, 'e2/x'), 4);
      fs.renameSync(path.join(mnt, 'k-moved'), path.join(mnt, 'e2/k'));
      fs.renameSync(path.join(mnt, 'e2/y'), path.join(mnt, 'y-moved')); // an absolute redirect through a renamed lower dir
      fs.appendFileSync(path.join(mnt, 'e2/k'), 'and more\n');
      return seen;
    };

    const side = (name: string): { upper: string; work: string; mnt: string } => {
      const s = { upper: path.join(base, `${name}-upper`), work: path.join(base, `${name}-work`), mnt: path.join(base, `${name}-mnt`) };
      for (const d of Object.values(s)) fs.mkdirSync(d);
      return s;
    };
    const run = async (s: { upper: string; work: string; mnt: string }, mount: () => UnionMount): Promise<{ seen: string[]; before: MergedView; after: MergedView }> => {
      const m = mount();
      cleanups.push(() => m.cleanup());
      try {
        const before = mergedView(s.mnt);
        const seen = script(s.mnt);
        return { seen, before, after: mergedView(s.mnt) };
      } finally {
        await m.cleanup();
      }
    };

    const t0 = nowNs();
    const k = side('kernel');
    const want = await run(k, () => mountKernelOverlay(lowers, k.upper, k.work, k.mnt));
    const st = side('strata');
    const got = await run(st, () => strataDriver.mount(lowers, st.upper, st.work, st.mnt));

    expect(want.seen).toContain('f: data of f\n');
    expect(got.seen).toEqual(want.seen);
    expect(diffViews(nowed(got.before, t0), nowed(want.before, t0))).toEqual([]);
    expect(diffViews(nowed(got.after, t0), nowed(want.after, t0))).toEqual([]);

    // After a remount (every lookup fresh): a metacopy moved out from under a directory
    // renamed in its own layer finds its data through that directory's redirect (it failed
    // with EIO until session 13: its data was searched at the path the upper redirect names,
    // mapped unchanged into the layers below the metacopy).
    const remounted = strataDriver.mount(lowers, st.upper, st.work, st.mnt);
    cleanups.push(() => remounted.cleanup());
    const strataAgain = mergedView(st.mnt);
    await remounted.cleanup();
    expect(diffViews(nowed(strataAgain, t0), nowed(want.after, t0))).toEqual([]);

    // stratafs's upper dir, mounted by the kernel over the same lowers, shows the same tree.
    const again = mountKernelOverlay(lowers, st.upper, st.work, st.mnt);
    cleanups.push(() => again.cleanup());
    const view = mergedView(st.mnt);
    await again.cleanup();
    expect(diffViews(nowed(view, t0), nowed(want.after, t0))).toEqual([]);
  });

  it('a metacopy with no data in the layers below fails with EIO, as in the kernel, not with its holes as content', async () => {
    const { base, mid } = twoLayers('lower-metacopy-nodata');
    // The middle layer alone: the data of its metacopies is gone; its other files are fine.
    fs.writeFileSync(path.join(mid, 'plain'), 'a file of its own\n');
    const seen = async (mount: (mnt: string) => UnionMount): Promise<string[]> => {
      const mnt = fs.mkdtempSync(path.join(base, 'mnt-'));
      const m = mount(mnt);
      cleanups.push(() => m.cleanup());
      try {
        return ['f', 'd/h', 'plain'].map((p) => {
          try {
            return `${p}: ${fs.readFileSync(path.join(mnt, p), 'utf8')}`;
          } catch (e) {
            return `${p}: ${(e as NodeJS.ErrnoException).code}`;
          }
        });
      } finally {
        await m.cleanup();
      }
    };
    const kernel = await seen((mnt) => mountKernelOverlay([mid], undefined, undefined, mnt));
    expect(kernel).toEqual(['f: EIO', 'd/h: EIO', 'plain: a file of its own\n']);
    expect(await seen((mnt) => strataDriver.mount([mid], undefined, undefined, mnt))).toEqual(kernel);
  });
});
