// Serves one FileSystem at a mount point: clears a stale mount, mounts, runs the session,
// and unmounts. One server per process: the daemon never touches its own mount.

import * as fs from 'node:fs';
import { clearStale, mountFuse, unmount, type FuseMountOptions } from '../fuse/mount.js';
import { Session, type SessionOptions } from '../fuse/session.js';
import { log } from '../util/log.js';
import type { FileSystem } from './api.js';
import { Bridge, type BridgeOptions } from './bridge.js';
import { MEMORY_IDLE_MS, watchIdle, type IdleOptions } from './idle-memory.js';

export interface ServeOptions extends FuseMountOptions, SessionOptions, BridgeOptions, IdleOptions {}

export class FuseServer<D, H> {
  readonly bridge: Bridge<D, H>;
  private session: Session | undefined;
  private idle: { stop(): void } | undefined;
  private fd = -1;

  constructor(
    readonly mountpoint: string,
    fsys: FileSystem<D, H>,
    private readonly opts: ServeOptions = {},
  ) {
    this.bridge = new Bridge(fsys, opts);
  }

  get negotiated(): Session['negotiated'] {
    return this.session?.negotiated;
  }

  /** Mounts and resolves once the kernel's INIT has been answered. */
  async mount(): Promise<void> {
    if (clearStale(this.mountpoint)) log.warn({ path: this.mountpoint }, 'stale mount cleared before mounting');
    this.fd = mountFuse(this.mountpoint, this.opts);
    this.session = new Session(this.fd, this.bridge, this.opts);
    this.session.start();
    try {
      await this.session.ready();
    } catch (e) {
      this.unmount(true);
      throw e;
    }
    const idleMs = this.opts.memoryIdleMs ?? MEMORY_IDLE_MS;
    if (idleMs > 0) this.idle = watchIdle(this.session, idleMs);
    log.info({ path: this.mountpoint, negotiated: { ...this.session.negotiated, flags: this.session.negotiated?.flags.toString(16) } }, 'mounted');
  }

  /** Resolves when the connection ends: `strata umount`, umount(8), or an abort. */
  async closed(): Promise<void> {
    await this.session?.closedPromise();
    this.idle?.stop();
    if (this.fd >= 0) {
      fs.closeSync(this.fd);
      this.fd = -1;
    }
  }

  /** Unmounts from inside the daemon. Lazy, because a busy mount must still go away on SIGTERM. */
  unmount(lazy = true): void {
    try {
      unmount(this.mountpoint, lazy);
    } catch (e) {
      log.warn({ err: e, path: this.mountpoint }, 'unmount failed');
    }
  }
}
