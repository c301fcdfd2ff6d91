// Cache lifetimes the daemon gives the kernel for upper objects: long by default (the upper
// dir changes only through the mount), shortened by --entry-timeout/--attr-timeout or
// fuse-overlayfs's -o timeout=S. What the kernel keeps is seen by changing the upper dir
// behind the mount's back, which users must not do, and which is exactly why it shows.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cleanupsAfterEach, mountWith, tmpdir } from '../helpers/mount.js';
import { requestsDuring } from '../helpers/requests.js';

/** Requests of the given opcodes the mount gets while `f` runs. */
function requestsOf(mnt: string, f: () => void, ...opcodes: string[]): number {
  const sent = requestsDuring(mnt, f);
  return opcodes.reduce((n, op) => n + sent(op), 0);
}

describe('kernel cache lifetimes of upper objects', () => {
  const cleanups = cleanupsAfterEach();

  /** Mounts with extra args, makes an upper file through the mount, then chmods it in the upper dir directly. */
  async function modeAfterBehindTheBack(name: string, extra: string[], waitMs: number): Promise<number> {
    const base = tmpdir(name);
    cleanups.push(() => fs.rmSync(base, { recursive: true, force: true }));
    const [lower, upper, work, mnt] = ['lower', 'upper', 'work', 'mnt'].map((d) => path.join(base, d));
    for (const d of [lower, upper, work, mnt]) fs.mkdirSync(d!);
    const m = mountWith(['mount', '--lower', lower!, '--upper', upper!, '--work', work!, ...extra], mnt!);
    cleanups.push(() => m.cleanup());
    fs.writeFileSync(path.join(mnt!, 'f'), 'x', { mode: 0o644 });
    expect(fs.statSync(path.join(mnt!, 'f')).mode & 0o777).toBe(0o644);
    fs.chmodSync(path.join(upper!, 'f'), 0o600);
    await new Promise((r) => setTimeout(r, waitMs));
    return fs.statSync(path.join(mnt!, 'f')).mode & 0o777;
  }

  it('by default the kernel keeps an upper object past a second (no GETATTR on every path walk)', async () => {
    expect(await modeAfterBehindTheBack('cache-default', [], 1500)).toBe(0o644);
  });

  it('--attr-timeout 0 and -o timeout=0 make the kernel ask every time', async () => {
    expect(await modeAfterBehindTheBack('cache-attr0', ['--attr-timeout', '0'], 0)).toBe(0o600);
    expect(await modeAfterBehindTheBack('cache-o-timeout0', ['-o', 'timeout=0'], 0)).toBe(0o600);
  });

  it('-o timeout=0 holds for lower-only names too: one shadowed in the upper dir later shows', () => {
    const base = tmpdir('cache-lower0');
    cleanups.push(() => fs.rmSync(base, { recursive: true, force: true }));
    const [lower, upper, work, mnt] = ['lower', 'upper', 'work', 'mnt'].map((d) => path.join(base, d)) as [string, string, string, string];
    for (const d of [lower, upper, work, mnt]) fs.mkdirSync(d);
    fs.writeFileSync(path.join(lower, 'f'), 'lower\n', { mode: 0o644 });
    const m = mountWith(['mount', '--lower', lower, '--upper', upper, '--work', work, '-o', 'timeout=0'], mnt);
    cleanups.push(() => m.cleanup());
    expect(fs.statSync(path.join(mnt, 'f')).mode & 0o777).toBe(0o644);
    fs.writeFileSync(path.join(upper, 'f'), 'upper\n', { mode: 0o600 });
    expect(fs.statSync(path.join(mnt, 'f')).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(path.join(mnt, 'f'), 'utf8')).toBe('upper\n');
  });
});

