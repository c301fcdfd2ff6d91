// Mounting and unmounting a FUSE filesystem, and recognising the mounts a killed daemon
// leaves behind ("Transport endpoint is not connected"). With CAP_SYS_ADMIN we call
// mount(2)/umount(2) ourselves; without it the setuid helper fusermount3 (Debian package
// fuse3) mounts for us and passes back the /dev/fuse fd, as libfuse does.

import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { native } from '../native/binding.js';
import { log } from '../util/log.js';
import { mountpointPath } from '../util/os-path.js';

export interface FuseMountOptions {
  fsname?: string;
  subtype?: string;
  allowOther?: boolean;
  readOnly?: boolean;
}

export class MountError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

const FUSERMOUNT = 'fusermount3';
/** fusermount3 reads the number of its end of our socketpair from here. */
const COMMFD_ENV = '_FUSE_COMMFD';
/** The child's fd for that end: the 4th stdio slot of spawnSync. */
const CHILD_COMMFD = 3;
/** fusermount3 never waits for the daemon, so anything this slow is stuck. */
const FUSERMOUNT_TIMEOUT_MS = 30_000;

/** Opens /dev/fuse and mounts it on target; returns the device fd of the new connection. */
export function mountFuse(target: string, opts: FuseMountOptions = {}): number {
  const st = statMountpoint(target);
  if (native.capSysAdmin()) return mountDirect(target, st, opts);
  return mountWithFusermount(target, opts);
}

function statMountpoint(target: string): fs.Stats {
  let st: fs.Stats;
  try {
    st = fs.statSync(target);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTCONN' || code === 'ECONNABORTED') throw new MountError(`${target}: a stale FUSE mount is still there (clear it first)`, code);
    throw new MountError(`${target}: cannot use as mount point: ${code}`, code);
  }
  if (!st.isDirectory()) throw new MountError(`${target}: mount point is not a directory`, 'ENOTDIR');
  return st;
}

function openDevice(): number {
  try {
    return native.openDevice();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new MountError('/dev/fuse is missing: load the fuse module (modprobe fuse) or run with --device /dev/fuse', code);
    if (code === 'EACCES' || code === 'EPERM') throw new MountError('/dev/fuse: permission denied (run as root)', code);
    throw new MountError(`/dev/fuse: ${code}`, code);
  }
}

function mountDirect(target: string, st: fs.Stats, opts: FuseMountOptions): number {
  const fd = openDevice();
  try {
    native.mount(fd, target, {
      rootMode: st.mode & 0o170000,
      uid: process.getuid?.() ?? 0,
      gid: process.getgid?.() ?? 0,
      defaultPermissions: true,
      allowOther: opts.allowOther ?? false,
      fsname: opts.fsname ?? 'stratafs',
      subtype: opts.subtype ?? 'stratafs',
      readOnly: opts.readOnly ?? false,
    });
  } catch (e) {
    fs.closeSync(fd);
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EPERM') throw new MountError(`mount ${target}: permission denied: mounting needs CAP_SYS_ADMIN (run as root)`, code);
    throw new MountError(`mount ${target}: ${code}`, code);
  }
  return fd;
}

/**
 * fusermount3's fd-passing protocol (libfuse lib/mount.c, fuse_mount_fusermount): it opens
 * /dev/fuse as root, mounts it, and sends the fd over the socket named by _FUSE_COMMFD.
 * Running it synchronously is fine although our loop is not serving yet: its mount(2)
 * returns without waiting for INIT, which stays queued until the session reads it.
 */
