// The reference filesystem: mirrors one directory. It exercises every operation of the node
// API on a real filesystem and is the template the union filesystem follows.

import * as fs from 'node:fs';
import { promisify } from 'node:util';
import { ENOENT_ERROR } from '../fuse/errors.js';
import type { Attr, Context, DirEntry, Entry, FileSystem, OpenResult, SetAttr, StatfsOut, TimeSpec } from '../fs/api.js';
import { attrFromStats, decodeDev } from '../fs/attr.js';
import type { Inode } from '../fs/inode.js';
import { native } from '../native/binding.js';
import { osPath } from '../util/os-path.js';

const C = fs.constants;
// Not exported by Node's fs.constants.
const O_ACCMODE = 3;
const S_ISGID = 0o2000;
const fsyncAsync = promisify(fs.fsync);
const fdatasyncAsync = promisify(fs.fdatasync);

export interface LoopbackOptions {
  /** Hand open files to the kernel as passthrough backing files when it agreed to it. */
  passthrough?: boolean;
}

export interface LoopbackHandle {
  fd: number;
}

type Node = Inode<undefined>;

export class LoopbackFs implements FileSystem<undefined, LoopbackHandle> {
  private readonly asRoot = process.getuid?.() === 0;

  constructor(
    readonly source: string,
    private readonly opts: LoopbackOptions = {},
  ) {}

  private path(node: Node): string | Buffer {
    return osPath(`${this.source}/${node.path()}`);
  }

  private childPath(parent: Node, name: string): string | Buffer {
    return osPath(`${this.source}/${parent.childPath(name)}`);
  }

  private stat(p: string | Buffer): Attr {
    const st = fs.lstatSync(p, { bigint: true, throwIfNoEntry: false });
    if (!st) throw ENOENT_ERROR;
    return attrFromStats(st);
  }

  /**
   * The daemon creates as root; the new object must belong to the caller. In a setgid
   * directory the group was already inherited from it. chown clears set-id bits, which
   * the caller may have asked for, so they are put back.
   */
  private own(ctx: Context, p: string | Buffer, parent: Node, mode: number): void {
    if (!this.asRoot || (ctx.uid === 0 && ctx.gid === 0)) return;
    const parentSetgid = (fs.statSync(this.path(parent)).mode & S_ISGID) !== 0;
    fs.lchownSync(p, ctx.uid, parentSetgid ? -1 : ctx.gid);
    if ((mode & 0o6000) !== 0 && (mode & C.S_IFMT) !== C.S_IFLNK) fs.chmodSync(p, mode & 0o7777);
  }

  private entry(p: string | Buffer): Entry<undefined> {
    return { attr: this.stat(p) };
  }

  root(): { attr: Attr; data: undefined } {
    return { attr: this.stat(this.source), data: undefined };
  }

  lookup(_ctx: Context, parent: Node, name: string): Entry<undefined> {
    return this.entry(this.childPath(parent, name));
  }

  getattr(_ctx: Context, node: Node, fh: LoopbackHandle | undefined): Attr {
    if (fh) return attrFromStats(fs.fstatSync(fh.fd, { bigint: true }));
    return this.stat(this.path(node));
  }

  setattr(_ctx: Context, node: Node, s: SetAttr, fh: LoopbackHandle | undefined): Attr {
    // An inode unlinked while open has no path; the bridge then hands us one of its fds.
    const p = fh ? '' : this.path(node);
    if (s.mode !== undefined && node.type !== C.S_IFLNK) {
      if (fh) fs.fchmodSync(fh.fd, s.mode & 0o7777);
      else fs.chmodSync(p, s.mode & 0o7777);
    }
    if (s.uid !== undefined || s.gid !== undefined) {
      if (fh) fs.fchownSync(fh.fd, s.uid ?? -1, s.gid ?? -1);
      else native.lchown(p, s.uid ?? -1, s.gid ?? -1);
    }
    if (s.size !== undefined) {
      if (fh) fs.ftruncateSync(fh.fd, s.size);
      else fs.truncateSync(p, s.size);
    }
    if (s.atime !== undefined || s.mtime !== undefined) {
      const [as, an] = timeArgs(s.atime);
      const [ms, mn] = timeArgs(s.mtime);
      if (fh) native.futimens(fh.fd, as, an, ms, mn);
      else native.utimens(p, as, an, ms, mn, true);
    }
    return this.getattr(_ctx, node, fh);
  }

