// The union filesystem: read-only lower layers under one writable upper, overlayfs
// semantics (docs/union.md lists where we differ on purpose). Lookups go top-down
// (resolve.ts), listings merge (readdir.ts), the first change to a lower object copies it
// up (copy-up.ts), deletes leave whiteouts, renamed directories keep finding their lower
// contents through trusted.overlay.redirect.

import * as fs from 'node:fs';
import { constants } from 'node:os';
import { ENODATA_ERROR, fsError } from '../fuse/errors.js';
import type { Attr, Context, DirEntry, Entry, FileSystem, OpenResult, Served, SetAttr, StatfsOut } from '../fs/api.js';
import { decodeDev, fstatHost, lstatHost, lstatHostOrThrow } from '../fs/attr.js';
import type { Inode } from '../fs/inode.js';
import { FdFileOps } from '../host/fd-ops.js';
import { applySetAttr, fsyncDir, giveToCaller, inheritSetgid, O_ACCMODE, O_TMPFILE, openHost, openToKeep, statfsOf, withCallerUmask, type FdHandle } from '../host/files.js';
import { native } from '../native/binding.js';
import { PathIndex } from '../index/path-index.js';
import type { JournalRecord, UpperJournal } from '../index/journal.js';
import { log } from '../util/log.js';
import { after } from '../util/maybe-async.js';
import { osPath } from '../util/os-path.js';
import { WHITEOUT_KIND, type ObjectKind } from '../util/overlay-records.js';
import { rootStandIn, standIn } from './stand-in.js';
import { CopyUp } from './copy-up.js';
import { isWhiteout, makeWhiteout, redirectOf, setOpaque, setRedirect, xattrOnDisk, xattrShown } from './markers.js';
import { lowerData, shownNlink, type UNode } from './node.js';
import { mergedEntries } from './readdir.js';
import { lowerHasName, redirectTarget, resolveChild, resolveRoot, type Resolved } from './resolve.js';
import { journalWaitingMarker, LayerStack, type StackSpec } from './stack.js';
import { finishVolatile, markVolatile, refuseUnfinishedVolatile } from './volatile.js';

const C = fs.constants;
const { ENODATA } = constants.errno;

export interface UnionOptions extends StackSpec {
  passthrough?: boolean;
  /**
   * Read-only opens of lower files read what a later copy-up writes (as overlayfs does),
   * at the price of their data going through the daemon: a passthrough inode's backing
   * file cannot change while it is open. Off by default (docs/union.md).
   */
  followCopyUp?: boolean;
  /** How long a journal record may wait to share a transaction (default 100 ms; see pendingJournal). */
  journalDelayMs?: number;
  /** overlayfs's `volatile`: no fsync of copy-ups, fsync and fsyncdir write nothing out (volatile.ts). */
  volatile?: boolean;
  /**
   * Fsync each copy of data before answering the request that made it, as overlayfs does,
   * instead of behind it (landing.ts): for writes made durable without an fsync the daemon
   * sees (sync(2), msync of a passed-through mapping, RWF_SYNC writes).
   */
  syncCopyUp?: boolean;
  /**
   * The kernel keeps the listings of upper and merged directories too, not only of
   * lower-only ones: for a mount whose upper dir changes only through it (the long default
   * cache lifetimes assume so; a shortened -o timeout or --entry-timeout says it may not).
   * Every change to a listing is a request on that directory (create, mkdir, link,
   * symlink, mknod, unlink, rmdir, rename), which makes the kernel drop what it kept;
   * what a copy-up does on its own (directories copied up, hard-link siblings linked)
   * changes no name, type or inode number in any listing.
   */
  keepListings?: boolean;
}

export interface UnionHandle extends FdHandle {
  /** Opened on the upper copy (writes allowed); otherwise on an immutable lower file. */
  upper: boolean;
}

type Node = Inode<UNode>;

/**
 * The mount's default for how long the kernel may keep names and attributes, of every
 * object (the bridge's timeouts; --entry-timeout, --attr-timeout and -o timeout=S replace
 * it, for lower-only names too, as fuse-overlayfs's -o timeout does: a name that is
 * lower-only now may be shadowed in the upper dir behind the mount's back). Lower layers
 * never change, and the upper dir changes only through the mount (overlayfs forbids
 * changing layers under a mount): the kernel learns of each change from the request that
 * makes it, and of a copy-up's side effects on other inodes from a notification
 * (Served.attrsChanged), so it may keep everything long (fuse-overlayfs keeps everything
 * for 1e9 s). With 1 s for upper objects, every path walk through a copied-up directory
 * cost a GETATTR once a second had passed.
 */
export const CACHE_TIMEOUT_S = 86400;

/** How long a journal record may wait for others to share its transaction, and how many. */
const JOURNAL_DELAY_MS = 100;
const JOURNAL_BATCH = 1024;

