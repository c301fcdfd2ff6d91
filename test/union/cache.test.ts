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
});
