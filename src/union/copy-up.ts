// Copy-up: bringing a lower object into the upper dir before it changes. Everything is
// built under the work dir and renamed into place, so a crash never leaves a half-copied
// object visible; file data is copied off the event loop (the addon's copyData: FICLONE,
// else copy_file_range over the data segments only, so holes stay holes) and fsynced.
// Parents are copied up first, with their own mode, owner, times and xattrs.

import * as fs from 'node:fs';
import type { SetAttr } from '../fs/api.js';
import { decodeDev, fstatHost, lstatHost, lstatHostOrThrow, type HostStat } from '../fs/attr.js';
import type { Inode } from '../fs/inode.js';
import { fsyncFd, openToKeep, timeArgs, type HostPath } from '../host/files.js';
import { fsError } from '../fuse/errors.js';
import { native } from '../native/binding.js';
import { joinRel, osPath } from '../util/os-path.js';
import { isOpaqueDir, nlinkRecord, redirectOf, setOriginIno, XATTR_METACOPY, XATTR_NLINK, XATTR_ORIGIN_INO, XATTR_REDIRECT, xattrShown } from './markers.js';
import { LinkNames } from './link-names.js';
import { lowerData, shownNlink, type UNode } from './node.js';
import { resolveChild } from './resolve.js';
import { rootStandIn, standIn } from './stand-in.js';
import type { LayerStack, LowerRef, Owner } from './stack.js';

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

/**
 * What a copy-up applies on the way, saving the syscalls of doing it after: a
 * metadata-only SETATTR's mode and times, a rename's redirect.
 */
export interface CopyOptions {
  /** The copy gets these instead of the lower object's (the owner is never changed here: chown clears set-id bits). */
  attrs?: Pick<SetAttr, 'mode' | 'atime' | 'mtime'>;
  /** For a regular file copied for metadata only: the redirect to where its data lies below. */
  redirect?: string;
  /**
   * The directory a rename changes right after the copy-up anyway: a copy made in it need
   * not put its times back (two syscalls of every rename of a lower file). A copy made in
   * another (a hard-linked file copied up at another of its names) puts them back.
   */
  changesParent?: Inode<UNode>;
  /**
   * The copy starts empty (an O_TRUNC open, a truncate to 0): no data is read, and with
   * none there is nothing to land or fsync (overlayfs skips the data of an O_TRUNC copy too).
   */
  empty?: boolean;
}

/** User-visible xattrs of src onto dst (ours, trusted.overlay.*, are not carried over). */
function copyXattrs(src: HostPath, dstFd: number | undefined, dst: HostPath): void {
  let names: string[];
  try {
    names = native.llistxattr(src);
  } catch {
    return;
  }
  for (const n of names) {
    // Our records stay behind; a user's escaped trusted.overlay.overlay.* goes along.
    if (xattrShown(n) === undefined) continue;
    const v = native.lgetxattr(src, n);
    if (dstFd !== undefined) native.fsetxattr(dstFd, n, v, 0);
    else native.lsetxattr(dst, n, v, 0);
  }
}

/**
 * The owner, first: chown drops security.capability (file capabilities) and set-id bits,
 * so xattrs and the mode come after it (overlayfs keeps both). Skipped when the new object
 * already has that owner (`made`: who the daemon creates objects as), which for images,
 * mostly root's files, saves a syscall per copy-up.
 */
function copyOwner(st: HostStat, fd: number | undefined, p: HostPath, made: Owner): void {
  if (st.uid === made.uid && st.gid === made.gid) return;
  if (fd !== undefined) fs.fchownSync(fd, st.uid, st.gid);
  else native.lchown(p, st.uid, st.gid);
}

/** The mode a copy ends with: the object's own, or the one asked for. */
const copyMode = (st: HostStat, attrs: CopyOptions['attrs'] = {}): number => (attrs.mode ?? st.mode) & 0o7777;

/**
 * The mode a regular file's copy is created with. Its final one when the scratch dir gives
 * exactly that (LayerStack.tmpModeExact) and it has no set-id or sticky bit (a change of
 * owner can then alter nothing), which saves the fchmod of most copy-ups; else 0600 until
 * copyModeTimes sets it after the owner.
 */