  readlink(_ctx: Context, node: Node): Buffer {
    return fs.readlinkSync(this.path(node), { encoding: 'buffer' });
  }

  mknod(ctx: Context, parent: Node, name: string, mode: number, rdev: number): Entry<undefined> {
    const p = this.childPath(parent, name);
    const { major, minor } = decodeDev(rdev);
    native.mknod(p, mode, major, minor);
    this.own(ctx, p, parent, mode);
    return this.entry(p);
  }

  mkdir(ctx: Context, parent: Node, name: string, mode: number): Entry<undefined> {
    const p = this.childPath(parent, name);
    fs.mkdirSync(p, mode & 0o7777);
    this.own(ctx, p, parent, C.S_IFDIR | mode);
    return this.entry(p);
  }

  symlink(ctx: Context, parent: Node, name: string, target: Buffer): Entry<undefined> {
    const p = this.childPath(parent, name);
    fs.symlinkSync(target, p);
    this.own(ctx, p, parent, C.S_IFLNK);
    return this.entry(p);
  }

  link(_ctx: Context, node: Node, newParent: Node, newName: string): Entry<undefined> {
    const p = this.childPath(newParent, newName);
    fs.linkSync(this.path(node), p);
    return this.entry(p);
  }

  unlink(_ctx: Context, parent: Node, name: string): void {
    fs.unlinkSync(this.childPath(parent, name));
  }

  rmdir(_ctx: Context, parent: Node, name: string): void {
    fs.rmdirSync(this.childPath(parent, name));
  }

  rename(_ctx: Context, parent: Node, name: string, newParent: Node, newName: string, flags: number): void {
    const from = this.childPath(parent, name);
    const to = this.childPath(newParent, newName);
    if (flags === 0) fs.renameSync(from, to);
    else native.renameat2(from, to, flags);
  }

