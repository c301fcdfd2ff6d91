// Streams one layer tar (plain or gzip) into a layer directory in the kernel overlayfs
// format, hashing the blob and the uncompressed tar on the way. Every entry passes the
// rules of tar-safety.ts before anything is written for it. The caller owns `dest` (a
// fresh directory under the store's tmp/) and removes it if this throws.

import * as fs from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { native } from '../native/binding.js';
import { log } from '../util/log.js';
import { osPath } from '../util/os-path.js';
import { HashingStream } from './digest.js';
import { isGzip, peekStream } from './stream-peek.js';
import { explainTarError, paxTime, tarExtractor, type TarHeader } from './tar-read.js';
import { LayerGuard, MAX_ENTRY_SIZE, normaliseEntryName, parentOf, UnsafeEntryError, type EntryKind } from './tar-safety.js';
import { XATTR_OPAQUE } from '../util/overlay-records.js';

export interface ExtractOptions {
  /** Bytes the input holds, when known: no entry of a plain tar can be larger. */
  inputSize?: number;
  /** Called now and then with the blob bytes read so far (progress bars). */
  onProgress?: (blobBytes: number) => void;
}

export interface ExtractResult {
  /** sha256 of the blob as read (compressed or not). */
  blobDigest: string;
  blobSize: number;
  compressed: boolean;
  /** sha256 of the uncompressed tar. */
  diffId: string;
  /** Bytes of regular-file content. */
  size: number;
  /** Entries created. */
  files: number;
}

const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;
const WHITEOUT_PREFIX = '.wh.';
const OPAQUE_MARKER = '.wh..wh..opq';
const O_CREATE_NEW = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;

/** Times and mode of a directory, applied after its contents are written (writing changes mtime). */
interface DirMeta {
  abs: string | Buffer;
  mode: number;
  atime: { sec: number; nsec: number };
  mtime: { sec: number; nsec: number };
}

function explain(err: Error): Error {
  return err instanceof UnsafeEntryError ? err : explainTarError(err);
}

