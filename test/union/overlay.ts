// Union mounts for the differential suite: the kernel's overlayfs (the reference) and
// stratafs (`strata mount`), behind one driver interface, plus what every test needs around
// them: a registry that unmounts everything in teardown even after a failure, a check that
// nothing is left in the mount table, and a summary of an upper dir's overlay records for
// failure messages.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { native } from '../../src/native/binding.js';
import { isMounted, mountWith, waitFor, type Mounted } from '../helpers/mount.js';

export interface UnionMount {
  mnt: string;
  /**
   * Unmounts (lazily if busy) and, for a daemon, waits for it to exit; throws if it had to be
   * killed. Idempotent.
   */
  cleanup(): Promise<void>;
}

export interface UnionDriver {
  name: string;
  /** Reads OCI-format lowers (`.wh.NAME`, `.wh..wh..opq`) itself; if not, the harness converts them. */
  readsOciLowers: boolean;
  /**
   * lowers top layer first (lowerdir= order). Without upper and work the mount is read-only.
   * Returns once the mount answers.
   */
  mount(lowers: string[], upper: string | undefined, work: string | undefined, mnt: string): UnionMount;
  /** The same through `-o lowerdir=...,upperdir=...,workdir=...,` (the mount-program syntax podman uses). */
  /** `extraO`: more -o options (stratafs only, e.g. index=FILE). */
  mountO(lowers: string[], upper: string | undefined, work: string | undefined, mnt: string, extraO?: string): UnionMount;
}

/** The options the kernel reference runs with, matching stratafs's semantics. */
export const KERNEL_RW_OPTIONS = ['index=on', 'redirect_dir=on', 'metacopy=on'];
/** index=on is meaningless (and warned about) without an upper layer. */
export const KERNEL_RO_OPTIONS = ['redirect_dir=on', 'metacopy=on'];

function checkOptionPath(p: string): string {
  if (/[,:\\]/.test(p)) throw new Error(`path not usable in overlay options: ${p}`);
  return p;
}

/**
 * `mount -t overlay`, read-only when upper/work are not given. `rwOptions` replaces the
 * features asked for on read-write mounts (KERNEL_RW_OPTIONS); [] gives the module defaults.
 */
export function mountKernelOverlay(
  lowers: string[],
  upper: string | undefined,
  work: string | undefined,
  mnt: string,
  rwOptions: readonly string[] = KERNEL_RW_OPTIONS,
): UnionMount {
  if ((upper === undefined) !== (work === undefined)) throw new Error('upper and work go together');
  let extra: string | undefined;
  let lowerList = lowers.map(checkOptionPath);
  if (!upper && lowers.length === 1) {
    // The kernel wants at least two lower layers without an upper one; an empty bottom layer
    // changes nothing in the merged view.
    extra = `${mnt}.empty-lower`;
    fs.mkdirSync(extra, { recursive: true });
    lowerList = [...lowerList, extra];
  }
  const opts = [`lowerdir=${lowerList.join(':')}`];
  if (upper && work) opts.push(`upperdir=${checkOptionPath(upper)}`, `workdir=${checkOptionPath(work)}`, ...rwOptions);
  else opts.push(...KERNEL_RO_OPTIONS.filter((o) => rwOptions.includes(o)));
  const r = spawnSync('mount', ['-t', 'overlay', 'overlay', '-o', opts.join(','), mnt], { encoding: 'utf8' });
  if (r.status !== 0) {
    if (extra) fs.rmSync(extra, { recursive: true, force: true });
    throw new Error(`mount -t overlay -o ${opts.join(',')} ${mnt} failed: ${r.stderr.trim()}\n${dmesgOverlay().slice(-3).join('\n')}`);
  }
  let done = false;
  return {
    mnt,
    async cleanup() {
      if (done) return;
      done = true;
      if (isMounted(mnt) && spawnSync('umount', [mnt]).status !== 0) spawnSync('umount', ['-l', mnt]);
      if (extra) fs.rmSync(extra, { recursive: true, force: true });
    },
  };
}

export const kernelDriver: UnionDriver = {
  name: 'kernel overlayfs',
  readsOciLowers: false,
  mount: (lowers, upper, work, mnt) => mountKernelOverlay(lowers, upper, work, mnt),
  mountO: (lowers, upper, work, mnt) => mountKernelOverlay(lowers, upper, work, mnt),
};

/**
 * Kernel overlayfs with the module's defaults here (no index, no redirect_dir, no metacopy):
 * a candidate that is known to differ, to see that the suite notices (hard links broken by
 * copy-up, EXDEV on directory renames, full copy-up for chmod).
 */
export const kernelPlainDriver: UnionDriver = {
  name: 'kernel overlayfs (module defaults)',
  readsOciLowers: false,
  mount: (lowers, upper, work, mnt) => mountKernelOverlay(lowers, upper, work, mnt, []),
  mountO: (lowers, upper, work, mnt) => mountKernelOverlay(lowers, upper, work, mnt, []),
};

