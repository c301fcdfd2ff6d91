// One FUSE connection: reads batches of requests from the device (the addon polls it in
// Node's own event loop), negotiates INIT, dispatches each request to a RawFileSystem,
// and writes replies, possibly later and out of order. FORGET/INTERRUPT need no reply.

import { native } from '../native/binding.js';
import { log } from '../util/log.js';
import type { MaybeAsync } from '../util/maybe-async.js';
import { InitFlag, KERNEL_MINOR_VERSION, KERNEL_VERSION, MIN_READ_BUFFER, Op, SIZE } from './abi.js';
import { errnoNumber, errnoOf } from './errors.js';
import { initOut } from './replies.js';
import type * as R from './requests.js';
import { decodeRequest } from './requests.js';
import { putU64 } from './wire.js';

export type ReplyBody = Buffer | Buffer[] | void;
export type { MaybeAsync };

/** What every handler gets besides its body: who asks, and whether they gave up. */
export interface RequestContext extends R.InHeader {
  /** Set when the kernel sent INTERRUPT for this request; long handlers may stop with EINTR. */
  interrupted?: boolean;
  /** A creating request's caller umask, when the kernel left it to the daemon (see fs/api.ts Context). */
  umask?: number;
}

/**
 * The raw, nodeid-based API (go-fuse's RawFileSystem). Every method is optional except the
 * first three; a missing one answers ENOSYS. Handlers throw errors with a `code` to fail.
 */
export interface RawFileSystem {
  lookup(ctx: RequestContext, name: string): MaybeAsync<ReplyBody>;
  forget(nodeid: number, nlookup: number): void;
  getattr(ctx: RequestContext, body: R.GetattrIn): MaybeAsync<ReplyBody>;
  init?(session: Session): void;
  destroy?(): void;
  setattr?(ctx: RequestContext, body: R.SetattrIn): MaybeAsync<ReplyBody>;
  readlink?(ctx: RequestContext): MaybeAsync<ReplyBody>;
  symlink?(ctx: RequestContext, body: R.SymlinkIn): MaybeAsync<ReplyBody>;
  mknod?(ctx: RequestContext, body: R.MknodIn): MaybeAsync<ReplyBody>;
  mkdir?(ctx: RequestContext, body: R.MkdirIn): MaybeAsync<ReplyBody>;
  unlink?(ctx: RequestContext, name: string): MaybeAsync<ReplyBody>;
  rmdir?(ctx: RequestContext, name: string): MaybeAsync<ReplyBody>;
  rename?(ctx: RequestContext, body: R.RenameIn): MaybeAsync<ReplyBody>;
  link?(ctx: RequestContext, body: R.LinkIn): MaybeAsync<ReplyBody>;
  open?(ctx: RequestContext, body: R.OpenIn): MaybeAsync<ReplyBody>;
  create?(ctx: RequestContext, body: R.CreateIn): MaybeAsync<ReplyBody>;
  tmpfile?(ctx: RequestContext, body: R.CreateIn): MaybeAsync<ReplyBody>;
  read?(ctx: RequestContext, body: R.ReadIn): MaybeAsync<ReplyBody>;
  write?(ctx: RequestContext, body: R.WriteIn): MaybeAsync<ReplyBody>;
  flush?(ctx: RequestContext, body: R.FlushIn): MaybeAsync<ReplyBody>;
  release?(ctx: RequestContext, body: R.ReleaseIn): MaybeAsync<ReplyBody>;
  fsync?(ctx: RequestContext, body: R.FsyncIn): MaybeAsync<ReplyBody>;
  statfs?(ctx: RequestContext): MaybeAsync<ReplyBody>;
  setxattr?(ctx: RequestContext, body: R.SetxattrIn): MaybeAsync<ReplyBody>;
  getxattr?(ctx: RequestContext, body: R.GetxattrIn): MaybeAsync<ReplyBody>;
  listxattr?(ctx: RequestContext, body: R.GetxattrIn): MaybeAsync<ReplyBody>;
  removexattr?(ctx: RequestContext, name: string): MaybeAsync<ReplyBody>;
  opendir?(ctx: RequestContext, body: R.OpenIn): MaybeAsync<ReplyBody>;
  readdir?(ctx: RequestContext, body: R.ReadIn, plus: boolean): MaybeAsync<ReplyBody>;
  releasedir?(ctx: RequestContext, body: R.ReleaseIn): MaybeAsync<ReplyBody>;
  fsyncdir?(ctx: RequestContext, body: R.FsyncIn): MaybeAsync<ReplyBody>;
  getlk?(ctx: RequestContext, body: R.LkIn): MaybeAsync<ReplyBody>;
  setlk?(ctx: RequestContext, body: R.LkIn, wait: boolean): MaybeAsync<ReplyBody>;
  access?(ctx: RequestContext, body: R.AccessIn): MaybeAsync<ReplyBody>;
  fallocate?(ctx: RequestContext, body: R.FallocateIn): MaybeAsync<ReplyBody>;
  lseek?(ctx: RequestContext, body: R.LseekIn): MaybeAsync<ReplyBody>;
  copyFileRange?(ctx: RequestContext, body: R.CopyFileRangeIn): MaybeAsync<ReplyBody>;
}