  /**
   * With passthrough the kernel shares one backing file among all opens of an inode, so
   * the fd is opened read-write where the file allows it; a later write-open then reuses it.
   */
  private openFd(p: string | Buffer, flags: number, mode?: number): { fd: number; writable: boolean } {
    // O_APPEND stays with the kernel (it sends the append offset); a shared backing file
    // must not force it on every other open.
    const base = flags & ~(C.O_APPEND | C.O_NOCTTY | O_ACCMODE);
    const acc = flags & O_ACCMODE;
    if (this.opts.passthrough && acc !== C.O_RDWR) {
      try {
        return { fd: fs.openSync(p, base | C.O_RDWR, mode), writable: true };
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'EROFS' && code !== 'ETXTBSY' && code !== 'EACCES' && code !== 'EPERM') throw e;
      }
    }
    return { fd: fs.openSync(p, base | acc, mode), writable: acc !== C.O_RDONLY };
  }

  private opened(o: { fd: number; writable: boolean }): OpenResult<LoopbackHandle> {
    return { handle: { fd: o.fd }, backingFd: o.fd, backingWritable: o.writable };
  }

  open(_ctx: Context, node: Node, flags: number): OpenResult<LoopbackHandle> {
    return this.opened(this.openFd(this.path(node), flags & ~(C.O_CREAT | C.O_EXCL)));
  }

  create(ctx: Context, parent: Node, name: string, flags: number, mode: number): { entry: Entry<undefined>; open: OpenResult<LoopbackHandle> } {
    const p = this.childPath(parent, name);
    const o = this.openFd(p, flags | C.O_CREAT, mode & 0o7777);
    try {
      this.own(ctx, p, parent, C.S_IFREG | mode);
      return { entry: { attr: attrFromStats(fs.fstatSync(o.fd, { bigint: true })) }, open: this.opened(o) };
    } catch (e) {
      fs.closeSync(o.fd);
      throw e;
    }
  }

  read(_ctx: Context, _node: Node, h: LoopbackHandle, offset: number, size: number): Buffer {
    const buf = Buffer.allocUnsafe(size);
    const n = fs.readSync(h.fd, buf, 0, size, offset);
    return buf.subarray(0, n);
  }

  write(_ctx: Context, _node: Node, h: LoopbackHandle, offset: number, data: Buffer): number {
    return fs.writeSync(h.fd, data, 0, data.length, offset);
  }

  release(_ctx: Context, _node: Node, h: LoopbackHandle): void {
    fs.closeSync(h.fd);
  }

  fsync(_ctx: Context, _node: Node, h: LoopbackHandle | undefined, datasync: boolean): Promise<void> | void {
    if (!h) return;
    // Off the event loop: a flush to disk can take long and other requests keep flowing.
    return datasync ? fdatasyncAsync(h.fd) : fsyncAsync(h.fd);
  }

  async fsyncdir(_ctx: Context, node: Node, datasync: boolean): Promise<void> {
    const fd = fs.openSync(this.path(node), C.O_RDONLY | C.O_DIRECTORY);
    try {
      await (datasync ? fdatasyncAsync(fd) : fsyncAsync(fd));
    } finally {
      fs.closeSync(fd);
    }
  }

  fallocate(_ctx: Context, _node: Node, h: LoopbackHandle, mode: number, offset: number, length: number): void {
    native.fallocate(h.fd, mode, offset, length);
  }

  lseek(_ctx: Context, _node: Node, h: LoopbackHandle, offset: number, whence: number): number {
    return native.lseek(h.fd, offset, whence);
  }

  copyFileRange(_ctx: Context, _in: Node, hin: LoopbackHandle, offIn: number, _out: Node, hout: LoopbackHandle, offOut: number, len: number): number {
    return native.copyFileRange(hin.fd, offIn, hout.fd, offOut, len);
  }

  readdir(_ctx: Context, node: Node): DirEntry[] {
    const dir = this.path(node);
    const names = fs.readdirSync(dir, { encoding: 'latin1' });
    const out: DirEntry[] = [];
    const base = `${this.source}/${node.path()}`;
    for (const name of names) {
      const st = fs.lstatSync(osPath(`${base}/${name}`), { bigint: true, throwIfNoEntry: false });
      if (st) out.push({ name, ino: st.ino, mode: Number(st.mode) });
    }
    return out;
  }

  statfs(): StatfsOut {
    const s = fs.statfsSync(this.source);
    return { blocks: s.blocks, bfree: s.bfree, bavail: s.bavail, files: s.files, ffree: s.ffree, bsize: s.bsize, namelen: 255, frsize: s.bsize };
  }

  getxattr(_ctx: Context, node: Node, name: string): Buffer {
    return native.lgetxattr(this.path(node), name);
  }

  listxattr(_ctx: Context, node: Node): string[] {
    return native.llistxattr(this.path(node));
  }

  setxattr(_ctx: Context, node: Node, name: string, value: Buffer, flags: number): void {
    native.lsetxattr(this.path(node), name, value, flags);
  }

  removexattr(_ctx: Context, node: Node, name: string): void {
    native.lremovexattr(this.path(node), name);
  }
}

/** utimensat arguments for one time: a value, the current time, or left alone. */
function timeArgs(t: TimeSpec | undefined): [number, number] {
  if (t === undefined) return [0, native.UTIME_OMIT];
  if (t === 'now') return [0, native.UTIME_NOW];
  return [t.sec, t.nsec];
}