const createMode = (mode: number, exact: boolean): number => (exact && (mode & 0o7000) === 0 ? mode : 0o600);

/**
 * Mode and times, after the owner and the xattrs: the object's own, or the ones asked for.
 * `created`: the mode an fd's file was created with (no fchmod when it is the final one).
 */
function copyModeTimes(st: HostStat, fd: number | undefined, p: HostPath, attrs: CopyOptions['attrs'] = {}, created?: number): void {
  const [as, an] = attrs.atime === undefined ? [st.atime, st.atimensec] : timeArgs(attrs.atime);
  const [ms, mn] = attrs.mtime === undefined ? [st.mtime, st.mtimensec] : timeArgs(attrs.mtime);
  const mode = copyMode(st, attrs);
  if (fd !== undefined) {
    if (mode !== created) fs.fchmodSync(fd, mode);
    native.futimens(fd, as, an, ms, mn);
  } else {
    if ((st.mode & S_IFMT) !== S_IFLNK) fs.chmodSync(p, mode);
    native.utimens(p, as, an, ms, mn, true);
  }
}

/**
 * Files up to this size are copied on the event loop: a few syscalls cost less than the
 * thread-pool round trip of copyData, and holes do not matter at this size.
 */
const SMALL_COPY = 64 * 1024;

/**
 * For tests and debugging only: holds every copy of data this many milliseconds before it
 * goes into place, so that what a copy-up under way must wait for (renames, unlinks,
 * metadata changes of the same file) can be met in that state. Unset (0) in normal use.
 */
const HOLD_MS = Number(process.env.STRATAFS_COPY_HOLD_MS ?? 0);
const noop = (): void => {};
/** A copy-up's promise, settled either way: waiters go on whether the copy worked or failed. */
const settled = (p: Promise<unknown>): Promise<void> => p.then(noop, noop);

export class CopyUp {
  /** Lower path -> union path of renamed directories (scanMovedDirs), until a directory moves again. */
  private movedDirs: Map<string, string> | undefined;
  /** Directories renamed inside the lower layers, per layer (scanLowerMoves). */
  private lowerMoves: Array<Array<{ from: string; to: string }>> | undefined;

  /** Copy-ups under way, by nodeid: a second request for the same inode waits for the first. */
  private readonly running = new Map<number, Promise<void>>();
  /**
   * Where each copy-up under way (by nodeid) will put names: the copy's union path and its
   * hard-link siblings'. Taken when the copy starts and not read again, so a directory must
   * not move from above them meanwhile (below()).
   */
  private readonly placing = new Map<number, string[]>();
  private readonly links: LinkNames;

  constructor(
    private readonly stack: LayerStack,
    /**
     * Told of every name a copy-up adds to the upper dir (the path index's journal);
     * `samePath`: the object came from the lower layers at this very path (no redirect).
     */
    private readonly installed: (rel: string, samePath: boolean) => void = () => {},
    /**
     * How copied data is made durable: fsynced behind the request under a mark (landing.ts),
     * fsynced before the request is answered (-o sync_copyup), or not at all (a volatile
     * mount, volatile.ts).
     */
    private readonly durable: 'behind' | 'before' | 'never' = 'behind',
    /**
     * Told of an inode whose attributes a copy-up changed without a request about it: a
     * directory copied up whose nlink or size the kernel shows differently now (dir()), a
     * copy that landed (its ctime). Not a parent that only received a copy, nor a merged
     * directory whose copy moved only its ctime (keepingParentTimes).
     */
    private readonly attrsChanged: (node: Inode<UNode>) => void = () => {},
  ) {
    this.links = new LinkNames(stack);
  }

