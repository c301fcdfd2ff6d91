// Bad days for the union mount: a full upper filesystem during copy-up, and a daemon killed
// in the middle of a large copy-up or of a burst of writes. Nothing half-copied may ever be
// visible, lower layers are never touched, and writes acknowledged by fsync survive.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { diffTrees, snapshotTree } from '../../src/util/tree.js';
import { alive, cleanupsAfterEach, isMounted, type Mounted, mountWith, STRATA, tmpdir, waitFor } from '../helpers/mount.js';

const sha = (p: string): string => createHash('sha256').update(fs.readFileSync(p)).digest('hex');

function patterned(p: string, mib: number): void {
  const block = Buffer.alloc(1 << 20);
  const fd = fs.openSync(p, 'w');
  for (let i = 0; i < mib; i++) {
    block.fill(i & 0xff);
    block.writeUInt32LE(i, 0);
    fs.writeSync(fd, block);
  }
  fs.closeSync(fd);
}

describe('union mount under failure', () => {
  const cleanups = cleanupsAfterEach();

  function setup(name: string, upperFs?: { sizeMiB: number }) {
    const base = tmpdir(name);
    const lower = path.join(base, 'lower');
    const upperRoot = path.join(base, 'upperfs');
    const mnt = path.join(base, 'mnt');
    for (const d of [lower, upperRoot, mnt]) fs.mkdirSync(d);
    // Cleanups run in reverse: the directory goes last, after the tmpfs inside it.
    cleanups.push(() => fs.rmSync(base, { recursive: true, force: true }));
    if (upperFs) {
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${upperFs.sizeMiB}m`, 'tmpfs', upperRoot]);
      cleanups.push(() => void execFileSync('umount', ['-l', upperRoot]));
    }
    const upper = path.join(upperRoot, 'upper');
    const work = path.join(upperRoot, 'work');
    fs.mkdirSync(upper);
    fs.mkdirSync(work);
    const mount = (): Mounted => {
      const m = mountWith(['mount', '--lower', lower, '--upper', upper, '--work', work], mnt);
      cleanups.push(() => m.cleanup());
      return m;
    };
    return { base, lower, upper, work, mnt, mount };
  }

  it('ENOSPC during copy-up: the write fails with ENOSPC, the lower file is untouched, nothing half-copied remains', () => {
    const s = setup('enospc', { sizeMiB: 2 });
    patterned(path.join(s.lower, 'big'), 8);
    const before = sha(path.join(s.lower, 'big'));
    s.mount();
    let code = '';
    try {
      fs.appendFileSync(path.join(s.mnt, 'big'), 'more');
    } catch (e) {
      code = (e as NodeJS.ErrnoException).code!;
    }
    expect(code).toBe('ENOSPC');
    expect(sha(path.join(s.lower, 'big'))).toBe(before);
    expect(sha(path.join(s.mnt, 'big'))).toBe(before);
    expect(fs.existsSync(path.join(s.upper, 'big'))).toBe(false);
    expect(fs.readdirSync(path.join(s.work, 'stratafs'))).toEqual([]);
    // Small changes still fit and work.
    fs.writeFileSync(path.join(s.mnt, 'small'), 'ok');
    expect(fs.readFileSync(path.join(s.upper, 'small'), 'utf8')).toBe('ok');
  });

  it('a full upper filesystem that also holds the daemon\'s log: ENOSPC, the daemon keeps serving, and works again once space is freed', async () => {
    const s = setup('enospc-log', { sizeMiB: 8 });
    patterned(path.join(s.lower, 'big'), 2);
    const before = sha(path.join(s.lower, 'big'));
    // As a mount program's daemon logs by default: into the work dir, here on the full filesystem.
    const r = spawnSync(STRATA, ['mount', '--lower', s.lower, '--upper', s.upper, '--work', s.work, '--log-file', path.join(s.work, 'daemon.log'), s.mnt], {
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    const pid = Number(/daemon pid (\d+)/.exec(r.stderr)![1]);
    cleanups.push(async () => {
      if (isMounted(s.mnt)) spawnSync('umount', ['-l', s.mnt]);
      await waitFor(() => !alive(pid), 5000, 'daemon exit');
    });
    const errno = (f: () => void): string => {
      try {
        f();
        return 'OK';
      } catch (e) {
        return (e as NodeJS.ErrnoException).code ?? String(e);
      }
    };
    // Fill it through the mount, then copy up: the daemon's index and log writes fail too.
    const fill = fs.openSync(path.join(s.mnt, 'fill'), 'w');
    expect(errno(() => {
      for (;;) fs.writeSync(fill, Buffer.alloc(1 << 20));
    })).toBe('ENOSPC');
    fs.closeSync(fill);
    // The journal's record of `fill` is written within 100 ms, and fails.
    await new Promise((done) => setTimeout(done, 500));
    expect(errno(() => fs.appendFileSync(path.join(s.mnt, 'big'), 'more'))).toBe('ENOSPC');
    expect(alive(pid)).toBe(true);
    expect(sha(path.join(s.mnt, 'big'))).toBe(before);
    fs.unlinkSync(path.join(s.mnt, 'fill'));
    fs.appendFileSync(path.join(s.mnt, 'big'), 'more');
    expect(fs.statSync(path.join(s.mnt, 'big')).size).toBe((2 << 20) + 4);
    expect(sha(path.join(s.lower, 'big'))).toBe(before);
  });

  it('kill -9 during a large copy-up: after remount the file is the lower one or the whole copy, never a part', async () => {
    const s = setup('crash-copyup');
    patterned(path.join(s.lower, 'huge'), 400);
    const lowerSum = sha(path.join(s.lower, 'huge'));
    const m = s.mount();
    // The copy-up starts with the first write-open; kill the daemon while it runs.
    const writer = spawn('sh', ['-c', `echo x >> '${path.join(s.mnt, 'huge')}'`], { stdio: 'ignore' });
    const writerDone = new Promise((r) => writer.once('exit', r));
    await waitFor(() => fs.readdirSync(path.join(s.work, 'stratafs')).length > 0, 10_000, 'the copy-up to start');
    process.kill(m.pid, 'SIGKILL');
    await waitFor(() => !alive(m.pid), 5000, 'daemon death');
    await writerDone;
    // Nothing visible in the upper dir, and the next mount cleans the work dir.
    expect(fs.existsSync(path.join(s.upper, 'huge'))).toBe(false);
    s.mount();
    expect(fs.readdirSync(path.join(s.work, 'stratafs'))).toEqual([]);
    expect(sha(path.join(s.mnt, 'huge'))).toBe(lowerSum);
    expect(sha(path.join(s.lower, 'huge'))).toBe(lowerSum);
  });

  it('kill -9 during a burst of writes: every write acknowledged by fsync is there after remount', async () => {
    const s = setup('crash-burst');
    fs.mkdirSync(path.join(s.lower, 'dir'));
    for (let i = 0; i < 50; i++) fs.writeFileSync(path.join(s.lower, 'dir', `f${i}`), `lower ${i}\n`);
    const m = s.mount();
    const log = path.join(s.base, 'acked');
    // A child writes file after file (new ones and copy-ups), fsyncs each, then records it.
    const script = `
      const fs = require('fs');
      for (let i = 0; ; i++) {
        const p = ${JSON.stringify(path.join(s.mnt, 'dir'))} + '/f' + (i % 80);
        const fd = fs.openSync(p, 'a');
        fs.writeSync(fd, 'write ' + i + '\\n');
        fs.fsyncSync(fd);
        fs.closeSync(fd);
        fs.appendFileSync(${JSON.stringify(log)}, i + '\\n');
      }`;
    const child = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
    const childDone = new Promise((r) => child.once('exit', r));
    await waitFor(() => fs.existsSync(log) && fs.readFileSync(log, 'utf8').split('\n').length > 150, 20_000, 'writes to be acknowledged');
    process.kill(m.pid, 'SIGKILL');
    await waitFor(() => !alive(m.pid), 5000, 'daemon death');
    await childDone;
    s.mount();
    const acked = fs.readFileSync(log, 'utf8').trim().split('\n').map(Number);
    for (const i of acked) {
      const content = fs.readFileSync(path.join(s.mnt, 'dir', `f${i % 80}`), 'utf8');
      expect(content, `write ${i}`).toContain(`write ${i}\n`);
    }
    // A file copied up keeps its lower content before the appended writes.
    expect(fs.readFileSync(path.join(s.mnt, 'dir', 'f3'), 'utf8').startsWith('lower 3\n')).toBe(true);
    expect(fs.readdirSync(path.join(s.work, 'stratafs'))).toEqual([]);
  });

  it('a path past PATH_MAX in the upper dir: ENAMETOOLONG where the host path would be too long, and the mount keeps serving', () => {
    const s = setup('deep');
    s.mount();
    // A caller that goes down by chdir has no length limit of its own (overlayfs has none
    // either); the daemon names host objects by full path, as fuse-overlayfs does.
    const name = 'd'.repeat(200);
    const r = spawnSync('python3', ['-c', `
import os, sys
os.chdir(sys.argv[1]); depth = 0
try:
    while depth < 40:
        os.mkdir(sys.argv[2]); os.chdir(sys.argv[2]); depth += 1
    print(depth, 'none')
except OSError as e:
    print(depth, os.strerror(e.errno).replace(' ', '_'), e.errno)
with open('f', 'w') as f: f.write('deep')
print(open('f').read())
`, s.mnt, name], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    const [depth, err, errno, content] = r.stdout.trim().split(/\s+/);
    // The first directory whose upper path would pass 4,095 bytes is refused, cleanly.
    const hostLen = (d: number): number => s.upper.length + d * (name.length + 1);
    expect([err, errno]).toEqual(['File_name_too_long', '36']);
    expect(hostLen(Number(depth))).toBeLessThanOrEqual(4095);
    expect(hostLen(Number(depth) + 1)).toBeGreaterThan(4095);
    // Below it everything works: a file at the deepest level, read back; then rm -rf.
    expect(content).toBe('deep');
    const rm = spawnSync('rm', ['-rf', path.join(s.mnt, name)], { encoding: 'utf8' });
    expect(rm.status).toBe(0);
    expect(fs.readdirSync(s.mnt)).toEqual([]);
    expect(fs.readdirSync(s.upper)).toEqual([]);
  });

  it('a read-only mount (no upper) refuses writes with EROFS and shows the layers', () => {
    const base = tmpdir('ro');
    cleanups.push(() => fs.rmSync(base, { recursive: true, force: true }));
    const lower = path.join(base, 'lower');
    const mnt = path.join(base, 'mnt');
    fs.mkdirSync(path.join(lower, 'etc'), { recursive: true });
    fs.mkdirSync(mnt);
    fs.writeFileSync(path.join(lower, 'etc', 'hostname'), 'box\n');
    const m = mountWith(['mount', '--lower', lower], mnt);
    cleanups.push(() => m.cleanup());
    expect(fs.readFileSync(path.join(mnt, 'etc', 'hostname'), 'utf8')).toBe('box\n');
    const codes = [
      () => fs.writeFileSync(path.join(mnt, 'new'), 'x'),
      () => fs.appendFileSync(path.join(mnt, 'etc', 'hostname'), 'x'),
      () => fs.mkdirSync(path.join(mnt, 'd')),
      () => fs.unlinkSync(path.join(mnt, 'etc', 'hostname')),
      () => fs.chmodSync(path.join(mnt, 'etc'), 0o700),
    ].map((f) => {
      try {
        f();
        return 'OK';
      } catch (e) {
        return (e as NodeJS.ErrnoException).code;
      }
    });
    expect(codes).toEqual(['EROFS', 'EROFS', 'EROFS', 'EROFS', 'EROFS']);
    expect(diffTrees(snapshotTree(mnt), snapshotTree(lower))).toEqual([]);
    expect(isMounted(mnt)).toBe(true);
  });
});
