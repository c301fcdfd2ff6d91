// Little-endian field access shared by the request decoders and reply encoders.
//
// 64-bit fields that are counters or offsets (nodeid, fh, unique, offsets, sizes) are carried
// as JS numbers: they stay below 2^53 in practice and a bigint per field would cost an
// allocation on every request. Fields that may use all 64 bits (lock owners) are bigints.

const TWO32 = 4294967296;

export function u64(buf: Buffer, off: number): number {
  return buf.readUInt32LE(off) + buf.readUInt32LE(off + 4) * TWO32;
}

export function putU64(buf: Buffer, off: number, v: number): void {
  buf.writeUInt32LE(v >>> 0, off);
  buf.writeUInt32LE(Math.floor(v / TWO32) >>> 0, off + 4);
}

/** Signed 64-bit (negative offsets in notifications). */
export function putI64(buf: Buffer, off: number, v: number): void {
  const hi = Math.floor(v / TWO32);
  buf.writeUInt32LE(v - hi * TWO32, off);
  buf.writeInt32LE(hi, off + 4);
}

/**
 * Names travel as raw bytes. They are held as latin1 strings: one char per byte, so any byte
 * sequence (including invalid UTF-8) survives the round trip to the kernel and to the disk.
 */
export function cstring(buf: Buffer, off: number): { s: string; next: number } {
  let end = buf.indexOf(0, off);
  if (end < 0) end = buf.length;
  return { s: buf.toString('latin1', off, end), next: end + 1 };
}

/** Round up to the 8-byte alignment of FUSE records. */
export function align8(n: number): number {
  return (n + 7) & ~7;
}