  /** Makes sure a directory exists in the upper dir, copying up its parents first. Synchronous: no data. */
  dir(node: Inode<UNode>): void {
    if (node.data.upper) return;
    if (node.unlinkedFrom) throw removedDirError(node, node.unlinkedFrom);
    // Already copied up by way of another name (a hard-link sibling's parents).
    const there = lstatHost(this.stack.upperPath(node.path()));
    if (there && (there.mode & S_IFMT) === S_IFDIR) {
      node.data.upper = true;
      this.attrsChanged(node);
      return;
    }
    const parent = node.parent();
    if (parent) this.dir(parent);
    const src = this.stack.lowerPath(node.data.lowers[0]!);
    const st = lstatHostOrThrow(src);
    const tmp = this.stack.tmpName();
    fs.mkdirSync(tmp, 0o700);
    let made: HostStat;
    try {
      copyOwner(st, undefined, tmp, this.stack.tmpOwner);
      copyXattrs(src, undefined, tmp);
      this.setOrigin(tmp, st);
      copyModeTimes(st, undefined, tmp);
      made = lstatHostOrThrow(tmp);
      this.install(tmp, node.path(), node.data.lowers[0]!, false);
    } catch (e) {
      fs.rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
    // The kernel is told only when what it shows changes beyond the ctime: a directory
    // seen in one lower layer becomes merged (nlink 1), or the new one's size differs. A
    // merged directory's copy shows the same mode, owner, times, size and nlink, and its
    // new ctime is left to show later, as for a directory that only receives a copy
    // (keepingParentTimes): the notification would cost each later path walk through it
    // a GETATTR (a third of the chmods of the benchmark's lower files).
    const before = shownNlink(node.data, st);
    node.data.upper = true;
    if (shownNlink(node.data, made) !== before || made.size !== st.size || made.blocks !== st.blocks) this.attrsChanged(node);
  }

  /** By path, never by opening it: opening a fifo would block the daemon. */
  private setOrigin(p: HostPath, st: HostStat): void {
    setOriginIno(p, this.stack.unionIno(st.dev, st.ino));
  }

  /**
   * Renames a finished copy into its place. Copy-up is not a change the user made to the
   * parent directory, so its times are put back as they were (overlayfs does the same),
   * unless the caller is about to change the parent itself.
   * `rel` is the path the copy was made for, taken before any wait and not read again: a
   * rename of a directory above it waits for the copy (below()), and one of the file itself
   * or onto it waits too (inFlight()).
   */
  private install(tmp: HostPath, rel: string, from: LowerRef, changesParent: boolean): void {
    const put = (): void => fs.renameSync(tmp, this.stack.upperPath(rel));
    if (changesParent) put();
    else this.keepingParentTimes(rel, put);
    this.installed(rel, from.path === rel);
  }

  /**
   * Makes a change in `rel`'s parent dir that is part of a copy-up: its times stay. Its
   * ctime moves, and the kernel is not told: a notification would drop the parent's cached
   * mode too, and every later path walk through it would cost a GETATTR (one per chmod of
   * a lower file in a busy directory). The kernel sees the new ctime when it next asks (any
   * change made in that directory through the mount). POSIX leaves a directory's ctime
   * alone when a file in it changes; overlayfs shows the move at once.
   */
  private keepingParentTimes(rel: string, change: () => void): void {
    const slash = rel.lastIndexOf('/');
    const dir = this.stack.upperPath(slash < 0 ? '' : rel.slice(0, slash));
    const before = lstatHostOrThrow(dir);
    change();
    native.utimens(dir, before.atime, before.atimensec, before.mtime, before.mtimensec, true);
  }

  /**
   * Brings a non-directory into the upper dir. `metaOnly` copies a regular file's metadata
   * alone (overlayfs's metacopy): the upper file is sparse at the right size and marked,
   * and its data keeps coming from below until it is written. Returns whether this call
   * made the copy (and so applied `opts`); false when the object was in the upper dir already.
   */
  file(node: Inode<UNode>, metaOnly: boolean, opts: CopyOptions = {}): Promise<boolean> | boolean {
    const d = node.data;
    // A hard-linked lower file is copied up whole, so that its other names can be linked
    // to the one copy (metacopy has no notion of link sets).
    const lowerSt = metaOnly && !d.upper && d.lowers[0] ? lstatHostOrThrow(this.stack.lowerPath(d.lowers[0])) : undefined;
    if (lowerSt && lowerSt.nlink > 1) metaOnly = false;
    // A copy under way first, also for a change of metadata alone: the copy replaces the
    // file with the metadata it read when it started, and would undo the change.
    const busy = this.running.get(node.nodeid);
    if (busy) return busy.then(() => this.file(node, metaOnly, opts));
    if (d.upper && (!d.metacopy || metaOnly)) return false;
    if (node.links.length === 0 && !node.isRoot) {
      // Names the kernel forgot (Inode.unlinkedFrom unset) are still the object's on disk, but
      // unknown here: a copy made elsewhere would leave them showing the old file.
      if (!node.unlinkedFrom) throw fsError('ESTALE', `inode ${node.nodeid} has no name the kernel knows`);
      return this.track(node, this.throughOtherName(node, opts));
    }
    const parent = node.parent();
    if (parent) this.dir(parent);
    return this.track(node, this.doFile(node, metaOnly, opts, lowerSt, node.path()));
  }

  private track(node: Inode<UNode>, copy: Promise<void>): Promise<boolean> {
    const p = copy.finally(() => {
      this.running.delete(node.nodeid);
      this.placing.delete(node.nodeid);
    });
    this.running.set(node.nodeid, p);
    return p.then(() => true);
  }

  /**
   * A lower file that lost the last name the kernel knew it by (unlinked while open),
   * changed through an open fd (fchmod, ftruncate): there is no path to copy it up at. A
   * hard-link set that still shows other names is copied up at the first of them and the
   * rest are linked, as for any name of it (overlayfs applies the change through its
   * index). Otherwise the copy gets no name either, like a file unlinked while open.
   * Either way the node keeps an fd of the copy (UNode.anon), which its fds then reach.
   */
  private async throughOtherName(node: Inode<UNode>, opts: CopyOptions): Promise<void> {
    const d = node.data;
    const shown = d.upper ? undefined : d.lowers[0];
    // Only a regular file's copy can be held open: an fd of a device would open the device.
    if (!shown || node.type !== S_IFREG) throw fsError('ESTALE', `inode ${node.nodeid} has no name`);
    const st = lstatHostOrThrow(this.stack.lowerPath(shown));
    const other = st.nlink > 1 ? this.visibleNames(shown, st.ino, '')[0] : undefined;
    if (other) this.dir(other[1][other[1].length - 1]!);
    await this.doFile(node, false, opts, st, other?.[0]);
    if (other) d.anon = openToKeep(this.stack.upperPath(other[0]));
  }

  /**
   * Settles (never rejects) once the copy-ups under way that will put a name below union
   * directory `dir` have finished; undefined when none will. A rename of `dir`, or
   * over it, waits for them: a copy goes into place by the path it was started with, which
   * would then be in a directory made at the old name afterwards (or in none, failing it).
   */
  below(dir: string): Promise<void> | undefined {
    const prefix = dir === '' ? '' : `${dir}/`;
    const waits: Array<Promise<void>> = [];
    for (const [id, paths] of this.placing) {
      const run = this.running.get(id);
      if (run && paths.some((p) => p.startsWith(prefix))) waits.push(settled(run));
    }
    return waits.length === 0 ? undefined : Promise.all(waits).then(noop);
  }

  /**
   * The copy-up of this node under way, if any; it settles (never rejects) once the copy is
   * in place or has failed. A change of the node's name must wait for it: the copy is
   * renamed into the path it was made for, which would bring an old name back, or land on
   * a file moved there.
   */
  inFlight(node: Inode<UNode>): Promise<void> | undefined {
    const run = this.running.get(node.nodeid);
    return run && settled(run);
  }

  /**
   * `lowerSt`: the lstat of the lower file when file() already made it. `rel`: the union
   * path to copy it up at; undefined for a node without one (throughOtherName): the copy
   * then stays unnamed, kept open in UNode.anon.
   */
  private async doFile(node: Inode<UNode>, metaOnly: boolean, opts: CopyOptions, lowerSt: HostStat | undefined, rel: string | undefined): Promise<void> {
    const d = node.data;
    // The lower object at this name (its inode number, its hard-link set) and the one
    // holding its data: the same file, unless the first is a lower metacopy (node.ts).
    const shown = d.lowers[0]!;
    const dataRef = lowerData(d)!;
    const dataPath = this.stack.lowerPath(dataRef);
    const shownSt = lowerSt ?? lstatHostOrThrow(this.stack.lowerPath(shown));
    const dataSt = dataRef === shown ? shownSt : lstatHostOrThrow(dataPath);
    const target = rel === undefined ? undefined : this.stack.upperPathString(rel);
    // A metacopy going to full data keeps the metadata it has in the upper dir by now.
    const metaSrc = d.upper ? osPath(target!) : this.stack.lowerPath(shown);
    const metaSt = d.upper ? lstatHostOrThrow(metaSrc) : shownSt;
    const type = dataSt.mode & S_IFMT;
    const tmp = this.stack.tmpName();
    // A fresh copy of data lands behind the request (landing.ts). Not a metacopy getting its
    // data (the mark would lose the redirect it may need), nor a hard-link set (its other
    // names are linked to the copy as it lands).
    const later = rel !== undefined && !metaOnly && !opts.empty && this.durable === 'behind' && !d.upper && type === S_IFREG && shownSt.nlink === 1;
    // A hard-link set's other names the copy is linked to once in place. Those hidden by a
    // layer above stay counted in its link count, as before the copy-up and as overlayfs
    // (index=on) counts them: its record of that goes on the copy with the rest. Names
    // deleted through the mount are off the count already, as overlayfs takes them off.
    const names = type === S_IFREG && !metaOnly && shownSt.nlink > 1 && rel !== undefined ? this.namesOf(shown, shownSt.ino, rel) : undefined;
    const siblings = names?.visible;
    const unlinkable = names ? shownSt.nlink - 1 - names.visible.length - names.deleted : 0;
    if (rel !== undefined) this.placing.set(node.nodeid, [rel, ...(siblings ?? []).map(([p]) => p)]);
    let landing: number | undefined;
    try {
      if (type === S_IFREG) {
        const created = createMode(copyMode(metaSt, opts.attrs), this.stack.tmpModeExact);
        const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, created);
        if (later) landing = fd;
        try {
          if (metaOnly) {
            fs.ftruncateSync(fd, metaSt.size);
            native.fsetxattr(fd, XATTR_METACOPY, Buffer.alloc(0), 0);
            if (opts.redirect !== undefined) native.fsetxattr(fd, XATTR_REDIRECT, Buffer.from(opts.redirect, 'latin1'), 0);
          } else if (!opts.empty) {
            const src = fs.openSync(dataPath, fs.constants.O_RDONLY);
            try {
              if (dataSt.size <= SMALL_COPY) native.copySmall(src, fd, dataSt.size, dataSt.dev === this.stack.upperDev);
              else await native.copyData(src, fd);
            } finally {
              fs.closeSync(src);
            }
            if (HOLD_MS > 0) await new Promise((r) => setTimeout(r, HOLD_MS));
          }
          copyOwner(metaSt, fd, tmp, this.stack.tmpOwner);
          copyXattrs(metaSrc, fd, tmp);
          native.fsetxattr(fd, XATTR_ORIGIN_INO, inoBytes(this.stack.unionIno(shownSt.dev, shownSt.ino), metaSrc, d.upper), 0);
          if (unlinkable > 0) native.fsetxattr(fd, XATTR_NLINK, nlinkRecord(unlinkable), 0);
          copyModeTimes(metaSt, fd, tmp, opts.attrs, created);
          // Copied data is durable before it replaces the lower file: fsynced now, or
          // marked until it is (landing.ts). A metadata-only copy has no data to lose: a
          // crash at worst loses the metadata change, and the lower file shows again, whole.
          if (later) native.fsetxattr(fd, XATTR_METACOPY, Buffer.alloc(0), 0);
          else if (!metaOnly && !opts.empty && this.durable !== 'never') await fsyncFd(fd, false);
        } finally {
          if (landing === undefined) fs.closeSync(fd);
        }
      } else if (type === S_IFLNK) {
        fs.symlinkSync(fs.readlinkSync(dataPath, { encoding: 'buffer' }), tmp);
        copyOwner(metaSt, undefined, tmp, this.stack.tmpOwner);
        copyXattrs(metaSrc, undefined, tmp);
        this.setOrigin(tmp, shownSt);
        copyModeTimes(metaSt, undefined, tmp, opts.attrs);
      } else {
        // fifo, socket, device: the node itself is all there is to copy.
        const { major, minor } = decodeDev(dataSt.rdev);
        native.mknod(tmp, dataSt.mode, major, minor);
        copyOwner(metaSt, undefined, tmp, this.stack.tmpOwner);
        copyXattrs(metaSrc, undefined, tmp);
        this.setOrigin(tmp, shownSt);
        copyModeTimes(metaSt, undefined, tmp, opts.attrs);
      }
      if (rel !== undefined) this.install(tmp, rel, shown, opts.changesParent !== undefined && opts.changesParent === node.parent());
      else {
        d.anon = openToKeep(tmp);
        fs.rmSync(tmp);
      }
    } catch (e) {
      if (landing !== undefined) fs.closeSync(landing);
      fs.rmSync(tmp, { force: true });
      throw e;
    }
    if (landing !== undefined) {
      d.landing = this.stack.landings.start(landing, fstatHost(landing).ino, rel!, dataSt.size > SMALL_COPY);
      // Removing the mark as it lands changes the file's ctime.
      void d.landing.done.then(() => this.attrsChanged(node));
    }
    d.upper = true;
    d.metacopy = metaOnly && type === S_IFREG;
    d.dataBlocks = d.metacopy ? dataSt.blocks : undefined;
    if (!d.metacopy) {
      d.lowers = [];
      d.data = undefined;
    }
    if (unlinkable > 0) d.nlinkDelta = unlinkable;
    if (siblings) this.linkSiblings(siblings, target!);
  }

