// Tar headers for what stratafs writes (save's layers and archives, the demo rootfs):
// ustar, plus a PAX record where ustar cannot say it: long names, nanosecond mtimes,
// large sizes or ids, xattrs. Names and values are byte strings (latin1 JS strings or
// Buffers), so names that are not UTF-8 and binary xattr values pass unchanged; that is
// why this does not use tar-stream's packer, which writes PAX values as UTF-8.

export interface TarEntry {
  /** Archive name, a byte string; directories without the trailing "/" (added here). */
  name: string;
  type: 'file' | 'dir' | 'symlink' | 'hardlink' | 'chardev' | 'blockdev' | 'fifo';
  mode: number;
  uid?: number;
  gid?: number;
  size?: number;
  mtime?: { sec: number; nsec: number };
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Record<string, Buffer>;
}

const TYPEFLAG: Record<TarEntry['type'], string> = { file: '0', hardlink: '1', symlink: '2', chardev: '3', blockdev: '4', dir: '5', fifo: '6' };

export const BLOCK = 512;
export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);

export function padding(size: number): Buffer {
  const r = size % BLOCK;
  return r ? Buffer.alloc(BLOCK - r) : Buffer.alloc(0);
}

function octal(buf: Buffer, off: number, len: number, value: number): void {
  buf.write(value.toString(8).padStart(len - 1, '0') + '\0', off, len, 'latin1');
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, 'latin1'), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length > len) len++;
  return Buffer.concat([Buffer.from(String(len), 'latin1'), body]);
}

function ustar(name: string, type: string, e: TarEntry, size: number, linkname: string): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.write(name, 0, 100, 'latin1');
  octal(b, 100, 8, e.mode & 0o7777);
  octal(b, 108, 8, Math.min(e.uid ?? 0, 0o7777777));
  octal(b, 116, 8, Math.min(e.gid ?? 0, 0o7777777));
  octal(b, 124, 12, size);
  octal(b, 136, 12, Math.max(0, Math.min(e.mtime?.sec ?? 0, 0o77777777777)));
  b.write(type, 156, 1, 'latin1');
  b.write(linkname, 157, 100, 'latin1');
  b.write('ustar\x0000', 257, 8, 'latin1');
  octal(b, 329, 8, e.devmajor ?? 0);
  octal(b, 337, 8, e.devminor ?? 0);
  return setChecksum(b);
}

/** Fills in a header block's checksum (the sum of its bytes, the field counted as spaces). */
export function setChecksum(b: Buffer): Buffer {
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return b;
}

/** The header block(s) of one entry; its data (if any) and padding() follow. */
export function encodeHeader(e: TarEntry): Buffer {
  const name = e.type === 'dir' ? `${e.name.replace(/\/$/, '')}/` : e.name;
  const size = e.type === 'file' ? (e.size ?? 0) : 0;
  const linkname = e.linkname ?? '';
  const pax: Buffer[] = [];
  if (Buffer.byteLength(name, 'latin1') > 100) pax.push(paxRecord('path', Buffer.from(name, 'latin1')));
  if (Buffer.byteLength(linkname, 'latin1') > 100) pax.push(paxRecord('linkpath', Buffer.from(linkname, 'latin1')));
  if (size > 0o77777777777) pax.push(paxRecord('size', Buffer.from(String(size))));
  if ((e.uid ?? 0) > 0o7777777) pax.push(paxRecord('uid', Buffer.from(String(e.uid))));
  if ((e.gid ?? 0) > 0o7777777) pax.push(paxRecord('gid', Buffer.from(String(e.gid))));
  if (e.mtime && e.mtime.nsec) pax.push(paxRecord('mtime', Buffer.from(`${e.mtime.sec}.${String(e.mtime.nsec).padStart(9, '0')}`)));
  for (const [k, v] of Object.entries(e.xattrs ?? {})) pax.push(paxRecord(`SCHILY.xattr.${k}`, v));
  const header = ustar(name.slice(0, 100), TYPEFLAG[e.type], e, size, linkname.slice(0, 100));
  if (!pax.length) return header;
  const data = Buffer.concat(pax);
  const paxName = `PaxHeaders/${name.replace(/\/$/, '').split('/').pop()!.slice(0, 80)}`;
  return Buffer.concat([ustar(paxName, 'x', { ...e, mode: 0o644 }, data.length, ''), data, padding(data.length), header]);
}

/** A whole in-memory file entry (small JSON documents of an archive). */
export function fileEntry(name: string, data: Buffer, mtimeSec = 0): Buffer[] {
  return [encodeHeader({ name, type: 'file', mode: 0o644, size: data.length, mtime: { sec: mtimeSec, nsec: 0 } }), data, padding(data.length)];
}

/**
 * A whiteout or opaque marker (`.wh.NAME`, `.wh..wh..opq`): fixed metadata, since a
 * deletion has no content and when it happened is no part of what changed; the same
 * layer then always gives the same tar, wherever it was extracted.
 */
export function markerHeader(name: string): TarEntry {
  return { name, type: 'file', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: { sec: 0, nsec: 0 } };
}