export async function extractLayer(source: Readable, dest: string, opts: ExtractOptions = {}): Promise<ExtractResult> {
  const { head, stream: input } = await peekStream(source);
  const compressed = isGzip(head);
  const blobHash = new HashingStream();
  const tarHash = new HashingStream();
  const extract = tarExtractor();
  // A plain tar cannot hold an entry larger than itself; a gzip stream can, up to the limit.
  const maxSize = !compressed && opts.inputSize !== undefined ? Math.min(opts.inputSize, MAX_ENTRY_SIZE) : MAX_ENTRY_SIZE;
  const guard = new LayerGuard(maxSize);
  const dirs = new Map<string, DirMeta>();
  const abs = (p: string): string | Buffer => osPath(p ? `${dest}/${p}` : dest);
  const uidOk = process.getuid?.() === 0;
  let size = 0;

  /** Without root, files keep our uid: owners cannot be recorded (rootless extraction). */
  const chown = (set: () => void): void => {
    try {
      set();
    } catch (e) {
      if (uidOk) throw e;
    }
  };

  const setXattrs = (set: (name: Buffer, value: Buffer) => void, pax: Record<string, string> | null | undefined, p: string): void => {
    if (!pax) return;
    for (const [k, v] of Object.entries(pax)) {
      if (!k.startsWith('SCHILY.xattr.')) continue;
      const name = k.slice('SCHILY.xattr.'.length);
      // overlayfs records belong to the union's own bookkeeping; a layer must not forge them.
      if (name.startsWith('trusted.overlay.')) {
        log.warn({ path: p, xattr: name }, 'ignoring overlayfs xattr in layer tar');
        continue;
      }
      try {
        set(Buffer.from(name, 'latin1'), Buffer.from(v, 'latin1'));
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOTSUP' && code !== 'EPERM' && code !== 'EOPNOTSUPP') throw e;
        log.warn({ path: p, xattr: name, code }, 'xattr not kept');
      }
    }
  };

  // Defence in depth beside the guard's bookkeeping: every parent directory an entry is
  // written into is lstat'ed once (component by component) and must be a real directory,
  // never a symlink; the final component is created with O_EXCL|O_NOFOLLOW or mknod/
  // symlink/link, none of which follow a link at the last step.
  const verified = new Set<string>(['']);
  const verifyParents = (p: string): void => {
    const chain: string[] = [];
    for (let d = parentOf(p); !verified.has(d); d = parentOf(d)) chain.unshift(d);
    for (const d of chain) {
      if (!fs.lstatSync(abs(d)).isDirectory()) throw new UnsafeEntryError(`'${p}': parent '${d}' is not a directory on disk`);
      verified.add(d);
    }
  };

  const makeParents = (missing: string[]): void => {
    for (const d of missing) {
      verifyParents(d);
      fs.mkdirSync(abs(d), 0o755);
      guard.created(d, 'dir', true);
    }
  };

  /** Returns true when it read the entry's data itself. */
  const writeEntry = async (h: TarHeader, entry: AsyncIterable<Buffer>): Promise<boolean> => {
    const name = normaliseEntryName(h.name);
    const base = name.slice(name.lastIndexOf('/') + 1);
    const mode = (h.mode ?? 0o644) & 0o7777;
    // tar-stream applies PAX path/linkpath/size but not uid/gid (ids beyond ustar's 2097151).
    const uid = h.pax?.uid !== undefined ? Number(h.pax.uid) : (h.uid ?? 0);
    const gid = h.pax?.gid !== undefined ? Number(h.pax.gid) : (h.gid ?? 0);
    const mtime = paxTime(h.pax?.mtime, h.mtime);
    const atime = h.pax?.atime !== undefined ? paxTime(h.pax.atime, h.mtime) : mtime;
    const type = h.type ?? 'file';

    if (base.startsWith(WHITEOUT_PREFIX)) {
      const dir = parentOf(name);
      if (base === OPAQUE_MARKER) {
        makeParents(guard.admit(name, 'whiteout', 0));
        native.lsetxattr(abs(dir), XATTR_OPAQUE, Buffer.from('y'), 0);
        guard.created(name, 'whiteout');
      } else if (base.startsWith(`${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}`)) {
        log.debug({ path: name }, 'skipping aufs metadata entry');
      } else {
        const hidden = base.slice(WHITEOUT_PREFIX.length);
        if (hidden === '.' || hidden === '..') throw new UnsafeEntryError(`whiteout '${name}' names '${hidden}'`);
        const target = (dir ? `${dir}/` : '') + hidden;
        makeParents(guard.admit(target, 'whiteout', 0));
        verifyParents(target);
        native.mknod(abs(target), S_IFCHR, 0, 0);
        guard.created(target, 'whiteout');
      }
      return false;
    }

    const kind: EntryKind =
      type === 'directory' ? 'dir'
      : type === 'file' || type === 'contiguous-file' ? 'file'
      : type === 'symlink' ? 'symlink'
      : type === 'link' ? 'hardlink'
      : type === 'character-device' || type === 'block-device' || type === 'fifo' ? 'special'
      : (() => {
          throw new UnsafeEntryError(`'${name}': unsupported tar entry type '${type}'`);
        })();
    makeParents(guard.admit(name, kind, h.size ?? 0));
    verifyParents(name);
    const target = abs(name);

    switch (kind) {
      case 'dir': {
        if (guard.kindOf(name) === undefined) fs.mkdirSync(target, 0o700);
        chown(() => native.lchown(target, uid, gid));
        setXattrs((n, v) => native.lsetxattr(target, n, v, 0), h.pax, name);
        dirs.set(name, { abs: target, mode, atime, mtime });
        guard.created(name, 'dir');
        return false;
      }
      case 'file': {
        const fd = fs.openSync(target, O_CREATE_NEW, 0o600);
        guard.created(name, 'file');
        try {
          let written = 0;
          for await (const chunk of entry) {
            for (let off = 0; off < chunk.length; ) off += fs.writeSync(fd, chunk, off);
            written += chunk.length;
          }
          if (written !== (h.size ?? 0)) throw new Error('truncated tar archive (unexpected end of data)');
          size += written;
          chown(() => fs.fchownSync(fd, uid, gid));
          fs.fchmodSync(fd, mode); // after chown, which clears setuid bits
          setXattrs((n, v) => native.fsetxattr(fd, n, v, 0), h.pax, name);
          native.futimens(fd, atime.sec, atime.nsec, mtime.sec, mtime.nsec);
        } finally {
          fs.closeSync(fd);
        }
        return true;
      }
      case 'symlink':
        fs.symlinkSync(osPath(h.linkname ?? ''), target);
        break;
      case 'hardlink': {
        const linkTarget = normaliseEntryName(h.linkname ?? '');
        guard.checkLinkTarget(name, linkTarget);
        fs.linkSync(abs(linkTarget), target);
        guard.created(name, 'hardlink');
        return false;
      }
      case 'special': {
        const typeBits = type === 'fifo' ? S_IFIFO : type === 'block-device' ? S_IFBLK : S_IFCHR;
        native.mknod(target, typeBits | mode, h.devmajor ?? 0, h.devminor ?? 0);
        break;
      }
    }
    guard.created(name, kind);
    chown(() => native.lchown(target, uid, gid));
    if (kind === 'special') fs.chmodSync(target, mode); // mknod applied the umask
    setXattrs((n, v) => native.lsetxattr(target, n, v, 0), h.pax, name);
    native.utimens(target, atime.sec, atime.nsec, mtime.sec, mtime.nsec, true);
    return false;
  };

  const consume = async (): Promise<void> => {
    let lastReport = 0;
    for await (const entry of extract) {
      // Data of entries that do not use it (links, devices with a size field) is skipped.
      const data = entry as AsyncIterable<Buffer>;
      if (!(await writeEntry(entry.header as TarHeader, data))) for await (const _ of data) void _;
      if (opts.onProgress && blobHash.bytes - lastReport > 256 * 1024) {
        lastReport = blobHash.bytes;
        opts.onProgress(lastReport);
      }
    }
  };

  const stages: NodeJS.ReadWriteStream[] = [blobHash];
  if (compressed) stages.push(createGunzip());
  stages.push(tarHash);
  const piping = pipeline([input, ...stages, extract as unknown as NodeJS.WritableStream]).catch((e: Error) => {
    extract.destroy(e);
    throw e;
  });
  const writing = consume().catch((e: Error) => {
    input.destroy();
    extract.destroy(e);
    throw e;
  });
  const [p, w] = await Promise.allSettled([piping, writing]);
  if (w.status === 'rejected') throw explain(w.reason as Error);
  if (p.status === 'rejected') throw explain(p.reason as Error);
  if (tarHash.bytes === 0) throw new Error('not a tar archive (empty input)');

  // A tar with no entry for its root (most image layers): the root is what docker's and
  // containerd's snapshot dirs are, 0755, not the private temporary dir it was made as
  // (0700, which would keep every non-root process of a container out of its rootfs).
  if (!dirs.has('')) fs.chmodSync(dest, 0o755);
  // Deepest first: setting a child's times never disturbs its parent's afterwards.
  for (const d of [...dirs.keys()].sort((a, b) => b.length - a.length)) {
    const m = dirs.get(d)!;
    fs.chmodSync(m.abs, m.mode);
    native.utimens(m.abs, m.atime.sec, m.atime.nsec, m.mtime.sec, m.mtime.nsec, true);
  }
  opts.onProgress?.(blobHash.bytes);
  return { blobDigest: blobHash.digest(), blobSize: blobHash.bytes, compressed, diffId: tarHash.digest(), size, files: guard.count };
}
