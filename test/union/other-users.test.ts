// A union mount made by root serves every user, as overlayfs and fuse-overlayfs do (a
// container's rootfs has processes of many uids), with the kernel checking permissions.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { native } from '../../src/native/binding.js';
import { cleanupsAfterEach, mountWith, runAs, tmpdir } from '../helpers/mount.js';

describe('other users on a union mount made by root', () => {
  const cleanups = cleanupsAfterEach();

  it('read what their permissions allow and are refused the rest, without -o allow_other', () => {
    const base = tmpdir('other-users');
    cleanups.push(() => fs.rmSync(base, { recursive: true, force: true }));
    const [lower, upper, work, mnt] = ['lower', 'upper', 'work', 'mnt'].map((d) => path.join(base, d)) as [string, string, string, string];
    for (const d of [lower, upper, work, mnt]) fs.mkdirSync(d);
    fs.chmodSync(base, 0o755);
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
    const base = tmpdir('work-default-acl');
    cleanups.push(() => fs.rmSync(base, { recursive: true, force: true }));
    // setfacl -d -m u::rwx,g::-,o::- on the parent of the upper and work dirs.
    const acl = Buffer.alloc(4 + 8 * 3);
    acl.writeUInt32LE(2, 0);
    [[0x01, 7], [0x04, 0], [0x20, 0]].forEach(([tag, perm], i) => {
      acl.writeUInt16LE(tag!, 4 + 8 * i);
      acl.writeUInt16LE(perm!, 6 + 8 * i);
      acl.writeUInt32LE(0xffffffff, 8 + 8 * i);
    });
    const lower = path.join(base, 'lower');
    fs.mkdirSync(path.join(lower, 'd'), { recursive: true, mode: 0o755 });
    fs.writeFileSync(path.join(lower, 'd', 'f'), 'x\n');
    const layers = path.join(base, 'layers');
    fs.mkdirSync(layers);
    native.lsetxattr(layers, 'system.posix_acl_default', acl, 0);
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
    const base = tmpdir('other-users-acl');
    cleanups.push(() => fs.rmSync(base, { recursive: true, force: true }));
    const [lower, upper, work, mnt] = ['lower', 'upper', 'work', 'mnt'].map((d) => path.join(base, d)) as [string, string, string, string];
    for (const d of [lower, upper, work, mnt]) fs.mkdirSync(d);
    fs.chmodSync(base, 0o755);
    fs.writeFileSync(path.join(lower, 'denied'), 'not for 1000\n', { mode: 0o644 });
    // setfacl -m u:1000:--- (version 2; user_obj rw, user 1000 none, group_obj r, mask r, other r).
    const entries: Array<[number, number, number]> = [[0x01, 6, -1], [0x02, 0, 1000], [0x04, 4, -1], [0x10, 4, -1], [0x20, 4, -1]];
    const aclBytes = Buffer.alloc(4 + 8 * entries.length);
    aclBytes.writeUInt32LE(2, 0);
    entries.forEach(([tag, perm, id], i) => {
      aclBytes.writeUInt16LE(tag, 4 + 8 * i);
      aclBytes.writeUInt16LE(perm, 6 + 8 * i);
      aclBytes.writeInt32LE(id, 8 + 8 * i);
    });
    native.lsetxattr(path.join(lower, 'denied'), 'system.posix_acl_access', aclBytes, 0);
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
