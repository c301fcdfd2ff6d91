// The durable half of a data copy-up, taken off the request's path. A copy of a lower file
// goes into place marked as a metacopy (trusted.overlay.metacopy, "the data lies below"),
// and the request that caused it (an open for writing, a truncate) is answered at once;
// the copy's fsync runs behind it, and only then does the mark go. So a crash at any point
// shows either the lower file's data, whole (the mark is there: overlayfs and stratafs
// read the data below), or the copy with its data on disk; never a half copy.
//
// Small copies land in groups, as a journal commits: the copies made while one group's
// fsyncs run go together next, so a burst of copy-ups shares the upper filesystem's journal
// commits instead of paying one each (~300 µs per small file on the benchmark VM). A large
// copy lands on its own, so that its long fsync holds no small one back.
//
// While a copy lands, its mark is not the truth: the daemon knows the data is in the upper
// file (of(), by the file's inode number, which a lookup checks when it meets a mark),
// and what must not outrun the landing waits for it (UnionFs.landed()): fsync of the file
// (what it acknowledges must survive a crash), a rename or link of it (a mark at a new name
// would point at no data below), an O_SYNC open, an fsync of a directory (how `strata
// commit` and `export` of a mounted container read a settled upper dir), and unmount.
// A landing whose fsync fails keeps its mark (after a remount the lower data shows) and its
// file open, so the inode number stays its own; every later fsync, rename or link of the
// file reports the error, as Linux reports a failed writeback at fsync.

import { closeSync } from 'node:fs';
import { fsyncFd } from '../host/files.js';
import { native } from '../native/binding.js';
import { log } from '../util/log.js';
import { XATTR_METACOPY } from './markers.js';

/**
 * For crash tests and debugging only: holds every landing this many milliseconds before its
 * fsync, so that a copy stays in place but not yet durable long enough to kill the daemon
 * in that state. Unset (0) in normal use.
 */
const HOLD_MS = Number(process.env.STRATAFS_LANDING_HOLD_MS ?? 0);

/** One copy on its way to disk. */
export interface Landing {
  /** The union path it was copied to (for messages). */
  readonly rel: string;
  /** Settles when the landing is over, landed or failed (never rejects). */
  readonly done: Promise<void>;
  /** Set when its fsync failed: the mark stays, and the file reports this error. */
  error?: NodeJS.ErrnoException;
}

interface Pending {
  landing: Landing;
  fd: number;
  hostIno: bigint;
  finish: () => void;
}

export class Landings {
  /** By the upper file's inode number: copies not landed yet, and those that failed to. */
  private readonly byIno = new Map<bigint, Landing>();
  /** Small copies waiting for the group under way to finish. */
  private queue: Pending[] = [];
  private group: Promise<void> | undefined;
  /** Large copies, each landing on its own. */
  private readonly alone = new Set<Promise<void>>();

  /** The landing of this upper file, if its metacopy mark is a copy-up's that has not landed. */
  of(hostIno: bigint): Landing | undefined {
    return this.byIno.get(hostIno);
  }

  /**
   * Called with the copy's mark set and the copy in place: fsyncs `fd`, removes the mark,
   * closes `fd`. `large`: lands on its own, not in a group.
   */
  start(fd: number, hostIno: bigint, rel: string, large: boolean): Landing {
    let finish!: () => void;
    const landing: Landing = { rel, done: new Promise<void>((r) => (finish = r)) };
    this.byIno.set(hostIno, landing);
    const p: Pending = { landing, fd, hostIno, finish };
    if (large) {
      const run = this.land(p).finally(() => this.alone.delete(run));
      this.alone.add(run);
    } else {
      this.queue.push(p);
      this.group ??= this.run();
    }
    return landing;
  }

  /** Lands group after group until none is waiting. */
  private async run(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const group = this.queue;
        this.queue = [];
        await Promise.all(group.map((p) => this.land(p)));
      }
    } finally {
      this.group = undefined;
    }
  }

  /** Never rejects: a failure is kept on the landing and logged. */
  private async land(p: Pending): Promise<void> {
    try {
      if (HOLD_MS > 0) await new Promise((r) => setTimeout(r, HOLD_MS));
      await fsyncFd(p.fd, false);
      native.fremovexattr(p.fd, XATTR_METACOPY);
    } catch (e) {
      // The fd stays open: it keeps the inode number from going to another file while the
      // number is in byIno.
      p.landing.error = e as NodeJS.ErrnoException;
      log.error({ path: p.landing.rel, errno: p.landing.error.code, err: p.landing.error.message }, 'a copied-up file could not be made durable: it keeps its metacopy mark (after a remount the lower data shows), and fsync of it fails');
      return;
    } finally {
      p.finish();
    }
    this.byIno.delete(p.hostIno);
    try {
      closeSync(p.fd);
    } catch {
      // nothing left to do with it
    }
  }

  /** Resolves when every copy started so far has landed or failed: before unmount. */
  async all(): Promise<void> {
    while (this.group || this.alone.size > 0) await Promise.all([this.group, ...this.alone]);
  }

  /** The copies that failed to land (for the log at unmount). */
  failed(): string[] {
    return [...this.byIno.values()].filter((l) => l.error).map((l) => l.rel);
  }
}
