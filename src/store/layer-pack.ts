// The reverse of tar-extract.ts: a layer directory (overlayfs format) back into an OCI
// layer tar. The root comes first as "./" (its mode, owner and time are the rootfs's own:
// without it an extraction leaves the root as its own temporary dir, 0700), whiteout
// devices become ".wh.NAME", opaque directories get ".wh..wh..opq" (both markers with
// fixed metadata), hard links within the layer become link entries, xattrs become
// SCHILY.xattr records (overlayfs's own trusted.overlay.* stay behind). Entries are
// sorted, so the same directory always gives the same tar, and a layer saved, loaded
// elsewhere and saved again gives the same bytes.

import * as fs from 'node:fs';
import { native } from '../native/binding.js';
import { osPath } from '../util/os-path.js';
import { encodeHeader, END_OF_ARCHIVE, markerHeader, padding, type TarEntry } from './tar-write.js';

function xattrsOf(p: string | Buffer): { xattrs: Record<string, Buffer>; opaque: boolean } {
  const xattrs: Record<string, Buffer> = {};
  let opaque = false;
  let names: string[] = [];
  try {
    names = native.llistxattr(p);
  } catch {
    /* no xattr support: none */
  }
  for (const n of names.sort()) {
    if (n === 'trusted.overlay.opaque') opaque = native.lgetxattr(p, n).toString() === 'y';
    else if (!n.startsWith('trusted.overlay.')) xattrs[n] = native.lgetxattr(p, n);
  }
  return { xattrs, opaque };
}

function times(st: fs.BigIntStats): { sec: number; nsec: number } {
  return { sec: Number(st.mtimeNs / 1_000_000_000n), nsec: Number(st.mtimeNs % 1_000_000_000n) };
}

/** Linux's dev_t split (glibc gnu_dev_major/minor). */
function devParts(rdev: bigint): { devmajor: number; devminor: number } {
  return {
    devmajor: Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn)),
    devminor: Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn)),
  };
}

/** Yields the layer tar of `dir` in chunks (file data streamed, never whole in memory). */
export async function* packLayer(dir: string): AsyncGenerator<Buffer> {
  const links = new Map<string, string>();
  async function* walk(rel: string): AsyncGenerator<Buffer> {
    const names = fs.readdirSync(osPath(rel ? `${dir}/${rel}` : dir), { encoding: 'latin1' }).sort();
    for (const name of names) {
      const p = rel ? `${rel}/${name}` : name;
      const abs = osPath(`${dir}/${p}`);
      const st = fs.lstatSync(abs, { bigint: true });
      const base: TarEntry = { name: p, type: 'file', mode: Number(st.mode) & 0o7777, uid: Number(st.uid), gid: Number(st.gid), mtime: times(st) };
      if (st.isCharacterDevice() && st.rdev === 0n) {
        yield encodeHeader(markerHeader(rel ? `${rel}/.wh.${name}` : `.wh.${name}`));
        continue;
      }
      const { xattrs, opaque } = xattrsOf(abs);
      const e: TarEntry = { ...base, xattrs };
      const key = `${st.dev}:${st.ino}`;
      if (!st.isDirectory() && st.nlink > 1n && links.has(key)) {
        yield encodeHeader({ ...e, type: 'hardlink', linkname: links.get(key)!, xattrs: undefined });
        continue;
      }
      if (!st.isDirectory() && st.nlink > 1n) links.set(key, p);
      if (st.isDirectory()) {
        yield encodeHeader({ ...e, type: 'dir' });
        if (opaque) yield encodeHeader(markerHeader(`${p}/.wh..wh..opq`));
        yield* walk(p);
      } else if (st.isFile()) {
        const size = Number(st.size);
        yield encodeHeader({ ...e, type: 'file', size });
        let sent = 0;
        for await (const c of fs.createReadStream(abs)) {
          const chunk = c as Buffer;
          // A file that grew while we read it would corrupt the archive: stop at its size.
          const part = chunk.subarray(0, Math.max(0, size - sent));
          sent += part.length;
          if (part.length) yield part;
        }
        if (sent !== size) throw new Error(`${dir}/${p}: file shrank while being archived`);
        yield padding(size);
      } else if (st.isSymbolicLink()) {
        yield encodeHeader({ ...e, type: 'symlink', linkname: fs.readlinkSync(abs, { encoding: 'latin1' }) });
      } else if (st.isFIFO()) {
        yield encodeHeader({ ...e, type: 'fifo' });
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        yield encodeHeader({ ...e, type: st.isCharacterDevice() ? 'chardev' : 'blockdev', ...devParts(st.rdev) });
      }
      // Sockets cannot be archived; tar tools skip them too.
    }
  }
  const root = fs.lstatSync(osPath(dir), { bigint: true });
  yield encodeHeader({ name: '.', type: 'dir', mode: Number(root.mode) & 0o7777, uid: Number(root.uid), gid: Number(root.gid), mtime: times(root), xattrs: xattrsOf(osPath(dir)).xattrs });
  yield* walk('');
  yield END_OF_ARCHIVE;
}
