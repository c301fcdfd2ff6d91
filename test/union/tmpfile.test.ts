// O_TMPFILE on a real mount, beyond what the differential suite compares with the kernel:
// the daemon holds an fd of each unnamed file only while the kernel knows it, so files
// opened and dropped unnamed leave no fd behind in the daemon and nothing in the upper dir.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { O_TMPFILE } from '../../src/host/files.js';
import { native } from '../../src/native/binding.js';
import { cleanupsAfterEach, mountWith, tmpdir, waitFor } from '../helpers/mount.js';

describe('O_TMPFILE', () => {
  const cleanups = cleanupsAfterEach();

  it('unnamed files dropped without a name leave no fd in the daemon and nothing in the upper dir; a named one stays', async () => {
    const base = tmpdir('tmpfile-fds');
    cleanups.push(() => fs.rmSync(base, { recursive: true, force: true }));
    const [lower, upper, work, mnt] = ['lower', 'upper', 'work', 'mnt'].map((d) => path.join(base, d)) as [string, string, string, string];
    for (const d of [lower, upper, work, mnt]) fs.mkdirSync(d);
    fs.mkdirSync(path.join(lower, 'dir'));
    const m = mountWith(['mount', '--lower', lower, '--upper', upper, '--work', work], mnt);
    cleanups.push(() => m.cleanup());
    const daemonFds = (): number => fs.readdirSync(`/proc/${m.pid}/fd`).length;
    fs.statSync(path.join(mnt, 'dir'));
    const before = daemonFds();
    for (let i = 0; i < 20; i++) {
      const fd = fs.openSync(path.join(mnt, 'dir'), O_TMPFILE | fs.constants.O_RDWR, 0o600);
      fs.writeSync(fd, `unnamed ${i}\n`);
      fs.closeSync(fd);
    }
    const kept = fs.openSync(path.join(mnt, 'dir'), O_TMPFILE | fs.constants.O_WRONLY, 0o644);
    fs.writeSync(kept, 'kept\n');
    native.linkFollow(`/proc/self/fd/${kept}`, path.join(mnt, 'dir', 'kept'));
    fs.closeSync(kept);
    // The kernel forgets each dropped inode soon after its last close.
    await waitFor(() => daemonFds() <= before, 5000, 'the daemon to close the fds of dropped unnamed files');
    expect(fs.readdirSync(path.join(upper, 'dir'))).toEqual(['kept']);
    expect(fs.readFileSync(path.join(upper, 'dir', 'kept'), 'utf8')).toBe('kept\n');
    expect(fs.readdirSync(path.join(mnt, 'dir'))).toEqual(['kept']);
    expect(fs.statSync(path.join(mnt, 'dir', 'kept')).nlink).toBe(1);
  });
});