  /**
   * Links the other visible names of a lower hard-link set to the new upper copy, so the
   * set stays one file: a write through any name is seen through all (overlayfs needs
   * index=on for this). A name that is hidden, deleted, or already in the upper dir is left.
   */
  private linkSiblings(siblings: Array<[string, Inode<UNode>[]]>, copy: string): void {
    for (const [other, parents] of siblings) {
      const parent = parents[parents.length - 1]!;
      this.dir(parent);
      // Linking a sibling is part of the copy-up too: its parent's times stay.
      this.keepingParentTimes(other, () => fs.linkSync(osPath(copy), osPath(this.stack.upperPathString(other))));
      this.installed(other, false);
    }
  }

  /**
   * The other names of a lower hard-link set that the union still shows as that lower file
   * (not deleted, hidden, or replaced in the upper dir), as union paths (a name under a
   * renamed directory is shown under its new name), each with its parent chain. `rel`: the
   * union path the copy was made at. That is usually `ref`'s own name, but not always: an
   * inode known by two names is copied up at the path of the name it keeps first, which
   * after the kernel forgot the directory of the other (InodeTable.forget) may be another
   * name of the set than the one it was first looked up by; `ref`'s name must then be
   * linked like any other (the copy itself is in the upper dir, and so never linked).
   */
  visibleNames(ref: LowerRef, ino: bigint, rel: string): Array<[string, Inode<UNode>[]]> {
    return this.namesOf(ref, ino, rel).visible;
  }