describe('side effects of a copy-up reach the kernel', () => {
  const cleanups = cleanupsAfterEach();

  /** A mount over a lower layer holding d/e/f; the kernel has looked up every part of it first. */
  function mountedTree(name: string, env: Record<string, string> = {}): { mnt: string; upper: string } {
    const base = tmpdir(name);
    cleanups.push(() => fs.rmSync(base, { recursive: true, force: true }));
    const [lower, upper, work, mnt] = ['lower', 'upper', 'work', 'mnt'].map((d) => path.join(base, d)) as [string, string, string, string];
    for (const d of [lower, upper, work, mnt]) fs.mkdirSync(d);
    fs.mkdirSync(path.join(lower, 'd/e'), { recursive: true });
    fs.mkdirSync(path.join(lower, 'd/sub'));
    fs.writeFileSync(path.join(lower, 'd/e/f'), 'lower data\n');
    fs.writeFileSync(path.join(lower, 'd/e/g'), 'lower data\n');
    const m = mountWith(['mount', '--lower', lower, '--upper', upper, '--work', work], mnt, env);
    cleanups.push(() => m.cleanup());
    for (const p of ['', 'd', 'd/e', 'd/e/f', 'd/e/g']) fs.statSync(path.join(mnt, p));
    return { mnt, upper };
  }

  /** ctime and nlink as the mount shows them and as the upper dir has them. */
  const seen = (mnt: string, upper: string, p: string): [string, string] => {
    const a = fs.statSync(path.join(mnt, p), { bigint: true });
    const b = fs.statSync(path.join(upper, p), { bigint: true });
    return [`${a.ctimeNs} ${a.nlink}`, `${b.ctimeNs} ${b.nlink}`];
  };
  const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 200));

  it('directories copied up for a chmod below them show the upper dir attributes; a parent that only received a copy keeps what the kernel has', async () => {
    const { mnt, upper } = mountedTree('side-dirs');
    const rootBefore = seen(mnt, upper, '')[0];
    fs.chmodSync(path.join(mnt, 'd/e/f'), 0o600);
    await settle();
    for (const p of ['d', 'd/e']) {
      const [viaMount, onDisk] = seen(mnt, upper, p);
      // The upper dir's ctime; nlink 1, as overlayfs shows a merged directory's.
      expect(viaMount, `/${p}`).toBe(`${onDisk.split(' ')[0]} 1`);
    }
    // The root only received d: its ctime moved on disk, and the kernel was not made to ask
    // again (each later path walk would have cost a GETATTR). A change made in it does.
    const [rootNow, rootOnDisk] = seen(mnt, upper, '');
    expect(rootNow).toBe(rootBefore);
    expect(rootOnDisk.split(' ')[0]).not.toBe(rootBefore.split(' ')[0]);
    fs.writeFileSync(path.join(mnt, 'new'), '');
    expect(seen(mnt, upper, '')[0]).toBe(`${seen(mnt, upper, '')[1].split(' ')[0]} 1`);
  });

  it('a merged directory copied up for a chmod below it keeps what the kernel has (only its ctime moved); a change in it shows the new one', async () => {
    const base = tmpdir('side-merged');
    cleanups.push(() => fs.rmSync(base, { recursive: true, force: true }));
    const [top, bottom, upper, work, mnt] = ['top', 'bottom', 'upper', 'work', 'mnt'].map((d) => path.join(base, d)) as [string, string, string, string, string];
    for (const d of [top, bottom, upper, work, mnt]) fs.mkdirSync(d);
    // d and d/e exist in both layers: merged, nlink 1 before and after their copy-up.
    fs.mkdirSync(path.join(top, 'd/e'), { recursive: true });
    fs.mkdirSync(path.join(bottom, 'd/e/sub'), { recursive: true });
    fs.writeFileSync(path.join(top, 'd/e/g'), 'top\n');
    fs.writeFileSync(path.join(bottom, 'd/e/f'), 'bottom\n');
    const m = mountWith(['mount', '--lower', `${top}:${bottom}`, '--upper', upper, '--work', work], mnt);
    cleanups.push(() => m.cleanup());
    const viaMount = (p: string): fs.BigIntStats => fs.statSync(path.join(mnt, p), { bigint: true });
    const before = ['d', 'd/e'].map((p) => viaMount(p));
    fs.chmodSync(path.join(mnt, 'd/e/f'), 0o600);
    await settle();
    ['d', 'd/e'].forEach((p, i) => {
      const now = viaMount(p);
      const onDisk = fs.statSync(path.join(upper, p), { bigint: true });
      expect(now.ctimeNs, `/${p}`).toBe(before[i]!.ctimeNs);
      expect(onDisk.ctimeNs, `/${p}`).not.toBe(before[i]!.ctimeNs);
      // Everything else the kernel shows is the upper dir's.
      expect([now.nlink, now.mode, now.size, now.mtimeNs, now.ino], `/${p}`).toEqual([1n, onDisk.mode, onDisk.size, onDisk.mtimeNs, before[i]!.ino]);
    });
    fs.writeFileSync(path.join(mnt, 'd/e/new'), '');
    expect(viaMount('d/e').ctimeNs).toBe(fs.statSync(path.join(upper, 'd/e'), { bigint: true }).ctimeNs);
  });

  it('a copy-up of data that lands behind the request shows the ctime it ends with', async () => {
    // Held 300 ms before its fsync, the landing ends after the stat below has been cached.
    const { mnt, upper } = mountedTree('side-landing', { STRATAFS_LANDING_HOLD_MS: '300' });
    // An append copies the data (an O_TRUNC open would copy none, and nothing would land).
    fs.appendFileSync(path.join(mnt, 'd/e/g'), '');
    const before = fs.statSync(path.join(mnt, 'd/e/g'), { bigint: true }).ctimeNs;
    await new Promise((r) => setTimeout(r, 600));
    const [viaMount, onDisk] = seen(mnt, upper, 'd/e/g');
    expect(viaMount).toBe(onDisk);
    expect(viaMount.split(' ')[0]).not.toBe(String(before));
  });
});

