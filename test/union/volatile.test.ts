// -o volatile (overlayfs's option; fuse-overlayfs's fsync=0): nothing written through the
// mount is fsynced, the work dir carries overlayfs's marker while the mount runs, a clean
// unmount writes the upper fs out and removes the marker, and an upper dir whose volatile
// daemon died is refused by stratafs and by the kernel's overlayfs alike.
//
// What reaches the disk is watched with the kernel's own tracepoint ext4:ext4_sync_file_enter
// (in a trace instance of our own), on an ext4 made for the test: it names the inode every
// fsync or fdatasync was for, whoever issued it.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { alive, cleanupsAfterEach, type Mounted, mountWith, STRATA, tmpdir, waitFor } from '../helpers/mount.js';
const TRACING = '/sys/kernel/tracing';

/**
 * Inode numbers on device `dev` (major,minor) that an fsync reached while `during` ran.
 * A machine that has not mounted tracefs gets it mounted for the while, and unmounted again.
 */
function syncedInodes(dev: string, during: () => void): Set<number> {
  const mounted = !fs.existsSync(path.join(TRACING, 'instances'));
  if (mounted) execFileSync('mount', ['-t', 'tracefs', 'nodev', TRACING]);
  const inst = path.join(TRACING, 'instances', `strata-test-${process.pid}-${Date.now()}`);
  try {
    fs.mkdirSync(inst);
  } catch (e) {
    if (mounted) execFileSync('umount', [TRACING]);
    throw e;
  }
  try {
    const ev = path.join(inst, 'events/ext4/ext4_sync_file_enter');
    fs.writeFileSync(path.join(ev, 'enable'), '1');
    during();
    fs.writeFileSync(path.join(ev, 'enable'), '0');
    const out = new Set<number>();
    for (const m of fs.readFileSync(path.join(inst, 'trace'), 'utf8').matchAll(/ext4_sync_file_enter: dev (\d+,\d+) ino (\d+)/g)) {
      if (m[1] === dev) out.add(Number(m[2]));
    }
    return out;
  } finally {
    fs.rmdirSync(inst);
    if (mounted) execFileSync('umount', [TRACING]);
  }
}