export class UnionFs extends FdFileOps<UNode, UnionHandle> implements FileSystem<UNode, UnionHandle> {
  readonly stack: LayerStack;
  private readonly copyUp: CopyUp;
  /** opendir's answer for every directory (FileSystem.everyListingCached): no upper dir, or keepListings. */
  readonly everyListingCached: boolean;
  private index: PathIndex | undefined;
  private served: Served<UNode> | undefined;
  private journal: UpperJournal | undefined;
  /**
   * A journal write failed (not for a lock another process held: those wait, see
   * flushJournal): nothing more is recorded, the journal is marked incomplete for other
   * readers (uppers.broken) and left marked unfinished, so the next mount rebuilds it.
   */
  private journalBroken = false;
  /**
   * Journal records not written yet. A change is recorded after its reply, within
   * JOURNAL_DELAY_MS (or journalDelayMs), in one SQLite transaction with its neighbours:
   * a transaction per change cost 20-35 us of every chmod or rename, and a commit every
   * 5 ms still ~15 us of every rename (a commit of the journal costs ~250 us). The delay
   * risks nothing: the journal is marked unfinished for as long as the daemon runs. FSYNCDIR (how
   * `strata diff` reads a mounted container's journal) and unmount write them at once. A
   * daemon that dies with records pending left its journal marked unfinished, and the
   * next mount rebuilds it from the upper dir, as after any crash. A batch that another
   * process's lock kept out stays here, in front, until a retry writes it.
   */
  private pendingJournal: JournalRecord[] = [];
  /** Records wait for the index lock, and the marker says so (markJournalWaiting). */
  private journalWaiting = false;
  private journalTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: UnionOptions) {
    super();
    this.stack = new LayerStack({ ...opts, exclusive: true });
    this.everyListingCached = !this.stack.upper || opts.keepListings === true;
    if (this.stack.work) refuseUnfinishedVolatile(this.stack.work);
    const durable = opts.volatile ? 'never' : opts.syncCopyUp ? 'before' : 'behind';
    this.copyUp = new CopyUp(
      this.stack,
      (rel, samePath) => (samePath ? this.recording((j) => j.copiedUp(rel), rel) : this.changed(rel)),
      durable,
      (node) => this.served?.attrsChanged(node),
    );
  }

  /**
   * Serves lower lookups from the path index in `file` (indexing layers not in it yet) and
   * records upper changes in it. For the daemon only: it takes the upper dir's journal.
   * `progress`: told how far the indexing of each new layer got.
   */
  attachIndex(file: string, progress?: (dir: string, entries: number) => void): void {
    const index = PathIndex.open(file);
    this.index = index;
    const stack = index.stack(this.stack.lowers, progress);
    if (stack.special) log.info({ index: file }, 'lower layers hold overlayfs redirects or metacopies: lower lookups probe the layers');
    else this.stack.view = stack.view;
    if (this.stack.upper) this.journal = index.attachUpper(this.stack.upper, stack);
  }

  /** The daemon is about to serve: a volatile mount marks its work dir while it runs. */
  starting(): void {
    if (this.opts.volatile && this.stack.work) markVolatile(this.stack.work);
  }

  /**
   * After unmount: the journal is complete (unless a write to it failed), and a volatile
   * mount's upper dir is written out and unmarked.
   */
  async unmounted(): Promise<void> {
    await this.stack.landings.all();
    const failed = this.stack.landings.failed();
    if (failed.length > 0) log.error({ paths: failed }, 'copy-ups that could not be made durable: the lower data shows there after a remount');
    this.flushJournal();
    if (this.journal && !this.journalBroken) this.index!.detachUpper(this.journal);
    this.index?.close();
    this.index = undefined;
    this.journal = undefined;
    if (this.opts.volatile && this.stack.upper && this.stack.work) finishVolatile(this.stack.work, this.stack.upper);
    this.stack.release();
  }

  /**
   * Called after every change to the upper dir's namespace (disk first, then the index).
   * What is there is read now; the record of it is written with the next batch.
   */
  private changed(...rels: string[]): void {
    for (const rel of rels) this.changedTo(rel);
  }

  /** changed() for one path whose new object the caller knows (null: none; undefined: read it). */
  private changedTo(rel: string, st?: ObjectKind | null): void {
    if (rel === '') return;
    const seen = this.journaling((j) => j.observe(rel, st), rel);
    if (seen) this.recording((j) => j.record(rel, seen), rel);
  }

  private recording(write: (j: UpperJournal) => void, rel: string): void {
    const j = this.journal;
    if (!j || this.journalBroken) return;
    this.pendingJournal.push({ write, rel });
    // While a batch waits for the index lock, its retry timer writes these too.
    if (this.pendingJournal.length >= JOURNAL_BATCH && !j.behind) this.flushJournal(false);
    else this.journalTimer ??= setTimeout(() => this.flushJournal(false), this.opts.journalDelayMs ?? JOURNAL_DELAY_MS);
  }

  /**
   * Runs a journal step now. A failure breaks the journal (a lock another process holds is
   * no failure: writeBatch waits and retries): logged once, nothing more is recorded (the
   * next mount rebuilds it from the upper dir), and other readers are told
   * (UpperJournal.markIncomplete).
   */
  private journaling<T>(step: (j: UpperJournal) => T, rel: string): T | undefined {
    const j = this.journal;
    if (!j || this.journalBroken) return undefined;
    try {
      return step(j);
    } catch (e) {
      // The disk change stands; the journal is repaired from the upper dir at next mount.
      this.journalBroken = true;
      this.pendingJournal = [];
      clearTimeout(this.journalTimer);
      this.journalTimer = undefined;
      const err = (e as Error).message;
      log.error({ path: rel, err }, 'recording an upper change in the path index failed: no more are recorded, the next mount rebuilds the journal from the upper dir');
      j.markIncomplete(err);
      return undefined;
    }
  }

  /**
   * Writes the pending journal records, in order, in one transaction (UpperJournal.writeBatch).
   * When another process keeps the index locked past the wait, the batch stays pending and
   * is tried again on a timer, the journal is not broken for it. `settle` (FSYNCDIR,
   * unmount: something waits on the journal) waits longer for the lock
   * than the batches written on the timer, which hold up the daemon's requests.
   */
  flushJournal(settle = true): void {
    clearTimeout(this.journalTimer);
    this.journalTimer = undefined;
    const batch = this.pendingJournal;
    if (batch.length === 0) return;
    this.pendingJournal = [];
    const retryInMs = this.journaling((j) => j.writeBatch(batch, settle), batch[0]!.rel);
    this.markJournalWaiting(retryInMs !== undefined);
    if (retryInMs === undefined) return;
    this.pendingJournal = batch.concat(this.pendingJournal);
    this.journalTimer = setTimeout(() => this.flushJournal(false), retryInMs);
    // The daemon runs as long as its mount does; the retry must not keep it after that.
    this.journalTimer.unref();
  }

  /**
   * WORK/stratafs/journal-waiting exists while records wait for another process's lock on
   * the index, so that `strata diff` of the mounted container waits for them (or says it
   * cannot answer yet) instead of reading a journal that misses them.
   */
  private markJournalWaiting(waiting: boolean): void {
    if (waiting === this.journalWaiting || !this.stack.work) return;
    this.journalWaiting = waiting;
    const marker = journalWaitingMarker(this.stack.work);
    try {
      if (waiting) fs.writeFileSync(marker, `${process.pid}\n`, { mode: 0o644 });
      else fs.rmSync(marker, { force: true });
    } catch (e) {
      // A full disk must not take the daemon down: diff then goes without the warning.
      log.warn({ err: e, marker }, 'could not update the journal-waiting marker');
    }
  }

  private writable(): void {
    if (this.stack.readOnly) throw fsError('EROFS');
  }

  private upperPath(node: Node): string | Buffer {
    // An unnamed O_TMPFILE file: open() follows this link to it (calls that would not
    // follow it, lstat, lchown and the l*xattr family, go by its fd, UNode.anon, instead).
    const anon = node.data.anon;
    return anon === undefined ? this.stack.upperPath(node.path()) : `/proc/self/fd/${anon}`;
  }

  private childUpper(parent: Node, name: string): string | Buffer {
    return this.stack.upperPath(parent.childPath(name));
  }

  /** Where the object's content is read from: the upper copy, or the lower one. */
  private contentPath(node: Node): string | Buffer {
    const data = lowerData(node.data);
    return data ? this.stack.lowerPath(data) : this.upperPath(node);
  }

  /** Where metadata is read from: the upper copy when there is one. */
  private metaPath(node: Node): string | Buffer {
    return node.data.upper ? this.upperPath(node) : this.stack.lowerPath(node.data.lowers[0]!);
  }

  private attrOf(r: Resolved): Attr {
    return { ...r.st, ino: r.ino, blocks: r.data.dataBlocks ?? r.st.blocks, nlink: shownNlink(r.data, r.st) };
  }


  root(): { attr: Attr; data: UNode } {
    const r = resolveRoot(this.stack);
    // The bridge keeps this very object as the root inode's data; copy-up's path walks
    // (hard-link siblings) start from a stand-in that shares it.
    const data = r.data;
    const root = rootStandIn(data);
    if (!this.served) this.copyUp.root = () => root;
    return { attr: this.attrOf(r), data };
  }

  /** Served by a bridge: copy-up walks start from the real root and report side effects to the kernel. */
  serving(served: Served<UNode>): void {
    this.served = served;
    this.copyUp.root = () => served.root;
  }

  lookup(_ctx: Context, parent: Node, name: string): Entry<UNode> {
    const r = resolveChild(this.stack, parent, name);
    return { attr: this.attrOf(r), data: r.data };
  }

  getattr(_ctx: Context, node: Node, fh: UnionHandle | undefined): Attr {
    const fd = fh?.upper ? fh.fd : node.data.anon;
    const st = fd !== undefined ? fstatHost(fd) : lstatHost(this.metaPath(node));
    if (!st) throw fsError('ESTALE', `${node.path()}: gone from the layers`);
    st.ino = node.ino;
    const d = node.data;
    st.nlink = shownNlink(d, st);
    // Data below (an upper or lower metacopy): its blocks are the ones the file has.
    const data = d.metacopy || d.data ? lowerData(d) : undefined;
    if (data) {
      const blocks = d.dataBlocks ?? lstatHost(this.stack.lowerPath(data))?.blocks;
      if (blocks !== undefined) st.blocks = blocks;
    }
    return st;
  }

  setattr(ctx: Context, node: Node, s: SetAttr, fh: UnionHandle | undefined): Promise<Attr> | Attr {
    this.writable();
    // A size change needs the data; anything else only the metadata, and a copy made for
    // it takes the new mode and times directly (one syscall less than changing them after).
    const metaOnly = s.size === undefined;
    const up = node.type === C.S_IFDIR ? this.copyUp.dir(node) : this.copyUp.file(node, metaOnly, metaOnly ? { attrs: s } : { empty: s.size === 0 });
    return after(up, (copied) => {
      let rest = copied === true && metaOnly ? { uid: s.uid, gid: s.gid } : s;
      // Through an fd when there is one: a file unlinked while open has no path left.
      const handle = fh?.upper ? fh : this.anonFd(node);
      if (handle && handle !== fh && rest.size !== undefined) {
        // The fd the union keeps (UNode.anon) is read-only, and ftruncate of one is EINVAL:
        // the size goes by its /proc path, which truncate(2) opens anew for writing.
        fs.truncateSync(this.upperPath(node), rest.size);
        rest = { ...rest, size: undefined };
      }
      applySetAttr(handle ? '' : this.upperPath(node), node.type === C.S_IFLNK, rest, handle);
      return this.getattr(ctx, node, fh);
    });
  }

  readlink(_ctx: Context, node: Node): Buffer {
    return fs.readlinkSync(this.contentPath(node), { encoding: 'buffer' });
  }

  /**
   * Creates a new object at parent/name in the upper dir. Where a whiteout stands (the name
   * was deleted from a lower layer), the object is made in the work dir and swapped in
   * (RENAME_EXCHANGE), as overlayfs does, so the name is never briefly the lower object;
   * a directory made there is opaque, so the deleted lower contents stay hidden.
   */
  private place(ctx: Context, parent: Node, name: string, mode: number, make: (at: string) => void, linked = false): Entry<UNode> {
    this.writable();
    this.copyUp.dir(parent);
    const target = this.childUpper(parent, name);
    // A new object belongs to its maker; another name of an existing one (a hard link)
    // leaves it its owner.
    const own = (at: string | Buffer): void => {
      if (!linked) giveToCaller(ctx, at, this.upperPath(parent), mode);
    };
    // Made in place first: only when that finds the name taken (EEXIST) is it looked at,
    // which saves an lstat of every new name.
    try {
      withCallerUmask(ctx, () => make(typeof target === 'string' ? target : target.toString('latin1')));
      own(target);
    } catch (e) {
      const existing = (e as NodeJS.ErrnoException).code === 'EEXIST' ? lstatHost(target) : undefined;
      if (!existing || !isWhiteout(existing)) throw e;
      const tmp = this.stack.tmpName();
      // Under the caller's umask, but not the target parent's default ACL: the scratch dir has none.
      withCallerUmask(ctx, () => make(tmp));
      try {
        const isDir = (mode & C.S_IFMT) === C.S_IFDIR;
        if (isDir) setOpaque(tmp);
        // Made where the parent's set-gid bit could not reach it (a link is no new object).
        if (!linked) inheritSetgid(tmp, this.upperPath(parent), isDir);
        own(tmp);
        native.renameat2(tmp, target, native.RENAME_EXCHANGE);
      } catch (e2) {
        fs.rmSync(tmp, { recursive: true, force: true });
        throw e2;
      }
      fs.unlinkSync(tmp);
    }
    const rel = parent.childPath(name);
    if (linked) {
      // Another name of an existing object: it keeps the inode number it has.
      this.changedTo(rel);
      return this.lookup(ctx, parent, name);
    }
    // A new object has no records of ours to read back (no origin, no metacopy, and a new
    // directory has nothing below it: an opaque one, or a name no lower layer has).
    const st = lstatHostOrThrow(target);
    this.changedTo(rel, st);
    return { attr: { ...st, ino: this.stack.unionIno(st.dev, st.ino) }, data: { upper: true, metacopy: false, lowers: [] } };
  }

  mknod(ctx: Context, parent: Node, name: string, mode: number, rdev: number): Entry<UNode> {
    // A 0/0 character device is a whiteout on disk: it would delete, not create.
    if ((mode & C.S_IFMT) === C.S_IFCHR && rdev === 0) throw fsError('EPERM');
    const { major, minor } = decodeDev(rdev);
    return this.place(ctx, parent, name, mode, (at) => native.mknod(osPath(at), mode, major, minor));
  }

  mkdir(ctx: Context, parent: Node, name: string, mode: number): Entry<UNode> {
    return this.place(ctx, parent, name, C.S_IFDIR | mode, (at) => fs.mkdirSync(osPath(at), mode & 0o7777));
  }

  symlink(ctx: Context, parent: Node, name: string, target: Buffer): Entry<UNode> {
    return this.place(ctx, parent, name, C.S_IFLNK, (at) => fs.symlinkSync(target, osPath(at)));
  }

  link(ctx: Context, node: Node, newParent: Node, newName: string): Promise<Entry<UNode>> | Entry<UNode> {
    this.writable();
    const anon = node.data.anon;
    if (anon !== undefined) {
      // An O_TMPFILE file gets its first name; from here on it is reached by that name.
      const e = this.place(ctx, newParent, newName, node.type, (at) => native.linkFollow(`/proc/self/fd/${anon}`, osPath(at)), true);
      fs.closeSync(anon);
      node.data.anon = undefined;
      return e;
    }
    // A name made while the copy lands would carry its mark with no data below it.
    return after(this.copyUp.file(node, false), () => after(this.landed(node), () =>
      this.place(ctx, newParent, newName, node.type, (at) => fs.linkSync(this.upperPath(node), osPath(at)), true),
    ));
  }

  create(ctx: Context, parent: Node, name: string, flags: number, mode: number): { entry: Entry<UNode>; open: OpenResult<UnionHandle> } {
    let opened: { fd: number; writable: boolean } | undefined;
    const entry = this.place(ctx, parent, name, C.S_IFREG | mode, (at) => {
      opened = openHost(osPath(at), flags | C.O_CREAT | C.O_EXCL, !!this.opts.passthrough, mode & 0o7777);
    });
    const o = opened!;
    return { entry, open: { handle: { fd: o.fd, upper: true }, backingFd: o.fd, backingWritable: o.writable } };
  }

  /**
   * O_TMPFILE: an unnamed file in the parent's upper dir (copied up first, as overlayfs
   * does), owned by the caller. Nothing is recorded in the journal until a LINK names it.
   */
  tmpfile(ctx: Context, parent: Node, flags: number, mode: number): { entry: Entry<UNode>; open: OpenResult<UnionHandle> } {
    this.writable();
    this.copyUp.dir(parent);
    const o = withCallerUmask(ctx, () => openHost(this.upperPath(parent), (flags & (O_ACCMODE | C.O_EXCL)) | O_TMPFILE, !!this.opts.passthrough, mode & 0o7777));
    let anon: number | undefined;
    try {
      // Its own fd, for as long as it has no name: the open's fd goes at its release.
      anon = fs.openSync(`/proc/self/fd/${o.fd}`, C.O_RDWR);
      giveToCaller(ctx, { fd: anon }, this.upperPath(parent), mode);
      const st = fstatHost(anon)!;
      const data: UNode = { upper: true, metacopy: false, lowers: [], anon };
      return { entry: { attr: { ...st, ino: this.stack.unionIno(st.dev, st.ino) }, data }, open: { handle: { fd: o.fd, upper: true }, backingFd: o.fd, backingWritable: o.writable } };
    } catch (e) {
      if (anon !== undefined) fs.closeSync(anon);
      fs.closeSync(o.fd);
      throw e;
    }
  }

  /** An O_TMPFILE file's own fd, as a handle, while it has no name. */
  private anonFd(node: Node): { fd: number } | undefined {
    const anon = node.data.anon;
    return anon === undefined ? undefined : { fd: anon };
  }

  /** The kernel forgot the inode: an O_TMPFILE file never named is gone with its fd. */
  forget(node: Node): void {
    const anon = node.data.anon;
    if (anon === undefined) return;
    node.data.anon = undefined;
    fs.closeSync(anon);
  }

  /**
   * Takes a name out of the upper dir, leaving a whiteout when a lower layer still has it.
   * The whiteout is made in the work dir and swapped in, so the name never shows the lower
   * object in between; what was there is then removed from the work dir.
   */
  private removeName(parent: Node, name: string, child: Resolved): void {
    this.takeName(parent, name, child);
    this.changed(parent.childPath(name));
  }

  private takeName(parent: Node, name: string, child: Resolved): void {
    this.copyUp.dir(parent);
    const target = this.childUpper(parent, name);
    this.keepForLowerOpens(parent.child(name), target);
    if (!child.data.upper) {
      makeWhiteout(target);
      return;
    }
    // Only a name some lower layer has in this directory needs hiding. A copy moved here
    // from elsewhere has its lower object under another path (its redirect): nothing is
    // left behind for it, as overlayfs leaves nothing (a whiteout in a directory the
    // kernel sees as upper-only would show up there as a char device).
    if (!lowerHasName(this.stack, parent, name)) {
      fs.rmSync(target, { recursive: true });
      return;
    }
    const tmp = this.stack.tmpName();
    makeWhiteout(tmp);
    native.renameat2(tmp, target, native.RENAME_EXCHANGE);
    fs.rmSync(tmp, { recursive: true, force: true });
  }

  /**
   * An upper file whose names the kernel forgot with their directories while an fd opened
   * before its copy-up still holds it (InodeTable.supersede): the object keeps its names on
   * disk but the union no longer knows one, so fstat and fchmod through that fd failed
   * with ESTALE after a drop of the kernel's caches (found by a helper's campaign). An fd
   * of the file is kept, as for one unlinked while open, until the kernel forgets it.
   */
  orphaned(node: Node): void {
    try {
      this.keepOpen(node, this.upperPath(node));
    } catch (e) {
      log.debug({ err: e, nodeid: node.nodeid }, 'kept no fd of a file whose names the kernel forgot');
    }
  }

  /**
   * A copied-up file about to lose its last name while handles opened on its lower file
   * remain (UNode.lowerOpens): an fd of the copy is kept, as for an O_TMPFILE file, so that
   * fstat and fchmod through those handles reach it (the kernel's overlayfs shows it, with
   * nlink 0) instead of failing with ESTALE. Closed when the kernel forgets the inode.
   */
  private keepForLowerOpens(node: Node | undefined, target: string | Buffer): void {
    if (node?.data.lowerOpens && node.links.length <= 1) this.keepOpen(node, target);
  }

  /** Keeps an fd of an upper regular file at `at` in UNode.anon, unless it has one. */
  private keepOpen(node: Node, at: string | Buffer): void {
    const d = node.data;
    if (d.upper && d.anon === undefined && node.type === C.S_IFREG) d.anon = openToKeep(at);
  }

  /**
   * True when the file keeps other names: more links of its upper copy, or of the lower file
   * for one not copied up (the lower set's other names show it still, under its number).
   */
  unlink(_ctx: Context, parent: Node, name: string): Promise<boolean> | boolean {
    this.writable();
    return after(this.copiedUp(parent.child(name)), () => {
      const r = resolveChild(this.stack, parent, name);
      this.removeName(parent, name, r);
      return (Number(r.st.mode) & C.S_IFMT) === C.S_IFREG && r.st.nlink > 1;
    });
  }

  rmdir(_ctx: Context, parent: Node, name: string): void {
    this.writable();
    const r = resolveChild(this.stack, parent, name);
    if ((Number(r.st.mode) & C.S_IFMT) !== C.S_IFDIR) throw fsError('ENOTDIR');
    const child = parent.child(name);
    // Empty means empty in the merged view: entries of lower layers count too.
    const probe = child ?? standIn(parent, name, r.data, Number(r.st.mode) & C.S_IFMT);
    if (mergedEntries(this.stack, probe).length > 0) throw fsError('ENOTEMPTY');
    this.removeName(parent, name, r);
  }

  /**
   * Prepares a directory to move: copied up itself (not its contents), and when lower
   * layers contribute to it, a redirect to where they hold it, so its lower contents are
   * still found at the new name (overlayfs's redirect_dir).
   */
  private movableDir(node: Node): void {
    this.copyUp.dir(node);
    if (node.data.lowers.length === 0) return;
    // Absolute: overlayfs writes a bare name for a rename within one directory, which
    // would point elsewhere once the directory moves to another parent.
    const up = this.upperPath(node);
    const want = redirectTarget(this.stack, node);
    if (redirectOf(up) !== want) setRedirect(up, want);
  }

  /**
   * A regular file moves as a metadata-only copy that redirects to where its data lies
   * below (overlayfs with metacopy=on does the same): a rename copies no data.
   */
  private movableFile(node: Node, dir: Node): Promise<void> | void {
    const d = node.data;
    // A metadata-only copy finds its data below by its own path, or by its redirect: once
    // it moves, it needs the redirect (also when an earlier chmod made it, at its old name).
    const redirect = (!d.upper || d.metacopy) && d.lowers.length > 0 ? redirectTarget(this.stack, node) : undefined;
    return after(this.copyUp.file(node, node.type === C.S_IFREG, { redirect, changesParent: dir }), (copied) => {
      if (!copied && d.metacopy && redirect) setRedirect(this.upperPath(node), redirect);
    });
  }

  /** Prepares `node`, known in `dir` by the name a rename moves, to move. */
  private movable(node: Node, dir: Node): Promise<void> | void {
    return node.type === C.S_IFDIR ? this.movableDir(node) : this.movableFile(node, dir);
  }

  /** True when a file it replaced keeps other names (as unlink says). */
  rename(ctx: Context, parent: Node, name: string, newParent: Node, newName: string, flags: number): Promise<boolean> | boolean {
    this.writable();
    if (flags & native.RENAME_WHITEOUT) throw fsError('EINVAL');
    const exchange = (flags & native.RENAME_EXCHANGE) !== 0;
    const src = parent.child(name) ?? this.inodeFor(ctx, parent, name);
    let dstRes: Resolved | undefined;
    try {
      dstRes = resolveChild(this.stack, newParent, newName);
    } catch {
      dstRes = undefined;
    }
    const dst = dstRes ? (newParent.child(newName) ?? this.inodeFor(ctx, newParent, newName)) : undefined;
    if (exchange && !dst) throw fsError('ENOENT');
    const survives = !exchange && dst !== undefined && dst !== src && dst.type === C.S_IFREG && dstRes!.st.nlink > 1;
    // Before anything is copied up: a rename that fails leaves the upper dir as it was.
    if (!exchange) this.refuseNonEmpty(dst);
    this.copyUp.dir(parent);
    this.copyUp.dir(newParent);
    // `left`: what the rename left at the old name, when moveNames knows it.
    const done = (left: ObjectKind | null | undefined): void => {
      const from = parent.childPath(name);
      const to = newParent.childPath(newName);
      // A directory's record re-reads the upper dir below both names when it is written,
      // so it waits in the queue like any record (behind those of earlier changes) instead
      // of holding up this request for the index lock and the walk.
      if (src.type === C.S_IFDIR || dst?.type === C.S_IFDIR) {
        this.copyUp.forgetMovedDirs();
        this.recording((j) => j.renamed(from, to, exchange), to);
      } else if (left !== undefined) {
        // Both ends are known without an lstat (two syscalls of every rename of a file).
        this.changedTo(from, left);
        this.changedTo(to, { mode: src.type, rdev: 0 });
      } else this.changed(from, to);
    };
    // A directory moved or replaced waits, in the step that moves it, for copy-ups under way
    // below it (CopyUp.below): each goes into place by the path it started with.
    const move = (): Promise<boolean> | boolean => {
      const busy =
        (src.type === C.S_IFDIR ? this.copyUp.below(parent.childPath(name)) : undefined) ??
        (dst?.type === C.S_IFDIR ? this.copyUp.below(newParent.childPath(newName)) : undefined);
      if (busy) return busy.then(move);
      done(this.moveNames(parent, name, newParent, newName, flags, src, dst));
      return survives;
    };
    // A copy still under way moves once it is in place (else it would be put back at the
    // old name, or over the file moved onto it); one still landing (landing.ts), once it
    // has: its mark would point at no data below the new name.
    return after(this.copiedUp(src, dst), () => after(this.landed(src, exchange ? dst : undefined), () => after(this.movable(src, parent), () =>
      after(exchange ? this.movable(dst!, newParent) : undefined, move),
    )));
  }

  /** A rename onto a directory that shows entries (its own or its lower layers') fails with ENOTEMPTY. */
  private refuseNonEmpty(dst: Node | undefined): void {
    if (dst?.type === C.S_IFDIR && mergedEntries(this.stack, dst).length > 0) throw fsError('ENOTEMPTY');
  }

  /**
   * The rename on disk, once both ends are in the upper dir. Returns what it left at the old
   * name when a regular file or symlink moved (a whiteout, or null for nothing), else undefined.
   */
  private moveNames(parent: Node, name: string, newParent: Node, newName: string, flags: number, src: Node, dst: Node | undefined): ObjectKind | null | undefined {
    const exchange = (flags & native.RENAME_EXCHANGE) !== 0;
    const from = this.childUpper(parent, name);
    const to = this.childUpper(newParent, newName);
    const srcLowerName = lowerHasName(this.stack, parent, name);
    if (dst && !exchange && dst.type === C.S_IFDIR) {
      // Again: something may have been made in it while the rename waited for copy-ups.
      this.refuseNonEmpty(dst);
      // Its upper copy may still hold whiteouts: clear it away before the rename.
      if (dst.data.upper) {
        const tmp = this.stack.tmpName();
        fs.renameSync(to, tmp);
        fs.rmSync(tmp, { recursive: true, force: true });
      }
    }
    // A directory with no lower contents of its own, landing on a name that lower
    // layers have, must hide theirs.
    if (src.type === C.S_IFDIR && src.data.lowers.length === 0 && lowerHasName(this.stack, newParent, newName)) setOpaque(from);
    if (exchange && dst!.type === C.S_IFDIR && dst!.data.lowers.length === 0 && srcLowerName) setOpaque(to);
    // A file the rename replaces loses that name as by an unlink (takeName).
    if (dst && !exchange && dst !== src) this.keepForLowerOpens(dst, to);
    const target = exchange ? undefined : lstatHost(to);
    if (target && isWhiteout(target)) {
      // A name deleted from a lower layer: swap the object in for the whiteout (a
      // directory cannot be renamed over a device). The whiteout, now at the old name,
      // stays where a lower layer still has that name, and goes otherwise.
      native.renameat2(from, to, native.RENAME_EXCHANGE);
      if (!srcLowerName) fs.unlinkSync(from);
    } else {
      const whiteout = !exchange && srcLowerName ? native.RENAME_WHITEOUT : 0;
      if (flags === 0 && whiteout === 0) fs.renameSync(from, to);
      else native.renameat2(from, to, flags | whiteout);
    }
    if (exchange || (src.type !== C.S_IFREG && src.type !== C.S_IFLNK)) return undefined;
    return srcLowerName ? WHITEOUT_KIND : null;
  }

  /** A node for a name the kernel did not look up through us (rare: the bridge knows most). */
  private inodeFor(ctx: Context, parent: Node, name: string): Node {
    const e = this.lookup(ctx, parent, name);
    return standIn(parent, name, e.data!, e.attr.mode & C.S_IFMT);
  }

  open(_ctx: Context, node: Node, flags: number): Promise<OpenResult<UnionHandle>> | OpenResult<UnionHandle> {
    const write = (flags & O_ACCMODE) !== C.O_RDONLY || (flags & C.O_TRUNC) !== 0;
    const clean = flags & ~(C.O_CREAT | C.O_EXCL);
    if (!write) {
      const onUpper = node.data.upper && !node.data.metacopy;
      const o = openHost(this.contentPath(node), clean & ~C.O_TRUNC, onUpper && !!this.opts.passthrough);
      if (onUpper) return { handle: { fd: o.fd, upper: true }, backingFd: o.fd, backingWritable: o.writable };
      // A lower file never changes: its pages may stay cached across opens. Passed through,
      // its inode stays on the lower file while this open lasts, so the open keeps reading
      // the lower data after a copy-up (the bridge gives later opens a fresh inode). Through
      // the daemon (followCopyUp), reads switch to the upper copy: read() below.
      const pt = this.stack.readOnly || !this.opts.followCopyUp;
      node.data.lowerOpens = (node.data.lowerOpens ?? 0) + 1;
      return { handle: { fd: o.fd, upper: false }, keepCache: true, backingFd: pt ? o.fd : undefined, backingWritable: false };
    }
    this.writable();
    const opened = (): OpenResult<UnionHandle> => {
      const o = openHost(this.upperPath(node), clean, !!this.opts.passthrough);
      return { handle: { fd: o.fd, upper: true }, backingFd: o.fd, backingWritable: o.writable };
    };
    // O_SYNC and O_DSYNC writes are durable as they return: so must the copy be first.
    return after(this.copyUp.file(node, false, { empty: (flags & C.O_TRUNC) !== 0 }), (copied) => {
      // An OPEN reply carries no attributes: the kernel is told that the copy has its own (ctime, blocks).
      if (copied) this.served?.attrsChanged(node);
      return (flags & C.O_DSYNC) !== 0 ? after(this.landed(node), opened) : opened();
    });
  }

  /** A handle opened on a lower file through the daemon follows its copy-up, so it reads what is written after it (as overlayfs does). */
  override read(ctx: Context, node: Node, h: UnionHandle, offset: number, size: number): Buffer {
    if (!h.upper && node.data.upper && !node.data.metacopy) {
      const fd = fs.openSync(this.metaPath(node), C.O_RDONLY);
      fs.closeSync(h.fd);
      h.fd = fd;
      h.upper = true;
      node.data.lowerOpens! -= 1;
    }
    return super.read(ctx, node, h, offset, size);
  }

  override release(ctx: Context, node: Node, h: UnionHandle): void {
    if (!h.upper) node.data.lowerOpens! -= 1;
    super.release(ctx, node, h);
  }

  /**
   * A volatile mount answers ENOSYS, which the kernel takes as "nothing to do": fsync(2)
   * returns 0 and no FSYNC is sent again (fuse-overlayfs's fsync=0 does the same).
   */
  override fsync(ctx: Context, node: Node, h: UnionHandle | undefined, datasync: boolean): Promise<void> | void {
    if (this.opts.volatile) throw fsError('ENOSYS');
    // What fsync acknowledges must survive a crash: the copy-up it writes into too.
    return after(this.landed(node), () => super.fsync(ctx, node, h, datasync));
  }

  /** Copy-ups of these nodes still under way, finished (see CopyUp.inFlight). */
  private copiedUp(...nodes: Array<Node | undefined>): Promise<void> | undefined {
    const busy = nodes.map((n) => n && this.copyUp.inFlight(n)).filter((p): p is Promise<void> => p !== undefined);
    return busy.length === 0 ? undefined : Promise.all(busy).then(() => undefined);
  }

  /**
   * Waits for the copies of these files still landing (landing.ts); one whose fsync failed
   * fails the caller with that error, as a failed writeback fails fsync(2).
   */
  private landed(...nodes: Array<Node | undefined>): Promise<void> | undefined {
    const ds = nodes.map((n) => n?.data).filter((d): d is UNode => d?.landing !== undefined);
    if (ds.length === 0) return undefined;
    return Promise.all(ds.map((d) => d.landing!.done)).then(() => {
      for (const d of ds) {
        const l = d.landing!;
        if (l.error) throw fsError((l.error.code ?? 'EIO') as Parameters<typeof fsError>[0], `${l.rel}: its copy-up could not be made durable`);
        d.landing = undefined;
      }
    });
  }

  /**
   * Once every copy under way has landed, writes the pending journal records and syncs the
   * dir unless volatile: how `strata diff`, `commit` and `export` read a live mount.
   */
  fsyncdir(_ctx: Context, node: Node, datasync: boolean): Promise<void> | void {
    return this.stack.landings.all().then(() => {
      this.flushJournal();
      if (node.data.upper && this.stack.upper && !this.opts.volatile) return fsyncDir(this.upperPath(node), datasync);
    });
  }

  /** A directory only in lower layers never changes except through this mount; see keepListings for the others. */
  opendir(_ctx: Context, node: Node): { cache: boolean } {
    return { cache: !node.data.upper || this.opts.keepListings === true };
  }

  readdir(_ctx: Context, node: Node): DirEntry[] {
    return mergedEntries(this.stack, node);
  }

  statfs(): StatfsOut {
    return statfsOf(this.stack.upper ?? this.stack.lowers[0]!);
  }

  getxattr(_ctx: Context, node: Node, name: string, fh?: UnionHandle): Buffer {
    const stored = xattrOnDisk(name);
    if (stored === undefined) throw ENODATA_ERROR;
    return this.xattrOf(node, stored, fh);
  }

  /**
   * The fd xattrs are read and written through when the object has no path: an O_TMPFILE
   * file not named yet, or a file unlinked while open (the bridge hands over one of its
   * handles, which is in the upper dir for anything written since the unlink).
   */
  private xattrFd(node: Node, fh: UnionHandle | undefined): number | undefined {
    return node.data.anon ?? (fh?.upper ? fh.fd : undefined);
  }

  /**
   * The stored xattr, or the error reading it. ENODATA is the common answer (the kernel asks
   * for security.capability before the first write to each file): no error is built for it.
   */
  private xattrOf(node: Node, stored: string, fh?: UnionHandle): Buffer {
    const fd = this.xattrFd(node, fh);
    if (fd !== undefined) return native.fgetxattr(fd, stored);
    const v = native.lgetxattrOrErrno(this.metaPath(node), stored);
    if (typeof v !== 'number') return v;
    if (v === ENODATA) throw ENODATA_ERROR;
    // Rare: read again to throw the addon's error, which names the path and the syscall.
    return native.lgetxattr(this.metaPath(node), stored);
  }

  listxattr(_ctx: Context, node: Node, fh?: UnionHandle): string[] {
    const out: string[] = [];
    const fd = this.xattrFd(node, fh);
    for (const n of fd !== undefined ? native.flistxattr(fd) : native.llistxattr(this.metaPath(node))) {
      const shown = xattrShown(n);
      if (shown !== undefined) out.push(shown);
    }
    return out;
  }

  setxattr(_ctx: Context, node: Node, name: string, value: Buffer, flags: number, fh?: UnionHandle): Promise<void> | void {
    this.writable();
    const stored = xattrOnDisk(name);
    if (stored === undefined) throw fsError('EPERM');
    const up = node.type === C.S_IFDIR ? this.copyUp.dir(node) : this.copyUp.file(node, true);
    return after(up, () => {
      const fd = this.xattrFd(node, fh);
      return fd !== undefined ? native.fsetxattr(fd, stored, value, flags) : native.lsetxattr(this.upperPath(node), stored, value, flags);
    });
  }

  removexattr(_ctx: Context, node: Node, name: string, fh?: UnionHandle): Promise<void> | void {
    this.writable();
    const stored = xattrOnDisk(name);
    if (stored === undefined) throw ENODATA_ERROR;
    // Removing what is not there must fail before anything is copied up.
    this.xattrOf(node, stored, fh);
    const up = node.type === C.S_IFDIR ? this.copyUp.dir(node) : this.copyUp.file(node, true);
    return after(up, () => {
      const fd = this.xattrFd(node, fh);
      return fd !== undefined ? native.fremovexattr(fd, stored) : native.lremovexattr(this.upperPath(node), stored);
    });
  }
}
