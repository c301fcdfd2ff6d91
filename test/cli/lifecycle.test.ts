// Mount lifecycle through the real CLI: background mounts return only once the mount
// answers; umount, SIGTERM and SIGINT unmount and end the daemon; a mount left by a killed
// daemon is detected and cleared by the next mount; bad mount points fail clearly.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { STRATA, alive, isMounted, mountWith, tmpdir, waitFor, type Mounted } from '../helpers/mount.js';

describe('mount lifecycle', () => {
  let base = '';
  let src = '';
  let mnt = '';
  const mounts: Mounted[] = [];

  beforeEach(() => {
    base = tmpdir('life');
    src = path.join(base, 'src');
    mnt = path.join(base, 'mnt');
    fs.mkdirSync(src);
    fs.mkdirSync(mnt);
    fs.writeFileSync(path.join(src, 'f'), 'content');
  });

  afterEach(async () => {
    for (const m of mounts.splice(0)) await m.cleanup();
    if (isMounted(mnt)) spawnSync('umount', ['-l', mnt]);
    fs.rmSync(base, { recursive: true, force: true });
  });

  it('a background mount answers as soon as the command returns', () => {
    const m = mountWith(['loopback', src], mnt);
    mounts.push(m);
    expect(fs.readFileSync(path.join(mnt, 'f'), 'utf8')).toBe('content');
    const line = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === mnt)!;
    expect(line).toContain(' - fuse.stratafs-loopback ');
    expect(alive(m.pid)).toBe(true);
  });

  it('strata umount unmounts and the daemon exits', async () => {
    const m = mountWith(['loopback', src], mnt);
    mounts.push(m);
    const r = spawnSync(STRATA, ['umount', mnt], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(isMounted(mnt)).toBe(false);
    await waitFor(() => !alive(m.pid), 5000, 'daemon exit');
  });

  it('a busy mount is refused with a hint, and --lazy detaches it', async () => {
    const m = mountWith(['loopback', src], mnt);
    mounts.push(m);
    const holder = spawn('sleep', ['30'], { cwd: mnt, stdio: 'ignore' });
    try {
      await waitFor(() => fs.existsSync(`/proc/${holder.pid}/cwd`), 2000, 'holder');
      const busy = spawnSync(STRATA, ['umount', mnt], { encoding: 'utf8' });
      expect(busy.status).toBe(1);
      expect(busy.stderr).toMatch(/busy.*--lazy/);
      expect(spawnSync(STRATA, ['umount', '--lazy', mnt]).status).toBe(0);
      expect(isMounted(mnt)).toBe(false);
    } finally {
      holder.kill('SIGKILL');
    }
    await waitFor(() => !alive(m.pid), 5000, 'daemon exit');
  });

  it.each(['SIGTERM', 'SIGINT'] as const)('%s to a foreground daemon unmounts and exits 0', async (sig) => {
    const child = spawn(STRATA, ['loopback', '-f', src, mnt], { stdio: 'ignore' });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await waitFor(() => isMounted(mnt) && fs.existsSync(path.join(mnt, 'f')), 10000, 'mount');
      child.kill(sig);
      expect(await exited).toBe(0);
      expect(isMounted(mnt)).toBe(false);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('a mount left by a killed daemon reports ENOTCONN (or ECONNABORTED) and is cleared by the next mount', async () => {
    const first = mountWith(['loopback', src], mnt);
    mounts.push(first);
    process.kill(first.pid, 'SIGKILL');
    await waitFor(() => !alive(first.pid), 5000, 'daemon death');
    let code = '';
    try {
      fs.statSync(mnt);
    } catch (e) {
      code = (e as NodeJS.ErrnoException).code!;
    }
    // A dead FUSE connection answers ENOTCONN, or ECONNABORTED for requests caught by the abort.
    expect(['ENOTCONN', 'ECONNABORTED']).toContain(code);
    const second = mountWith(['loopback', src], mnt, { STRATAFS_LOG: 'info' });
    mounts.push(second);
    expect(fs.readFileSync(path.join(mnt, 'f'), 'utf8')).toBe('content');
    expect(fs.readFileSync(second.log, 'utf8')).toContain('cleared a stale FUSE mount');
    const entries = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.split(' ')[4] === mnt);
    expect(entries).toHaveLength(1);
  });

  it('an upper or work dir in use by a mount is refused to a second one, and free again once its daemon is killed', async () => {
    const [upper, work, work2, mnt2] = ['upper', 'work', 'work2', 'mnt2'].map((d) => path.join(base, d));
    for (const d of [upper!, work!, work2!, mnt2!]) fs.mkdirSync(d);
    const union = (w: string): string[] => ['mount', '--lower', src, '--upper', upper!, '--work', w];
    const first = mountWith(union(work!), mnt);
    mounts.push(first);
    for (const w of [work!, work2!]) {
      const r = spawnSync(STRATA, [...union(w), mnt2!], { encoding: 'utf8' });
      expect(r.status).not.toBe(0);
      // The upper dir is the first one taken, whichever work dir comes with it.
      expect(r.stderr).toContain(`${upper}: in use by another stratafs mount (EBUSY)`);
      expect(isMounted(mnt2!)).toBe(false);
    }
    // The first mount lost nothing to the attempts (its scratch dir was not cleared).
    fs.writeFileSync(path.join(mnt, 'new'), 'written');
    expect(fs.readFileSync(path.join(upper!, 'new'), 'utf8')).toBe('written');
    process.kill(first.pid, 'SIGKILL');
    await waitFor(() => !alive(first.pid), 5000, 'daemon death');
    spawnSync('umount', ['-l', mnt]);
    const second = mountWith(union(work!), mnt2!);
    mounts.push(second);
    expect(fs.readFileSync(path.join(mnt2!, 'new'), 'utf8')).toBe('written');
  });

  it('a background union mount with a work dir and no --log-file logs to WORK/stratafs-daemon.log (nobody reads a mount program\'s stderr)', async () => {
    const [upper, work] = ['upper', 'work'].map((d) => path.join(base, d)) as [string, string];
    for (const d of [upper, work]) fs.mkdirSync(d);
    const r = spawnSync(STRATA, ['mount', '-o', `lowerdir=${src},upperdir=${upper},workdir=${work}`, mnt], { encoding: 'utf8', env: { ...process.env, STRATAFS_LOG: 'info' } });
    expect(r.status, r.stderr).toBe(0);
    const pid = Number(/daemon pid (\d+)/.exec(r.stderr)![1]);
    const log = path.join(work, 'stratafs-daemon.log');
    mounts.push({
      mnt,
      pid,
      log,
      async cleanup() {
        if (isMounted(mnt)) spawnSync('umount', ['-l', mnt]);
        await waitFor(() => !alive(pid), 5000, 'daemon exit');
      },
    });
    await waitFor(() => fs.existsSync(log) && fs.readFileSync(log, 'utf8').includes('FUSE INIT'), 5000, 'the daemon log in the work dir');
    expect(fs.readFileSync(path.join(mnt, 'f'), 'utf8')).toBe('content');
  });

  it('a mount waits a moment for a daemon that still holds the dirs while it finishes (unmounted just before)', async () => {
    const [upper, work] = ['upper', 'work'].map((d) => path.join(base, d));
    for (const d of [upper!, work!]) fs.mkdirSync(d);
    // Another holder of the work dir's lock that lets go after 0.7 s, as an exiting daemon does.
    const holder = spawn('flock', ['-x', work!, 'sleep', '0.7'], { stdio: 'ignore' });
    const gone = new Promise((r) => holder.on('exit', r));
    await waitFor(() => spawnSync('flock', ['-n', '-x', work!, 'true']).status !== 0, 5000, 'the lock taken');
    const m = mountWith(['mount', '--lower', src, '--upper', upper!, '--work', work!], mnt);
    mounts.push(m);
    expect(fs.readFileSync(path.join(mnt, 'f'), 'utf8')).toBe('content');
    await gone;
  });

  it('bad mount points and sources fail with a message naming the path', () => {
    const [upper, work] = ['upper', 'work'].map((d) => path.join(base, d)) as [string, string];
    for (const d of [upper, work]) fs.mkdirSync(d);
    const union = (...args: string[]): string[] => ['mount', '--lower', src, '--upper', upper, '--work', work, ...args];
    const cases: Array<[string[], RegExp]> = [
      [['loopback', src, path.join(base, 'missing')], /missing/],
      [['loopback', src, path.join(src, 'f')], /not a directory/],
      [['loopback', path.join(base, 'nosrc'), mnt], /nosrc/],
      // A union mount's daemon checks all of these and the command reports its words.
      [['mount', '--lower', path.join(base, 'nolayer'), mnt], /ENOENT.*nolayer/],
      [['mount', '--lower', src, '--upper', path.join(src, 'f'), '--work', work, mnt], /src\/f: upper dir is not a directory/],
      [union('-o', 'journal_delay_ms=soon', mnt), /journal_delay_ms=soon/],
      [union(path.join(base, 'nomnt')), /nomnt: cannot use as mount point: ENOENT/],
      [['umount', mnt], /not mounted/],
      [['frobnicate'], /unknown command/],
    ];
    for (const [args, re] of cases) {
      const r = spawnSync(STRATA, args, { encoding: 'utf8' });
      expect(r.status, args.join(' ')).not.toBe(0);
      expect(r.stderr).toMatch(re);
    }
    expect(isMounted(mnt)).toBe(false);
  });

  it('a background union mount draws the indexing of new layers on the caller\'s terminal, and nothing when it is no terminal', () => {
    const [upper, work] = ['upper', 'work'].map((d) => path.join(base, d)) as [string, string];
    for (const d of [upper, work]) fs.mkdirSync(d);
    const args = ['mount', '--lower', src, '--upper', upper, '--work', work, mnt];
    // script(1) gives the command a terminal: the daemon indexes (the root and f) and the
    // command draws it.
    const tty = spawnSync('script', ['-qec', [STRATA, ...args].map((a) => `'${a}'`).join(' '), '/dev/null'], { encoding: 'utf8' });
    mounts.push({ mnt, pid: 0, log: '', cleanup: async () => void spawnSync('umount', [mnt]) });
    expect(tty.status, tty.stdout).toBe(0);
    expect(tty.stdout).toContain(`\r\x1b[2Kindexing ${fs.realpathSync(src)}: 2 entries`);
    expect(tty.stdout).toMatch(/\r\x1b\[2Kmounted 1 layer \+ upper at /);
    expect(fs.readFileSync(path.join(mnt, 'f'), 'utf8')).toBe('content');
    expect(spawnSync('umount', [mnt]).status).toBe(0);
    // Without a terminal (a mount program's caller, a pipe) the command prints its one line.
    fs.rmSync(work, { recursive: true });
    fs.mkdirSync(work);
    const piped = spawnSync(STRATA, args, { encoding: 'utf8' });
    expect(piped.status, piped.stderr).toBe(0);
    expect(piped.stderr).toMatch(/^mounted 1 layer \+ upper at .* \(daemon pid \d+\)\n$/);
  });

  it('CMD --help prints the lines of the help about that command', () => {
    for (const [args, want, notWant] of [
      [['bench', '--help'], /strata bench \[--drivers/, /strata load/],
      [['load', '-h'], /strata load \[-i FILE\|DIR\]/, /strata bench/],
      [['mount', '--help'], /strata mount CONTAINER PATH/, /strata rmi/],
      [['inspect', '--help'], /strata image inspect/, /strata tag/],
    ] as Array<[string[], RegExp, RegExp]>) {
      const r = spawnSync(STRATA, args, { encoding: 'utf8' });
      expect(r.status, args.join(' ')).toBe(0);
      expect(r.stdout, args.join(' ')).toMatch(want);
      expect(r.stdout, args.join(' ')).not.toMatch(notWant);
    }
  });

  it('--version answers (container tools call it)', () => {
    const r = spawnSync(STRATA, ['--version'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^strata version \d+\.\d+\.\d+/);
  });
});
