// The one tar reader (tar-stream) behind load, import and save's checks. Names are kept as
// byte strings (latin1 JS strings, as in util/os-path.ts) so names that are not UTF-8
// survive, and PAX values are decoded the same way: tar-stream decodes PAX records as
// UTF-8, which would corrupt binary xattr values such as security.capability.

import { createRequire } from 'node:module';
import * as path from 'node:path';
import tarStream from 'tar-stream';

const require = createRequire(import.meta.url);

// tar-stream exports only its entry point, but its extractor calls headers.decodePax
// through the module object, so replacing that one function changes how PAX records are
// decoded. Checked at load time: if a new tar-stream moves it, we fail loudly.
const headers = require(path.join(path.dirname(require.resolve('tar-stream')), 'headers.js')) as {
  decodePax?: (buf: Buffer) => Record<string, string>;
};
if (typeof headers.decodePax !== 'function') throw new Error('tar-stream: headers.decodePax not found (unsupported tar-stream version)');
headers.decodePax = decodePaxBytes;

/** PAX extended header records ("LEN key=value\n"), values as latin1 byte strings. */
export function decodePaxBytes(buf: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let rest = buf;
  while (rest.length) {
    const sp = rest.indexOf(0x20);
    const len = sp > 0 ? Number.parseInt(rest.subarray(0, sp).toString('latin1'), 10) : NaN;
    if (!(len > sp + 1) || len > rest.length) throw new Error('malformed PAX header record');
    const rec = rest.subarray(sp + 1, len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq < 0) throw new Error('malformed PAX header record (no "=")');
    out[rec.subarray(0, eq).toString('latin1')] = rec.subarray(eq + 1).toString('latin1');
    rest = rest.subarray(len);
  }
  // path/linkpath thus become byte strings, like names read from the ustar header.
  return out;
}

export type TarHeader = tarStream.Header & { pax?: Record<string, string> | null };

export function tarExtractor(): tarStream.Extract {
  // filenameEncoding is an option of tar-stream's extractor its typings leave out.
  return tarStream.extract({ filenameEncoding: 'latin1' } as Parameters<typeof tarStream.extract>[0]);
}

/** Seconds + nanoseconds of a PAX time ("1700000000.123456789"), or of the header's whole seconds. */
export function paxTime(value: string | undefined, fallback: Date | undefined): { sec: number; nsec: number } {
  if (value !== undefined && /^-?\d+(\.\d+)?$/.test(value)) {
    const [s, frac = ''] = value.split('.');
    return { sec: Number(s), nsec: Number((frac + '000000000').slice(0, 9)) };
  }
  const ms = fallback ? fallback.getTime() : 0;
  return { sec: Math.floor(ms / 1000), nsec: 0 };
}

/** Turns tar-stream's and zlib's terse errors into messages a user can act on. */
export function explainTarError(err: Error): Error {
  const m = err.message;
  if (/Invalid tar header|unknown format/.test(m)) return new Error(`not a tar archive (${m.replace(/\. Maybe.*$/, '')})`);
  if (/Unexpected end of data/.test(m)) return new Error('truncated tar archive (unexpected end of data)');
  if ((err as NodeJS.ErrnoException).code?.startsWith('Z_')) return new Error(`corrupt gzip data (${m})`);
  return err;
}
