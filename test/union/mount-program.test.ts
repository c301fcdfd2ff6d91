// stratafs as a container engine's mount program: layers named through symlinks (podman's
// overlay/l/SHORTID -> ../ID/diff), and podman itself driving bin/strata-overlay as its
// overlay `mount_program` through create, mount, diff, commit and umount.

import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildStack } from '../helpers/layers.js';
import { isMounted, mountWith, ROOT, tmpdir, type Mounted } from '../helpers/mount.js';
import { STD } from './stacks.js';

const root = tmpdir('mount-program');
const mounts: Mounted[] = [];
afterAll(async () => {
  for (const m of mounts.splice(0).reverse()) await m.cleanup();
  fs.rmSync(root, { recursive: true, force: true });
});

describe('stratafs as a mount program', () => {
  it('layers, upper and work dirs named through symlinks mount like the real dirs', async () => {
    const base = path.join(root, 'links');
    const { lowers } = buildStack(path.join(base, 'lowers'), STD, 'overlay');
    fs.mkdirSync(path.join(base, 'l'));
    const links = lowers.map((l, i) => {
      const link = path.join(base, 'l', `L${i}`);
      fs.symlinkSync(path.relative(path.join(base, 'l'), l), link);
      return link;
    });
    for (const d of ['upper', 'work', 'mnt']) fs.mkdirSync(path.join(base, d));
    fs.symlinkSync('upper', path.join(base, 'u'));
    fs.symlinkSync('work', path.join(base, 'w'));
    const m = mountWith(['mount', '-o', `lowerdir=${links.join(':')},upperdir=${base}/u,workdir=${base}/w,`], path.join(base, 'mnt'));
    mounts.push(m);
    expect(fs.readdirSync(m.mnt).sort()).toEqual(['bin', 'data', 'deep', 'empty', 'emptyish', 'etc', 'hard', 'link-to-a', 'meta', 'opq', 'pipe', 'tree']);
    expect(fs.readFileSync(`${m.mnt}/data/a.txt`, 'utf8')).toBe('alpha from layer 1\n');
    fs.writeFileSync(`${m.mnt}/data/new`, 'new');
    expect(fs.readFileSync(`${base}/upper/data/new`, 'utf8')).toBe('new');
  });

  it('podman with mount_program = bin/strata-overlay: create, mount, diff, commit, umount', () => {
    const base = path.join(root, 'podman');
    const rootfs = path.join(base, 'rootfs');
    for (const d of ['etc', 'bin', 'var/lib']) fs.mkdirSync(path.join(rootfs, d), { recursive: true });
    fs.writeFileSync(path.join(rootfs, 'etc/hostname'), 'image\n');
    fs.writeFileSync(path.join(rootfs, 'etc/group'), 'root:x:0:\n');
    fs.writeFileSync(path.join(rootfs, 'bin/tool'), '#!/bin/sh\n', { mode: 0o755 });
    execFileSync('tar', ['-C', rootfs, '-cf', path.join(base, 'rootfs.tar'), '.']);
    // A private storage root, with stratafs as the overlay driver's mount program.
    const storage = ['--root', `${base}/storage`, '--runroot', `${base}/run`, '--storage-driver', 'overlay', '--storage-opt', `overlay.mount_program=${ROOT}/bin/strata-overlay`];
    const podman = (...args: string[]): string => {
      const r = spawnSync('podman', [...storage, ...args], { encoding: 'utf8', timeout: 60_000 });
      if (r.status !== 0) throw new Error(`podman ${args.join(' ')}: ${r.stderr || r.error?.message}`);
      return r.stdout.trim();
    };
    try {
      podman('import', path.join(base, 'rootfs.tar'), 'localhost/strata-test:base');
      const c1 = podman('create', '--network=none', 'localhost/strata-test:base', '/bin/tool');
      const mnt = podman('mount', c1);
      expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).toContain(` ${mnt} `);
      expect(fs.readFileSync('/proc/self/mounts', 'utf8')).toMatch(new RegExp(`stratafs:\\S+ ${mnt} fuse\\.stratafs `));
      expect(fs.readFileSync(`${mnt}/etc/hostname`, 'utf8')).toBe('image\n');
      fs.writeFileSync(`${mnt}/etc/hostname`, 'changed\n');
      fs.unlinkSync(`${mnt}/etc/group`);
      fs.mkdirSync(`${mnt}/newdir`);
      // podman computes this itself (from the mounts); the content change is checked
      // through the committed image below.
      expect(podman('diff', c1).split('\n')).toEqual(expect.arrayContaining(['C /etc', 'D /etc/group', 'A /newdir']));
      podman('umount', c1);
      expect(isMounted(mnt)).toBe(false);
      podman('commit', '-q', c1, 'localhost/strata-test:changed');
      const c2 = podman('create', '--network=none', 'localhost/strata-test:changed', '/bin/tool');
      const mnt2 = podman('mount', c2);
      expect(fs.readFileSync(`${mnt2}/etc/hostname`, 'utf8')).toBe('changed\n');
      expect(fs.existsSync(`${mnt2}/etc/group`)).toBe(false);
      expect(fs.statSync(`${mnt2}/newdir`).isDirectory()).toBe(true);
      expect(fs.statSync(`${mnt2}/bin/tool`).mode & 0o777).toBe(0o755);
      podman('umount', c2);
      expect(isMounted(mnt2)).toBe(false);
    } finally {
      spawnSync('podman', [...storage, 'umount', '-a', '-f']);
      spawnSync('podman', [...storage, 'rm', '-a', '-f']);
      for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
        const mp = line.split(' ')[4];
        if (mp?.startsWith(`${base}/`)) spawnSync('umount', ['-l', mp]);
      }
    }
  });
});