  /**
   * visibleNames, and how many of the set's other names the lower layers show but the union
   * does not: deleted or replaced through the mount, which overlayfs (index=on) takes off
   * the set's link count. The rest of the lower file's count that no name shows is hidden
   * by a layer above (or outside the layer), which it keeps counting.
   */
  private namesOf(ref: LowerRef, ino: bigint, rel: string): { visible: Array<[string, Inode<UNode>[]]>; deleted: number } {
    const visible: Array<[string, Inode<UNode>[]]> = [];
    let deleted = 0;
    for (const name of this.links.names(ref.layer, ino)) {
      // Where the layers above it show it (directories renamed in those layers followed).
      const lifted = this.liftThroughLowerMoves(ref.layer, name);
      if (lifted === rel) continue;
      // At that path, or (only then looked for) under a directory renamed in the upper dir.
      const parents = this.showing(lifted, ref, name) ?? this.showing(this.throughMovedDirs(lifted), ref, name);
      // The copy's own name, reached under a renamed directory (names are asked for before
      // the copy is in place, when that name still shows the lower file: campaign seed 740).
      if (parents?.[0] === rel) continue;
      if (parents) visible.push(parents);
      else if (this.lowerShows(lifted, ref, name)) deleted++;
    }
    return { visible, deleted };
  }

