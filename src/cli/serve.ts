// Runs a FileSystem as a mount in this process until it is unmounted; signals unmount it.
// Shared by every command that mounts (loopback, the union, containers next).

import type { FileSystem } from '../fs/api.js';
import { FuseServer, type ServeOptions } from '../fs/server.js';
import { log } from '../util/log.js';
import { reportReady } from './daemon.js';

export async function serveForeground<D, H>(mountpoint: string, fsys: FileSystem<D, H>, opts: ServeOptions): Promise<void> {
  // The kernel already applied the caller's umask to every mode it sends.
  process.umask(0);
  const server = new FuseServer(mountpoint, fsys, opts);
  let mounted = false;
  let stopRequested = false;
  const stop = (sig: string): void => {
    log.info({ signal: sig, path: mountpoint }, 'unmounting on signal');
    stopRequested = true;
    if (mounted) server.unmount(true);
  };
  // Handlers before anything else: whoever waits for "ready" may signal us at once, and
  // without a listener a SIGTERM would kill the daemon and leave a dead mount behind.
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  for (const s of signals) process.on(s, stop);
  try {
    try {
      await server.mount();
    } catch (e) {
      reportReady((e as Error).message);
      throw e;
    }
    mounted = true;
    reportReady();
    if (stopRequested) server.unmount(true);
    await server.closed();
    log.info({ path: mountpoint }, 'unmounted; daemon exits');
  } finally {
    for (const s of signals) process.off(s, stop);
  }
}
