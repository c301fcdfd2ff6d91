// Adapts an inode-based FileSystem to the raw, nodeid-based protocol: keeps the inode table
// and its lookup counts, open files, directory listings (listing.ts) and what removed
// directories keep (removed-dir.ts), passthrough backing ids, and turns answers into reply
// bodies. Everything FUSE-specific that is not per-filesystem lives here.

import { FATTR_ATIME, FATTR_ATIME_NOW, FATTR_CTIME, FATTR_FH, FATTR_GID, FATTR_KILL_SUIDGID, FATTR_MODE, FATTR_MTIME, FATTR_MTIME_NOW, FATTR_SIZE, FATTR_UID, FOPEN_CACHE_DIR, FOPEN_DIRECT_IO, FOPEN_KEEP_CACHE, FOPEN_NOFLUSH, FOPEN_NONSEEKABLE, FOPEN_PASSTHROUGH, FSYNC_FDATASYNC, GETATTR_FH, OPEN_KILL_SUIDGID, RELEASE_FLUSH, WRITE_KILL_SUIDGID } from '../fuse/abi.js';
import { errnoOf, errnoNumber, fsError } from '../fuse/errors.js';
import * as out from '../fuse/replies.js';
import type * as R from '../fuse/requests.js';
import type { MaybeAsync, RawFileSystem, ReplyBody, RequestContext, Session } from '../fuse/session.js';
import { native } from '../native/binding.js';
import { log } from '../util/log.js';
import { after, recover } from '../util/maybe-async.js';
import { checkAccess } from './access.js';
import type { Attr, Context, Entry, FileSystem, OpenResult, SetAttr, Timeouts } from './api.js';
import type { Inode, RemovedDir } from './inode.js';
import { keptOfDir, removedDir, removedXattrs, setRemoved } from './removed-dir.js';
import { InodeTable } from './inode-table.js';
import { BackingTable, HandleTable, OTHER_BACKING, type OpenFile } from './open-files.js';
import { Listing, ListingCache } from './listing.js';

export interface BridgeOptions {
  /** How long the kernel may keep names and attributes, of every inode; default 1 s each. */
  timeouts?: Timeouts;
  /** Seconds the kernel may remember that a name does not exist; 0 = not at all. */
  negativeTimeout?: number;
}

const ENOENT = errnoNumber('ENOENT');
const O_ACCMODE = 3;
const O_RDONLY = 0;

function need<T>(m: T | undefined): T {
  if (m === undefined) throw fsError('ENOSYS');
  return m;
}

/**
 * The mode after a write or truncate by a caller without CAP_FSETID, as the VFS decides it
 * (setattr_should_drop_sgid): setuid goes; setgid goes when group-execute is set, or when
 * the caller is not in the file's group (FUSE tells us only the primary group).
 * undefined when nothing changes.
 */
function killSuidgid(mode: number, fileGid: number, ctx: Context): number | undefined {
  let m = mode & ~0o4000;
  if (mode & 0o010 || ctx.gid !== fileGid) m &= ~0o2000;
  return m === mode ? undefined : m & 0o7777;
}

/** How long a side effect on an inode's attributes may stay unknown to the kernel (see attrsChanged). */
const STALE_ATTRS_MS = 10;

/** Files with set-id bits: see opened(). */
const SETID = 0o6000;
const S_IFDIR = 0o040000;

const ZERO_ATTR: Attr = { ino: 0n, size: 0, blocks: 0, atime: 0, atimensec: 0, mtime: 0, mtimensec: 0, ctime: 0, ctimensec: 0, mode: 0, nlink: 0, uid: 0, gid: 0, rdev: 0, blksize: 0 };

export class Bridge<D, H> implements RawFileSystem {
  readonly table: InodeTable<D>;
  private readonly files = new HandleTable<OpenFile<D, H>>();
  /** Opens served through the page cache, by nodeid: while any exist, no open of that inode may use passthrough. */
  private readonly cachedOpens = new Map<number, number>();
  private readonly listings = new ListingCache();
  private backing: BackingTable | undefined;
  private session: Session | undefined;
  private passthrough = false;
  private readonly timeouts: Timeouts;

