// The layers of one union mount: read-only lowers (top first, as in overlayfs's lowerdir)
// and an optional writable upper with its work dir on the same filesystem.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { HostPath } from '../host/files.js';
import type { StackView } from '../index/stack-view.js';
import { native } from '../native/binding.js';
import { osPath } from '../util/os-path.js';
import { sleepSync } from '../util/process.js';
import { Landings } from './landing.js';

export interface StackSpec {
  lowers: string[];
  upper?: string;
  work?: string;
  /**
   * A mount's daemon: the upper and work dirs are its alone while it serves (refused when
   * another mount holds them). Readers of a container layer (diff, commit, export) pass a
   * scratch dir of their own as work dir and take no lock.
   */
  exclusive?: boolean;
}

/** A directory (or object) inside one lower layer: layer index, path relative to its root. */
export interface LowerRef {
  layer: number;
  path: string;
}

/** uid and gid of an object. */
export interface Owner {
  uid: number;
  gid: number;
}

/** The daemon's scratch dir inside the work dir, cleared when a mount starts. */
const SCRATCH_DIR = 'stratafs';

/**
 * Present while a mount's journal records wait for another process's lock on the path
 * index (UnionFs): `strata diff` then waits rather than read a journal missing them.
 */
export function journalWaitingMarker(work: string): string {
  return path.join(work, SCRATCH_DIR, 'journal-waiting');
}

/**
 * How long a new mount waits for the lock: a daemon whose mount was just unmounted (podman
 * stops and starts a container so) may still be finishing its writes, and lets go as it exits.
 */
const LOCK_WAIT_MS = 2_000;

/** Takes the exclusive lock on a directory for as long as the returned fd stays open. */
function lockDir(dir: string): number {
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  const end = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    if (native.tryLockExclusive(fd)) return fd;
    if (Date.now() >= end) break;
    sleepSync(50);
  }
  fs.closeSync(fd);
  throw Object.assign(new Error(`${dir}: in use by another stratafs mount (EBUSY)`), { code: 'EBUSY' });
}

export class LayerStack {
  readonly lowers: string[];
  readonly upper: string | undefined;
  readonly work: string | undefined;
  /** Scratch space for copy-up and deletes, inside the work dir (same fs as the upper). */
  readonly tmp: string | undefined;
  /** Who an object made in the scratch dir belongs to before copy-up gives it its owner. */
  readonly tmpOwner: Owner = { uid: -1, gid: -1 };
  /** Data copy-ups whose fsync is under way: their metacopy marks are not what they say (landing.ts). */
  readonly landings = new Landings();
  /**
   * The path index's view of the lowers (set by UnionFs), when the mount has an index and
   * it found no overlayfs redirects or metacopies in them.
   */
  view: StackView | undefined;
  /** st_dev of each lower root, top first: index rows carry st_ino only. */
  readonly lowerDevs: number[];
  /** st_dev of the upper dir (copy_file_range copies only within one filesystem). */
  readonly upperDev: number | undefined;
  /** Open fds of the upper and work dirs, flocked while the mount lasts. */
  private readonly locks: number[] = [];
  /** st_dev -> small index, so inode numbers of different filesystems never collide. */
  private readonly devIndex = new Map<number, bigint>();