  /** Whether the lower layers alone (as if the upper dir were empty) show file `name` of `ref.layer` at union path `at`. */
  private lowerShows(at: string, ref: LowerRef, name: string): boolean {
    let cur = rootStandIn({ ...this.root().data, upper: false });
    try {
      for (const part of at.split('/')) cur = standIn(cur, part, resolveChild(this.stack, cur, part).data);
    } catch {
      return false;
    }
    return cur.data.lowers[0]?.layer === ref.layer && cur.data.lowers[0]?.path === name;
  }

  /**
   * The path at which the lower layers show file `name` of layer `layer` when layers above
   * it renamed one of its directories (an overlay upper dir stacked as a layer carries the
   * rename as a redirect on the directory): each such layer, nearest first, moves it from
   * the redirect's path to the directory's own. Unchanged without lower redirects. The
   * result is only a candidate: showing() checks that the union shows the file there.
   */
  private liftThroughLowerMoves(layer: number, name: string): string {
    const moves = (this.lowerMoves ??= this.scanLowerMoves());
    let p = name;
    for (let l = layer - 1; l >= 0; l--) {
      let best: { from: string; to: string } | undefined;
      for (const m of moves[l] ?? []) if ((p === m.from || p.startsWith(`${m.from}/`)) && (!best || m.from.length > best.from.length)) best = m;
      if (best) p = best.to + p.slice(best.from.length);
    }
    return p;
  }

