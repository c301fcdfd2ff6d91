// Mounting without CAP_SYS_ADMIN: the daemon runs as an ordinary user (uid 1000) and mounts
// through fusermount3's fd-passing protocol, unmounts through `fusermount3 -u`, and serves
// file data itself because passthrough needs the capability it lacks.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { native, type NativeError } from '../../src/native/binding.js';
import { isMounted, ROOT, runAs, STRATA, tmpdir, waitFor } from '../helpers/mount.js';

const UID = 1000;
const GID = 1000;
const MAIN = path.join(ROOT, 'dist/cli/main.js');

function onPath(name: string): string | undefined {
  return (process.env.PATH ?? '').split(':').map((d) => path.join(d, name)).find((p) => fs.existsSync(p));
}

const SETPRIV = onPath('setpriv');
const FUSERMOUNT = onPath('fusermount3');
const canRun = process.getuid?.() === 0 && fs.existsSync('/dev/fuse') && SETPRIV !== undefined && FUSERMOUNT !== undefined;
const userAllowOther = (() => {
  try {
    return fs.readFileSync('/etc/fuse.conf', 'utf8').split('\n').some((l) => l.trim() === 'user_allow_other');
  } catch {
    return false;
  }
})();

/** Runs a command as uid 1000 with no supplementary groups (and so no capabilities). */
function asUser(cmd: string[], env: Record<string, string> = {}, cwd?: string): SpawnSyncReturns<string> {
  return spawnSync(SETPRIV!, [`--reuid=${UID}`, `--regid=${GID}`, '--clear-groups', ...cmd], {
    encoding: 'utf8',
    env: { ...process.env, STRATAFS_LOG: 'info', ...env },
    cwd,
    timeout: 30_000,
  });
}

/** Alive and not a zombie: a detached daemon may wait a while for a reaper. */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** The daemon's JSON log, one object per line. */
function logLines(file: string): Array<{ msg: string; passthrough?: boolean }> {
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { msg: string });
}

interface UserMount {
  src: string;
  mnt: string;
  log: string;
  pid: number;
}

/** The octal file status flags of one of our fds (O_CLOEXEC is 02000000, O_NONBLOCK 04000). */
function fdFlags(fd: number): number {
  const m = /^flags:\s+([0-7]+)$/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  return parseInt(m![1]!, 8);
}
const O_CLOEXEC = 0o2000000;
const O_NONBLOCK = 0o4000;
const PYTHON = onPath('python3');

describe('fd passing (native socketpair / recvFd)', () => {
  it('gives two close-on-exec ends, and EOF without an fd is EPROTO', () => {
    const [a, b] = native.socketpair();
    try {
      expect(fdFlags(a) & O_CLOEXEC).toBe(O_CLOEXEC);
      expect(fdFlags(b) & O_CLOEXEC).toBe(O_CLOEXEC);
      fs.closeSync(b);
      let err: NativeError | undefined;
      try {
        native.recvFd(a);
      } catch (e) {
        err = e as NativeError;
      }
      expect(err?.code).toBe('EPROTO');
      expect(err?.errno).toBe(-71);
      expect(err?.syscall).toBe('recvmsg');
      expect(err?.message).toMatch(/without sending a file descriptor/);
    } finally {
      fs.closeSync(a);
    }
  });

  // The child gets its end through spawn's stdio although both ends are close-on-exec.
  it.skipIf(!PYTHON)('receives an fd a child sends with SCM_RIGHTS, close-on-exec and optionally non-blocking', () => {
    const [ours, theirs] = native.socketpair();
    const send = "import os, socket; s = socket.socket(fileno=3); socket.send_fds(s, [b'x'], [os.open('/proc/self/exe', os.O_RDONLY)])";
    let fd = -1;
    try {
      const r = spawnSync(PYTHON!, ['-c', send], { stdio: ['ignore', 'pipe', 'pipe', theirs], encoding: 'utf8' });
      fs.closeSync(theirs);
      expect(r.stderr).toBe('');
      fd = native.recvFd(ours, true);
      expect(fdFlags(fd) & (O_CLOEXEC | O_NONBLOCK)).toBe(O_CLOEXEC | O_NONBLOCK);
      expect(fs.fstatSync(fd).isFile()).toBe(true);
    } finally {
      if (fd >= 0) fs.closeSync(fd);
      fs.closeSync(ours);
    }
  });
});

