// Cache lifetimes the daemon gives the kernel for upper objects: long by default (the upper
// dir changes only through the mount), shortened by --entry-timeout/--attr-timeout or
// fuse-overlayfs's -o timeout=S. What the kernel keeps is seen by changing the upper dir
// behind the mount's back, which users must not do, and which is exactly why it shows.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cleanupsAfterEach, mountWith, tmpdir } from '../helpers/mount.js';

describe('kernel cache lifetimes of upper objects', () => {
  const cleanups = cleanupsAfterEach();

  /** Mounts with extra args, makes an upper file through the mount, then chmods it in the upper dir directly. */
  async function modeAfterBehindTheBack(name: string, extra: string[], waitMs: number): Promise<number> {
    const base = tmpdir(name);
    cleanups.push(() => fs.rmSync(base, { recursive: true, force: true }));
    const [lower, upper, work, mnt] = ['lower', 'upper', 'work', 'mnt'].map((d) => path.join(base, d));
    for (const d of [lower, upper, work, mnt]) fs.mkdirSync(d!);
    const m = mountWith(['mount', '--lower', lower!, '--upper', upper!, '--work', work!, ...extra], mnt!);
    cleanups.push(() => m.cleanup());
    fs.writeFileSync(path.join(mnt!, 'f'), 'x', { mode: 0o644 });
    expect(fs.statSync(path.join(mnt!, 'f')).mode & 0o777).toBe(0o644);
    fs.chmodSync(path.join(upper!, 'f'), 0o600);
    await new Promise((r) => setTimeout(r, waitMs));
    return fs.statSync(path.join(mnt!, 'f')).mode & 0o777;
  }

  it('by default the kernel keeps an upper object past a second (no GETATTR on every path walk)', async () => {
    expect(await modeAfterBehindTheBack('cache-default', [], 1500)).toBe(0o644);
  });

  it('--attr-timeout 0 and -o timeout=0 make the kernel ask every time', async () => {
    expect(await modeAfterBehindTheBack('cache-attr0', ['--attr-timeout', '0'], 0)).toBe(0o600);
    expect(await modeAfterBehindTheBack('cache-o-timeout0', ['-o', 'timeout=0'], 0)).toBe(0o600);
  });

  it('-o timeout=0 holds for lower-only names too: one shadowed in the upper dir later shows', () => {
    const base = tmpdir('cache-lower0');
    cleanups.push(() => fs.rmSync(base, { recursive: true, force: true }));
    const [lower, upper, work, mnt] = ['lower', 'upper', 'work', 'mnt'].map((d) => path.join(base, d)) as [string, string, string, string];
    for (const d of [lower, upper, work, mnt]) fs.mkdirSync(d);
    fs.writeFileSync(path.join(lower, 'f'), 'lower\n', { mode: 0o644 });
    const m = mountWith(['mount', '--lower', lower, '--upper', upper, '--work', work, '-o', 'timeout=0'], mnt);
    cleanups.push(() => m.cleanup());
    expect(fs.statSync(path.join(mnt, 'f')).mode & 0o777).toBe(0o644);
    fs.writeFileSync(path.join(upper, 'f'), 'upper\n', { mode: 0o600 });
    expect(fs.statSync(path.join(mnt, 'f')).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(path.join(mnt, 'f'), 'utf8')).toBe('upper\n');
  });
});