  /** Per lower layer, its directories that carry a redirect: from (the path below) -> to (their own). Lower layers never change: read once. */
  private scanLowerMoves(): Array<Array<{ from: string; to: string }>> {
    if (!this.stack.lowerRedirects) return [];
    return this.stack.lowers.map((_, layer) => {
      const out: Array<{ from: string; to: string }> = [];
      // `lowerRel`: where the layers below hold `rel`, once its own or a parent's redirect moved it.
      const walk = (rel: string, lowerRel: string): void => {
        for (const d of fs.readdirSync(this.stack.lowerPath({ layer, path: rel }), { encoding: 'latin1', withFileTypes: true })) {
          if (!d.isDirectory()) continue;
          const at = joinRel(rel, d.name);
          const r = redirectOf(this.stack.lowerPath({ layer, path: at }));
          // overlayfs's redirect: absolute from the top of the layers below, or a bare name
          // in the parent's directory below (under a renamed parent, at the parent's old path).
          const from = r === undefined ? joinRel(lowerRel, d.name) : r.startsWith('/') ? r.replace(/^\/+/, '') : joinRel(lowerRel, r);
          if (r !== undefined) out.push({ from, to: at });
          walk(at, from);
        }
      };
      walk('', '');
      return out;
    });
  }

  /** Union path `at` and its parent chain, if the union shows lower file `name` of `ref`'s layer there. */
  private showing(at: string | undefined, ref: LowerRef, name: string): [string, Inode<UNode>[]] | undefined {
    const chain = at === undefined ? undefined : this.visible(at);
    if (!chain) return undefined;
    const [parents, leaf] = chain;
    if (leaf.data.upper || leaf.data.lowers[0]?.layer !== ref.layer || leaf.data.lowers[0]?.path !== name) return undefined;
    return [at!, parents];
  }

  /**
   * Where the union shows lower path `name` when a directory above it was renamed: through
   * the renamed directory with the longest lower path that holds it; undefined if none.
   */
  private throughMovedDirs(name: string): string | undefined {
    const moved = (this.movedDirs ??= this.scanMovedDirs());
    for (let cut = name.lastIndexOf('/'); cut > 0; cut = name.lastIndexOf('/', cut - 1)) {
      const to = moved.get(name.slice(0, cut));
      if (to !== undefined) return to + name.slice(cut);
    }
    return undefined;
  }

