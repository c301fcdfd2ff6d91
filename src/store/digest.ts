// sha256 digests computed while data streams past, so a blob is hashed in the same pass
// that decompresses and extracts it (no second read, nothing held in memory).

import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

export function sha256Digest(data: string | Uint8Array): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** A pass-through stream that hashes and counts what flows through it. */
export class HashingStream extends Transform {
  private readonly hash: Hash = createHash('sha256');
  bytes = 0;
  private result: string | undefined;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }

  /** "sha256:<hex>" of everything that passed; valid once the stream has ended. */
  digest(): string {
    this.result ??= `sha256:${this.hash.digest('hex')}`;
    return this.result;
  }
}

/** Throws unless `actual` equals `expected` (both "sha256:<hex>"). */
export function verifyDigest(what: string, expected: string, actual: string): void {
  if (expected !== actual) throw new Error(`${what}: digest mismatch: expected ${expected}, got ${actual}`);
}
