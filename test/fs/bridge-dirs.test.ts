// The bridge's directory requests without open-directory handles (src/fs/bridge.ts,
// listing.ts): OPENDIR answered ENOSYS only where the filesystem lets the kernel keep every
// listing and the kernel offered FUSE_NO_OPENDIR_SUPPORT (an older kernel would fail the
// open), handle 0 otherwise, and READDIR by nodeid with offsets from the names. On a real
// mount: test/union/readdir-offsets.test.ts.
import { describe, expect, it } from 'vitest';
import type { Attr, DirEntry, FileSystem } from '../../src/fs/api.js';
import { Bridge } from '../../src/fs/bridge.js';
import type { Negotiated, RequestContext, Session } from '../../src/fuse/session.js';

const FOPEN_KEEP_CACHE = 1 << 1;
const FOPEN_CACHE_DIR = 1 << 3;
const dirAttr: Attr = { ino: 1n, size: 0, blocks: 0, atime: 0, atimensec: 0, mtime: 0, mtimensec: 0, ctime: 0, ctimensec: 0, mode: 0o040755, nlink: 2, uid: 0, gid: 0, rdev: 0, blksize: 4096 };
const ctx: RequestContext = { len: 0, opcode: 0, unique: 1, nodeid: 1, uid: 0, gid: 0, pid: 1 };

/** A root directory listing `names`, with everyListingCached as given. */
function fsWith(names: string[], everyListingCached: boolean): FileSystem<unknown, unknown> {
  return {
    everyListingCached,
    root: () => ({ attr: dirAttr, data: {} }),
    lookup: () => {
      throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    },
    getattr: () => dirAttr,
    opendir: () => ({ cache: true }),
    readdir: (): DirEntry[] => names.map((name, i) => ({ name, ino: BigInt(100 + i), mode: 0o100644 })),
  } as FileSystem<unknown, unknown>;
}

function bridgeOn(fs: FileSystem<unknown, unknown>, noOpendir: boolean): Bridge<unknown, unknown> {
  const b = new Bridge(fs);
  const negotiated = { minor: 41, flags: 0n, maxWrite: 1 << 20, passthrough: false, readdirplus: false, dontMask: false, noOpendir } satisfies Negotiated;
  b.init({ negotiated, openBacking: () => 0, closeBacking: () => {} } as unknown as Session);
  return b;
}

const codeOf = (f: () => unknown): string | undefined => {
  try {
    f();
    return undefined;
  } catch (e) {
    return (e as { code?: string }).code;
  }
};

/** [name, next offset] of each fuse_dirent in a READDIR reply. */
function dirents(buf: Buffer): Array<[string, number]> {
  const out: Array<[string, number]> = [];
  for (let o = 0; o < buf.length; ) {
    const off = Number(buf.readBigUInt64LE(o + 8));
    const len = buf.readUInt32LE(o + 16);
    out.push([buf.toString('latin1', o + 24, o + 24 + len), off]);
    o += (24 + len + 7) & ~7;
  }
  return out;
}

describe('directory requests without handles', () => {
  it('OPENDIR answers ENOSYS only when every listing may be kept and the kernel offered no_opendir', () => {
    expect(codeOf(() => bridgeOn(fsWith([], true), true).opendir(ctx))).toBe('ENOSYS');
    for (const [cached, offered] of [
      [true, false],
      [false, true],
      [false, false],
    ] as const) {
      const reply = bridgeOn(fsWith([], cached), offered).opendir(ctx) as Buffer;
      // fh 0, and the kernel asked to keep the listing as the filesystem said.
      expect(reply.readBigUInt64LE(0), `cached ${cached}, offered ${offered}`).toBe(0n);
      expect(reply.readUInt32LE(8)).toBe(FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE);
    }
  });

  it('READDIR goes by nodeid and resumes after the offset it is given, in a listing taken since', () => {
    const names = Array.from({ length: 300 }, (_, i) => `name-${i}`);
    const b = bridgeOn(fsWith(names, true), true);
    const read = (offset: number, size = 1024): Array<[string, number]> => dirents(b.readdir(ctx, { fh: 0, offset, size, readFlags: 0, lockOwner: 0n, flags: 0 }, false) as Buffer);
    const first = read(0);
    expect(first.slice(0, 2).map(([n]) => n)).toEqual(['.', '..']);
    const last = first.at(-1)![1];
    // Names come and go, then another reader starts over (a new listing): the first one's
    // next batch starts right after its last entry, by name, not by position.
    names.splice(0, 50);
    names.push('new-a', 'new-b');
    const other = read(0, 65536);
    expect(other.length).toBe(2 + 252);
    const seen = new Set(first.map(([n]) => n));
    let offset = last;
    for (;;) {
      const batch = read(offset);
      if (batch.length === 0) break;
      for (const [n] of batch) {
        expect(seen.has(n), `${n} twice`).toBe(false);
        seen.add(n);
      }
      offset = batch.at(-1)![1];
    }
    // Every name there throughout was read once, and the end was reached.
    for (const n of names.filter((x) => x.startsWith('name-'))) expect(seen.has(n), n).toBe(true);
    expect(read(offset)).toEqual([]);
  });
});
