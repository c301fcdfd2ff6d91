// The durable half of a data copy-up, taken off the request's path. A copy of a lower file
// goes into place marked as a metacopy (trusted.overlay.metacopy, "the data lies below"),
// and the request that caused it (an open for writing, a truncate) is answered at once;
// the copy's fsync runs behind it, and only then does the mark go. So a crash at any point
// shows either the lower file, whole (the mark is there: overlayfs and stratafs read the
// data below), or the copy with its data on disk; never a half copy.
//
// Landings go in groups, as a journal commits: the copies made while one group's fsyncs
// run go together next, so a burst of copy-ups shares the upper filesystem's journal
// commits instead of paying one each (~300 µs per small file on the benchmark VM).
//
// While a copy lands, its mark is not the truth: the daemon knows the data is in the upper
// file (holds()), and what must not outrun the landing waits for it (UNode.landing): fsync
// of the file (what it acknowledges must survive a crash), a rename or link of it (a mark
// at a new name would point at no data below), an O_SYNC open, and unmount (all()).

import { closeSync, constants, openSync } from 'node:fs';
import { fsyncFd, type HostPath } from '../host/files.js';
import { native } from '../native/binding.js';
import { log } from '../util/log.js';
import { XATTR_METACOPY } from './markers.js';
import type { UNode } from './node.js';

/**
 * For crash tests and debugging only: holds every group this many milliseconds before its
 * fsyncs, so that a copy stays in place but not yet durable long enough to kill the
 * daemon in that state. Unset (0) in normal use.
 */
const HOLD_MS = Number(process.env.STRATAFS_LANDING_HOLD_MS ?? 0);

interface Landing {
  d: UNode;
  fd: number;
  hostIno: bigint;
  rel: string;
  done: () => void;
}

export class Landings {
  /** Host inode numbers of upper files whose metacopy mark is a copy-up not yet landed. */
  private readonly marked = new Set<bigint>();
  /** Copies waiting for the group under way to finish. */
  private queue: Landing[] = [];
  /** The group under way (undefined: none). */
  private group: Promise<void> | undefined;

  /** Whether the metacopy mark on this upper file is a landing copy's (its data is in it). */
  holds(hostIno: bigint): boolean {
    return this.marked.has(hostIno);
  }

  /** Called with the copy's mark set and the copy in place: fsyncs `fd`, removes the mark, closes `fd`. */
  start(d: UNode, fd: number, hostIno: bigint, rel: string): void {
    this.marked.add(hostIno);
    const p = new Promise<void>((done) => this.queue.push({ d, fd, hostIno, rel, done }));
    d.landing = p;
    void p.then(() => {
      if (d.landing === p) d.landing = undefined;
    });
    this.group ??= this.run();
  }

  /** Lands group after group until none is waiting. */
  private async run(): Promise<void> {
    while (this.queue.length > 0) {
      if (HOLD_MS > 0) await new Promise((r) => setTimeout(r, HOLD_MS));
      const group = this.queue;
      this.queue = [];
      await Promise.all(group.map((l) => this.land(l)));
    }
    this.group = undefined;
  }

  private async land(l: Landing): Promise<void> {
    try {
      await fsyncFd(l.fd, false);
      native.fremovexattr(l.fd, XATTR_METACOPY);
      this.marked.delete(l.hostIno);
    } catch (e) {
      // The mark stays on disk (after a remount the lower file shows again, whole), and
      // the next fsync(2) of the file tries again: it reports the error if it fails too.
      l.d.unlanded = l.hostIno;
      const err = e as NodeJS.ErrnoException;
      log.error({ path: l.rel, errno: err.code, err: err.message }, 'fsync of a copied-up file failed: until an fsync of it succeeds, a crash shows the lower file');
    } finally {
      closeSync(l.fd);
      l.done();
    }
  }

  /** Lands, at an fsync(2) of it, a copy whose landing failed: its data is synced again first. */
  async finish(d: UNode, upper: HostPath): Promise<void> {
    const ino = d.unlanded;
    if (ino === undefined) return;
    const fd = openSync(upper, constants.O_RDONLY);
    try {
      await fsyncFd(fd, false);
      native.fremovexattr(fd, XATTR_METACOPY);
    } finally {
      closeSync(fd);
    }
    this.marked.delete(ino);
    d.unlanded = undefined;
  }

  /** Resolves when every copy started so far has landed (or failed to): before unmount. */
  async all(): Promise<void> {
    while (this.group) await this.group;
  }
}
