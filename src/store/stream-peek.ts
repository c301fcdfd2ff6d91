// Looking at the first bytes of a stream (gzip magic) without losing them: the first
// chunk is read and a new stream yields it followed by the rest. (Readable.unshift is not
// safe here: a short range stream may already have ended when its first chunk is read.)

import { Readable } from 'node:stream';

export function isGzip(head: Buffer | null): boolean {
  return !!head && head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;
}

export async function peekStream(input: Readable): Promise<{ head: Buffer | null; stream: Readable }> {
  const it = (input as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  const first = await it.next();
  const head = first.done ? null : (first.value as Buffer);
  async function* all(): AsyncGenerator<Buffer> {
    if (head) yield head;
    for (;;) {
      const n = await it.next();
      if (n.done) return;
      yield n.value as Buffer;
    }
  }
  const stream = Readable.from(all(), { objectMode: false });
  stream.once('close', () => {
    if (!input.destroyed && !input.readableEnded) input.destroy();
  });
  return { head, stream };
}