  constructor(spec: StackSpec) {
    if (spec.lowers.length === 0) throw new Error('at least one lower layer is needed');
    for (const l of spec.lowers) if (!fs.statSync(l).isDirectory()) throw new Error(`${path.resolve(l)}: lower layer is not a directory`);
    // Real paths: layers are probed with lstat from their root down, and podman names its
    // layers by symlinks (overlay/l/SHORTID -> ../ID/diff).
    this.lowers = spec.lowers.map((l) => fs.realpathSync(l));
    this.lowerDevs = this.lowers.map((l) => fs.statSync(l).dev);
    if ((spec.upper === undefined) !== (spec.work === undefined)) throw new Error('an upper dir needs a work dir, and a work dir an upper dir');
    this.upper = spec.upper && fs.realpathSync(spec.upper);
    this.work = spec.work && fs.realpathSync(spec.work);
    if (this.upper && this.work) {
      if (!fs.statSync(this.upper).isDirectory()) throw new Error(`${this.upper}: upper dir is not a directory`);
      if (fs.statSync(this.upper).dev !== fs.statSync(this.work).dev) throw new Error(`${this.work}: work dir must be on the same filesystem as the upper dir ${this.upper}`);
      // One mount per upper and work dir: a second one would clear the first's scratch
      // files below, and both would write one upper dir. flock, so that a daemon killed
      // with -9 leaves no lock behind (the kernel drops it with the process).
      try {
        if (spec.exclusive) for (const d of [this.upper, this.work]) this.locks.push(lockDir(d));
      } catch (e) {
        this.release();
        throw e;
      }
      this.tmp = path.join(this.work, SCRATCH_DIR);
      fs.rmSync(this.tmp, { recursive: true, force: true });
      fs.mkdirSync(this.tmp, { mode: 0o700 });
      // Copies are built here: a default ACL inherited from above the work dir would be
      // given to every directory copied up (and masked every new file's mode). The kernel
      // strips its work dir's ACLs too.
      for (const acl of ['system.posix_acl_default', 'system.posix_acl_access']) {
        const e = native.lgetxattrOrErrno(this.tmp, acl);
        if (typeof e !== 'number') native.lremovexattr(this.tmp, acl);
      }
      // A new object belongs to the daemon, in the group of a set-group-ID scratch dir.
      const st = fs.statSync(this.tmp);
      this.tmpOwner = { uid: process.geteuid!(), gid: st.mode & 0o2000 ? st.gid : process.getegid!() };
    }
    this.upperDev = this.upper === undefined ? undefined : fs.statSync(this.upper).dev;
    // The upper's device first: most objects end up there and keep their plain number.
    for (const d of [this.upper, ...this.lowers]) if (d) this.devTag(fs.statSync(d).dev);
  }

  private modeExact: boolean | undefined;

  /**
   * A file made in the scratch dir gets exactly the mode asked for: the daemon's umask is 0
   * and the scratch dir has no default ACL (which would mask it instead). Asked at the first
   * copy-up, once the daemon has set its umask (serve.ts does so after the stack is built).
   */
  get tmpModeExact(): boolean {
    return (this.modeExact ??= this.tmp !== undefined && process.umask() === 0 && typeof native.lgetxattrOrErrno(this.tmp, 'system.posix_acl_default') === 'number');
  }

  /** Lets go of the upper and work dirs (unmounted): another mount may take them. */
  release(): void {
    for (const fd of this.locks.splice(0)) fs.closeSync(fd);
  }

  /**
   * Lower layers may hold overlayfs redirects or metacopies (overlay upper dirs used as
   * layers): unless the index found none, lookups on disk follow them, and absolute
   * redirects are resolved a directory at a time (resolve.ts).
   */
  get lowerRedirects(): boolean {
    return this.view === undefined;
  }

  get readOnly(): boolean {
    return this.upper === undefined;
  }

  lowerPath(ref: LowerRef): HostPath {
    return osPath(ref.path === '' ? this.lowers[ref.layer]! : `${this.lowers[ref.layer]}/${ref.path}`);
  }

  lowerPathString(ref: LowerRef): string {
    return ref.path === '' ? this.lowers[ref.layer]! : `${this.lowers[ref.layer]}/${ref.path}`;
  }

  upperPath(rel: string): HostPath {
    return osPath(rel === '' ? this.upper! : `${this.upper}/${rel}`);
  }

  upperPathString(rel: string): string {
    return rel === '' ? this.upper! : `${this.upper}/${rel}`;
  }

  private devTag(dev: number): bigint {
    let t = this.devIndex.get(dev);
    if (t === undefined) {
      t = BigInt(this.devIndex.size);
      this.devIndex.set(dev, t);
    }
    return t;
  }

  /**
   * The inode number the union reports for a host object: its own st_ino, with the index
   * of its filesystem in the top 8 bits when the layers span several filesystems (as
   * overlayfs's xino does). Objects on the first filesystem keep their number unchanged.
   */
  unionIno(dev: number, ino: bigint): bigint {
    const t = this.devTag(dev);
    return t === 0n ? ino : (t << 56n) | (ino & ((1n << 56n) - 1n));
  }

  /** A fresh name in the scratch dir for a copy-up or a delete in progress. */
  private seq = 0;
  tmpName(): string {
    return `${this.tmp}/${process.pid}-${++this.seq}`;
  }
}
