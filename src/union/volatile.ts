// A volatile mount, as overlayfs's `volatile` option and fuse-overlayfs's `fsync=0`: copy-ups
// are not fsynced and fsync/fsyncdir through the mount write nothing out, so a crash of the
// machine may lose or tear anything written through it. While it runs it leaves the marker
// overlayfs leaves, WORK/work/incompat/volatile, and every mount (ours, and the kernel's
// overlayfs) refuses an upper dir whose work dir still holds it. Unlike overlayfs, a clean
// unmount of ours writes the upper filesystem out (one syncfs) and removes the marker, so the
// upper dir can be mounted again; only a daemon that died keeps it.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { native } from '../native/binding.js';

export function volatileMarker(work: string): string {
  return path.join(work, 'work', 'incompat', 'volatile');
}

/** Fails, saying why and what to do, when a volatile mount of this work dir did not end cleanly. */
export function refuseUnfinishedVolatile(work: string): void {
  const marker = volatileMarker(work);
  if (!fs.existsSync(marker)) return;
  throw new Error(
    `${work}: this upper dir was mounted volatile (no fsync) and that mount did not end cleanly, so what was written ` +
      `through it may be lost or torn. Start over with empty upper and work dirs, or, if the machine has not crashed ` +
      `since, remove ${marker} and mount again`,
  );
}

export function markVolatile(work: string): void {
  fs.mkdirSync(volatileMarker(work), { recursive: true, mode: 0o700 });
}

/** After a clean unmount: everything written is made durable, then the marker goes. */
export function finishVolatile(work: string, upper: string): void {
  const fd = fs.openSync(upper, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    native.syncfs(fd);
  } finally {
    fs.closeSync(fd);
  }
  const marker = volatileMarker(work);
  fs.rmSync(marker, { recursive: true, force: true });
  // The incompat dir goes too when nothing else is in it (another feature's marker stays).
  try {
    fs.rmdirSync(path.dirname(marker));
  } catch {
    // not empty, or gone
  }
}
