// The kernel may forget a directory while a file in it stays known by another name (a hard
// link in another directory): it drops a directory's dentry, and every dentry below it,
// after an interrupted rmdir or rename, a revalidation that failed during a concurrent
// rename, or under memory pressure. The file's name in that directory must go with it.
// The bridge used to keep that name pointing at the forgotten directory's inode, so every
// open, stat or xattr request for the file failed with ESTALE, under both of its names,
// until the kernel forgot the file too (in practice: until a remount). A helper's stress
// run met it as md5sum failing with ESTALE under renamed directories.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cleanupsAfterEach, errnoOf, type Mounted, mountWith, tmpdir, waitFor } from '../helpers/mount.js';

describe('a directory the kernel forgets while a file in it is known by another name', () => {
  const cleanups = cleanupsAfterEach();

  /** A union mount over one lower layer, which `layer` fills first. */
  function setup(name: string, layer?: (lower: string) => void): { upper: string; mnt: string; m: Mounted } {
    const base = tmpdir(name);
    cleanups.push(() => fs.rmSync(base, { recursive: true, force: true }));
    const [lower, upper, work, mnt] = ['lower', 'upper', 'work', 'mnt'].map((d) => path.join(base, d)) as [string, string, string, string];
    for (const d of [lower, upper, work, mnt]) fs.mkdirSync(d);
    layer?.(lower);
    const m = mountWith(['mount', '--lower', lower, '--upper', upper, '--work', work], mnt);
    cleanups.push(() => m.cleanup());
    return { upper, mnt, m };
  }

  /**
   * Makes the kernel forget directory `dir` (and the dentries below it) while it still
   * exists: an rmdir sent while the daemon is stopped and killed before the daemon reads
   * it fails with EINTR, on which the kernel invalidates the dentry (fuse_invalidate_entry);
   * once the rmdir lets go of it the directory's inode is evicted and a FORGET sent. The
   * daemon never sees the rmdir.
   */
  async function forgetDir(m: Mounted, dir: string): Promise<void> {
    process.kill(m.pid, 'SIGSTOP');
    try {
      const rmdir = spawn('rmdir', [dir], { stdio: 'ignore' });
      const exited = new Promise((resolve) => rmdir.once('exit', resolve));
      const wchan = (): string => {
        try {
          return fs.readFileSync(`/proc/${rmdir.pid}/wchan`, 'utf8');
        } catch {
          return '';
        }
      };
      // Waiting for the daemon's answer (request_wait_answer): the RMDIR is queued.
      await waitFor(() => /wait_answer|fuse/.test(wchan()), 5000, 'rmdir to wait for the stopped daemon');
      rmdir.kill('SIGKILL');
      await exited;
    } finally {
      process.kill(m.pid, 'SIGCONT');
    }
  }

  /** d/sub/x and e/y: one file, two names, under `root` (a layer, or the mount). */
  const linkedSet = (root: string): void => {
    fs.mkdirSync(`${root}/d/sub`, { recursive: true });
    fs.mkdirSync(`${root}/e`);
    fs.writeFileSync(`${root}/d/sub/x`, 'linked\n');
    fs.linkSync(`${root}/d/sub/x`, `${root}/e/y`);
  };
  const cases: Array<{ what: string; lower?: (lower: string) => void; mounted?: (mnt: string) => void }> = [
    { what: 'a lower hard-link set', lower: linkedSet },
    { what: 'a link made through the mount', mounted: linkedSet },
  ];

  for (const c of cases) {
    it(`${c.what}: both names keep working, and so does the directory`, async () => {
      const { upper, mnt, m } = setup('forgotten-dir', c.lower);
      c.mounted?.(mnt);
      // The file is known under d/sub first, then under e too: one inode, two names.
      expect(fs.readFileSync(`${mnt}/d/sub/x`, 'utf8')).toBe('linked\n');
      expect(fs.statSync(`${mnt}/e/y`).ino).toBe(fs.statSync(`${mnt}/d/sub/x`).ino);

      await forgetDir(m, `${mnt}/d`);

      // Through the other name, then through the forgotten directory looked up afresh, then
      // a write through one name read through the other (a copy-up of the lower set).
      const read = (p: string): string => {
        try {
          return fs.readFileSync(p, 'utf8');
        } catch (e) {
          return (e as NodeJS.ErrnoException).code ?? String(e);
        }
      };
      expect(read(`${mnt}/e/y`)).toBe('linked\n');
      expect(read(`${mnt}/d/sub/x`)).toBe('linked\n');
      expect(errnoOf(() => fs.appendFileSync(`${mnt}/e/y`, 'more\n'))).toBe('OK');
      expect(read(`${mnt}/d/sub/x`)).toBe('linked\nmore\n');
      expect(fs.statSync(`${mnt}/d/sub/x`).nlink).toBe(2);
      expect(fs.readdirSync(`${mnt}/d`)).toEqual(['sub']);
      // On disk too the names are one file (a lower set's copy-up linked both names), so a
      // remount shows the write through both.
      expect(fs.statSync(`${upper}/d/sub/x`).ino).toBe(fs.statSync(`${upper}/e/y`).ino);
    });
  }
});