describe('side effects of a copy-up reach the kernel', () => {
  const cleanups = cleanupsAfterEach();

  /** A mount over a lower layer holding d/e/f; the kernel has looked up every part of it first. */
  function mountedTree(name: string, env: Record<string, string> = {}): { mnt: string; upper: string } {
    const base = tmpdir(name);
    cleanups.push(() => fs.rmSync(base, { recursive: true, force: true }));
    const [lower, upper, work, mnt] = ['lower', 'upper', 'work', 'mnt'].map((d) => path.join(base, d)) as [string, string, string, string];
    for (const d of [lower, upper, work, mnt]) fs.mkdirSync(d);
    fs.mkdirSync(path.join(lower, 'd/e'), { recursive: true });
    fs.mkdirSync(path.join(lower, 'd/sub'));
    fs.writeFileSync(path.join(lower, 'd/e/f'), 'lower data\n');
    fs.writeFileSync(path.join(lower, 'd/e/g'), 'lower data\n');
    const m = mountWith(['mount', '--lower', lower, '--upper', upper, '--work', work], mnt, env);
    cleanups.push(() => m.cleanup());
    for (const p of ['', 'd', 'd/e', 'd/e/f', 'd/e/g']) fs.statSync(path.join(mnt, p));
    return { mnt, upper };
  }

  /** ctime and nlink as the mount shows them and as the upper dir has them. */
  const seen = (mnt: string, upper: string, p: string): [string, string] => {
    const a = fs.statSync(path.join(mnt, p), { bigint: true });
    const b = fs.statSync(path.join(upper, p), { bigint: true });
    return [`${a.ctimeNs} ${a.nlink}`, `${b.ctimeNs} ${b.nlink}`];
  };
  const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 200));

  it('directories copied up for a chmod below them show the upper dir attributes; a parent that only received a copy keeps what the kernel has', async () => {
    const { mnt, upper } = mountedTree('side-dirs');
    const rootBefore = seen(mnt, upper, '')[0];
    fs.chmodSync(path.join(mnt, 'd/e/f'), 0o600);
    await settle();
    for (const p of ['d', 'd/e']) {
      const [viaMount, onDisk] = seen(mnt, upper, p);
      // The upper dir's ctime; nlink 1, as overlayfs shows a merged directory's.
      expect(viaMount, `/${p}`).toBe(`${onDisk.split(' ')[0]} 1`);
    }
    // The root only received d: its ctime moved on disk, and the kernel was not made to ask
    // again (each later path walk would have cost a GETATTR). A change made in it does.
    const [rootNow, rootOnDisk] = seen(mnt, upper, '');
    expect(rootNow).toBe(rootBefore);
    expect(rootOnDisk.split(' ')[0]).not.toBe(rootBefore.split(' ')[0]);
    fs.writeFileSync(path.join(mnt, 'new'), '');
    expect(seen(mnt, upper, '')[0]).toBe(`${seen(mnt, upper, '')[1].split(' ')[0]} 1`);
  });

  it('a merged directory copied up for a chmod below it keeps what the kernel has (only its ctime moved); a change in it shows the new one', async () => {
    const base = tmpdir('side-merged');
    cleanups.push(() => fs.rmSync(base, { recursive: true, force: true }));
    const [top, bottom, upper, work, mnt] = ['top', 'bottom', 'upper', 'work', 'mnt'].map((d) => path.join(base, d)) as [string, string, string, string, string];
    for (const d of [top, bottom, upper, work, mnt]) fs.mkdirSync(d);
    // d and d/e exist in both layers: merged, nlink 1 before and after their copy-up.
    fs.mkdirSync(path.join(top, 'd/e'), { recursive: true });
    fs.mkdirSync(path.join(bottom, 'd/e/sub'), { recursive: true });
    fs.writeFileSync(path.join(top, 'd/e/g'), 'top\n');
    fs.writeFileSync(path.join(bottom, 'd/e/f'), 'bottom\n');
    const m = mountWith(['mount', '--lower', `${top}:${bottom}`, '--upper', upper, '--work', work], mnt);
    cleanups.push(() => m.cleanup());
    const viaMount = (p: string): fs.BigIntStats => fs.statSync(path.join(mnt, p), { bigint: true });
    const before = ['d', 'd/e'].map((p) => viaMount(p));
    fs.chmodSync(path.join(mnt, 'd/e/f'), 0o600);
    await settle();
    ['d', 'd/e'].forEach((p, i) => {
      const now = viaMount(p);
      const onDisk = fs.statSync(path.join(upper, p), { bigint: true });
      expect(now.ctimeNs, `/${p}`).toBe(before[i]!.ctimeNs);
      expect(onDisk.ctimeNs, `/${p}`).not.toBe(before[i]!.ctimeNs);
      // Everything else the kernel shows is the upper dir's.
      expect([now.nlink, now.mode, now.size, now.mtimeNs, now.ino], `/${p}`).toEqual([1n, onDisk.mode, onDisk.size, onDisk.mtimeNs, before[i]!.ino]);
    });
    fs.writeFileSync(path.join(mnt, 'd/e/new'), '');
    expect(viaMount('d/e').ctimeNs).toBe(fs.statSync(path.join(upper, 'd/e'), { bigint: true }).ctimeNs);
  });

  it('a copy-up of data that lands behind the request shows the ctime it ends with', async () => {
    // Held 300 ms before its fsync, the landing ends after the stat below has been cached.
    const { mnt, upper } = mountedTree('side-landing', { STRATAFS_LANDING_HOLD_MS: '300' });
    // An append copies the data (an O_TRUNC open would copy none, and nothing would land).
    fs.appendFileSync(path.join(mnt, 'd/e/g'), '');
    const before = fs.statSync(path.join(mnt, 'd/e/g'), { bigint: true }).ctimeNs;
    await new Promise((r) => setTimeout(r, 600));
    const [viaMount, onDisk] = seen(mnt, upper, 'd/e/g');
    expect(viaMount).toBe(onDisk);
    expect(viaMount.split(' ')[0]).not.toBe(String(before));
  });
});