  constructor(
    readonly fs: FileSystem<D, H>,
    private readonly opts: BridgeOptions = {},
  ) {
    const r = fs.root();
    this.table = new InodeTable<D>(r.attr.ino, r.data);
    if (fs.orphaned) this.table.orphaned = (node) => fs.orphaned!(node);
    this.timeouts = opts.timeouts ?? { entry: 1, attr: 1 };
    fs.serving?.({ root: this.table.root, attrsChanged: (node) => this.attrsChanged(node) });
  }

  /**
   * Inodes whose attributes changed as a side effect, told to the kernel together after
   * STALE_ATTRS_MS: a burst of copy-ups into one directory costs one notification and one
   * GETATTR of it, not one per copy-up.
   */
  private readonly staleAttrs = new Set<number>();
  private staleTimer: NodeJS.Timeout | undefined;

  private attrsChanged(node: Inode<D>): void {
    // Stand-ins (nodeid <= 0) are inodes the kernel does not know: it caches nothing of them.
    if (node.nodeid <= 0 || !this.session) return;
    this.staleAttrs.add(node.nodeid);
    this.staleTimer ??= setTimeout(() => this.sendStaleAttrs(), STALE_ATTRS_MS).unref();
  }

  private sendStaleAttrs(): void {
    this.staleTimer = undefined;
    for (const id of this.staleAttrs) this.invalidateAttr(id);
    this.staleAttrs.clear();
  }

  init(session: Session): void {
    this.session = session;
    this.passthrough = session.negotiated?.passthrough ?? false;
    this.backing = new BackingTable(
      (fd) => session.openBacking(fd),
      (id) => session.closeBacking(id),
    );
  }

  /** Registers a found or created entry with the inode table and builds the reply record. */
  private entryOut(parent: Inode<D>, name: string, e: Entry<D>): out.EntryOut {
    return this.entryOf(this.table.remember(parent, name, e.attr.ino, e.attr.mode, () => e.data as D), e.attr);
  }

  /** The reply record of a known inode, with the mount's cache timeouts. */
  private entryOf(node: Inode<D>, attr: Attr): out.EntryOut {
    const t = this.timeouts;
    return { nodeid: node.nodeid, generation: 0, entryValid: t.entry, attrValid: t.attr, attr };
  }

  private newEntry(parent: Inode<D>, name: string, v: MaybeAsync<Entry<D>>): MaybeAsync<ReplyBody> {
    return after(v, (e) => out.entryOut(this.entryOut(parent, name, e)));
  }

  lookup(ctx: RequestContext, name: string): MaybeAsync<ReplyBody> {
    const parent = this.table.get(ctx.nodeid);
    if (name === '.' || name === '..') {
      // Only asked with export support (NFS file handles): the kernel wants the inode itself.
      const node = name === '.' ? parent : (parent.parent() ?? this.table.root);
      return after(this.fs.getattr(ctx, node, undefined), (attr) => {
        return out.entryOut(this.entryOf(this.table.ref(node), attr));
      });
    }
    let e: Entry<D>;
    try {
      e = this.fs.lookup(ctx, parent, name);
    } catch (err) {
      const neg = this.opts.negativeTimeout ?? 0;
      if (neg > 0 && errnoOf(err) === ENOENT) {
        return out.entryOut({ nodeid: 0, generation: 0, entryValid: neg, attrValid: 0, attr: ZERO_ATTR });
      }
      throw err;
    }
    return out.entryOut(this.entryOut(parent, name, e));
  }

  forget(nodeid: number, nlookup: number): void {
    const gone = this.table.forget(nodeid, nlookup);
    if (!gone) return;
    this.listings.forget(nodeid);
    this.fs.forget?.(gone);
  }

  private fileOf(fh: number): OpenFile<D, H> {
    return this.files.get(fh);
  }

  getattr(ctx: RequestContext, body: R.GetattrIn): MaybeAsync<ReplyBody> {
    const node = this.table.get(ctx.nodeid);
    const fh = this.handleFor(node, body.getattrFlags & GETATTR_FH ? body.fh : undefined);
    // try/catch, not recover(): GETATTR is on every path walk, and needs no closures.
    let attr: MaybeAsync<Attr>;
    try {
      attr = this.fs.getattr(ctx, node, fh);
    } catch (e) {
      attr = removedDir(node, e).attr;
    }
    return after(attr, (a) => out.attrOut(a, this.attrTimeout(node, ctx.nodeid)));
  }

