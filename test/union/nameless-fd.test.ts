// A lower file unlinked while open, then changed through the fd (fchmod, fchown, futimes):
// there is no name left to copy it up at. A hard-link set with another name still shown is
// copied up there (a differential case checks that against overlayfs); here, files with no
// such name: the copy is made without one, kept open by the daemon for the fd to reach, as
// for any file unlinked while open. overlayfs fails these (EEXIST from its index) and
// stratafs answered ESTALE until session 13 (a helper's campaign found it).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cleanupsAfterEach, type Mounted, mountWith, tmpdir } from '../helpers/mount.js';

describe('changes through an fd of a lower file that lost its last name', () => {
  const cleanups = cleanupsAfterEach();

  function setup(name: string, layer: (lower: string) => void): { upper: string; work: string; mnt: string; m: Mounted } {
    const base = tmpdir(name);
    cleanups.push(() => fs.rmSync(base, { recursive: true, force: true }));
    const [lower, upper, work, mnt] = ['lower', 'upper', 'work', 'mnt'].map((d) => path.join(base, d)) as [string, string, string, string];
    for (const d of [lower, upper, work, mnt]) fs.mkdirSync(d);
    layer(lower);
    const m = mountWith(['mount', '--lower', lower, '--upper', upper, '--work', work], mnt);
    cleanups.push(() => m.cleanup());
    return { upper, work, mnt, m };
  }

  /** Opens `p` read-only, removes `remove`, changes mode and times through the fd: what fstat and a read show then. */
  function changeAfterUnlink(p: string, remove: () => void): { mode: number; nlink: number; mtime: number; data: string } {
    const fd = fs.openSync(p, 'r');
    try {
      remove();
      fs.fchmodSync(fd, 0o600);
      fs.futimesSync(fd, 1_000_000, 1_234_567);
      const st = fs.fstatSync(fd);
      return { mode: st.mode & 0o7777, nlink: st.nlink, mtime: st.mtimeMs / 1000, data: fs.readFileSync(fd, 'utf8') };
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Every entry under `dir`, as relative paths with their type. */
  function tree(dir: string, rel = ''): string[] {
    return fs.readdirSync(path.join(dir, rel), { withFileTypes: true }).flatMap((e) => {
      const p = path.join(rel, e.name);
      const kind = e.isDirectory() ? 'dir' : e.isCharacterDevice() ? 'whiteout' : 'file';
      return [`${p} ${kind}`, ...(e.isDirectory() ? tree(dir, p) : [])];
    });
  }

  it('a lone lower file: the change reaches an unnamed copy, nothing is left named', () => {
    const { upper, work, mnt } = setup('nameless-lone', (l) => fs.writeFileSync(`${l}/f`, 'data\n', { mode: 0o644 }));
    const seen = changeAfterUnlink(`${mnt}/f`, () => fs.unlinkSync(`${mnt}/f`));
    expect(seen).toEqual({ mode: 0o600, nlink: 0, mtime: 1_234_567, data: 'data\n' });
    expect(fs.readdirSync(mnt)).toEqual([]);
    expect(tree(upper)).toEqual(['f whiteout']);
    // The copy was made in the work dir's scratch dir (as PID-N) and left no name there either.
    expect(fs.readdirSync(path.join(work, 'stratafs')).filter((n) => /^\d+-\d+$/.test(n))).toEqual([]);
  });

  it('a lower hard-link set whose other name is hidden: the same, and the hidden name stays hidden', () => {
    const { upper, mnt } = setup('nameless-linked', (l) => {
      fs.mkdirSync(`${l}/a`);
      fs.mkdirSync(`${l}/b`);
      fs.writeFileSync(`${l}/a/f`, 'linked\n', { mode: 0o644 });
      fs.linkSync(`${l}/a/f`, `${l}/b/g`);
    });
    fs.rmSync(`${mnt}/b`, { recursive: true });
    const seen = changeAfterUnlink(`${mnt}/a/f`, () => fs.unlinkSync(`${mnt}/a/f`));
    expect(seen).toEqual({ mode: 0o600, nlink: 0, mtime: 1_234_567, data: 'linked\n' });
    expect(fs.readdirSync(mnt)).toEqual(['a']);
    expect(fs.readdirSync(`${mnt}/a`)).toEqual([]);
    expect(tree(upper).sort()).toEqual(['a dir', 'a/f whiteout', 'b whiteout']);
  });
});
