// READDIR offsets on a real mount (src/fs/listing.ts, docs/architecture.md "Directories
// without OPENDIR"): read by getdents64 and by libc's telldir/seekdir through python's
// ctypes (Node shows neither d_off nor telldir), and the requests the kernel sends for
// opening directories. The same property against overlayfs, with names coming and going
// while a directory is read in pieces, is a differential case.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cleanupsAfterEach, mountWith, tmpdir } from '../helpers/mount.js';
import { requestsDuring } from '../helpers/requests.js';

const N = 3000;
const nameOf = (i: number): string => `entry-${String(i).padStart(5, '0')}`;

/** Every (name, d_off) of a directory by raw getdents64 calls with a `size`-byte buffer. */
const GETDENTS = `
import ctypes, json, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
buf = ctypes.create_string_buffer(int(sys.argv[2]))
out = []
while True:
    n = libc.syscall(217, fd, buf, ctypes.c_size_t(len(buf)))
    if n < 0:
        raise OSError(ctypes.get_errno(), 'getdents64')
    if n == 0:
        break
    raw, pos = buf.raw, 0
    while pos < n:
        ino, off, reclen, typ = struct.unpack_from('<QqHB', raw, pos)
        out.append([raw[pos + 19:pos + reclen].split(b'\\0', 1)[0].decode('latin1'), off])
        pos += reclen
os.close(fd)
print(json.dumps(out))
`;

/**
 * telldir after 100 entries, the next 5 names, then the directory changed through the
 * mount (names not among those 5 removed, which drops the kernel's kept listing), seekdir
 * back and the next 5 names again.
 */
const SEEKDIR = `
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.opendir.restype = ctypes.c_void_p
libc.readdir.restype = ctypes.c_void_p
libc.readdir.argtypes = [ctypes.c_void_p]
libc.telldir.restype = ctypes.c_long
libc.telldir.argtypes = [ctypes.c_void_p]
libc.seekdir.argtypes = [ctypes.c_void_p, ctypes.c_long]
libc.closedir.argtypes = [ctypes.c_void_p]
d = libc.opendir(sys.argv[1].encode())
def name():
    p = libc.readdir(d)
    return ctypes.string_at(p + 19).decode('latin1')
for _ in range(100):
    name()
t = libc.telldir(d)
first = [name() for _ in range(5)]
gone = [n for n in sorted(os.listdir(sys.argv[1])) if n not in first][::50]
for n in gone:
    os.unlink(os.path.join(sys.argv[1], n))
libc.seekdir(d, t)
again = [name() for _ in range(5)]
libc.closedir(d)
print(json.dumps({'t': t, 'first': first, 'again': again, 'gone': len(gone)}))
`;

describe('READDIR offsets without a handle', () => {
  const cleanups = cleanupsAfterEach();

  /** A mount over a lower layer holding big/ with N files. */
  function mounted(name: string, extra: string[] = []): string {
    const base = tmpdir(name);
    cleanups.push(() => fs.rmSync(base, { recursive: true, force: true }));
    const [lower, upper, work, mnt] = ['lower', 'upper', 'work', 'mnt'].map((d) => path.join(base, d)) as [string, string, string, string];
    for (const d of [lower, upper, work, mnt, `${lower}/big`]) fs.mkdirSync(d);
    for (let i = 0; i < N; i++) fs.writeFileSync(path.join(lower, 'big', nameOf(i)), '');
    const m = mountWith(['mount', '--lower', lower, '--upper', upper, '--work', work, ...extra], mnt);
    cleanups.push(() => m.cleanup());
    return mnt;
  }

  const getdents = (dir: string, size: number): Array<[string, number]> =>
    JSON.parse(execFileSync('python3', ['-c', GETDENTS, dir, String(size)], { encoding: 'utf8' })) as Array<[string, number]>;

  it.each([
    ['the default cache lifetimes (no OPENDIR)', []],
    ['-o timeout=0 (OPENDIR; the kernel keeps only lower-only listings)', ['-o', 'timeout=0']],
  ])('fit in 31 bits, as 32-bit programs need, and give every name once, read in small and large pieces: %s', (_label, extra) => {
    const mnt = mounted(`offsets-${extra.length}`, extra as string[]);
    const big = path.join(mnt, 'big');
    // A lower-only directory, then a merged one.
    for (const stage of ['lower', 'merged']) {
      if (stage === 'merged') fs.writeFileSync(path.join(big, 'made-through-the-mount'), '');
      const want = [...Array.from({ length: N }, (_, i) => nameOf(i)), ...(stage === 'merged' ? ['made-through-the-mount'] : []), '.', '..'].sort();
      for (const size of [1024, 65536]) {
        const got = getdents(big, size);
        expect(got.map(([n]) => n).sort(), `${stage}, ${size}-byte buffer`).toEqual(want);
        const offs = got.map(([, o]) => o);
        expect(Math.max(...offs), `${stage}: largest d_off`).toBeLessThan(2 ** 31);
        expect(Math.min(...offs)).toBeGreaterThan(0);
        expect(new Set(offs).size, `${stage}: offsets unique`).toBe(offs.length);
      }
    }
  });

  it('telldir/seekdir find the same place after the directory changed through the mount', () => {
    const mnt = mounted('seekdir');
    const r = JSON.parse(execFileSync('python3', ['-c', SEEKDIR, path.join(mnt, 'big')], { encoding: 'utf8' })) as { t: number; first: string[]; again: string[]; gone: number };
    expect(r.gone).toBeGreaterThan(50);
    expect(r.t).toBeLessThan(2 ** 31);
    expect(r.again).toEqual(r.first);
  });

  it('by default the kernel opens directories without asking; with -o timeout=0 it asks and releases each', () => {
    const opens = (mnt: string): { opendir: number; releasedir: number } => {
      const sent = requestsDuring(mnt, () => {
        for (let i = 0; i < 5; i++) fs.readdirSync(path.join(mnt, 'big'));
      });
      return { opendir: sent('OPENDIR'), releasedir: sent('RELEASEDIR') };
    };
    // The first OPENDIR of the mount is answered ENOSYS: at most that one.
    const byDefault = opens(mounted('opens-default'));
    expect(byDefault.releasedir).toBe(0);
    expect(byDefault.opendir).toBeLessThanOrEqual(1);
    expect(opens(mounted('opens-timeout0', ['-o', 'timeout=0']))).toEqual({ opendir: 5, releasedir: 5 });
  });
});