  /**
   * How long the kernel may keep the attributes it asked about by `nodeid`. Not at all
   * where the object may also be reached under another nodeid, whose changes (a write, a
   * link, an unlink of another name) never reach the attributes cached for this one:
   * - a superseded nodeid (an fd opened before a copy-up; campaign seed 1762);
   * - an inode without a name (unlinked while open). An unlink that leaves the object
   *   other names keeps them one inode (FileSystem.unlink, seed 1632); a rename over a
   *   hard-linked file, or a filesystem that does not say, may not.
   * Such inodes are few, and asked about only through their fds.
   */
  private attrTimeout(node: Inode<D>, nodeid: number): number {
    return nodeid !== node.nodeid || (node.links.length === 0 && !node.isRoot) ? 0 : this.timeouts.attr;
  }

  /**
   * The handle to use for an inode's attributes: the one the kernel named, or, for an inode
   * that has lost its last name (unlinked while open), any open handle of it, because
   * fstat() and fchmod() reach us without one and there is no path left.
   */
  private handleFor(node: Inode<D>, given: number | undefined): H | undefined {
    if (given !== undefined) {
      try {
        return this.files.get(given).handle;
      } catch {
        // fall through
      }
    }
    if (node.links.length > 0 || node.isRoot) return undefined;
    for (const f of this.files.values()) if (f.node === node) return f.handle;
    return undefined;
  }

  setattr(ctx: RequestContext, b: R.SetattrIn): MaybeAsync<ReplyBody> {
    const node = this.table.get(ctx.nodeid);
    const v = b.valid;
    const s: SetAttr = {};
    if (v & FATTR_MODE) s.mode = b.mode;
    if (v & FATTR_UID) s.uid = b.uid;
    if (v & FATTR_GID) s.gid = b.gid;
    if (v & FATTR_SIZE) s.size = b.size;
    if (v & FATTR_ATIME) s.atime = v & FATTR_ATIME_NOW ? 'now' : { sec: b.atime, nsec: b.atimensec };
    if (v & FATTR_MTIME) s.mtime = v & FATTR_MTIME_NOW ? 'now' : { sec: b.mtime, nsec: b.mtimensec };
    if (v & FATTR_CTIME) s.ctime = { sec: b.ctime, nsec: b.ctimensec };
    const fh = this.handleFor(node, v & FATTR_FH ? b.fh : undefined);
    const set = (): MaybeAsync<Attr> => {
      try {
        return need(this.fs.setattr).call(this.fs, ctx, node, s, fh);
      } catch (e) {
        // fchmod, fchown or futimes through the fd of a directory removed while open.
        return setRemoved(removedDir(node, e).attr, s);
      }
    };
    const apply = (): MaybeAsync<ReplyBody> =>
      after(set(), (a) => {
        // Through a superseded inode (an old open's fchmod, ftruncate...): the kernel updates
        // that inode's attributes, and must forget those of the object's current one.
        if (node.nodeid !== ctx.nodeid) this.invalidateAttr(node.nodeid);
        return out.attrOut(a, this.attrTimeout(node, ctx.nodeid));
      });
    // chown(f, -1, -1) drops set-id bits too, but the kernel (HANDLE_KILLPRIV_V2: it leaves
    // that to us) then sends a SETATTR that changes nothing (no ids, no FATTR_KILL_SUIDGID);
    // nothing else sends one for a non-directory (utimensat with both times UTIME_OMIT
    // returns before it reaches the filesystem).
    const chownNoIds = (v & ~FATTR_FH) === 0 && node.type !== S_IFDIR;
    if (v & FATTR_KILL_SUIDGID || chownNoIds) {
      return after(this.fs.getattr(ctx, node, fh), (a) => {
        s.mode = killSuidgid(s.mode ?? a.mode, s.gid ?? a.gid, ctx) ?? s.mode;
        return apply();
      });
    }
    return apply();
  }

  readlink(ctx: RequestContext): MaybeAsync<ReplyBody> {
    return need(this.fs.readlink).call(this.fs, ctx, this.table.get(ctx.nodeid));
  }

