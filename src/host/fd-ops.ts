// The open-file half of a FileSystem whose files are host files: both the loopback and the
// union serve READ, WRITE, FSYNC, FALLOCATE, LSEEK, COPY_FILE_RANGE and RELEASE from the
// host fd behind the handle. They extend this class instead of repeating it.

import * as fs from 'node:fs';
import type { Context } from '../fs/api.js';
import type { Inode } from '../fs/inode.js';
import { native } from '../native/binding.js';
import { fsyncFd, readFd, writeFd, type FdHandle } from './files.js';

export abstract class FdFileOps<D, H extends FdHandle = FdHandle> {
  read(_ctx: Context, _node: Inode<D>, h: H, offset: number, size: number): Buffer {
    return readFd(h, offset, size);
  }

  write(_ctx: Context, _node: Inode<D>, h: H, offset: number, data: Buffer): number {
    return writeFd(h, offset, data);
  }

  release(_ctx: Context, _node: Inode<D>, h: H): void {
    fs.closeSync(h.fd);
  }

  fsync(_ctx: Context, _node: Inode<D>, h: H | undefined, datasync: boolean): Promise<void> | void {
    if (h) return fsyncFd(h.fd, datasync);
  }

  fallocate(_ctx: Context, _node: Inode<D>, h: H, mode: number, offset: number, length: number): void {
    native.fallocate(h.fd, mode, offset, length);
  }

  lseek(_ctx: Context, _node: Inode<D>, h: H, offset: number, whence: number): number {
    return native.lseek(h.fd, offset, whence);
  }

  copyFileRange(_ctx: Context, _in: Inode<D>, hin: H, offIn: number, _out: Inode<D>, hout: H, offOut: number, len: number): number {
    return native.copyFileRange(hin.fd, offIn, hout.fd, offOut, len);
  }
}