function mountWithFusermount(target: string, opts: FuseMountOptions): number {
  const prog = findFusermount(`mount ${target}`);
  log.info({ path: target, helper: prog }, 'no CAP_SYS_ADMIN: mounting through fusermount3');
  const [ours, theirs] = native.socketpair();
  let r: SpawnSyncReturns<string>;
  let fd = -1;
  try {
    try {
      r = spawnSync(prog, ['-o', fusermountOptions(opts), '--', target], {
        stdio: ['ignore', 'pipe', 'pipe', theirs],
        env: { ...process.env, [COMMFD_ENV]: String(CHILD_COMMFD) },
        encoding: 'utf8',
        timeout: FUSERMOUNT_TIMEOUT_MS,
      });
    } finally {
      // Ours must be the last copy of the child's end, or recvFd would wait forever
      // when fusermount3 failed without sending anything.
      fs.closeSync(theirs);
    }
    fd = receiveFd(ours);
  } finally {
    fs.closeSync(ours);
  }
  if (r.error || r.status !== 0) {
    // Only after a timeout could an fd have arrived anyway; closing it aborts that mount.
    if (fd >= 0) fs.closeSync(fd);
    throw fusermountFailure(`mount ${target}`, prog, r);
  }
  if (fd < 0) throw new MountError(`mount ${target}: ${prog} succeeded but sent no /dev/fuse fd`, 'EPROTO');
  return fd;
}

/** The fd fusermount3 sent, non-blocking like openDevice()'s (the reader reads until EAGAIN), or -1. */
function receiveFd(sock: number): number {
  try {
    return native.recvFd(sock, true);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EPROTO') return -1;
    throw e;
  }
}

/** The -o list libfuse hands fusermount3; it adds fd, rootmode, user_id and group_id itself. */
function fusermountOptions(opts: FuseMountOptions): string {
  const list = [opts.readOnly ? 'ro' : 'rw', 'nosuid', 'nodev', 'default_permissions'];
  if (opts.allowOther) list.push('allow_other');
  list.push(`fsname=${escapeOption(opts.fsname ?? 'stratafs')}`, `subtype=${escapeOption(opts.subtype ?? 'stratafs')}`);
  return list.join(',');
}

/** fusermount3 splits -o at commas but unescapes backslashes in fsname= and subtype=. */
function escapeOption(value: string): string {
  return value.replace(/[\\,]/g, '\\$&');
}

/** fusermount3 from PATH, or a MountError saying how to get it. */
function findFusermount(action: string): string {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (!dir) continue;
    const candidate = path.join(dir, FUSERMOUNT);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch {
      // Not in this directory.
    }
  }
  throw new MountError(
    `${action}: without CAP_SYS_ADMIN this needs ${FUSERMOUNT}, which is not on PATH: install the Debian package fuse3 (apt-get install fuse3), or run as root`,
    'ENOENT',
  );
}

/** fusermount3 prints strerror() text; these are the errno names its messages mean. */
const FUSERMOUNT_ERRORS: ReadonlyArray<[RegExp, string]> = [
  [/user_allow_other/, 'EPERM'],
  [/Operation not permitted/, 'EPERM'],
  [/Permission denied|no write access|not owned by user/, 'EACCES'],
  [/Device or resource busy/, 'EBUSY'],
  [/not found in|not mounted|Invalid argument/, 'EINVAL'],
  [/No such file or directory/, 'ENOENT'],
  [/Transport endpoint is not connected/, 'ENOTCONN'],
];

function fusermountCode(stderr: string): string | undefined {
  return FUSERMOUNT_ERRORS.find(([re]) => re.test(stderr))?.[1];
}

/** fusermount3's own words, on one line. */
function fusermountStderr(r: SpawnSyncReturns<string>): string {
  return (r.stderr ?? '').trim().split('\n').filter(Boolean).join('; ');
}

function fusermountFailure(action: string, prog: string, r: SpawnSyncReturns<string>): MountError {
  if (r.error) {
    const code = (r.error as NodeJS.ErrnoException).code;
    return new MountError(`${action}: cannot run ${prog}: ${code ?? r.error.message}`, code);
  }
  const stderr = fusermountStderr(r);
  const how = r.signal ? `killed by ${r.signal}` : `exit status ${r.status}`;
  const detail = stderr || `${prog} failed (${how})`;
  if (/user_allow_other/.test(stderr)) {
    return new MountError(`${action}: ${detail}: only root may mount with allow_other unless /etc/fuse.conf has a line "user_allow_other"; add it, or mount without -o allow_other`, 'EPERM');
  }
  if (/failed to open \/dev\/fuse: Permission denied/.test(stderr)) {
    // fusermount3 opens the device with the caller's own rights: its mode is the policy.
    return new MountError(`${action}: ${detail}: /dev/fuse must be readable and writable by this user (it is normally mode 0666)`, 'EACCES');
  }
  return new MountError(`${action}: ${detail}`, fusermountCode(stderr));
}