  symlink(ctx: RequestContext, b: R.SymlinkIn): MaybeAsync<ReplyBody> {
    const parent = this.table.get(ctx.nodeid);
    return this.newEntry(parent, b.name, need(this.fs.symlink).call(this.fs, ctx, parent, b.name, b.target));
  }

  /** The context of a creating request: with the caller's umask when the kernel left it to us. */
  private creating(ctx: RequestContext, umask: number): RequestContext {
    if (this.session?.negotiated?.dontMask) ctx.umask = umask;
    return ctx;
  }

  mknod(ctx: RequestContext, b: R.MknodIn): MaybeAsync<ReplyBody> {
    const parent = this.table.get(ctx.nodeid);
    return this.newEntry(parent, b.name, need(this.fs.mknod).call(this.fs, this.creating(ctx, b.umask), parent, b.name, b.mode, b.rdev));
  }

  mkdir(ctx: RequestContext, b: R.MkdirIn): MaybeAsync<ReplyBody> {
    const parent = this.table.get(ctx.nodeid);
    return this.newEntry(parent, b.name, need(this.fs.mkdir).call(this.fs, this.creating(ctx, b.umask), parent, b.name, b.mode));
  }

  link(ctx: RequestContext, b: R.LinkIn): MaybeAsync<ReplyBody> {
    const node = this.table.get(b.oldnodeid);
    const parent = this.table.get(ctx.nodeid);
    return this.newEntry(parent, b.newname, need(this.fs.link).call(this.fs, ctx, node, parent, b.newname));
  }

  unlink(ctx: RequestContext, name: string): MaybeAsync<ReplyBody> {
    const parent = this.table.get(ctx.nodeid);
    return after(need(this.fs.unlink).call(this.fs, ctx, parent, name), (survives) => this.table.unlinkName(parent, name, survives === true));
  }

  rmdir(ctx: RequestContext, name: string): MaybeAsync<ReplyBody> {
    const parent = this.table.get(ctx.nodeid);
    const node = parent.child(name);
    return after(keptOfDir(this.fs, ctx, node), (kept) =>
      after(need(this.fs.rmdir).call(this.fs, ctx, parent, name), () => {
        this.table.unlinkName(parent, name);
        if (kept) this.keepRemoved(node!, kept);
      }),
    );
  }

  private keepRemoved(node: Inode<D>, kept: RemovedDir): void {
    node.removed = kept;
    // Nothing reads a removed directory again.
    this.listings.forget(node.nodeid);
  }

  rename(ctx: RequestContext, b: R.RenameIn): MaybeAsync<ReplyBody> {
    const parent = this.table.get(ctx.nodeid);
    const newParent = this.table.get(b.newdir);
    const exchange = (b.flags & 2) !== 0;
    const replaced = exchange ? undefined : newParent.child(b.newname);
    return after(keptOfDir(this.fs, ctx, replaced), (kept) =>
      after(need(this.fs.rename).call(this.fs, ctx, parent, b.oldname, newParent, b.newname, b.flags), (survives) => {
        this.table.rename(parent, b.oldname, newParent, b.newname, exchange, survives === true);
        if (kept && replaced!.links.length === 0) this.keepRemoved(replaced!, kept);
      }),
    );
  }

  /**
   * Drops set-id bits after a write or O_TRUNC open by a caller without CAP_FSETID. The
   * replies of WRITE and OPEN carry no attributes, and the kernel drops only the size and
   * times it cached after a write: it is told that the mode changed too, or a stat asking
   * for the mode alone (coreutils' `stat -c %a`) would show the old bits.
   */
  private dropSuidgid(ctx: RequestContext, node: Inode<D>, fh: H | undefined): MaybeAsync<void> {
    return after(this.fs.getattr(ctx, node, fh), (a) => {
      const mode = killSuidgid(a.mode, a.gid, ctx);
      if (mode !== undefined) return after(need(this.fs.setattr).call(this.fs, ctx, node, { mode }, fh), () => this.invalidateAttr(node.nodeid));
    });
  }

