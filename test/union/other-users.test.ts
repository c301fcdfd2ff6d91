// A union mount made by root serves every user, as overlayfs and fuse-overlayfs do (a
// container's rootfs has processes of many uids), with the kernel checking permissions.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
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
});
