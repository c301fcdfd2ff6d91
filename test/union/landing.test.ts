// A data copy-up is answered before its fsync (src/union/landing.ts): the copy goes into
// place carrying overlayfs's metacopy mark, which goes once the data is durable. These
// tests hold the landing open (STRATAFS_LANDING_HOLD_MS) and look at the upper dir, the
// mount, a daemon killed in that state (stratafs and the kernel's overlayfs must then show
// the lower data), and what must wait for the landing: fsync, rename, unmount.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { native } from '../../src/native/binding.js';
import { pidAlive } from '../../src/util/process.js';
import { Cli, makeImage } from '../containers/helpers.js';
import { alive, cleanupsAfterEach, type Mounted, mountWith, STRATA, tmpdir, waitFor } from '../helpers/mount.js';
import { mountKernelOverlay } from './overlay.js';

const MARK = 'trusted.overlay.metacopy';

function marked(p: string): boolean {
  try {
    native.lgetxattr(p, MARK);
    return true;
  } catch {
    return false;
  }
}

describe('copy-ups land behind the request', () => {
  const cleanups = cleanupsAfterEach();

  function setup(name: string) {
    const base = tmpdir(name);
    cleanups.push(() => fs.rmSync(base, { recursive: true, force: true }));
    const [lower, upper, work, mnt] = ['lower', 'upper', 'work', 'mnt'].map((d) => path.join(base, d));
    for (const d of [lower, upper, work, mnt]) fs.mkdirSync(d!);
    for (const f of ['a', 'b', 'c', 'd']) fs.writeFileSync(path.join(lower!, f), `lower ${f}\n`);
    const mount = (holdMs?: number): Mounted => {
      const env: Record<string, string> = holdMs === undefined ? {} : { STRATAFS_LANDING_HOLD_MS: String(holdMs) };
      const m = mountWith(['mount', '--lower', lower!, '--upper', upper!, '--work', work!], mnt!, env);
      cleanups.push(() => m.cleanup());
      return m;
    };
    const kill = async (m: Mounted): Promise<void> => {
      process.kill(m.pid, 'SIGKILL');
      await waitFor(() => !alive(m.pid), 5000, 'daemon death');
    };
    return { base, lower: lower!, upper: upper!, work: work!, mnt: mnt!, mount, kill };
  }

  it('until its fsync a copy carries the mark but reads as the copy; a daemon killed then leaves the lower data, for stratafs and overlayfs', async () => {
    const s = setup('landing-kill');
    const m = s.mount(60_000);
    fs.appendFileSync(path.join(s.mnt, 'a'), 'written\n');
    // In place, with its data, and marked "data below" while the landing is held.
    expect(fs.readFileSync(path.join(s.upper, 'a'), 'utf8')).toBe('lower a\nwritten\n');
    expect(marked(path.join(s.upper, 'a'))).toBe(true);
    expect(fs.readFileSync(path.join(s.mnt, 'a'), 'utf8')).toBe('lower a\nwritten\n');
    // The kernel forgets the inode; the next lookup reads the mark from the disk and must
    // still know the data is in the copy.
    fs.writeFileSync('/proc/sys/vm/drop_caches', '2');
    expect(fs.readFileSync(path.join(s.mnt, 'a'), 'utf8')).toBe('lower a\nwritten\n');
    expect(fs.statSync(path.join(s.mnt, 'a')).size).toBe('lower a\nwritten\n'.length);

    await s.kill(m);
    // The copy never landed: after a remount the data below shows again, whole.
    expect(marked(path.join(s.upper, 'a'))).toBe(true);
    const mtime = fs.statSync(path.join(s.upper, 'a')).mtimeMs;
    const again = s.mount();
    expect(fs.readFileSync(path.join(s.mnt, 'a'), 'utf8')).toBe('lower a\n');
    // Its size is the data's again (the append made it 16 bytes, and the lower data is 8),
    // on disk too, so the kernel over this upper dir agrees; its times stay.
    expect(fs.statSync(path.join(s.mnt, 'a')).size).toBe('lower a\n'.length);
    expect(fs.statSync(path.join(s.upper, 'a')).size).toBe('lower a\n'.length);
    expect(fs.statSync(path.join(s.upper, 'a')).mtimeMs).toBe(mtime);
    await again.cleanup();
    const k = mountKernelOverlay([s.lower], s.upper, s.work, s.mnt);
    cleanups.push(() => k.cleanup());
    expect(fs.readFileSync(path.join(s.mnt, 'a'), 'utf8')).toBe('lower a\n');
    expect(fs.statSync(path.join(s.mnt, 'a')).size).toBe('lower a\n'.length);
  });

  it('an O_TRUNC open or a truncate to 0 copies no data: nothing lands, and a daemon killed then leaves what was written', async () => {
    const s = setup('landing-trunc');
    // Landings held a minute: a copy of data would stay marked all that time.
    const m = s.mount(60_000);
    fs.writeFileSync(path.join(s.mnt, 'b'), 'new b\n');
    // truncate(2) itself (Node's truncateSync opens the file and ftruncates it).
    execFileSync('python3', ['-c', 'import os, sys; os.truncate(sys.argv[1], 0)', path.join(s.mnt, 'c')]);
    for (const f of ['b', 'c']) expect(marked(path.join(s.upper, f)), f).toBe(false);
    expect(fs.readFileSync(path.join(s.upper, 'b'), 'utf8')).toBe('new b\n');
    expect(fs.statSync(path.join(s.upper, 'c')).size).toBe(0);
    // What an fsync acknowledged survives a kill, with nothing of the lower data.
    const fd = fs.openSync(path.join(s.mnt, 'b'), 'r+');
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    await s.kill(m);
    s.mount();
    expect(fs.readFileSync(path.join(s.mnt, 'b'), 'utf8')).toBe('new b\n');
    expect(fs.readFileSync(path.join(s.mnt, 'c'), 'utf8')).toBe('');
  });

  it('fsync(2) and rename(2) of a landing copy wait for it; unmount waits for every landing', async () => {
    const s = setup('landing-wait');
    const m = s.mount(1500);
    // fsync: what it acknowledges survives a kill right after it, also when the kernel
    // forgot the inode in between (the next lookup finds the landing by inode number).
    fs.appendFileSync(path.join(s.mnt, 'b'), 'copied\n');
    expect(marked(path.join(s.upper, 'b'))).toBe(true);
    fs.writeFileSync('/proc/sys/vm/drop_caches', '2');
    const fd = fs.openSync(path.join(s.mnt, 'b'), 'a');
    fs.writeSync(fd, 'synced\n');
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    expect(marked(path.join(s.upper, 'b'))).toBe(false);
    // rename: the copy moves once landed, so its new name needs no data below.
    fs.appendFileSync(path.join(s.mnt, 'c'), 'moved\n');
    expect(marked(path.join(s.upper, 'c'))).toBe(true);
    fs.writeFileSync('/proc/sys/vm/drop_caches', '2');
    fs.renameSync(path.join(s.mnt, 'c'), path.join(s.mnt, 'c2'));
    expect(marked(path.join(s.upper, 'c2'))).toBe(false);
    await s.kill(m);
    const again = s.mount(1500);
    expect(fs.readFileSync(path.join(s.mnt, 'b'), 'utf8')).toBe('lower b\ncopied\nsynced\n');
    expect(fs.readFileSync(path.join(s.mnt, 'c2'), 'utf8')).toBe('lower c\nmoved\n');
    expect(fs.existsSync(path.join(s.mnt, 'c'))).toBe(false);
    // unmount: the daemon lands what is under way before it exits, and `strata umount`
    // returns once it has.
    fs.appendFileSync(path.join(s.mnt, 'd'), 'unmounted\n');
    expect(marked(path.join(s.upper, 'd'))).toBe(true);
    execFileSync(STRATA, ['umount', s.mnt]);
    expect(marked(path.join(s.upper, 'd'))).toBe(false);
    expect(pidAlive(again.pid)).toBe(false);
    const k = mountKernelOverlay([s.lower], s.upper, s.work, s.mnt);
    cleanups.push(() => k.cleanup());
    expect(fs.readFileSync(path.join(s.mnt, 'd'), 'utf8')).toBe('lower d\nunmounted\n');
    expect(fs.readFileSync(path.join(s.mnt, 'c2'), 'utf8')).toBe('lower c\nmoved\n');
  });

  it('-o sync_copyup: the copy is durable before the request is answered, never marked', async () => {
    const s = setup('landing-sync');
    const m = mountWith(['mount', '-o', `lowerdir=${s.lower},upperdir=${s.upper},workdir=${s.work},sync_copyup`], s.mnt, { STRATAFS_LANDING_HOLD_MS: '60000' });
    cleanups.push(() => m.cleanup());
    fs.appendFileSync(path.join(s.mnt, 'a'), 'written\n');
    expect(marked(path.join(s.upper, 'a'))).toBe(false);
    await s.kill(m);
    s.mount();
    expect(fs.readFileSync(path.join(s.mnt, 'a'), 'utf8')).toBe('lower a\nwritten\n');
  });

  it('strata export and commit of a mounted container read a landing copy as the copy', async () => {
    const base = tmpdir('landing-container');
    cleanups.push(() => fs.rmSync(base, { recursive: true, force: true }));
    const cli = new Cli(path.join(base, 'store'));
    cleanups.push(() => cli.cleanup());
    await makeImage(cli.root, [{ 'etc/f': 'lower f\n' }], 'tiny:1');
    cli.ok(['create', '--name', 'c1', 'tiny:1']);
    process.env.STRATAFS_LANDING_HOLD_MS = '1500';
    try {
      cli.mount('c1', path.join(base, 'mnt'));
    } finally {
      delete process.env.STRATAFS_LANDING_HOLD_MS;
    }
    fs.appendFileSync(path.join(base, 'mnt/etc/f'), 'added\n');
    const tar = path.join(base, 'c1.tar');
    cli.ok(['export', '-o', tar, 'c1']);
    expect(execFileSync('tar', ['-xOf', tar, 'etc/f'], { encoding: 'utf8' })).toBe('lower f\nadded\n');
    fs.appendFileSync(path.join(base, 'mnt/etc/f'), 'more\n');
    cli.ok(['commit', 'c1', 'tiny:2']);
    cli.ok(['create', '--name', 'c2', 'tiny:2']);
    cli.ok(['export', '-o', tar, 'c2']);
    expect(execFileSync('tar', ['-xOf', tar, 'etc/f'], { encoding: 'utf8' })).toBe('lower f\nadded\nmore\n');
  });
});