export interface SessionOptions {
  /** Largest WRITE the kernel may send; also sizes the read buffer. */
  maxWrite?: number;
  /** Ask for FUSE passthrough (needs CAP_SYS_ADMIN and a kernel that offers it). */
  passthrough?: boolean;
  /** Kernel-side POSIX and flock locks are used unless the fs asks to see them. */
  locks?: boolean;
  /** Let the kernel drop cached pages when a file's mtime or size changes (loopback). */
  autoInvalData?: boolean;
  /**
   * Microseconds to keep reading the device after a batch before sleeping (default 50).
   * A sleep and wake-up per request costs more than the request on a VM; see reader.c.
   */
  spinMicros?: number;
  /**
   * Ask for FUSE_POSIX_ACL: the kernel then enforces POSIX ACLs (read through GETXATTR
   * system.posix_acl_access, cached per inode) and leaves the caller's umask to the daemon
   * (FUSE_DONT_MASK), since a parent's default ACL replaces it. The filesystem must then
   * apply Context.umask when it creates.
   */
  posixAcl?: boolean;
}

/** What INIT settled on; fixed for the life of the connection. */
export interface Negotiated {
  minor: number;
  flags: bigint;
  maxWrite: number;
  passthrough: boolean;
  readdirplus: boolean;
  /** Creating requests carry the caller's umask, not yet applied (SessionOptions.posixAcl). */
  dontMask: boolean;
  /** The kernel opens directories without asking once OPENDIR answers ENOSYS; older ones fail the open. */
  noOpendir: boolean;
}

/** An operation the filesystem does not implement answers ENOSYS. */
function need<T>(m: T | undefined): T {
  if (m === undefined) throw { code: 'ENOSYS' };
  return m;
}

/** Replies up to this size are sent as one buffer (see reply()). */
const SMALL_REPLY = 4096;

/** fuse_out_header: total length, -errno (0 for success), the request's unique. */
function header(b: Buffer, len: number, unique: number, error = 0): void {
  b.writeUInt32LE(len, 0);
  b.writeInt32LE(error, 4);
  putU64(b, 8, unique);
}

/** FORGET, BATCH_FORGET and INTERRUPT are never answered. */
const NO_REPLY: unique symbol = Symbol('no reply');
const ENOSYS = errnoNumber('ENOSYS');
const EIO = errnoNumber('EIO');
const EPROTO = errnoNumber('EPROTO');

export class Session {
  readonly maxWrite: number;
  negotiated: Negotiated | undefined;
  private reader: { stop(): void } | undefined;
  /** Requests answered asynchronously, by unique, so INTERRUPT can reach them. */
  private readonly pending = new Map<number, RequestContext>();
  /** Requests read from the device so far (fs/idle-memory.ts watches it). */
  requestsRead = 0;
  private readyWaiters: Array<(err?: Error) => void> = [];
  private closedWaiters: Array<() => void> = [];
  private closed = false;

  constructor(
    readonly fd: number,
    private readonly fs: RawFileSystem,
    private readonly opts: SessionOptions = {},
  ) {
    this.maxWrite = opts.maxWrite ?? 1 << 20;
  }