/** `fusermount3 -u [-z]`: umount(2) needs CAP_SYS_ADMIN, fusermount3 lets users unmount their own FUSE mounts. */
function unmountWithFusermount(target: string, lazy: boolean): void {
  const prog = findFusermount(`umount ${target}`);
  const r = spawnSync(prog, ['-u', ...(lazy ? ['-z'] : []), '--', target], {
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
    timeout: FUSERMOUNT_TIMEOUT_MS,
  });
  if (r.error || r.status !== 0) throw fusermountFailure(`umount ${target}`, prog, r);
}

/** The mount entry at exactly this path, from /proc/self/mountinfo, if any. */
export function mountAt(target: string): { fstype: string; source: string; dev: number } | undefined {
  const want = mountpointPath(target);
  let found: { fstype: string; source: string; dev: number } | undefined;
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    if (!line) continue;
    const [left, right] = line.split(' - ');
    const fields = left!.split(' ');
    const mp = unescape(fields[4]!);
    if (mp !== want) continue;
    const [fstype, source] = right!.split(' ');
    // "major:minor" of the filesystem, as the kernel's dev_t (major << 20 | minor).
    const [major, minor] = fields[2]!.split(':').map(Number);
    found = { fstype: fstype!, source: unescape(source!), dev: major! * 2 ** 20 + minor! };
  }
  return found;
}

function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * A FUSE mount whose daemon died answers with ENOTCONN ("Transport endpoint is not
 * connected"), or ECONNABORTED for a connection aborted while requests were pending when
 * its daemon had negotiated FUSE_ABORT_ERROR (another FUSE program's mount, say).
 */
export function isStale(target: string): boolean {
  try {
    fs.statSync(target);
    return false;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOTCONN' || code === 'ECONNABORTED';
  }
}

/** Detaches a dead mount so the path can be mounted again. Returns whether one was cleared. */
export function clearStale(target: string): boolean {
  if (!isStale(target)) return false;
  if (native.capSysAdmin()) native.umount(target, native.MNT_DETACH);
  else unmountWithFusermount(target, true);
  log.warn({ path: target }, 'cleared a stale FUSE mount left by a dead daemon');
  return true;
}

/** Unmounts target; `lazy` detaches it even while busy. */
export function unmount(target: string, lazy = false): void {
  if (!native.capSysAdmin()) {
    try {
      unmountWithFusermount(target, lazy);
    } catch (e) {
      if (e instanceof MountError && e.code === 'EBUSY') throw new MountError(`${e.message}; try --lazy`, e.code);
      throw e;
    }
    return;
  }
  try {
    native.umount(target, lazy ? native.MNT_DETACH : 0);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EINVAL') throw new MountError(`${target}: not a mount point`, code);
    if (code === 'EBUSY') throw new MountError(`${target}: mount is busy (files open or a process inside it); try --lazy`, code);
    if (code === 'EPERM') throw new MountError(`${target}: permission denied: unmounting needs root`, code);
    throw new MountError(`umount ${target}: ${code}`, code);
  }
}

/**
 * The processes that serve the FUSE mount at `target`: those holding a /dev/fuse file of
 * its connection (`fuse_connection` in /proc/PID/fdinfo, shown by recent kernels such as
 * 6.18; where it is missing none is found). Used to wait for a daemon to finish its writes
 * after its unmount.
 */
export function servingPids(target: string): number[] {
  const conn = mountAt(target)?.dev;
  if (conn === undefined) return [];
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
        if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`) !== '/dev/fuse') continue;
        const m = /^fuse_connection:\s*(\d+)$/m.exec(fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'latin1'));
        if (m && Number(m[1]) === conn) {
          out.push(pid);
          break;
        }
      }
    } catch {
      // gone meanwhile, or not ours to look at
    }
  }
  return out;
}
