// The entries of a tar to write, collected first (metadata only) and written second, so the
// total of file data is known before the first byte goes out (progress bars) and the
// order is fixed before any content is read. Commit and export both fill a TarPlan.
//
// Header fields are chosen so that the same tree always gives the same bytes: entries in
// the caller's (sorted) order, no atime/ctime, no user or group names, xattrs sorted,
// whiteout and opaque markers with fixed metadata (a deletion has no content, and when it
// happened is no part of what changed).

import * as fs from 'node:fs';
import { decodeDev, type HostStat } from '../fs/attr.js';
import type { HostPath } from '../host/files.js';
import { encodeHeader, END_OF_ARCHIVE, markerHeader, padding, type TarEntry } from '../store/tar-write.js';
import { isPrivateXattr, OCI_OPAQUE, OCI_WHITEOUT_PREFIX } from '../union/markers.js';
import { log } from '../util/log.js';
import { joinRel } from '../util/os-path.js';
import { readXattrs } from '../util/xattrs.js';

export interface PlanEntry {
  header: TarEntry;
  /** Content of a regular file. */
  data?: HostPath;
}

const CHUNK = 1 << 20;

function hostName(p: HostPath): string {
  return typeof p === 'string' ? p : p.toString('latin1');
}

/**
 * The xattrs a tar carries: everything but our own records. A user's own trusted.overlay.X
 * (stored escaped on disk) is left out too: in a layer tar it would read as an overlayfs
 * record to whoever extracts it, and our own extraction refuses those.
 */
function xattrsOf(p: HostPath): Record<string, Buffer> | undefined {
  const kept = readXattrs(p, (n) => {
    if (!isPrivateXattr(n)) return true;
    if (n.startsWith('trusted.overlay.overlay.')) log.warn({ path: hostName(p), xattr: n }, 'a trusted.overlay.* xattr cannot go into a layer tar; left out');
    return false;
  });
  return kept.length ? Object.fromEntries(kept) : undefined;
}

export class TarPlan {
  readonly entries: PlanEntry[] = [];
  /** Bytes of regular-file content in the plan. */
  dataBytes = 0;
  /** First name written for each inode with several links, by its union inode number. */
  private readonly firstName = new Map<bigint, string>();

  /**
   * An object at archive path `name` ('.' for the root): metadata from `st` and xattrs
   * from `meta`, content from `data`; `ino` (the union's inode number) makes later names
   * of a hard-linked inode link entries to its first name.
   */
  add(name: string, st: HostStat, meta: HostPath, data: HostPath | undefined, ino: bigint): void {
    const base = { name, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: { sec: st.mtime, nsec: st.mtimensec } };
    const type = st.mode & fs.constants.S_IFMT;
    if (type !== fs.constants.S_IFDIR && st.nlink > 1) {
      const first = this.firstName.get(ino);
      if (first !== undefined) {
        this.entries.push({ header: { ...base, type: 'hardlink', linkname: first } });
        return;
      }
      this.firstName.set(ino, name);
    }
    const xattrs = xattrsOf(meta);
    let header: TarEntry;
    if (type === fs.constants.S_IFDIR) header = { ...base, type: 'dir', xattrs };
    else if (type === fs.constants.S_IFREG) {
      header = { ...base, type: 'file', size: st.size, xattrs };
      this.dataBytes += st.size;
      this.entries.push({ header, data: data ?? meta });
      return;
    } else if (type === fs.constants.S_IFLNK) header = { ...base, type: 'symlink', linkname: fs.readlinkSync(meta, { encoding: 'latin1' }), xattrs };
    else if (type === fs.constants.S_IFIFO) header = { ...base, type: 'fifo', xattrs };
    else if (type === fs.constants.S_IFCHR || type === fs.constants.S_IFBLK) {
      const { major, minor } = decodeDev(st.rdev);
      header = { ...base, type: type === fs.constants.S_IFCHR ? 'chardev' : 'blockdev', devmajor: major, devminor: minor, xattrs };
    } else {
      // Sockets cannot be archived; tar tools skip them too.
      log.info({ path: hostName(meta) }, 'socket left out of the archive');
      return;
    }
    this.entries.push({ header });
  }

  /** `dir/.wh.NAME`: NAME is deleted. */
  whiteout(dir: string, name: string): void {
    this.marker(joinRel(dir, OCI_WHITEOUT_PREFIX + name));
  }

  /** `dir/.wh..wh..opq`: nothing of the layers below shows through dir. */
  opaque(dir: string): void {
    this.marker(joinRel(dir, OCI_OPAQUE));
  }

  private marker(name: string): void {
    this.entries.push({ header: markerHeader(name) });
  }
}

/** Reads exactly `size` bytes of a file, in chunks; a file that changed size while read is an error. */
function* content(p: HostPath, size: number): Generator<Buffer> {
  let fd: number;
  try {
    fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (e) {
    throw new Error(`${hostName(p)}: cannot read for the archive: ${(e as NodeJS.ErrnoException).code}`);
  }
  try {
    let done = 0;
    while (done < size) {
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, size - done));
      const n = fs.readSync(fd, buf, 0, buf.length, done);
      if (n === 0) throw new Error(`${hostName(p)}: file shrank while being archived (${done} of ${size} bytes)`);
      done += n;
      yield n === buf.length ? buf : buf.subarray(0, n);
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** The plan as tar bytes. `onData(bytes)` is told the file content written so far. */
export async function* tarChunks(plan: TarPlan, onData?: (bytes: number) => void): AsyncGenerator<Buffer> {
  let written = 0;
  for (const e of plan.entries) {
    yield encodeHeader(e.header);
    const size = e.header.type === 'file' ? (e.header.size ?? 0) : 0;
    if (size === 0) continue;
    for (const chunk of content(e.data!, size)) {
      yield chunk;
      written += chunk.length;
      onData?.(written);
    }
    yield padding(size);
  }
  yield END_OF_ARCHIVE;
}