  start(): void {
    // The kernel insists the buffer hold a whole WRITE: header + fuse_write_in + max_write.
    const bufSize = Math.max(MIN_READ_BUFFER, this.maxWrite + 4096);
    this.reader = native.startReader(this.fd, bufSize, (batch, err) => {
      if (batch === null) {
        if (err) log.error({ err }, 'reading /dev/fuse failed');
        this.shutdown();
        return;
      }
      this.requestsRead += batch.length;
      for (const buf of batch) this.dispatch(buf);
    }, this.opts.spinMicros ?? 50);
  }

  /** Requests answered asynchronously that have not been answered yet. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** Resolves once INIT has been answered: from then on the mount answers requests. */
  ready(): Promise<void> {
    if (this.negotiated) return Promise.resolve();
    if (this.closed) return Promise.reject(new Error('FUSE connection closed before INIT'));
    return new Promise((resolve, reject) => this.readyWaiters.push((e) => (e ? reject(e) : resolve())));
  }

  /** Resolves when the kernel closed the connection (unmount or abort). */
  closedPromise(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => this.closedWaiters.push(resolve));
  }

  /** Registers an open file as a passthrough backing file; returns its backing id. */
  openBacking(fd: number): number {
    return native.backingOpen(this.fd, fd);
  }

  closeBacking(id: number): void {
    native.backingClose(this.fd, id);
  }

  /**
   * Sends a notification (see replies.ts notify*). Never call this from a handler for a
   * request the kernel still waits on in the same directory: the kernel may hold the lock
   * the notification needs, and both sides then wait for each other.
   */
  notify(msg: Buffer): void {
    if (this.closed) return;
    try {
      native.writev(this.fd, [msg]);
    } catch (e) {
      if (errnoOf(e) !== errnoNumber('ENOENT')) log.warn({ err: e }, 'notification failed');
    }
  }

  private shutdown(): void {
    if (this.closed) return;
    this.closed = true;
    this.reader?.stop();
    try {
      this.fs.destroy?.();
    } catch (e) {
      log.error({ err: e }, 'destroy failed');
    }
    for (const w of this.readyWaiters) w(new Error('FUSE connection closed before INIT'));
    this.readyWaiters = [];
    for (const w of this.closedWaiters) w();
    this.closedWaiters = [];
  }

  private dispatch(buf: Buffer): void {
    let req: R.Request;
    try {
      req = decodeRequest(buf);
    } catch (e) {
      log.error({ err: e }, 'undecodable request');
      if (buf.length >= 16) this.replyError(Number(buf.readBigUInt64LE(8)), EPROTO);
      return;
    }
    const ctx: RequestContext = req.h;
    let result: MaybeAsync<ReplyBody> | typeof NO_REPLY;
    try {
      result = this.call(req, ctx);
    } catch (e) {
      this.replyFailure(ctx, e);
      return;
    }
    if (result === NO_REPLY) return;
    if (result instanceof Promise) {
      this.pending.set(ctx.unique, ctx);
      result.then(
        (body) => {
          this.pending.delete(ctx.unique);
          this.reply(ctx.unique, body);
        },
        (e: unknown) => {
          this.pending.delete(ctx.unique);
          this.replyFailure(ctx, e);
        },
      );
    } else {
      this.reply(ctx.unique, result);
    }
  }

  private call(req: R.Request, ctx: RequestContext): MaybeAsync<ReplyBody> | typeof NO_REPLY {
    const fs = this.fs;
    switch (req.op) {
      case Op.INIT:
        return this.init(req.body);
      case Op.LOOKUP:
        return fs.lookup(ctx, req.body.name);
      case Op.FORGET:
        fs.forget(ctx.nodeid, req.body.nlookup);
        return NO_REPLY;
      case Op.BATCH_FORGET:
        for (const f of req.body.forgets) fs.forget(f.nodeid, f.nlookup);
        return NO_REPLY;
      case Op.INTERRUPT: {
        const target = this.pending.get(req.body.unique);
        // A request already answered is simply gone; nothing to do.
        if (target) target.interrupted = true;
        return NO_REPLY;
      }
      case Op.GETATTR:
        return fs.getattr(ctx, req.body);
      case Op.SETATTR:
        return need(fs.setattr).call(fs, ctx, req.body);
      case Op.READLINK:
        return need(fs.readlink).call(fs, ctx);
      case Op.SYMLINK:
        return need(fs.symlink).call(fs, ctx, req.body);
      case Op.MKNOD:
        return need(fs.mknod).call(fs, ctx, req.body);
      case Op.MKDIR:
        return need(fs.mkdir).call(fs, ctx, req.body);
      case Op.UNLINK:
        return need(fs.unlink).call(fs, ctx, req.body.name);
      case Op.RMDIR:
        return need(fs.rmdir).call(fs, ctx, req.body.name);
      case Op.RENAME:
      case Op.RENAME2:
        return need(fs.rename).call(fs, ctx, req.body);
      case Op.LINK:
        return need(fs.link).call(fs, ctx, req.body);
      case Op.OPEN:
        return need(fs.open).call(fs, ctx, req.body);
      case Op.CREATE:
        return need(fs.create).call(fs, ctx, req.body);
      case Op.TMPFILE:
        return need(fs.tmpfile).call(fs, ctx, req.body);
      case Op.READ:
        return need(fs.read).call(fs, ctx, req.body);
      case Op.WRITE:
        return need(fs.write).call(fs, ctx, req.body);
      case Op.FLUSH:
        return fs.flush ? fs.flush(ctx, req.body) : undefined;
      case Op.RELEASE:
        return fs.release ? fs.release(ctx, req.body) : undefined;
      case Op.FSYNC:
        return need(fs.fsync).call(fs, ctx, req.body);
      case Op.STATFS:
        return need(fs.statfs).call(fs, ctx);
      case Op.SETXATTR:
        return need(fs.setxattr).call(fs, ctx, req.body);
      case Op.GETXATTR:
        return need(fs.getxattr).call(fs, ctx, req.body);
      case Op.LISTXATTR:
        return need(fs.listxattr).call(fs, ctx, req.body);
      case Op.REMOVEXATTR:
        return need(fs.removexattr).call(fs, ctx, req.body.name);
      case Op.OPENDIR:
        return need(fs.opendir).call(fs, ctx, req.body);
      case Op.READDIR:
        return need(fs.readdir).call(fs, ctx, req.body, false);
      case Op.READDIRPLUS:
        return need(fs.readdir).call(fs, ctx, req.body, true);
      case Op.RELEASEDIR:
        return fs.releasedir ? fs.releasedir(ctx, req.body) : undefined;
      case Op.FSYNCDIR:
        return need(fs.fsyncdir).call(fs, ctx, req.body);
      case Op.GETLK:
        return need(fs.getlk).call(fs, ctx, req.body);
      case Op.SETLK:
      case Op.SETLKW:
        return need(fs.setlk).call(fs, ctx, req.body, req.op === Op.SETLKW);
      case Op.ACCESS:
        return need(fs.access).call(fs, ctx, req.body);
      case Op.FALLOCATE:
        return need(fs.fallocate).call(fs, ctx, req.body);
      case Op.LSEEK:
        return need(fs.lseek).call(fs, ctx, req.body);
      case Op.COPY_FILE_RANGE:
        return need(fs.copyFileRange).call(fs, ctx, req.body);
      case Op.DESTROY:
        this.fs.destroy?.();
        return undefined;
      default:
        throw { code: 'ENOSYS' };
    }
  }

  private init(body: R.InitIn): ReplyBody {
    if (body.major !== KERNEL_VERSION) {
      // A newer major: answer with ours and wait for the kernel to retry (fuse.h's rule).
      log.warn({ major: body.major }, 'kernel speaks another FUSE major version');
      return initOut({ major: KERNEL_VERSION, minor: KERNEL_MINOR_VERSION, maxReadahead: 0, flags: 0n, maxBackground: 0, congestionThreshold: 0, maxWrite: 0, timeGran: 0, maxPages: 0, maxStackDepth: 0 });
    }
    const offered = body.flags;
    let want =
      InitFlag.ASYNC_READ |
      InitFlag.ATOMIC_O_TRUNC |
      InitFlag.EXPORT_SUPPORT |
      InitFlag.BIG_WRITES |
      InitFlag.DO_READDIRPLUS |
      InitFlag.READDIRPLUS_AUTO |
      InitFlag.ASYNC_DIO |
      InitFlag.PARALLEL_DIROPS |
      InitFlag.MAX_PAGES |
      InitFlag.CACHE_SYMLINKS |
      // We strip set-id bits ourselves (the bridge), so the kernel may cache that a file
      // has none (SB_NOSEC) instead of asking for security.capability before every write.
      InitFlag.HANDLE_KILLPRIV_V2 |
      InitFlag.INIT_EXT;
    if (this.opts.autoInvalData) want |= InitFlag.AUTO_INVAL_DATA;
    if (this.opts.locks) want |= InitFlag.POSIX_LOCKS | InitFlag.FLOCK_LOCKS;
    if (this.opts.posixAcl) want |= InitFlag.POSIX_ACL | InitFlag.DONT_MASK;
    let passthrough = false;
    if (this.opts.passthrough) {
      if (!(offered & InitFlag.PASSTHROUGH)) log.info('kernel offers no FUSE passthrough; file data goes through the daemon');
      else if (!native.capSysAdmin()) log.warn('FUSE passthrough needs CAP_SYS_ADMIN; file data goes through the daemon');
      else {
        want |= InitFlag.PASSTHROUGH;
        passthrough = true;
      }
    }
    const flags = want & offered;
    const minor = Math.min(body.minor, KERNEL_MINOR_VERSION);
    const maxPages = Math.ceil(this.maxWrite / 4096);
    this.negotiated = {
      minor,
      flags,
      maxWrite: this.maxWrite,
      passthrough,
      readdirplus: (flags & InitFlag.DO_READDIRPLUS) !== 0n,
      dontMask: (flags & InitFlag.DONT_MASK) !== 0n,
      noOpendir: (offered & InitFlag.NO_OPENDIR_SUPPORT) !== 0n,
    };
    log.info({ kernelMinor: body.minor, minor, flags: flags.toString(16), passthrough }, 'FUSE INIT');
    this.fs.init?.(this);
    queueMicrotask(() => {
      for (const w of this.readyWaiters) w();
      this.readyWaiters = [];
    });
    return initOut({
      major: KERNEL_VERSION,
      minor,
      maxReadahead: body.maxReadahead,
      flags,
      maxBackground: 64,
      congestionThreshold: 48,
      maxWrite: this.maxWrite,
      timeGran: 1,
      maxPages,
      // Backing files live on a disk filesystem (depth 0), so the mount itself is depth 1:
      // it can still serve as a lower layer of the kernel's overlayfs.
      maxStackDepth: passthrough ? 1 : 0,
    });
  }

  private replyFailure(ctx: RequestContext, e: unknown): void {
    const errno = errnoOf(e);
    if (errno === undefined) {
      log.error({ err: e, opcode: ctx.opcode, nodeid: ctx.nodeid }, 'handler failed');
      this.replyError(ctx.unique, EIO);
    } else {
      if (errno !== ENOSYS && errno !== errnoNumber('ENOENT')) log.debug({ opcode: ctx.opcode, nodeid: ctx.nodeid, code: (e as { code: string }).code, error: (e as Error).message }, 'request failed');
      this.replyError(ctx.unique, errno);
    }
  }

  private replyError(unique: number, errno: number): void {
    const h = Buffer.allocUnsafe(SIZE.outHeader);
    header(h, SIZE.outHeader, unique, -errno);
    this.write([h]);
  }

  private reply(unique: number, body: ReplyBody): void {
    if (body instanceof Buffer && body.length <= SMALL_REPLY) {
      // Metadata replies are small: one copy into a single buffer is cheaper than handing
      // the addon two buffers to gather.
      const b = Buffer.allocUnsafe(SIZE.outHeader + body.length);
      header(b, b.length, unique);
      body.copy(b, SIZE.outHeader);
      this.write([b]);
      return;
    }
    const parts = body === undefined ? [] : Array.isArray(body) ? body : [body];
    let len = SIZE.outHeader;
    for (const p of parts) len += p.length;
    const h = Buffer.allocUnsafe(SIZE.outHeader);
    header(h, len, unique);
    parts.unshift(h);
    this.write(parts);
  }

  private write(parts: Buffer[]): void {
    if (this.closed) return;
    try {
      native.writev(this.fd, parts);
    } catch (e) {
      // ENOENT: the kernel stopped waiting (interrupted request); the answer is moot.
      if (errnoOf(e) !== errnoNumber('ENOENT')) log.error({ err: e }, 'writing a FUSE reply failed');
    }
  }
}