describe('listings of upper and merged directories', () => {
  const cleanups = cleanupsAfterEach();

  /** Names and d_ino of a listing (getdents), with each name's st_ino by lstat, through python's scandir. */
  function listing(dir: string): Array<[string, string, string]> {
    const py = 'import os,sys,json; d=sys.argv[1]; print(json.dumps(sorted([e.name, str(e.inode()), str(os.lstat(os.path.join(d, e.name)).st_ino)] for e in os.scandir(d))))';
    return JSON.parse(execFileSync('python3', ['-c', py, dir], { encoding: 'utf8' })) as Array<[string, string, string]>;
  }
  const names = (dir: string): string[] => {
    const l = listing(dir);
    for (const [n, dIno, stIno] of l) expect(dIno, `${dir}/${n}: d_ino against st_ino`).toBe(stIno);
    return l.map(([n]) => n);
  };

  /** A mount over a lower layer with d/{a,b,h1}, e/{h2,x} (h1 and h2 one file); d made merged through the mount. */
  function mounted(name: string, extra: string[] = []): { mnt: string; upper: string } {
    const base = tmpdir(name);
    cleanups.push(() => fs.rmSync(base, { recursive: true, force: true }));
    const [lower, upper, work, mnt] = ['lower', 'upper', 'work', 'mnt'].map((d) => path.join(base, d)) as [string, string, string, string];
    for (const d of [lower, upper, work, mnt, `${lower}/d`, `${lower}/e`]) fs.mkdirSync(d);
    for (const f of ['d/a', 'd/b', 'd/h1', 'e/x']) fs.writeFileSync(path.join(lower, f), f);
    fs.linkSync(path.join(lower, 'd/h1'), path.join(lower, 'e/h2'));
    const m = mountWith(['mount', '--lower', lower, '--upper', upper, '--work', work, ...extra], mnt);
    cleanups.push(() => m.cleanup());
    fs.writeFileSync(path.join(mnt, 'd/n'), 'n');
    return { mnt, upper };
  }

  /** READDIR and READDIRPLUS requests the mount gets while `f` runs. */
  const readdirRequests = (mnt: string, f: () => void): number => requestsOf(mnt, f, 'READDIR', 'READDIRPLUS');

  it('are kept by the kernel, and every change through the mount shows in the next one', () => {
    const { mnt, upper } = mounted('listings-kept');
    const d = path.join(mnt, 'd');
    expect(fs.existsSync(path.join(upper, 'd'))).toBe(true);
    expect(names(d)).toEqual(['a', 'b', 'h1', 'n']);
    expect(readdirRequests(mnt, () => expect(names(d)).toEqual(['a', 'b', 'h1', 'n']))).toBe(0);
    // Each change, then what d and e list.
    const steps: Array<[string, () => void, string[], string[]]> = [
      ['create', () => fs.writeFileSync(path.join(d, 'c'), ''), ['a', 'b', 'c', 'h1', 'n'], ['h2', 'x']],
      ['unlink of a lower file', () => fs.unlinkSync(path.join(d, 'a')), ['b', 'c', 'h1', 'n'], ['h2', 'x']],
      ['rename in the directory', () => fs.renameSync(path.join(d, 'b'), path.join(d, 'b2')), ['b2', 'c', 'h1', 'n'], ['h2', 'x']],
      ['mkdir', () => fs.mkdirSync(path.join(d, 'sub')), ['b2', 'c', 'h1', 'n', 'sub'], ['h2', 'x']],
      ['symlink', () => fs.symlinkSync('c', path.join(d, 's')), ['b2', 'c', 'h1', 'n', 's', 'sub'], ['h2', 'x']],
      ['link from another directory', () => fs.linkSync(path.join(mnt, 'e/x'), path.join(d, 'x2')), ['b2', 'c', 'h1', 'n', 's', 'sub', 'x2'], ['h2', 'x']],
      ['rename from another directory', () => fs.renameSync(path.join(mnt, 'e/x'), path.join(d, 'x')), ['b2', 'c', 'h1', 'n', 's', 'sub', 'x', 'x2'], ['h2']],
      ['rename to another directory', () => fs.renameSync(path.join(d, 'n'), path.join(mnt, 'e/n')), ['b2', 'c', 'h1', 's', 'sub', 'x', 'x2'], ['h2', 'n']],
      ['rmdir', () => fs.rmdirSync(path.join(d, 'sub')), ['b2', 'c', 'h1', 's', 'x', 'x2'], ['h2', 'n']],
    ];
    for (const [what, change, wantD, wantE] of steps) {
      change();
      expect(names(d), what).toEqual(wantD);
      expect(names(path.join(mnt, 'e')), what).toEqual(wantE);
    }
    // A copy-up's own changes: chmod of e/h2 copies up the hard-link set and links d/h1
    // into the upper dir behind the kernel's back. The kept listing stays true: same names,
    // same inode numbers.
    const before = listing(d);
    fs.chmodSync(path.join(mnt, 'e/h2'), 0o600);
    expect(fs.statSync(path.join(upper, 'd/h1')).ino).toBe(fs.statSync(path.join(upper, 'e/h2')).ino);
    expect(listing(d)).toEqual(before);
    expect(names(d)).toEqual(['b2', 'c', 'h1', 's', 'x', 'x2']);
  });

  it('are not kept when the cache lifetimes are shortened (-o timeout=0): the upper dir may change behind the mount', () => {
    const { mnt, upper } = mounted('listings-timeout0', ['-o', 'timeout=0']);
    const d = path.join(mnt, 'd');
    expect(names(d)).toEqual(['a', 'b', 'h1', 'n']);
    expect(readdirRequests(mnt, () => expect(names(d)).toEqual(['a', 'b', 'h1', 'n']))).toBeGreaterThan(0);
    fs.writeFileSync(path.join(upper, 'd/behind'), '');
    expect(names(d)).toEqual(['a', 'b', 'behind', 'h1', 'n']);
  });
});