  /**
   * Whether an open may go through passthrough. Not for files with set-id bits: the kernel
   * writes a backing file with the daemon's credentials, which keep those bits on a write
   * by another user; through the daemon, WRITE_KILL_SUIDGID drops them as the VFS would.
   */
  private passthroughAllowed(ctx: RequestContext, nodeid: number, node: Inode<D>, r: OpenResult<H>, flags: number): MaybeAsync<boolean> {
    if (!this.passthrough || r.backingFd === undefined || r.directIo) return false;
    return after(this.fs.getattr(ctx, node, r.handle), (a) => {
      if ((a.mode & SETID) === 0) return true;
      // A file given set-id bits while open for passthrough: the kernel fails every other
      // open of that inode that is not a passthrough one (EIO). Reads may share it, and so
      // may root's writes (CAP_FSETID keeps the bits on a write anyway); another writer
      // would keep them where the VFS drops them, and is refused.
      if (!this.backing?.has(nodeid)) return false;
      if ((flags & O_ACCMODE) === O_RDONLY || ctx.uid === 0) return true;
      void this.fs.release?.(ctx, node, r.handle);
      throw fsError('ETXTBSY', `${safePath(node)}: a set-id file open for passthrough cannot be opened for writing by uid ${ctx.uid}`);
    });
  }

  /**
   * Records an open file and decides between passthrough, page cache and direct I/O.
   * `nodeid` is the kernel inode opened: a superseded one until the kernel forgets it.
   */
  private opened(ctx: RequestContext, nodeid: number, node: Inode<D>, r: OpenResult<H>, flags: number, allowPassthrough: boolean): { fh: number; openFlags: number; backingId: number } {
    let openFlags = 0;
    if (r.keepCache) openFlags |= FOPEN_KEEP_CACHE;
    if (r.directIo) openFlags |= FOPEN_DIRECT_IO;
    if (r.nonSeekable) openFlags |= FOPEN_NONSEEKABLE;
    // Nothing to do at close: spare the kernel a FLUSH round trip per close().
    if (!this.fs.flush) openFlags |= FOPEN_NOFLUSH;
    let backingId = 0;
    let backing = false;
    // The kernel keeps one I/O mode per inode: passthrough opens and page-cache opens of
    // the same inode cannot coexist, so an inode with cached opens stays cached.
    if (allowPassthrough && this.backing && r.backingFd !== undefined && !this.cachedOpens.get(nodeid)) {
      const needWrite = (flags & O_ACCMODE) !== O_RDONLY;
      let id: number | undefined;
      try {
        id = this.backing.acquire(nodeid, r.backingFd, r.backingWritable ?? needWrite, needWrite);
      } catch (e) {
        // EPERM here means the privilege is missing after all: stop trying for good.
        log.warn({ err: e, path: safePath(node) }, 'FUSE passthrough unavailable; file data goes through the daemon');
        if (errnoOf(e) === errnoNumber('EPERM')) this.passthrough = false;
      }
      if (id === OTHER_BACKING) {
        // Opens made before the object changed files keep their backing (and the data they
        // saw); this open needs the object's new file, which that kernel inode cannot take.
        // The object moves to a new nodeid and ESTALE makes the kernel walk the path again
        // (LOOKUP_REVAL), find the new nodeid and send the OPEN there.
        void this.fs.release?.(ctx, node, r.handle);
        if (this.table.exact(nodeid) === node) this.supersede(node);
        throw fsError('ESTALE', `${safePath(node)}: its inode is attached to the file it was copied up from`);
      }
      if (id !== undefined) {
        backingId = id;
        backing = true;
        openFlags = (openFlags | FOPEN_PASSTHROUGH) & ~FOPEN_KEEP_CACHE;
      } else if (this.backing.has(nodeid)) {
        // The kernel fails every open of a passthrough inode that does not name its backing
        // file (EIO), and this one cannot share it (read-only backing, write-open). Filesystems
        // open backing files read-write where they can, so this is a host file that refused
        // write access for the first open (ETXTBSY, EROFS) and would refuse it now too.
        void this.fs.release?.(ctx, node, r.handle);
        throw fsError('ETXTBSY', `${safePath(node)}: open for writing while open for passthrough read-only`);
      }
    }
    if (!backing && !(openFlags & FOPEN_DIRECT_IO)) this.cachedOpens.set(nodeid, (this.cachedOpens.get(nodeid) ?? 0) + 1);
    const fh = this.files.add({ node, nodeid, handle: r.handle, backing });
    return { fh, openFlags, backingId };
  }

