// A union mount made by root serves every user, as overlayfs and fuse-overlayfs do (a
// container's rootfs has processes of many uids), with the kernel checking permissions.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { native } from '../../src/native/binding.js';
import { aclXattr } from '../helpers/acl.js';
import { cleanupsAfterEach, mountWith, runAs, tmpdir } from '../helpers/mount.js';

describe('other users on a union mount made by root', () => {
  const cleanups = cleanupsAfterEach();

  /** lower, upper, work and mnt dirs in a new dir (removed after the test), readable by all. */
  function dirs(name: string): [string, string, string, string] {
    const base = tmpdir(name);
    cleanups.push(() => fs.rmSync(base, { recursive: true, force: true }));
    fs.chmodSync(base, 0o755);
    const all = ['lower', 'upper', 'work', 'mnt'].map((d) => path.join(base, d)) as [string, string, string, string];
    for (const d of all) fs.mkdirSync(d);
    return all;
  }

  it('read what their permissions allow and are refused the rest, without -o allow_other', () => {
    const [lower, upper, work, mnt] = dirs('other-users');
    fs.writeFileSync(path.join(lower, 'public'), 'for all\n', { mode: 0o644 });
    fs.writeFileSync(path.join(lower, 'private'), 'root only\n', { mode: 0o600 });
    fs.mkdirSync(path.join(lower, 'tmp'), { mode: 0o1777 });
    fs.chmodSync(path.join(lower, 'tmp'), 0o1777);
    const m = mountWith(['mount', '--lower', lower, '--upper', upper, '--work', work], mnt);
    cleanups.push(() => m.cleanup());
    expect(fs.readFileSync('/proc/mounts', 'utf8').split('\n').find((l) => l.split(' ')[1] === mnt)).toContain('allow_other');
    expect(runAs(1000, 1000, `cat '${mnt}/public'`)).toBe('for all\n');
    const denied = spawnSync('setpriv', ['--reuid=1000', '--regid=1000', '--clear-groups', 'cat', `${mnt}/private`], { encoding: 'utf8' });
    expect(denied.status).not.toBe(0);
    expect(denied.stderr).toContain('Permission denied');
    runAs(1000, 1000, `echo mine > '${mnt}/tmp/by-1000'`);
    expect(fs.statSync(path.join(upper, 'tmp', 'by-1000')).uid).toBe(1000);
  });

  it('a default ACL above the work dir does not reach directories copied up (overlayfs strips its work dir\'s ACLs)', async () => {
    // The second dir holds this test's own upper, work and mnt.
    const [lower, layers] = dirs('work-default-acl');
    fs.mkdirSync(path.join(lower, 'd'), { mode: 0o755 });
    fs.writeFileSync(path.join(lower, 'd', 'f'), 'x\n');
    // setfacl -d -m u::rwx,g::-,o::- on the dir the upper and work dirs are then made in.
    native.lsetxattr(layers, 'system.posix_acl_default', aclXattr([['u', 7], ['g', 0], ['o', 0]]), 0);
    const [upper, work, mnt] = ['upper', 'work', 'mnt'].map((d) => path.join(layers, d)) as [string, string, string];
    for (const d of [upper, work, mnt]) fs.mkdirSync(d);
    const m = mountWith(['mount', '--lower', lower, '--upper', upper, '--work', work], mnt);
    cleanups.push(() => m.cleanup());
    // Copies d up, then makes a file and a directory in it under umask 022.
    spawnSync('sh', ['-c', `umask 022 && echo y >> '${mnt}/d/f' && touch '${mnt}/d/new' && mkdir '${mnt}/d/sub'`]);
    expect(native.lgetxattrOrErrno(path.join(upper, 'd'), 'system.posix_acl_default')).toBe(61 /* ENODATA */);
    expect(['new', 'sub'].map((n) => (fs.statSync(path.join(mnt, 'd', n)).mode & 0o777).toString(8))).toEqual(['644', '755']);
  });

  it('POSIX ACLs are enforced unless -o noacl (fuse-overlayfs\'s option: the mode bits alone)', async () => {
    const [lower, upper, work, mnt] = dirs('other-users-acl');
    fs.writeFileSync(path.join(lower, 'denied'), 'not for 1000\n', { mode: 0o644 });
    // setfacl -m u:1000:--- (the mask shows as the group bits: r).
    native.lsetxattr(path.join(lower, 'denied'), 'system.posix_acl_access', aclXattr([['u', 6], ['user', 0, 1000], ['g', 4], ['mask', 4], ['o', 4]]), 0);
    const catAs1000 = (): number | null => spawnSync('setpriv', ['--reuid=1000', '--regid=1000', '--clear-groups', 'cat', `${mnt}/denied`]).status;
    for (const [extra, expectRead] of [[[], false], [['-o', 'noacl'], true]] as const) {
      const m = mountWith(['mount', '--lower', lower, '--upper', upper, '--work', work, ...extra], mnt);
      try {
        expect(catAs1000() === 0, `read with ${extra.join(' ') || 'no options'}`).toBe(expectRead);
      } finally {
        await m.cleanup();
      }
    }
  });
});
