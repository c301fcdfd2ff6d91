// Directory redirects written by the kernel's overlayfs, read and moved by stratafs: a
// rename within one directory leaves a bare-name redirect (relative to the parent), which
// must not follow the directory to another parent.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { native } from '../../src/native/binding.js';
import { cleanupsAfterEach, mountWith, tmpdir } from '../helpers/mount.js';
import { mountKernelOverlay } from './overlay.js';

describe('directory redirects across the two implementations', () => {
  const cleanups = cleanupsAfterEach();

  it("a kernel-renamed directory moved by stratafs to another parent keeps its lower contents", async () => {
    const base = tmpdir('redirects');
    cleanups.push(() => fs.rmSync(base, { recursive: true, force: true }));
    const [lower, upper, work, mnt] = ['lower', 'upper', 'work', 'mnt'].map((d) => path.join(base, d));
    fs.mkdirSync(path.join(lower!, 'a/d'), { recursive: true });
    fs.mkdirSync(path.join(lower!, 'b'));
    fs.writeFileSync(path.join(lower!, 'a/d/x'), 'x below\n');
    for (const d of [upper!, work!, mnt!]) fs.mkdirSync(d);

    const k = mountKernelOverlay([lower!], upper!, work!, mnt!);
    fs.renameSync(path.join(mnt!, 'a/d'), path.join(mnt!, 'a/e'));
    await k.cleanup();
    // The kernel's own record of that rename: the old name alone.
    expect(native.lgetxattr(path.join(upper!, 'a/e'), 'trusted.overlay.redirect').toString('latin1')).toBe('d');

    const m = mountWith(['mount', '--lower', lower!, '--upper', upper!, '--work', work!], mnt!);
    cleanups.push(() => m.cleanup());
    expect(fs.readFileSync(path.join(mnt!, 'a/e/x'), 'utf8')).toBe('x below\n');
    fs.renameSync(path.join(mnt!, 'a/e'), path.join(mnt!, 'b/e'));
    expect(fs.readdirSync(path.join(mnt!, 'b/e'))).toEqual(['x']);
    expect(fs.readFileSync(path.join(mnt!, 'b/e/x'), 'utf8')).toBe('x below\n');
    await m.cleanup();

    const k2 = mountKernelOverlay([lower!], upper!, work!, mnt!);
    cleanups.push(() => k2.cleanup());
    expect(fs.readFileSync(path.join(mnt!, 'b/e/x'), 'utf8')).toBe('x below\n');
    expect(fs.readdirSync(path.join(mnt!, 'a'))).toEqual([]);
  });
});
