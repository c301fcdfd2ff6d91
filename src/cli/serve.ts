// Runs a FileSystem as a mount in this process until it is unmounted; signals unmount it.
// Shared by every command that mounts (loopback now, the union and containers next).

import type { FileSystem } from '../fs/api.js';
import { FuseServer, type ServeOptions } from '../fs/server.js';
import { log } from '../util/log.js';
import { reportReady } from './daemon.js';

export async function serveForeground<D, H>(mountpoint: string, fsys: FileSystem<D, H>, opts: ServeOptions): Promise<void> {
  // The kernel already applied the caller's umask to every mode it sends.
  process.umask(0);
  const server = new FuseServer(mountpoint, fsys, opts);
  try {
    await server.mount();
  } catch (e) {
    reportReady((e as Error).message);
    throw e;
  }
  reportReady();
  const stop = (sig: string): void => {
    log.info({ signal: sig, path: mountpoint }, 'unmounting on signal');
    server.unmount(true);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  process.on('SIGHUP', stop);
  await server.closed();
  process.off('SIGINT', stop);
  process.off('SIGTERM', stop);
  process.off('SIGHUP', stop);
  log.info({ path: mountpoint }, 'unmounted; daemon exits');
}
