// The hostile-archive corpus: one small layer tar per attack, with the message the store
// must refuse it with. writeCorpus() (re)writes them into test/fixtures/hostile/; the
// bytes are deterministic, so the committed files and a fresh generation agree.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { encodeHeader, END_OF_ARCHIVE, padding, setChecksum, type TarEntry } from '../../src/store/tar-write.js';

export const OUTSIDE = '/tmp/strata-hostile-outside';

function file(name: string, text = 'x\n', extra: Partial<TarEntry> = {}): Buffer[] {
  const data = Buffer.from(text);
  return [encodeHeader({ name, type: 'file', mode: 0o644, size: data.length, ...extra }), data, padding(data.length)];
}
const dir = (name: string): Buffer => encodeHeader({ name, type: 'dir', mode: 0o755 });
const symlink = (name: string, target: string): Buffer => encodeHeader({ name, type: 'symlink', mode: 0o777, linkname: target });
const hardlink = (name: string, target: string): Buffer => encodeHeader({ name, type: 'hardlink', mode: 0o644, linkname: target });
const tar = (...parts: Array<Buffer | Buffer[]>): Buffer => Buffer.concat([...parts.flat(), END_OF_ARCHIVE]);

/** A file header whose size field says `size` (base-256 when octal cannot), with no data after it. */
function hugeHeader(name: string, size: bigint): Buffer {
  const h = encodeHeader({ name, type: 'file', mode: 0o644, size: 0 });
  const field = Buffer.alloc(12);
  field[0] = 0x80;
  let v = size;
  for (let i = 11; i > 0; i--) {
    field[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  field.copy(h, 124);
  return setChecksum(h);
}

export interface HostileCase {
  name: string;
  expect: RegExp;
  data: Buffer;
}

export function hostileCases(): HostileCase[] {
  const good = tar(dir('d'), file('d/a', 'hello world\n'.repeat(100)));
  return [
    { name: 'dotdot', expect: /contains '\.\.'/, data: tar(file('../strata-hostile-outside')) },
    { name: 'dotdot-nested', expect: /contains '\.\.'/, data: tar(dir('a'), file('a/../../strata-hostile-outside')) },
    { name: 'absolute', expect: /absolute path '\/tmp\/strata-hostile-outside'/, data: tar(file(OUTSIDE)) },
    { name: 'symlink-absolute-escape', expect: /lies below symlink 'link'/, data: tar(symlink('link', '/tmp'), file('link/strata-hostile-outside')) },
    { name: 'symlink-relative-escape', expect: /lies below symlink 'up'/, data: tar(symlink('up', '../../../../../../tmp'), file('up/strata-hostile-outside')) },
    { name: 'symlink-then-dir', expect: /duplicate entry 'link'/, data: tar(symlink('link', '/tmp'), dir('link'), file('link/strata-hostile-outside')) },
    { name: 'hardlink-absolute', expect: /absolute path '\/etc\/passwd'/, data: tar(hardlink('passwd', '/etc/passwd')) },
    { name: 'hardlink-dotdot', expect: /contains '\.\.'/, data: tar(hardlink('passwd', '../../../../etc/passwd')) },
    { name: 'hardlink-forward', expect: /not an earlier entry of this layer/, data: tar(hardlink('early', 'late'), file('late')) },
    { name: 'hardlink-to-dir', expect: /points to dir 'd'/, data: tar(dir('d'), hardlink('h', 'd')) },
    { name: 'duplicate-file', expect: /duplicate entry 'a'/, data: tar(file('a', 'one\n'), file('a', 'two\n')) },
    { name: 'file-over-dir', expect: /duplicate entry 'a'/, data: tar(dir('a'), file('a')) },
    { name: 'below-file', expect: /parent 'f' is not a directory/, data: tar(file('f'), file('f/x')) },
    { name: 'whiteout-dotdot', expect: /whiteout 'd\/\.wh\.\.\.' names '\.\.'/, data: tar(dir('d'), file('d/.wh...', '')) },
    { name: 'absurd-size', expect: /absurd size 109951162777600 bytes/, data: Buffer.concat([hugeHeader('big', 100n * 1024n ** 4n), END_OF_ARCHIVE]) },
    { name: 'size-beyond-input', expect: /absurd size 1073741824 bytes/, data: Buffer.concat([hugeHeader('big', 1024n ** 3n), END_OF_ARCHIVE]) },
    { name: 'truncated', expect: /truncated tar archive/, data: good.subarray(0, 1024 + 300) },
    { name: 'truncated-gzip', expect: /corrupt gzip data|truncated/, data: gzipSync(good).subarray(0, 40) },
    { name: 'not-tar', expect: /not a tar archive/, data: Buffer.from(JSON.stringify({ hello: 'this is not a tar' }).padEnd(1024, ' ')) },
    { name: 'empty', expect: /not a tar archive \(empty input\)/, data: Buffer.alloc(0) },
    { name: 'garbage-gzip', expect: /corrupt gzip data/, data: Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0]), Buffer.alloc(100, 0x55)]) },
  ];
}

export function writeCorpus(dir: string): HostileCase[] {
  fs.mkdirSync(dir, { recursive: true });
  const cases = hostileCases();
  for (const c of cases) {
    const f = path.join(dir, `${c.name}.tar`);
    if (!fs.existsSync(f) || !fs.readFileSync(f).equals(c.data)) fs.writeFileSync(f, c.data);
  }
  return cases;
}