  /**
   * Moves an object to a new nodeid (InodeTable.supersede); its open files go with it. The
   * old inode's attributes were cached as a lower file's (for long): from now on they are
   * the object's, which changes.
   */
  private supersede(node: Inode<D>): void {
    const next = this.table.supersede(node);
    for (const f of this.files.values()) if (f.node === node) f.node = next;
    this.invalidateAttr(node.nodeid);
  }

  /** Makes the kernel ask again for an inode's attributes (no lock taken: safe inside a handler). */
  private invalidateAttr(nodeid: number): void {
    this.session?.notify(out.notifyInvalInode(nodeid, -1, 0));
  }

  open(ctx: RequestContext, b: R.OpenIn): MaybeAsync<ReplyBody> {
    const node = this.table.get(ctx.nodeid);
    return after(need(this.fs.open).call(this.fs, ctx, node, b.flags), (r) => {
      const kill = b.openFlags & OPEN_KILL_SUIDGID ? this.dropSuidgid(ctx, node, r.handle) : undefined;
      return after(kill, () =>
        after(this.passthroughAllowed(ctx, ctx.nodeid, node, r, b.flags), (pt) => {
          const o = this.opened(ctx, ctx.nodeid, node, r, b.flags, pt);
          return out.openOut(o.fh, o.openFlags, o.backingId);
        }),
      );
    });
  }

  create(ctx: RequestContext, b: R.CreateIn): MaybeAsync<ReplyBody> {
    const parent = this.table.get(ctx.nodeid);
    return after(need(this.fs.create).call(this.fs, this.creating(ctx, b.umask), parent, b.name, b.flags, b.mode), (r) => {
      const e = this.entryOut(parent, b.name, r.entry);
      const pt = this.passthrough && (r.entry.attr.mode & SETID) === 0;
      const o = this.opened(ctx, e.nodeid, this.table.get(e.nodeid), r.open, b.flags, pt);
      return out.createOut(e, o.fh, o.openFlags, o.backingId);
    });
  }

  tmpfile(ctx: RequestContext, b: R.CreateIn): MaybeAsync<ReplyBody> {
    const parent = this.table.get(ctx.nodeid);
    return after(need(this.fs.tmpfile).call(this.fs, this.creating(ctx, b.umask), parent, b.flags, b.mode), (r) => {
      const node = this.table.rememberNameless(r.entry.attr.ino, r.entry.attr.mode, r.entry.data as D);
      const e = this.entryOf(node, r.entry.attr);
      const pt = this.passthrough && (r.entry.attr.mode & SETID) === 0;
      const o = this.opened(ctx, e.nodeid, node, r.open, b.flags, pt);
      return out.createOut(e, o.fh, o.openFlags, o.backingId);
    });
  }

  read(ctx: RequestContext, b: R.ReadIn): MaybeAsync<ReplyBody> {
    const f = this.fileOf(b.fh);
    return need(this.fs.read).call(this.fs, ctx, f.node, f.handle, b.offset, b.size);
  }

  write(ctx: RequestContext, b: R.WriteIn): MaybeAsync<ReplyBody> {
    const f = this.fileOf(b.fh);
    return after(need(this.fs.write).call(this.fs, ctx, f.node, f.handle, b.offset, b.data), (n) =>
      b.writeFlags & WRITE_KILL_SUIDGID ? after(this.dropSuidgid(ctx, f.node, f.handle), () => out.writeOut(n)) : out.writeOut(n),
    );
  }

  flush(ctx: RequestContext, b: R.FlushIn): MaybeAsync<ReplyBody> {
    const f = this.fileOf(b.fh);
    return this.fs.flush?.(ctx, f.node, f.handle);
  }

  release(ctx: RequestContext, b: R.ReleaseIn): MaybeAsync<ReplyBody> {
    const f = this.files.remove(b.fh);
    if (!f) return;
    if (f.backing) this.backing?.release(f.nodeid);
    else {
      const n = (this.cachedOpens.get(f.nodeid) ?? 0) - 1;
      if (n > 0) this.cachedOpens.set(f.nodeid, n);
      else this.cachedOpens.delete(f.nodeid);
    }
    const flush = b.releaseFlags & RELEASE_FLUSH && this.fs.flush ? this.fs.flush(ctx, f.node, f.handle) : undefined;
    return after(flush, () => this.fs.release?.(ctx, f.node, f.handle));
  }

