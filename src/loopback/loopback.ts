// The reference filesystem: mirrors one directory. It exercises every operation of the node
// API on a real filesystem and is the template the union filesystem follows.

import * as fs from 'node:fs';
import type { Attr, Context, DirEntry, Entry, FileSystem, OpenResult, SetAttr, StatfsOut } from '../fs/api.js';
import { decodeDev, fstatHost, lstatHost, lstatHostOrThrow } from '../fs/attr.js';
import type { Inode } from '../fs/inode.js';
import { FdFileOps } from '../host/fd-ops.js';
import { applySetAttr, fsyncDir, giveToCaller, openHost, statfsOf, withCallerUmask, type FdHandle } from '../host/files.js';
import { native } from '../native/binding.js';
import { osPath } from '../util/os-path.js';

const C = fs.constants;

export interface LoopbackOptions {
  /** Hand open files to the kernel as passthrough backing files when it agreed to it. */
  passthrough?: boolean;
}

export type LoopbackHandle = FdHandle;

type Node = Inode<undefined>;

export class LoopbackFs extends FdFileOps<undefined> implements FileSystem<undefined, LoopbackHandle> {
  constructor(
    readonly source: string,
    private readonly opts: LoopbackOptions = {},
  ) {
    super();
  }

  private path(node: Node): string | Buffer {
    return osPath(`${this.source}/${node.path()}`);
  }

  private childPath(parent: Node, name: string): string | Buffer {
    return osPath(`${this.source}/${parent.childPath(name)}`);
  }

  /** A new object: give it to the caller and answer with its attributes. */
  private created(ctx: Context, p: string | Buffer, parent: Node, mode: number): Entry<undefined> {
    giveToCaller(ctx, p, this.path(parent), mode);
    return { attr: lstatHostOrThrow(p) };
  }

  root(): { attr: Attr; data: undefined } {
    return { attr: lstatHostOrThrow(this.source), data: undefined };
  }

  lookup(_ctx: Context, parent: Node, name: string): Entry<undefined> {
    return { attr: lstatHostOrThrow(this.childPath(parent, name)) };
  }

  getattr(_ctx: Context, node: Node, fh: LoopbackHandle | undefined): Attr {
    if (fh) return fstatHost(fh.fd);
    return lstatHostOrThrow(this.path(node));
  }

  setattr(ctx: Context, node: Node, s: SetAttr, fh: LoopbackHandle | undefined): Attr {
    // An inode unlinked while open has no path; the bridge then hands us one of its fds.
    applySetAttr(fh ? '' : this.path(node), node.type === C.S_IFLNK, s, fh);
    return this.getattr(ctx, node, fh);
  }

  readlink(_ctx: Context, node: Node): Buffer {
    return fs.readlinkSync(this.path(node), { encoding: 'buffer' });
  }

  mknod(ctx: Context, parent: Node, name: string, mode: number, rdev: number): Entry<undefined> {
    const p = this.childPath(parent, name);
    const { major, minor } = decodeDev(rdev);
    withCallerUmask(ctx, () => native.mknod(p, mode, major, minor));
    return this.created(ctx, p, parent, mode);
  }

  mkdir(ctx: Context, parent: Node, name: string, mode: number): Entry<undefined> {
    const p = this.childPath(parent, name);
    withCallerUmask(ctx, () => fs.mkdirSync(p, mode & 0o7777));
    return this.created(ctx, p, parent, C.S_IFDIR | mode);
  }

  symlink(ctx: Context, parent: Node, name: string, target: Buffer): Entry<undefined> {
    const p = this.childPath(parent, name);
    fs.symlinkSync(target, p);
    return this.created(ctx, p, parent, C.S_IFLNK);
  }

  link(_ctx: Context, node: Node, newParent: Node, newName: string): Entry<undefined> {
    const p = this.childPath(newParent, newName);
    fs.linkSync(this.path(node), p);
    return { attr: lstatHostOrThrow(p) };
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

  private opened(o: { fd: number; writable: boolean }): OpenResult<LoopbackHandle> {
    return { handle: { fd: o.fd }, backingFd: o.fd, backingWritable: o.writable };
  }

  open(_ctx: Context, node: Node, flags: number): OpenResult<LoopbackHandle> {
    return this.opened(openHost(this.path(node), flags & ~(C.O_CREAT | C.O_EXCL), !!this.opts.passthrough));
  }

  create(ctx: Context, parent: Node, name: string, flags: number, mode: number): { entry: Entry<undefined>; open: OpenResult<LoopbackHandle> } {
    const p = this.childPath(parent, name);
    const o = withCallerUmask(ctx, () => openHost(p, flags | C.O_CREAT, !!this.opts.passthrough, mode & 0o7777));
    try {
      giveToCaller(ctx, p, this.path(parent), C.S_IFREG | mode);
      return { entry: { attr: fstatHost(o.fd) }, open: this.opened(o) };
    } catch (e) {
      fs.closeSync(o.fd);
      throw e;
    }
  }

  fsyncdir(_ctx: Context, node: Node, datasync: boolean): Promise<void> {
    return fsyncDir(this.path(node), datasync);
  }

  readdir(_ctx: Context, node: Node): DirEntry[] {
    const base = `${this.source}/${node.path()}`;
    const out: DirEntry[] = [];
    for (const name of fs.readdirSync(osPath(base), { encoding: 'latin1' })) {
      const st = lstatHost(osPath(`${base}/${name}`));
      if (st) out.push({ name, ino: st.ino, mode: Number(st.mode) });
    }
    return out;
  }

  statfs(): StatfsOut {
    return statfsOf(this.source);
  }

  // An inode unlinked while open has no path; the bridge then hands us one of its fds.
  getxattr(_ctx: Context, node: Node, name: string, fh?: LoopbackHandle): Buffer {
    return fh ? native.fgetxattr(fh.fd, name) : native.lgetxattr(this.path(node), name);
  }

  listxattr(_ctx: Context, node: Node, fh?: LoopbackHandle): string[] {
    return fh ? native.flistxattr(fh.fd) : native.llistxattr(this.path(node));
  }

  setxattr(_ctx: Context, node: Node, name: string, value: Buffer, flags: number, fh?: LoopbackHandle): void {
    if (fh) native.fsetxattr(fh.fd, name, value, flags);
    else native.lsetxattr(this.path(node), name, value, flags);
  }

  removexattr(_ctx: Context, node: Node, name: string, fh?: LoopbackHandle): void {
    if (fh) native.fremovexattr(fh.fd, name);
    else native.lremovexattr(this.path(node), name);
  }
}
