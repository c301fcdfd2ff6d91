// Which state of the index file is known sound, so that opening it need not read it whole.
// SQLite's quick_check reads every page: 0.3 s warm and 0.9 s cold for a 97 MB index (a
// store of some sixty images), on every mount. A state is known sound when a check passed
// on it or when our own connection closed on it (SQLite's own writes, WAL mode: a crash
// loses transactions but damages nothing). Anything else that touched the main file since
// (a change by hand, a disk fault that moved its size or mtime) makes the next open check.
// The record is a file beside the index (FILE-sound), replaced atomically.

import * as fs from 'node:fs';

const recordOf = (file: string): string => `${file}-sound`;

/** dev, inode, size and mtime (ns) of the main file, or undefined when there is none. */
function stateOf(file: string): string | undefined {
  const st = fs.statSync(file, { bigint: true, throwIfNoEntry: false });
  return st && `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`;
}

/** Whether the main file is as a passed check or a clean close of ours left it. */
export function knownSound(file: string): boolean {
  const now = stateOf(file);
  if (now === undefined) return false;
  try {
    return fs.readFileSync(recordOf(file), 'utf8') === now;
  } catch {
    return false;
  }
}

/** The file is moved aside as unusable: its record goes (it would describe no file). */
export function dropSoundRecord(file: string): void {
  fs.rmSync(recordOf(file), { force: true });
}

/**
 * Records the main file's present state as sound. Best effort: a caller without write
 * access to the index's dir (it could not write the index either) leaves no record, and
 * the next open checks.
 */
export function markSound(file: string): void {
  const now = stateOf(file);
  if (now === undefined) return;
  const tmp = `${recordOf(file)}.${process.pid}`;
  try {
    fs.writeFileSync(tmp, now);
    fs.renameSync(tmp, recordOf(file));
  } catch {
    fs.rmSync(tmp, { force: true });
  }
}