  fsync(ctx: RequestContext, b: R.FsyncIn): MaybeAsync<ReplyBody> {
    const f = this.fileOf(b.fh);
    return need(this.fs.fsync).call(this.fs, ctx, f.node, f.handle, (b.fsyncFlags & FSYNC_FDATASYNC) !== 0);
  }

  fallocate(ctx: RequestContext, b: R.FallocateIn): MaybeAsync<ReplyBody> {
    const f = this.fileOf(b.fh);
    return need(this.fs.fallocate).call(this.fs, ctx, f.node, f.handle, b.mode, b.offset, b.length);
  }

  lseek(ctx: RequestContext, b: R.LseekIn): MaybeAsync<ReplyBody> {
    const f = this.fileOf(b.fh);
    return after(need(this.fs.lseek).call(this.fs, ctx, f.node, f.handle, b.offset, b.whence), (off) => out.lseekOut(off));
  }

  copyFileRange(ctx: RequestContext, b: R.CopyFileRangeIn): MaybeAsync<ReplyBody> {
    const fin = this.fileOf(b.fhIn);
    const fout = this.fileOf(b.fhOut);
    return after(
      need(this.fs.copyFileRange).call(this.fs, ctx, fin.node, fin.handle, b.offIn, fout.node, fout.handle, b.offOut, b.len, b.flags),
      (n) => out.writeOut(n),
    );
  }

  /**
   * A filesystem that lets the kernel keep every directory's listing has nothing to say at
   * OPENDIR: answered ENOSYS once (by a kernel that offers FUSE_NO_OPENDIR_SUPPORT; older
   * ones would fail the open), the kernel opens directories without asking from then on
   * (no_opendir: no OPENDIR or RELEASEDIR for each directory walked) and keeps every
   * listing (FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE), as `{ cache: true }` asks. Otherwise the
   * answer carries no handle: READDIR goes by nodeid, with offsets that need none (listing.ts).
   */
  opendir(ctx: RequestContext): MaybeAsync<ReplyBody> {
    if (this.fs.everyListingCached && this.session?.negotiated?.noOpendir) throw fsError('ENOSYS', 'every listing may be kept: no OPENDIR needed');
    const node = this.table.get(ctx.nodeid);
    return after(this.fs.opendir?.(ctx, node), (r) => out.openOut(0, r?.cache ? FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE : 0));
  }

  private listing(ctx: RequestContext, node: Inode<D>): Listing {
    const parent = node.parent() ?? node;
    return Listing.of({ name: '.', ino: node.ino, mode: S_IFDIR }, { name: '..', ino: parent.ino, mode: S_IFDIR }, need(this.fs.readdir).call(this.fs, ctx, node));
  }

  readdir(ctx: RequestContext, b: R.ReadIn, plus: boolean): ReplyBody {
    const node = this.table.get(ctx.nodeid);
    const l = this.listings.get(node.nodeid, b.offset, () => this.listing(ctx, node));
    const { entries, offsets } = l;
    const buf = new out.DirentBuffer(b.size);
    const first = l.after(b.offset);
    // The end: the reader is done with this listing (a READDIR after it takes a new one).
    if (first >= entries.length) this.listings.forget(node.nodeid);
    for (let i = first; i < entries.length; i++) {
      const e = entries[i]!;
      const next = offsets[i]!;
      if (!plus) {
        if (!buf.add(e.name, e.ino, e.mode, next)) break;
        continue;
      }
      if (!buf.fits(e.name, true)) break;
      if (e.name === '.' || e.name === '..') {
        // nodeid 0: the kernel takes no reference, so none is counted here either.
        buf.addPlus(e.name, { nodeid: 0, generation: 0, entryValid: 0, attrValid: 0, attr: { ...ZERO_ATTR, ino: e.ino, mode: e.mode } }, next);
        continue;
      }
      let found: Entry<D>;
      try {
        found = this.fs.lookup(ctx, node, e.name);
      } catch (err) {
        // Gone since the listing was taken: skip it. Other errors end this batch, but
        // entries already counted must reach the kernel, so fail only an empty reply.
        if (errnoOf(err) === ENOENT) continue;
        if (buf.length === 0) throw err;
        break;
      }
      buf.addPlus(e.name, this.entryOut(node, e.name, found), next);
    }
    return buf.finish();
  }

