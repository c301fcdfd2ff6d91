// Small builders for store tests: layer tars written with the store's own tar writer.

import { Readable } from 'node:stream';
import type { ImageStore } from '../../src/store/images.js';
import { importTarball } from '../../src/store/import.js';
import { encodeHeader, END_OF_ARCHIVE, padding } from '../../src/store/tar-write.js';

/** A layer tar holding the given files (path -> content); parent dirs are implied. */
export function layerTar(files: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, text] of Object.entries(files)) {
    const data = Buffer.from(text);
    parts.push(encodeHeader({ name, type: 'file', mode: 0o644, size: data.length, mtime: { sec: 1_700_000_000, nsec: 0 } }), data, padding(data.length));
  }
  return Buffer.concat([...parts, END_OF_ARCHIVE]);
}

/** Imports `files` as a one-layer image; `created` makes distinct images of one layer. */
export function importFiles(store: ImageStore, files: Record<string, string>, reference?: string, created = '2024-01-01T00:00:00Z'): Promise<string> {
  return importTarball(store, Readable.from([layerTar(files)]), { reference, created });
}