/** `strata mount --lower L1:L2 [--upper U --work W] MNT` through test/helpers/mount.ts. */
export const strataDriver: UnionDriver = {
  name: 'stratafs',
  readsOciLowers: true,
  mount(lowers, upper, work, mnt) {
    const args = ['mount', '--lower', lowers.map(checkOptionPath).join(':')];
    if (upper && work) args.push('--upper', upper, '--work', work);
    return strataMount(args, mnt);
  },
  mountO(lowers, upper, work, mnt, extraO) {
    let o = `lowerdir=${lowers.map(checkOptionPath).join(':')}`;
    if (upper && work) o += `,upperdir=${checkOptionPath(upper)},workdir=${checkOptionPath(work)}`;
    return strataMount(['mount', '-o', `${o},${extraO ?? ''}`], mnt);
  },
};

/**
 * Seconds a stratafs mount may live in a test. A request the daemon never answers blocks the
 * test process in a syscall, where no vitest timeout reaches it; past this deadline a
 * watchdog process kills the daemon, the kernel fails the waiting call with ENOTCONN, the
 * test fails and the suite goes on.
 */
export const WATCHDOG_SECONDS = Number(process.env.STRATA_UNION_WATCHDOG_S ?? 20);

function strataMount(args: string[], mnt: string): UnionMount {
  const m: Mounted = mountWith(args, mnt);
  const marker = `${mnt}.watchdog-fired`;
  const dog = spawn('sh', ['-c', `sleep ${WATCHDOG_SECONDS} && touch '${marker}' && kill -9 ${m.pid}`], { detached: true, stdio: 'ignore' });
  dog.unref();
  let done = false;
  return {
    mnt,
    async cleanup() {
      if (done) return;
      done = true;
      try {
        process.kill(-dog.pid!, 'SIGKILL');
      } catch {
        /* already gone */
      }
      if (fs.existsSync(marker)) {
        if (isMounted(mnt)) spawnSync('umount', ['-l', mnt]);
        throw new Error(`${mnt} stopped answering: the watchdog killed stratafs daemon ${m.pid} after ${WATCHDOG_SECONDS} s (see ${m.log})`);
      }
      // As Mounted.cleanup(), but a zombie counts as gone: the daemon is re-parented to
      // PID 1, which may reap it a second later, and kill(pid, 0) succeeds until then.
      if (isMounted(mnt) && spawnSync('umount', [mnt]).status !== 0) spawnSync('umount', ['-l', mnt]);
      try {
        await waitFor(() => exited(m.pid), 5000, `daemon ${m.pid} to exit`);
      } catch {
        process.kill(m.pid, 'SIGKILL');
        throw new Error(`stratafs daemon ${m.pid} had not exited 5 s after the unmount of ${mnt}; killed it`);
      }
    },
  };
}

/** Candidates by STRATA_UNION_CANDIDATE value. */
/** The process is gone or a zombie (exited, not yet reaped). */
export function exited(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

export const DRIVERS: Record<string, UnionDriver> = { strata: strataDriver, kernel: kernelDriver, 'kernel-plain': kernelPlainDriver };

/** Every mount made in a test, unmounted in afterEach/afterAll whatever happened. */
export class MountRegistry {
  private mounts: UnionMount[] = [];

  track<T extends UnionMount>(m: T): T {
    this.mounts.push(m);
    return m;
  }

  /** Unmounts in reverse order; collects errors and throws the first after trying all. */
  async cleanupAll(): Promise<void> {
    let first: unknown;
    for (const m of this.mounts.splice(0).reverse()) {
      try {
        await m.cleanup();
      } catch (e) {
        first ??= e;
      }
    }
    if (first) throw first;
  }
}

/** Mount points at or below `base` still in the mount table. */
export function mountsUnder(base: string): string[] {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m === base || m.startsWith(`${base}/`));
}

/** Last resort for teardown: lazy-unmounts anything left below base. */
export function forceUnmountUnder(base: string): void {
  for (const m of mountsUnder(base).reverse()) spawnSync('umount', ['-l', m]);
}

/**
 * The overlay records of an upper dir, one line each, for failure messages: whiteouts,
 * opaque dirs, redirects, metacopy files (origin and other bookkeeping xattrs left out).
 */
export function upperRecords(upper: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    const abs = rel ? path.join(upper, rel) : upper;
    const st = fs.lstatSync(abs);
    const name = rel || '.';
    if (st.isCharacterDevice() && st.rdev === 0) out.push(`whiteout ${name}`);
    let xattrs: string[] = [];
    try {
      xattrs = native.llistxattr(abs);
    } catch {
      /* none */
    }
    for (const x of xattrs.sort()) {
      if (x === 'trusted.overlay.opaque') out.push(`opaque ${name}=${native.lgetxattr(abs, x).toString()}`);
      else if (x === 'trusted.overlay.redirect') out.push(`redirect ${name}=${native.lgetxattr(abs, x).toString()}`);
      else if (x === 'trusted.overlay.metacopy') out.push(`metacopy ${name}`);
    }
    if (st.isDirectory()) for (const n of fs.readdirSync(abs).sort()) walk(rel ? `${rel}/${n}` : n);
  };
  walk('');
  return out;
}

/** Kernel overlayfs messages in the kernel log (for diagnosing a failed mount). */
export function dmesgOverlay(): string[] {
  try {
    return execFileSync('dmesg', { encoding: 'utf8' }).split('\n').filter((l) => l.includes('overlayfs'));
  } catch {
    return [];
  }
}