  /**
   * The upper dir's directories that show a lower directory under another path (renamed:
   * a redirect on them or above them), as lower path -> union path. One walk of the upper
   * dir's directories, made the first time a hard-link set needs it, and again after a
   * directory rename (forgetMovedDirs). An opaque directory shows no lower directory, nor
   * do its children unless a redirect of their own says where theirs is: one made where a
   * renamed directory was (mkdir after the rename) must not claim the lower path the
   * renamed one shows, which left hard-link siblings under it unlinked (campaign seed 2844).
   */
  private scanMovedDirs(): Map<string, string> {
    const out = new Map<string, string>();
    // `lowerRel`: the lower path the directory at `rel` shows; undefined for none.
    const walk = (rel: string, lowerRel: string | undefined): void => {
      for (const d of fs.readdirSync(this.stack.upperPath(rel), { encoding: 'latin1', withFileTypes: true })) {
        if (!d.isDirectory()) continue;
        const at = joinRel(rel, d.name);
        const up = this.stack.upperPath(at);
        const r = redirectOf(up);
        // overlayfs's redirect: absolute from the top lower layer, or a bare name in the parent's lower directory.
        const named = r === undefined ? d.name : r;
        let lower = named.startsWith('/') ? named.replace(/^\/+/, '') : lowerRel === undefined ? undefined : joinRel(lowerRel, named);
        if (lower !== undefined && isOpaqueDir(up, this.stack.upperPathString(at))) lower = undefined;
        if (lower !== undefined && lower !== at) out.set(lower, at);
        walk(at, lower);
      }
    };
    walk('', '');
    return out;
  }

  /** A directory moved in the union: the lower paths of the upper dir's directories changed. */
  forgetMovedDirs(): void {
    this.movedDirs = undefined;
  }

  /**
   * Resolves a union path from the root into nodes (parents, leaf), or undefined if it is
   * not visible. A directory the kernel knows is taken as the real inode, not a stand-in:
   * copying it up must mark that inode as in the upper dir, or its later lookups and
   * listings would still read the lower layers alone (and show the lower file's attributes
   * for the sibling just linked there). The leaf is always resolved afresh.
   */
  private visible(rel: string): [Inode<UNode>[], Inode<UNode>] | undefined {
    const root = this.root();
    let cur = root;
    const chain: Inode<UNode>[] = [root];
    const parts = rel.split('/');
    try {
      parts.forEach((name, i) => {
        const known = i < parts.length - 1 ? cur.child(name) : undefined;
        cur = known ?? standIn(cur, name, resolveChild(this.stack, cur, name).data);
        chain.push(cur);
      });
    } catch {
      return undefined;
    }
    const leaf = chain.pop()!;
    return [chain, leaf];
  }

  /** Set by the filesystem: the real root inode, where stand-in paths start. */
  root: () => Inode<UNode> = () => {
    throw new Error('CopyUp.root not set');
  };
}

/** The origin inode number to record: kept from an earlier copy-up when there was one. */
function inoBytes(lowerIno: bigint, metaSrc: HostPath, wasUpper: boolean): Buffer {
  const b = Buffer.alloc(8);
  if (wasUpper) {
    try {
      return native.lgetxattr(metaSrc, XATTR_ORIGIN_INO);
    } catch {
      // fall through: no record yet
    }
  }
  b.writeBigUInt64LE(lowerIno);
  return b;
}

/**
 * A directory only in lower layers, removed while open (an fd or a cwd keeps it): a change
 * through it would need a copy-up with no name left to take, and fails as overlayfs's
 * fails. Its copy goes to the name it had: a directory renamed over the whiteout left
 * there (ENOTDIR) while the directory it was in (`from`) still exists, into no upper
 * directory at all (EIO) once that was removed too. (Names the kernel only forgot fail in
 * path(): ESTALE.)
 */
function removedDirError(node: Inode<UNode>, from: Inode<UNode>): Error {
  const errno = from.isRoot || from.links.length > 0 ? 'ENOTDIR' : 'EIO';
  return fsError(errno, `directory ${node.nodeid} (only in lower layers) was removed while open: it cannot be copied up`);
}