describe.skipIf(!canRun)('unprivileged mount through fusermount3', () => {
  let base = '';
  let devMode: number | undefined;
  const pids = new Set<number>();
  const mnts = new Set<string>();

  /** SRC and MNT owned by the user, under a 0755 parent it owns too. */
  function dirs(name: string): { src: string; mnt: string; log: string } {
    const dir = path.join(base, name);
    const src = path.join(dir, 'src');
    const mnt = path.join(dir, 'mnt');
    for (const d of [dir, src, mnt]) {
      fs.mkdirSync(d, { mode: 0o755 });
      fs.chownSync(d, UID, GID);
    }
    mnts.add(mnt);
    return { src, mnt, log: path.join(dir, 'log') };
  }

  function mountAsUser(name: string): UserMount {
    const d = dirs(name);
    fs.writeFileSync(path.join(d.src, 'hello.txt'), 'hello\n');
    fs.chownSync(path.join(d.src, 'hello.txt'), UID, GID);
    const r = asUser([STRATA, 'loopback', '--log-file', d.log, d.src, d.mnt], {}, base);
    expect(r.stderr).toMatch(/daemon pid \d+/);
    expect(r.status).toBe(0);
    const pid = Number(/daemon pid (\d+)/.exec(r.stderr)![1]);
    pids.add(pid);
    return { ...d, pid };
  }

  function mountLine(mnt: string): string | undefined {
    return fs.readFileSync('/proc/mounts', 'utf8').split('\n').find((l) => l.split(' ')[1] === mnt);
  }

  beforeAll(() => {
    base = tmpdir('unpriv');
    fs.chmodSync(base, 0o755);
    fs.chownSync(base, UID, GID);
    // fusermount3 opens /dev/fuse with the caller's own fsuid (util/fusermount.c,
    // try_open_fuse_device), so the device mode is the gate. udev normally makes it 0666;
    // where it is root-only, open it up for these tests. Last in the hook, so that afterAll
    // (which restores it) always follows a change.
    const mode = fs.statSync('/dev/fuse').mode & 0o7777;
    if ((mode & 0o006) !== 0o006) {
      devMode = mode;
      fs.chmodSync('/dev/fuse', 0o666);
    }
  });

  afterEach(async () => {
    for (const mnt of mnts) if (isMounted(mnt)) spawnSync('umount', ['-l', mnt]);
    for (const pid of pids) {
      try {
        await waitFor(() => !running(pid), 5000, `daemon ${pid} to exit`);
      } catch {
        process.kill(pid, 'SIGKILL');
      }
    }
    mnts.clear();
    pids.clear();
  });

  afterAll(() => {
    try {
      expect(fs.readFileSync('/proc/mounts', 'utf8')).not.toContain(base);
    } finally {
      if (devMode !== undefined) fs.chmodSync('/dev/fuse', devMode);
      fs.rmSync(base, { recursive: true, force: true });
    }
  });

  it('mounts as the user, serves reads and writes, and files created belong to the user', () => {
    const m = mountAsUser('rw');
    const line = mountLine(m.mnt);
    expect(line?.split(' ').slice(0, 3)).toEqual([m.src, m.mnt, 'fuse.stratafs-loopback']);
    expect(line).toMatch(/\bnosuid\b/);
    expect(line).toMatch(/\bnodev\b/);
    expect(line).toMatch(/\buser_id=1000,group_id=1000\b/);
    expect(line).toMatch(/\bdefault_permissions\b/);

    expect(runAs(UID, GID, `cat '${m.mnt}/hello.txt'`)).toBe('hello\n');
    runAs(UID, GID, `printf 'written\\n' > '${m.mnt}/new.txt' && mkdir '${m.mnt}/dir' && echo x >> '${m.mnt}/hello.txt'`);
    expect(runAs(UID, GID, `cat '${m.mnt}/new.txt' '${m.mnt}/hello.txt'`)).toBe('written\nhello\nx\n');
    expect(runAs(UID, GID, `ls '${m.mnt}'`).split('\n').filter(Boolean).sort()).toEqual(['dir', 'hello.txt', 'new.txt']);

    for (const name of ['new.txt', 'dir']) {
      const st = fs.statSync(path.join(m.src, name));
      expect([st.uid, st.gid]).toEqual([UID, GID]);
    }
    expect(fs.readFileSync(path.join(m.src, 'new.txt'), 'utf8')).toBe('written\n');
  });

  it('logs that passthrough is off and why, and unmounts with `strata umount` as the user', async () => {
    const m = mountAsUser('log');
    expect(runAs(UID, GID, `cat '${m.mnt}/hello.txt'`)).toBe('hello\n');
    const log = logLines(m.log);
    expect(log.map((l) => l.msg)).toContain('no CAP_SYS_ADMIN: mounting through fusermount3');
    expect(log.find((l) => l.msg === 'FUSE INIT')?.passthrough).toBe(false);
    // A kernel without passthrough gives its own reason; one with it (6.9+), the capability.
    const reasons = log.filter((l) => /passthrough/.test(l.msg) && l.msg !== 'FUSE INIT').map((l) => l.msg);
    const kernelLacksIt = reasons.some((r) => r.startsWith('kernel offers no FUSE passthrough'));
    if (!kernelLacksIt) expect(reasons).toContain('FUSE passthrough needs CAP_SYS_ADMIN; file data goes through the daemon');

    const r = asUser([STRATA, 'umount', m.mnt], {}, base);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(isMounted(m.mnt)).toBe(false);
    await waitFor(() => !running(m.pid), 5000, 'the daemon to exit');
    expect(fs.readFileSync(m.log, 'utf8')).toContain('unmounted; daemon exits');
  });

  it('a daemon stopped by SIGTERM unmounts itself through fusermount3', async () => {
    const m = mountAsUser('sigterm');
    process.kill(m.pid, 'SIGTERM');
    await waitFor(() => !running(m.pid), 5000, 'the daemon to exit');
    expect(isMounted(m.mnt)).toBe(false);
    expect(fs.readFileSync(m.log, 'utf8')).not.toContain('unmount failed');
  });

  it('a killed daemon\'s mount is cleared through fusermount3 by the next mount', async () => {
    const first = mountAsUser('stale');
    process.kill(first.pid, 'SIGKILL');
    await waitFor(() => !running(first.pid), 5000, 'the daemon to die');
    expect(isMounted(first.mnt)).toBe(true);
    // A dead FUSE connection answers ENOTCONN, or ECONNABORTED for requests caught by the abort.
    expect(asUser(['stat', first.mnt]).stderr).toMatch(/Transport endpoint is not connected|Software caused connection abort/);

    // The next mount clears the dead one itself (through fusermount3 -u -z) and says so.
    const again = asUser([STRATA, 'loopback', '--log-file', `${first.log}.2`, first.src, first.mnt], {}, base);
    expect(again.status, again.stderr).toBe(0);
    pids.add(Number(/daemon pid (\d+)/.exec(again.stderr)![1]));
    expect(fs.readFileSync(`${first.log}.2`, 'utf8')).toContain('cleared a stale FUSE mount');
    const entries = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.split(' ')[4] === first.mnt);
    expect(entries).toHaveLength(1);
    expect(runAs(UID, GID, `cat '${first.mnt}/hello.txt'`)).toBe('hello\n');
  });

  it.skipIf(userAllowOther)('refuses allow_other without user_allow_other in /etc/fuse.conf, saying so', () => {
    const d = dirs('allow-other');
    const r = asUser([STRATA, 'loopback', '-o', 'allow_other', '--log-file', d.log, d.src, d.mnt], {}, base);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`mount ${d.mnt}:`);
    expect(r.stderr).toMatch(/option allow_other only allowed if 'user_allow_other' is set in \/etc\/fuse\.conf/);
    expect(r.stderr).toMatch(/add it, or mount without -o allow_other/);
    expect(isMounted(d.mnt)).toBe(false);
  });

  it('without fusermount3 on PATH, says which package provides it', () => {
    const d = dirs('no-fusermount');
    // node by absolute path: bin/strata would need PATH to find node, dirname and readlink.
    const r = asUser([process.execPath, MAIN, 'loopback', '--log-file', d.log, d.src, d.mnt], { PATH: path.join(base, 'empty-bin') }, base);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`mount ${d.mnt}: without CAP_SYS_ADMIN this needs fusermount3, which is not on PATH`);
    expect(r.stderr).toMatch(/Debian package fuse3/);
    expect(isMounted(d.mnt)).toBe(false);
  });
});
