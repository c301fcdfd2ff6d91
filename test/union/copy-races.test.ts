// What must wait for a copy-up of data under way: it goes into place at the path it was
// made for, with the metadata it read when it started. A rename or unlink of the file
// meanwhile was undone by it (the old name came back, a write was lost to a remount), a
// rename onto it was overwritten by it, and a chmod of a metadata-only copy was undone by
// the mode read before. (Found by a helper's stress runs.) The daemon
// holds every data copy (STRATAFS_COPY_HOLD_MS) so that the requests meet it under way.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cleanupsAfterEach, mountWith, STRATA, tmpdir } from '../helpers/mount.js';
import { mountKernelOverlay } from './overlay.js';

describe('a copy-up of data under way', () => {
  const cleanups = cleanupsAfterEach();

  /** A mount over a lower layer holding `files` (each written `lower NAME`), every data copy held. */
  function setup(name: string, files = ['moved', 'gone', 'mode', 'over', 'src'], links: Array<[string, string]> = []) {
    const base = tmpdir(name);
    cleanups.push(() => fs.rmSync(base, { recursive: true, force: true }));
    const [lower, upper, work, mnt] = ['lower', 'upper', 'work', 'mnt'].map((d) => path.join(base, d)) as [string, string, string, string];
    for (const d of [lower, upper, work, mnt]) fs.mkdirSync(d);
    for (const f of files) {
      fs.mkdirSync(path.dirname(path.join(lower, f)), { recursive: true });
      fs.writeFileSync(path.join(lower, f), `lower ${f}\n`);
    }
    for (const [from, to] of links) fs.linkSync(path.join(lower, from), path.join(lower, to));
    const m = mountWith(['mount', '--lower', lower, '--upper', upper, '--work', work], mnt, { STRATAFS_COPY_HOLD_MS: '1500' });
    cleanups.push(() => m.cleanup());
    return { base, lower, upper, work, mnt };
  }

  /**
   * Appends a line to `file` from a shell in the background and, once the copy-up its
   * open started is under way (its copy waits in the scratch dir), runs `during` (a shell
   * command); then waits for the append. Returns the append's exit status.
   */
  function appendingWhile(work: string, file: string, during: string): number {
    const scratch = path.join(work, 'stratafs');
    const script = [
      `echo appended >> '${file}' & writer=$!`,
      `while [ -z "$(ls -A '${scratch}')" ]; do :; done`,
      during,
      'wait $writer',
    ].join('\n');
    const r = spawnSync('bash', ['-ec', script], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    return r.status ?? -1;
  }

  /** Unmounts stratafs and mounts the kernel's overlayfs over its upper dir; returns the mount point. */
  function kernelOver(s: { base: string; lower: string; upper: string; mnt: string }): string {
    expect(spawnSync(STRATA, ['umount', s.mnt]).status).toBe(0);
    const [kwork, kmnt] = ['kwork', 'kmnt'].map((d) => path.join(s.base, d)) as [string, string];
    for (const d of [kwork, kmnt]) fs.mkdirSync(d);
    const k = mountKernelOverlay([s.lower], s.upper, kwork, kmnt);
    cleanups.push(k.cleanup);
    return kmnt;
  }

  it('a rename waits for it: the file moves with its data, and no old name comes back (also for the kernel over the upper dir)', () => {
    const s = setup('copy-race-rename');
    // Renamed once already: a metadata-only copy, whose data the append copies up.
    fs.renameSync(path.join(s.mnt, 'moved'), path.join(s.mnt, 'first'));
    expect(appendingWhile(s.work, path.join(s.mnt, 'first'), `mv '${s.mnt}/first' '${s.mnt}/renamed'`)).toBe(0);
    expect(fs.readdirSync(s.mnt).sort()).toEqual(['gone', 'mode', 'over', 'renamed', 'src']);
    expect(fs.readFileSync(path.join(s.mnt, 'renamed'), 'utf8')).toBe('lower moved\nappended\n');
    const k = kernelOver(s);
    expect(fs.readdirSync(k).sort()).toEqual(['gone', 'mode', 'over', 'renamed', 'src']);
    expect(fs.readFileSync(path.join(k, 'renamed'), 'utf8')).toBe('lower moved\nappended\n');
  });

  it('an unlink waits for it: the file stays deleted', () => {
    const s = setup('copy-race-unlink');
    expect(appendingWhile(s.work, path.join(s.mnt, 'gone'), `rm '${s.mnt}/gone'`)).toBe(0);
    expect(fs.existsSync(path.join(s.mnt, 'gone'))).toBe(false);
    expect(fs.readdirSync(s.mnt).sort()).toEqual(['mode', 'moved', 'over', 'src']);
    // What is left in the upper dir is the whiteout.
    expect(fs.lstatSync(path.join(s.upper, 'gone')).isCharacterDevice()).toBe(true);
  });

  it('a rename onto it waits for it: the file moved there stays', () => {
    const s = setup('copy-race-onto');
    expect(appendingWhile(s.work, path.join(s.mnt, 'over'), `mv '${s.mnt}/src' '${s.mnt}/over'`)).toBe(0);
    expect(fs.readdirSync(s.mnt).sort()).toEqual(['gone', 'mode', 'moved', 'over']);
    expect(fs.readFileSync(path.join(s.mnt, 'over'), 'utf8')).toBe('lower src\n');
    expect(fs.readFileSync(path.join(kernelOver(s), 'over'), 'utf8')).toBe('lower src\n');
  });

  it('a rename of a directory above it waits for it: the copy lands under the new name, not in a directory made at the old one', () => {
    const s = setup('copy-race-dir', ['d/f', 'e/g']);
    expect(appendingWhile(s.work, path.join(s.mnt, 'd/f'), `mv '${s.mnt}/d' '${s.mnt}/moved' && mkdir '${s.mnt}/d'`)).toBe(0);
    const shows = (root: string): void => {
      expect(fs.readdirSync(root).sort(), root).toEqual(['d', 'e', 'moved']);
      expect(fs.readdirSync(path.join(root, 'd')), root).toEqual([]);
      expect(fs.readFileSync(path.join(root, 'moved/f'), 'utf8'), root).toBe('lower d/f\nappended\n');
    };
    shows(s.mnt);
    shows(kernelOver(s));
  });

  it('an exchange of its directory with another waits for it (its directory the destination): the copy lands where the directory went', () => {
    const s = setup('copy-race-exchange', ['d/f', 'e/g']);
    // rename(e, d, RENAME_EXCHANGE), as mv --exchange does on newer coreutils.
    const exchange = 'import ctypes, sys; libc = ctypes.CDLL(None, use_errno=True); sys.exit(ctypes.get_errno() if libc.renameat2(-100, sys.argv[1].encode(), -100, sys.argv[2].encode(), 2) else 0)';
    expect(appendingWhile(s.work, path.join(s.mnt, 'd/f'), `python3 -c '${exchange}' '${s.mnt}/e' '${s.mnt}/d'`)).toBe(0);
    const shows = (root: string): void => {
      expect(fs.readdirSync(path.join(root, 'd')), root).toEqual(['g']);
      expect(fs.readdirSync(path.join(root, 'e')), root).toEqual(['f']);
      expect(fs.readFileSync(path.join(root, 'e/f'), 'utf8'), root).toBe('lower d/f\nappended\n');
      expect(fs.readFileSync(path.join(root, 'd/g'), 'utf8'), root).toBe('lower e/g\n');
    };
    shows(s.mnt);
    shows(kernelOver(s));
  });

  it('a rename of the directory of a hard-link sibling waits for it: the sibling is linked under the new name', () => {
    const s = setup('copy-race-sibling', ['d/h1', 'e/x'], [['d/h1', 'e/h2']]);
    expect(appendingWhile(s.work, path.join(s.mnt, 'd/h1'), `mv '${s.mnt}/e' '${s.mnt}/e2' && mkdir '${s.mnt}/e'`)).toBe(0);
    expect(fs.readdirSync(path.join(s.mnt, 'e'))).toEqual([]);
    expect(fs.readdirSync(path.join(s.mnt, 'e2')).sort()).toEqual(['h2', 'x']);
    expect(fs.readFileSync(path.join(s.mnt, 'e2/h2'), 'utf8')).toBe('lower d/h1\nappended\n');
    expect(fs.statSync(path.join(s.mnt, 'e2/h2')).ino).toBe(fs.statSync(path.join(s.mnt, 'd/h1')).ino);
    expect(fs.readdirSync(path.join(s.upper, 'e'))).toEqual([]);
    expect(fs.statSync(path.join(s.upper, 'e2/h2')).ino).toBe(fs.statSync(path.join(s.upper, 'd/h1')).ino);
  });

  it('a chmod of a metadata-only copy whose data is being copied waits for it: the new mode stays', () => {
    const s = setup('copy-race-chmod');
    const file = path.join(s.mnt, 'mode');
    fs.chmodSync(file, 0o640); // a metadata-only copy
    expect(appendingWhile(s.work, file, `chmod 600 '${file}'`)).toBe(0);
    expect(fs.statSync(file).mode & 0o7777).toBe(0o600);
    expect(fs.statSync(path.join(s.upper, 'mode')).mode & 0o7777).toBe(0o600);
    expect(fs.readFileSync(file, 'utf8')).toBe('lower mode\nappended\n');
  });
});