describe('volatile union mounts', () => {
  const cleanups = cleanupsAfterEach();

  /** A lower dir on the host, and upper/work dirs on an ext4 of the test's own. */
  function setup(name: string) {
    const base = tmpdir(name);
    cleanups.push(() => fs.rmSync(base, { recursive: true, force: true }));
    const lower = path.join(base, 'lower');
    const disk = path.join(base, 'disk');
    const mnt = path.join(base, 'mnt');
    for (const d of [lower, disk, mnt]) fs.mkdirSync(d);
    fs.writeFileSync(path.join(lower, 'a'), 'lower a\n');
    fs.writeFileSync(path.join(lower, 'b'), 'lower b\n');
    const img = path.join(base, 'disk.img');
    fs.writeFileSync(img, '');
    fs.truncateSync(img, 64 << 20);
    execFileSync('mkfs.ext4', ['-q', '-F', img]);
    execFileSync('mount', ['-o', 'loop', img, disk]);
    cleanups.push(() => void spawnSync('umount', ['-l', disk]));
    const st = fs.statSync(disk);
    const dev = `${(st.dev >>> 8) & 0xfff},${(st.dev & 0xff) | ((st.dev >>> 12) & 0xfff00)}`;
    let n = 0;
    /** Fresh upper and work dirs on the test's ext4. */
    const dirs = () => {
      n++;
      const upper = path.join(disk, `upper${n}`);
      const work = path.join(disk, `work${n}`);
      fs.mkdirSync(upper);
      fs.mkdirSync(work);
      return { upper, work };
    };
    const mount = (upper: string, work: string, extra: string[] = []): Mounted => {
      const m = mountWith(['mount', ...extra, '--lower', lower, '--upper', upper, '--work', work], mnt);
      cleanups.push(() => m.cleanup());
      return m;
    };
    return { base, lower, mnt, dev, dirs, mount };
  }

  /** A copy-up, a new file fsynced twice, a dir fsynced: returns the upper inodes and what was synced. */
  function writeAndSync(s: ReturnType<typeof setup>, upper: string): { inos: number[]; synced: Set<number> } {
    const synced = syncedInodes(s.dev, () => {
      fs.appendFileSync(path.join(s.mnt, 'a'), 'appended\n');
      const fd = fs.openSync(path.join(s.mnt, 'new'), 'w');
      fs.writeSync(fd, 'new\n');
      fs.fsyncSync(fd);
      fs.fdatasyncSync(fd);
      fs.closeSync(fd);
      const dfd = fs.openSync(s.mnt, 'r');
      fs.fsyncSync(dfd);
      fs.closeSync(dfd);
    });
    return { inos: ['a', 'new'].map((n) => fs.statSync(path.join(upper, n)).ino), synced };
  }

  it('-o volatile: copy-ups and fsync(2) reach no fsync of the upper fs (a default mount fsyncs both); the marker stands while mounted; a clean unmount syncs and removes it', async () => {
    const s = setup('volatile');
    // The default first: the same steps do fsync the copy and the new file.
    const d1 = s.dirs();
    const m1 = s.mount(d1.upper, d1.work);
    const safe = writeAndSync(s, d1.upper);
    for (const ino of safe.inos) expect(safe.synced, `default mount: fsync of upper inode ${ino}`).toContain(ino);
    expect(fs.existsSync(path.join(d1.work, 'work/incompat/volatile'))).toBe(false);
    await m1.cleanup();

    const d2 = s.dirs();
    const m2 = s.mount(d2.upper, d2.work, ['-o', 'volatile']);
    expect(fs.statSync(path.join(d2.work, 'work/incompat/volatile')).isDirectory()).toBe(true);
    const fast = writeAndSync(s, d2.upper);
    for (const ino of fast.inos) expect(fast.synced, `volatile mount: fsync of upper inode ${ino}`).not.toContain(ino);
    expect(fs.readFileSync(path.join(s.mnt, 'a'), 'utf8')).toBe('lower a\nappended\n');
    expect(fs.readFileSync(path.join(s.mnt, 'new'), 'utf8')).toBe('new\n');
    execFileSync(STRATA, ['umount', s.mnt]);
    await waitFor(() => !alive(m2.pid), 5000, 'daemon exit');
    expect(fs.existsSync(path.join(d2.work, 'work/incompat'))).toBe(false);
    expect(fs.readFileSync(path.join(d2.upper, 'a'), 'utf8')).toBe('lower a\nappended\n');
    // Cleanly unmounted, the upper dir mounts again (fuse-overlayfs's spelling this time).
    s.mount(d2.upper, d2.work, ['-o', 'fsync=0']);
    expect(fs.readFileSync(path.join(s.mnt, 'new'), 'utf8')).toBe('new\n');
  });

  it("a volatile mount whose daemon died: stratafs and the kernel's overlayfs both refuse its upper dir until the marker is removed", async () => {
    const s = setup('volatile-crash');
    const { upper, work } = s.dirs();
    const m = s.mount(upper, work, ['-o', 'volatile']);
    fs.appendFileSync(path.join(s.mnt, 'b'), 'more\n');
    process.kill(m.pid, 'SIGKILL');
    await waitFor(() => !alive(m.pid), 5000, 'daemon death');
    spawnSync('umount', ['-l', s.mnt]);
    const marker = path.join(work, 'work/incompat/volatile');
    expect(fs.existsSync(marker)).toBe(true);

    const again = spawnSync(STRATA, ['mount', '--lower', s.lower, '--upper', upper, '--work', work, s.mnt], { encoding: 'utf8' });
    expect(again.status).not.toBe(0);
    expect(again.stderr).toContain('mounted volatile');
    expect(again.stderr).toContain(marker);
    const kernel = spawnSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${s.lower},upperdir=${upper},workdir=${work}`, s.mnt], { encoding: 'utf8' });
    if (kernel.status === 0) spawnSync('umount', [s.mnt]);
    expect(kernel.status, 'kernel overlayfs mounts an upper dir it should refuse').not.toBe(0);

    // The user's call: the machine did not crash, so the data is there; remove the marker.
    fs.rmSync(marker, { recursive: true });
    s.mount(upper, work);
    expect(fs.readFileSync(path.join(s.mnt, 'b'), 'utf8')).toBe('lower b\nmore\n');
  });
});