describe('names that do not exist', () => {
  const cleanups = cleanupsAfterEach();

  /** A mount over a lower layer holding d/{a,b} and gone (whited out through the mount). */
  function mounted(name: string, extra: string[] = []): { mnt: string; upper: string } {
    const base = tmpdir(name);
    cleanups.push(() => fs.rmSync(base, { recursive: true, force: true }));
    const [lower, upper, work, mnt] = ['lower', 'upper', 'work', 'mnt'].map((d) => path.join(base, d)) as [string, string, string, string];
    for (const d of [lower, upper, work, mnt, `${lower}/d`]) fs.mkdirSync(d);
    for (const f of ['d/a', 'd/b', 'gone']) fs.writeFileSync(path.join(lower, f), f);
    const m = mountWith(['mount', '--lower', lower, '--upper', upper, '--work', work, ...extra], mnt);
    cleanups.push(() => m.cleanup());
    fs.unlinkSync(path.join(mnt, 'gone'));
    return { mnt, upper };
  }

  const missing = ['nope', 'd/nope', 'gone', 'd/x', 'd/y', 'd/z', 'd/sub', 'd/s', 'd/l'];
  /** stat of each missing name, `times` times over: each must fail with ENOENT. */
  const statMissing = (mnt: string, times: number): void => {
    for (let i = 0; i < times; i++) {
      for (const n of missing) expect(() => fs.lstatSync(path.join(mnt, n)), n).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    }
  };

  it('are kept by the kernel as long as names (one LOOKUP each), and every name made or removed through the mount shows at once', () => {
    const { mnt } = mounted('negative-kept');
    fs.lstatSync(path.join(mnt, 'd'));
    expect(requestsOf(mnt, () => statMissing(mnt, 20), 'LOOKUP')).toBe(missing.length);
    expect(requestsOf(mnt, () => statMissing(mnt, 20), 'LOOKUP')).toBe(0);
    // Each name the kernel keeps as missing, made in every way a name can come to be.
    const d = path.join(mnt, 'd');
    fs.writeFileSync(path.join(mnt, 'nope'), 'created');
    fs.writeFileSync(path.join(mnt, 'gone'), 'again');
    fs.renameSync(path.join(d, 'a'), path.join(d, 'x'));
    fs.linkSync(path.join(d, 'b'), path.join(d, 'y'));
    fs.mkdirSync(path.join(d, 'sub'));
    fs.symlinkSync('x', path.join(d, 's'));
    execFileSync('mknod', [path.join(d, 'z'), 'p']);
    fs.writeFileSync(path.join(d, 'nope'), '');
    fs.renameSync(path.join(d, 'nope'), path.join(d, 'l'));
    expect(fs.readFileSync(path.join(mnt, 'nope'), 'utf8')).toBe('created');
    expect(fs.readFileSync(path.join(mnt, 'gone'), 'utf8')).toBe('again');
    expect(fs.readFileSync(path.join(d, 'x'), 'utf8')).toBe('d/a');
    expect(fs.readFileSync(path.join(d, 'y'), 'utf8')).toBe('d/b');
    expect(fs.statSync(path.join(d, 'sub')).isDirectory()).toBe(true);
    expect(fs.readlinkSync(path.join(d, 's'))).toBe('x');
    expect(fs.lstatSync(path.join(d, 'z')).isFIFO()).toBe(true);
    expect(fs.lstatSync(path.join(d, 'l')).isFile()).toBe(true);
    expect(() => fs.lstatSync(path.join(d, 'nope'))).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    expect(() => fs.lstatSync(path.join(d, 'a'))).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    // And removed again: missing at once.
    for (const n of ['nope', 'gone', 'd/x', 'd/y', 'd/z', 'd/s', 'd/l']) fs.unlinkSync(path.join(mnt, n));
    fs.rmdirSync(path.join(d, 'sub'));
    statMissing(mnt, 2);
    // A directory renamed away leaves its old name missing, and takes its names along.
    fs.renameSync(d, path.join(mnt, 'moved'));
    expect(() => fs.lstatSync(path.join(d, 'b'))).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    expect(fs.readFileSync(path.join(mnt, 'moved/b'), 'utf8')).toBe('d/b');
    expect(() => fs.lstatSync(path.join(mnt, 'moved/nope'))).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  });

  it('are asked for every time with --negative-timeout 0 or -o timeout=0; a name made behind the mount shows then, and not by default', () => {
    for (const extra of [['--negative-timeout', '0'], ['-o', 'timeout=0']]) {
      const { mnt, upper } = mounted(`negative-${extra[1]}`, extra);
      fs.lstatSync(path.join(mnt, 'd'));
      statMissing(mnt, 1);
      expect(requestsOf(mnt, () => statMissing(mnt, 3), 'LOOKUP'), extra.join(' ')).toBeGreaterThanOrEqual(3 * missing.length);
      fs.writeFileSync(path.join(upper, 'nope'), 'behind');
      expect(fs.readFileSync(path.join(mnt, 'nope'), 'utf8'), extra.join(' ')).toBe('behind');
    }
    // The default keeps "missing": what users must not do (change the upper dir behind the
    // mount) is how it shows.
    const { mnt, upper } = mounted('negative-default');
    statMissing(mnt, 1);
    fs.writeFileSync(path.join(upper, 'nope'), 'behind');
    expect(() => fs.lstatSync(path.join(mnt, 'nope'))).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  });
});