  releasedir(): ReplyBody {
    // OPENDIR gave no handle.
  }

  fsyncdir(ctx: RequestContext, b: R.FsyncIn): MaybeAsync<ReplyBody> {
    return need(this.fs.fsyncdir).call(this.fs, ctx, this.table.get(ctx.nodeid), (b.fsyncFlags & FSYNC_FDATASYNC) !== 0);
  }

  statfs(ctx: RequestContext): MaybeAsync<ReplyBody> {
    return after(need(this.fs.statfs).call(this.fs, ctx, this.table.get(ctx.nodeid)), (s) => out.statfsOut(s));
  }

  getxattr(ctx: RequestContext, b: R.GetxattrIn): MaybeAsync<ReplyBody> {
    const node = this.table.get(ctx.nodeid);
    const name = b.name ?? '';
    const kept = removedXattrs(node);
    if (kept) {
      const v = kept.get(name);
      if (!v) throw fsError('ENODATA');
      return sized(v, b.size);
    }
    return after(need(this.fs.getxattr).call(this.fs, ctx, node, name, this.handleFor(node, undefined)), (v) => sized(v, b.size));
  }

  listxattr(ctx: RequestContext, b: R.GetxattrIn): MaybeAsync<ReplyBody> {
    const node = this.table.get(ctx.nodeid);
    const kept = removedXattrs(node);
    const names = kept ? [...kept.keys()] : need(this.fs.listxattr).call(this.fs, ctx, node, this.handleFor(node, undefined));
    return after(names, (n) => sized(Buffer.from(n.map((x) => `${x}\0`).join('')), b.size));
  }

  /**
   * An xattr change goes to the filesystem first: it may refuse (a read-only mount; a
   * union's lower-only directory, which cannot be copied up once removed). Once it cannot
   * reach a removed directory, the change goes into what the directory kept, as overlayfs
   * changes the deleted directory's inode (setRemoved does the same for attributes);
   * removexattr alike.
   */
  setxattr(ctx: RequestContext, b: R.SetxattrIn): MaybeAsync<ReplyBody> {
    const node = this.table.get(ctx.nodeid);
    return recover(
      () => need(this.fs.setxattr).call(this.fs, ctx, node, b.name, b.value, b.flags, this.handleFor(node, undefined)),
      (e) => {
        const kept = removedDir(node, e).xattrs;
        if (b.flags & native.XATTR_CREATE && kept.has(b.name)) throw fsError('EEXIST');
        if (b.flags & native.XATTR_REPLACE && !kept.has(b.name)) throw fsError('ENODATA');
        kept.set(b.name, Buffer.from(b.value));
      },
    );
  }

  removexattr(ctx: RequestContext, name: string): MaybeAsync<ReplyBody> {
    const node = this.table.get(ctx.nodeid);
    return recover(
      () => need(this.fs.removexattr).call(this.fs, ctx, node, name, this.handleFor(node, undefined)),
      (e) => {
        if (!removedDir(node, e).xattrs.delete(name)) throw fsError('ENODATA');
      },
    );
  }

  access(ctx: RequestContext, b: R.AccessIn): MaybeAsync<ReplyBody> {
    const node = this.table.get(ctx.nodeid);
    if (this.fs.access) return this.fs.access(ctx, node, b.mask);
    return after(this.fs.getattr(ctx, node, undefined), (a) => checkAccess(a, ctx, b.mask));
  }
}

/** GETXATTR/LISTXATTR answer the size alone when asked with size 0, ERANGE when too small. */
function sized(v: Buffer, size: number): Buffer {
  if (size === 0) return out.xattrSizeOut(v.length);
  if (v.length > size) throw fsError('ERANGE');
  return v;
}

function safePath(node: Inode<unknown>): string | undefined {
  try {
    return node.path();
  } catch {
    return undefined;
  }
}
