// Random access to the files of an image archive, whatever its container: an OCI layout
// directory is read in place; a tar file (docker save, OCI archive) is indexed once
// (name -> offset, size) and each blob is then streamed from its offset, so no layer is
// ever held in memory or copied out of the archive.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { explainTarError, tarExtractor, type TarHeader } from './tar-read.js';
import { normaliseEntryName } from './tar-safety.js';

/** Manifests, indexes and configs are small; anything larger is refused, not buffered. */
const MAX_JSON = 16 * 1024 * 1024;

export interface BlobSource {
  readonly description: string;
  has(name: string): boolean;
  size(name: string): number;
  open(name: string): Readable;
}

export async function readSmall(src: BlobSource, name: string): Promise<Buffer> {
  const size = src.size(name);
  if (size > MAX_JSON) throw new Error(`${src.description}: ${name} is ${size} bytes, too large for metadata`);
  const chunks: Buffer[] = [];
  for await (const c of src.open(name)) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export async function readJson<T>(src: BlobSource, name: string): Promise<{ raw: Buffer; value: T }> {
  const raw = await readSmall(src, name);
  try {
    return { raw, value: JSON.parse(raw.toString('utf8')) as T };
  } catch (e) {
    throw new Error(`${src.description}: ${name} is not valid JSON (${(e as Error).message})`);
  }
}

/** Names from manifests are archive-relative; ".." or absolute names are refused like tar entries. */
function clean(src: { description: string }, name: string): string {
  try {
    return normaliseEntryName(name);
  } catch (e) {
    throw new Error(`${src.description}: bad blob name: ${(e as Error).message}`);
  }
}

export class DirSource implements BlobSource {
  constructor(readonly dir: string) {}

  get description(): string {
    return this.dir;
  }

  private file(name: string): string {
    return path.join(this.dir, clean(this, name));
  }

  has(name: string): boolean {
    return fs.existsSync(this.file(name));
  }

  size(name: string): number {
    return fs.statSync(this.file(name)).size;
  }

  open(name: string): Readable {
    return fs.createReadStream(this.file(name));
  }
}

interface Member {
  offset: number;
  size: number;
  /** Symlink or hard link target (archive-relative), for docker save's shared layers. */
  link?: string;
}

export class TarSource implements BlobSource {
  private constructor(
    readonly file: string,
    private readonly members: Map<string, Member>,
  ) {}

  get description(): string {
    return this.file;
  }

  /** Reads the archive's headers once (the data is skipped) to learn where each member is. */
  static async index(file: string): Promise<TarSource> {
    const members = new Map<string, Member>();
    const extract = tarExtractor();
    const input = fs.createReadStream(file);
    const reading = (async () => {
      for await (const entry of extract) {
        const h = entry.header as TarHeader & { byteOffset?: number };
        const name = clean({ description: file }, h.name);
        if (members.has(name) && h.type !== 'directory') throw new Error(`${file}: duplicate archive member '${name}'`);
        let link: string | undefined;
        if (h.type === 'symlink') link = clean({ description: file }, path.posix.join(path.posix.dirname(name), h.linkname ?? ''));
        if (h.type === 'link') link = clean({ description: file }, h.linkname ?? '');
        members.set(name, { offset: h.byteOffset ?? 0, size: h.size ?? 0, link });
        for await (const _ of entry as AsyncIterable<Buffer>) void _;
      }
    })();
    input.pipe(extract as unknown as NodeJS.WritableStream);
    input.on('error', (e) => extract.destroy(e));
    try {
      await reading;
    } catch (e) {
      input.destroy();
      const err = explainTarError(e as Error);
      throw err === e ? err : new Error(`${file}: ${err.message.replace('not a tar archive', 'not a tar archive or OCI layout')}`);
    }
    return new TarSource(file, members);
  }

  private member(name: string, depth = 0): Member {
    const m = this.members.get(clean(this, name));
    if (!m) throw new Error(`${this.file}: archive has no member '${name}'`);
    if (m.link !== undefined) {
      if (depth > 8) throw new Error(`${this.file}: too many links resolving '${name}'`);
      return this.member(m.link, depth + 1);
    }
    return m;
  }

  has(name: string): boolean {
    try {
      this.member(name);
      return true;
    } catch {
      return false;
    }
  }

  size(name: string): number {
    return this.member(name).size;
  }

  open(name: string): Readable {
    const m = this.member(name);
    if (m.size === 0) return Readable.from([]);
    return fs.createReadStream(this.file, { start: m.offset, end: m.offset + m.size - 1 });
  }
}
