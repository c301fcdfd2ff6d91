// Every operation through a loopback mount, compared with the same operation done directly
// on an identical copy of the source: results, errno values, and the resulting trees
// (content, mode, owner, nanosecond times, xattrs, link counts). Run with passthrough on
// and off, so both data paths are covered.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { native } from '../../src/native/binding.js';
import { diffTrees, snapshotTree } from '../../src/util/tree.js';
import { errnoOf, mountWith, runAs, tmpdir, type Mounted } from '../helpers/mount.js';

function seed(root: string): void {
  fs.mkdirSync(path.join(root, 'dir/sub'), { recursive: true });
  fs.writeFileSync(path.join(root, 'dir/a.txt'), 'alpha\n');
  fs.writeFileSync(path.join(root, 'dir/sub/b.bin'), Buffer.alloc(10000, 7));
  fs.symlinkSync('dir/a.txt', path.join(root, 'link'));
  fs.writeFileSync(path.join(root, 'xattr-file'), 'x');
  native.lsetxattr(path.join(root, 'xattr-file'), 'user.seeded', Buffer.from('yes'), 0);
  fs.mkdirSync(path.join(root, 'shared'), { mode: 0o777 });
  fs.chmodSync(path.join(root, 'shared'), 0o1777);
  fs.mkdirSync(path.join(root, 'setgid'), { mode: 0o2775 });
  fs.chownSync(path.join(root, 'setgid'), 0, 4321);
  fs.chmodSync(path.join(root, 'setgid'), 0o2777);
  const many = path.join(root, 'many');
  fs.mkdirSync(many);
  for (let i = 0; i < 1500; i++) fs.writeFileSync(path.join(many, `entry-with-a-longish-name-${i}`), String(i));
  native.utimens(root, 1600000000, 1, 1600000000, 2, true);
}

/** Holds a POSIX lock, asks a second process for a conflicting one; prints its errno. */
const POSIX_LOCK_PROBE = `
import fcntl, subprocess, sys
f = open(sys.argv[1], 'r+')
fcntl.lockf(f, fcntl.LOCK_EX)
probe = "import fcntl, sys\\nf = open(sys.argv[1], 'r+')\\ntry:\\n    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB); print(0)\\nexcept OSError as e:\\n    print(e.errno)"
print(subprocess.run([sys.executable, '-c', probe, sys.argv[1]], capture_output=True, text=True).stdout.strip())
`;

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const statOf = (p: string) => {
  const s = fs.lstatSync(p, { bigint: true });
  return { mode: Number(s.mode), uid: Number(s.uid), gid: Number(s.gid), size: Number(s.size), nlink: Number(s.nlink), rdev: Number(s.rdev) };
};

/** Each operation runs on a root (the mount, or the direct copy) and returns what it saw. */
const operations: Array<[string, (r: string) => unknown]> = [
  ['create, write, read back', (r) => {
    fs.writeFileSync(`${r}/new.txt`, 'hello world');
    return [fs.readFileSync(`${r}/new.txt`, 'utf8'), statOf(`${r}/new.txt`)];
  }],
  ['pwrite at offsets, pread, sparse tail', (r) => {
    const fd = fs.openSync(`${r}/offsets`, 'w+');
    fs.writeSync(fd, Buffer.from('AAAA'), 0, 4, 0);
    fs.writeSync(fd, Buffer.from('BBBB'), 0, 4, 100000);
    const b = Buffer.alloc(8);
    fs.readSync(fd, b, 0, 8, 99998);
    fs.closeSync(fd);
    return [b.toString('hex'), statOf(`${r}/offsets`).size];
  }],
  ['O_APPEND writes land at the end', (r) => {
    fs.writeFileSync(`${r}/append`, 'one\n');
    fs.appendFileSync(`${r}/append`, 'two\n');
    const fd = fs.openSync(`${r}/append`, 'a');
    fs.writeSync(fd, 'three\n');
    fs.closeSync(fd);
    return fs.readFileSync(`${r}/append`, 'utf8');
  }],
  ['an 8 MiB file round-trips', (r) => {
    const data = Buffer.alloc(8 << 20);
    for (let i = 0; i < data.length; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
    fs.writeFileSync(`${r}/big`, data);
    return [sha(fs.readFileSync(`${r}/big`)), statOf(`${r}/big`).size];
  }],
  ['truncate shrinks and grows, ftruncate on an open file', (r) => {
    fs.writeFileSync(`${r}/trunc`, 'abcdefgh');
    fs.truncateSync(`${r}/trunc`, 3);
    const a = fs.readFileSync(`${r}/trunc`, 'utf8');
    const fd = fs.openSync(`${r}/trunc`, 'r+');
    fs.ftruncateSync(fd, 6);
    fs.closeSync(fd);
    return [a, fs.readFileSync(`${r}/trunc`).toString('hex')];
  }],
  ['O_TRUNC on open empties the file', (r) => {
    fs.writeFileSync(`${r}/otrunc`, 'longer content');
    fs.writeFileSync(`${r}/otrunc`, 'short');
    return fs.readFileSync(`${r}/otrunc`, 'utf8');
  }],
  ['mkdir, nested mkdir, readdir', (r) => {
    fs.mkdirSync(`${r}/d1/d2/d3`, { recursive: true, mode: 0o750 });
    fs.writeFileSync(`${r}/d1/d2/f`, '');
    return [fs.readdirSync(`${r}/d1/d2`).sort(), statOf(`${r}/d1/d2/d3`).mode];
  }],
  ['rmdir: ENOTEMPTY on a full dir, then works on an empty one', (r) => {
    fs.mkdirSync(`${r}/rmd/inner`, { recursive: true });
    const e1 = errnoOf(() => fs.rmdirSync(`${r}/rmd`));
    fs.rmdirSync(`${r}/rmd/inner`);
    fs.rmdirSync(`${r}/rmd`);
    return [e1, fs.existsSync(`${r}/rmd`)];
  }],
  ['errno values of failing calls', (r) => [
    errnoOf(() => fs.openSync(`${r}/missing`, 'r')),
    errnoOf(() => fs.unlinkSync(`${r}/missing`)),
    errnoOf(() => fs.unlinkSync(`${r}/dir`)),
    errnoOf(() => fs.mkdirSync(`${r}/dir`)),
    errnoOf(() => fs.openSync(`${r}/dir/a.txt`, 'wx')),
    errnoOf(() => fs.rmdirSync(`${r}/dir/a.txt`)),
    errnoOf(() => fs.readlinkSync(`${r}/dir/a.txt`)),
    errnoOf(() => fs.readdirSync(`${r}/dir/a.txt`)),
    errnoOf(() => fs.writeFileSync(`${r}/dir/a.txt/x`, '')),
    errnoOf(() => fs.renameSync(`${r}/dir`, `${r}/dir/sub/inside`)),
    errnoOf(() => native.lgetxattr(`${r}/dir/a.txt`, 'user.none')),
  ]],
  ['unlink removes the name; an open file stays readable', (r) => {
    fs.writeFileSync(`${r}/gone`, 'still here');
    const fd = fs.openSync(`${r}/gone`, 'r');
    fs.unlinkSync(`${r}/gone`);
    const b = Buffer.alloc(10);
    fs.readSync(fd, b, 0, 10, 0);
    const size = Number(fs.fstatSync(fd).size);
    fs.closeSync(fd);
    return [fs.existsSync(`${r}/gone`), b.toString(), size];
  }],
  ['xattrs of a file unlinked while open, through its fd', (r) => {
    const fd = fs.openSync(`${r}/gone-x`, 'w+');
    fs.unlinkSync(`${r}/gone-x`);
    fs.fstatSync(fd);
    native.fsetxattr(fd, 'user.k', Buffer.from('v'), 0);
    const seen = [native.flistxattr(fd), native.fgetxattr(fd, 'user.k').toString()];
    native.fremovexattr(fd, 'user.k');
    seen.push(native.flistxattr(fd));
    fs.closeSync(fd);
    return seen;
  }],
  ['symlink and readlink', (r) => {
    fs.symlinkSync('../some/where', `${r}/dir/sym`);
    return [fs.readlinkSync(`${r}/dir/sym`), fs.lstatSync(`${r}/dir/sym`).isSymbolicLink(), fs.readFileSync(`${r}/link`, 'utf8')];
  }],
  ['hard links share one inode', (r) => {
    fs.writeFileSync(`${r}/hl1`, 'linked');
    fs.linkSync(`${r}/hl1`, `${r}/dir/hl2`);
    const a = fs.statSync(`${r}/hl1`);
    const b = fs.statSync(`${r}/dir/hl2`);
    fs.appendFileSync(`${r}/dir/hl2`, '+');
    return [a.ino === b.ino, b.nlink, fs.readFileSync(`${r}/hl1`, 'utf8')];
  }],
  ['rename files and directories, over an existing file', (r) => {
    fs.writeFileSync(`${r}/ra`, 'A');
    fs.writeFileSync(`${r}/rb`, 'B');
    fs.renameSync(`${r}/ra`, `${r}/rb`);
    fs.mkdirSync(`${r}/rd/x`, { recursive: true });
    fs.writeFileSync(`${r}/rd/x/f`, 'deep');
    fs.renameSync(`${r}/rd`, `${r}/dir/rd-moved`);
    return [fs.existsSync(`${r}/ra`), fs.readFileSync(`${r}/rb`, 'utf8'), fs.readFileSync(`${r}/dir/rd-moved/x/f`, 'utf8')];
  }],
  ['renameat2 RENAME_NOREPLACE and RENAME_EXCHANGE', (r) => {
    fs.writeFileSync(`${r}/x1`, 'one');
    fs.writeFileSync(`${r}/x2`, 'two');
    const e = errnoOf(() => native.renameat2(`${r}/x1`, `${r}/x2`, native.RENAME_NOREPLACE));
    native.renameat2(`${r}/x1`, `${r}/x2`, native.RENAME_EXCHANGE);
    native.renameat2(`${r}/x1`, `${r}/x3`, native.RENAME_NOREPLACE);
    return [e, fs.readFileSync(`${r}/x2`, 'utf8'), fs.readFileSync(`${r}/x3`, 'utf8'), fs.existsSync(`${r}/x1`)];
  }],
  ['chmod including set-id and sticky bits', (r) => {
    fs.writeFileSync(`${r}/modes`, '');
    const seen: number[] = [];
    for (const m of [0o4755, 0o2711, 0o1777, 0o000, 0o644]) {
      fs.chmodSync(`${r}/modes`, m);
      seen.push(statOf(`${r}/modes`).mode);
    }
    return seen;
  }],
  ['chown of a file and of a symlink itself', (r) => {
    fs.writeFileSync(`${r}/owned`, '');
    fs.chownSync(`${r}/owned`, 1234, 5678);
    fs.symlinkSync('owned', `${r}/owned-link`);
    fs.lchownSync(`${r}/owned-link`, 4321, 8765);
    return [statOf(`${r}/owned`), statOf(`${r}/owned-link`).uid, statOf(`${r}/owned`).uid];
  }],
  ['utimensat with nanoseconds, and on a symlink without following it', (r) => {
    fs.writeFileSync(`${r}/times`, '');
    native.utimens(`${r}/times`, 1111111111, 123456789, 1222222222, 987654321, false);
    fs.symlinkSync('times', `${r}/times-link`);
    native.utimens(`${r}/times-link`, 1000, 1, 2000, 2, true);
    const a = fs.lstatSync(`${r}/times`, { bigint: true });
    const l = fs.lstatSync(`${r}/times-link`, { bigint: true });
    return [a.atimeNs.toString(), a.mtimeNs.toString(), l.mtimeNs.toString()];
  }],
  ['utimensat UTIME_OMIT keeps a time unchanged', (r) => {
    fs.writeFileSync(`${r}/omit`, '');
    native.utimens(`${r}/omit`, 5, 5, 6, 6, false);
    native.utimens(`${r}/omit`, 7, 7, 0, native.UTIME_OMIT, false);
    const s = fs.lstatSync(`${r}/omit`, { bigint: true });
    return [s.atimeNs.toString(), s.mtimeNs.toString()];
  }],
  ['xattrs: set, get, list, replace, remove', (r) => {
    const p = `${r}/xattr-file`;
    native.lsetxattr(p, 'user.k1', Buffer.from('v1'), 0);
    native.lsetxattr(p, 'user.k2', Buffer.alloc(3000, 1), 0);
    const create = errnoOf(() => native.lsetxattr(p, 'user.k1', Buffer.from('x'), native.XATTR_CREATE));
    const replace = errnoOf(() => native.lsetxattr(p, 'user.nope', Buffer.from('x'), native.XATTR_REPLACE));
    native.lremovexattr(p, 'user.k2');
    return [native.llistxattr(p).sort(), native.lgetxattr(p, 'user.k1').toString(), native.lgetxattr(p, 'user.seeded').toString(), create, replace, errnoOf(() => native.lremovexattr(p, 'user.k2'))];
  }],
  ['trusted.* xattrs (root)', (r) => {
    native.lsetxattr(`${r}/dir`, 'trusted.test', Buffer.from('t'), 0);
    return native.lgetxattr(`${r}/dir`, 'trusted.test').toString();
  }],
  ['mknod: fifo, character device, whiteout', (r) => {
    native.mknod(`${r}/fifo`, 0o010644, 0, 0);
    native.mknod(`${r}/chr`, 0o020600, 1, 3);
    native.mknod(`${r}/wh`, 0o020000, 0, 0);
    return [statOf(`${r}/fifo`), statOf(`${r}/chr`), statOf(`${r}/wh`)];
  }],
  ['fsync, fdatasync, and fsync of a directory', (r) => {
    const fd = fs.openSync(`${r}/synced`, 'w');
    fs.writeSync(fd, 'durable');
    fs.fsyncSync(fd);
    fs.fdatasyncSync(fd);
    fs.closeSync(fd);
    const dfd = fs.openSync(`${r}/dir`, 'r');
    fs.fsyncSync(dfd);
    fs.closeSync(dfd);
    return fs.readFileSync(`${r}/synced`, 'utf8');
  }],
  ['fallocate, punch hole, SEEK_DATA and SEEK_HOLE', (r) => {
    const fd = fs.openSync(`${r}/holes`, 'w+');
    native.fallocate(fd, 0, 0, 1 << 20);
    fs.writeSync(fd, Buffer.alloc(1 << 20, 9), 0, 1 << 20, 0);
    native.fallocate(fd, native.FALLOC_FL_PUNCH_HOLE | native.FALLOC_FL_KEEP_SIZE, 256 << 10, 256 << 10);
    const hole = native.lseek(fd, 0, native.SEEK_HOLE);
    const data = native.lseek(fd, hole, native.SEEK_DATA);
    const b = Buffer.alloc(4);
    fs.readSync(fd, b, 0, 4, 300 << 10);
    fs.closeSync(fd);
    return [hole, data, b.toString('hex'), statOf(`${r}/holes`).size];
  }],
  ['copy_file_range between two files', (r) => {
    fs.writeFileSync(`${r}/cfr-src`, 'copy me please');
    const a = fs.openSync(`${r}/cfr-src`, 'r');
    const b = fs.openSync(`${r}/cfr-dst`, 'w+');
    const n = native.copyFileRange(a, 5, b, 2, 7);
    fs.closeSync(a);
    fs.closeSync(b);
    return [n, fs.readFileSync(`${r}/cfr-dst`).toString('hex')];
  }],
  ['a directory of 1500 entries lists completely, and stat matches readdir', (r) => {
    const names = fs.readdirSync(`${r}/many`);
    const dirents = fs.readdirSync(`${r}/many`, { withFileTypes: true }).filter((d) => d.isFile()).length;
    return [names.length, new Set(names).size, dirents, fs.readFileSync(`${r}/many/entry-with-a-longish-name-1499`, 'utf8')];
  }],
  ['access() answers like the source', (r) => {
    fs.writeFileSync(`${r}/acc`, '');
    fs.chmodSync(`${r}/acc`, 0o600);
    return [errnoOf(() => fs.accessSync(`${r}/acc`, fs.constants.R_OK | fs.constants.W_OK)), errnoOf(() => fs.accessSync(`${r}/acc`, fs.constants.X_OK)), errnoOf(() => fs.accessSync(`${r}/nope`))];
  }],
  ['names that are not UTF-8 survive', (r) => {
    const name = Buffer.concat([Buffer.from(`${r}/`), Buffer.from([0x6e, 0xff, 0xfe, 0x41])]);
    fs.writeFileSync(name, 'bytes');
    const listed = fs.readdirSync(r, { encoding: 'buffer' }).filter((n) => n.includes(0xff));
    return [listed.map((n) => n.toString('hex')), fs.readFileSync(name, 'utf8')];
  }],
  ['files created by another user belong to that user; setgid dirs pass on their group', (r) => {
    runAs(1000, 1000, `echo hi > '${r}/shared/by-1000' && mkdir '${r}/shared/dir-1000' && ln -s x '${r}/shared/ln-1000' && mkfifo '${r}/shared/fifo-1000' && touch '${r}/setgid/in-setgid'`);
    return ['by-1000', 'dir-1000', 'ln-1000', 'fifo-1000'].map((n) => statOf(`${r}/shared/${n}`)).concat([statOf(`${r}/setgid/in-setgid`)]);
  }],
  ['writes, O_TRUNC and truncate by another user drop set-id bits; root keeps them', (r) => {
    const mk = (n: string, mode: number) => {
      fs.writeFileSync(`${r}/shared/${n}`, 'abc');
      fs.chmodSync(`${r}/shared/${n}`, mode);
      return `${r}/shared/${n}`;
    };
    const w = mk('suid-w', 0o6777);
    const g = mk('sgid-noexec', 0o2666);
    const t = mk('suid-otrunc', 0o4777);
    const u = mk('suid-truncate', 0o4777);
    const root = mk('suid-root', 0o4755);
    runAs(1000, 1000, `echo more >> '${w}' && echo more >> '${g}' && : > '${t}' && truncate -s 1 '${u}'`);
    fs.appendFileSync(root, 'by root');
    return [w, g, t, u, root].map((p) => [statOf(p).mode & 0o7777, statOf(p).size]);
  }],
  ['flock and POSIX record locks conflict between processes', (r) => {
    fs.writeFileSync(`${r}/lockme`, 'x');
    const flock = execFileSync('sh', ['-c', `flock '${r}/lockme' sleep 1 & sleep 0.3; flock -n '${r}/lockme' true; echo $?; wait`], { encoding: 'utf8' }).trim();
    const posix = execFileSync('python3', ['-c', POSIX_LOCK_PROBE, `${r}/lockme`], { encoding: 'utf8' }).trim();
    return [flock, posix];
  }],
  ['another user is refused what the mode bits forbid', (r) => {
    fs.writeFileSync(`${r}/private`, 'secret');
    fs.chmodSync(`${r}/private`, 0o600);
    try {
      runAs(1000, 1000, `cat '${r}/private'`);
      return 'read';
    } catch {
      return 'refused';
    }
  }],
];

describe.each([{ passthrough: true }, { passthrough: false }])('loopback mount, passthrough $passthrough', ({ passthrough }) => {
  let base = '';
  let src = '';
  let twin = '';
  let m: Mounted | undefined;

  beforeAll(() => {
    base = tmpdir(`loop-${passthrough}`);
    fs.chmodSync(base, 0o755);
    src = path.join(base, 'src');
    twin = path.join(base, 'twin');
    fs.mkdirSync(src);
    fs.mkdirSync(twin);
    seed(src);
    seed(twin);
    fs.mkdirSync(path.join(base, 'mnt'));
    m = mountWith(['loopback', '-o', 'allow_other', ...(passthrough ? [] : ['--no-passthrough']), src], path.join(base, 'mnt'), { STRATAFS_LOG: 'info' });
  });

  afterAll(async () => {
    await m?.cleanup();
    fs.rmSync(base, { recursive: true, force: true });
  });

  it('negotiated the data path asked for', () => {
    const init = fs.readFileSync(m!.log, 'utf8').split('\n').filter((l) => l.includes('"FUSE INIT"'));
    expect(init).toHaveLength(1);
    expect(JSON.parse(init[0]!).passthrough).toBe(passthrough);
  });

  it('shows the source with identical metadata, 64-bit inode numbers and nanosecond times', () => {
    const opts = { mtime: true, ino: true, nlink: true };
    expect(diffTrees(snapshotTree(m!.mnt, opts), snapshotTree(src, opts))).toEqual([]);
  });

  it.each(operations)('%s', (_name, op) => {
    const capture = (root: string) => {
      try {
        return { ok: op(root) };
      } catch (e) {
        return { error: (e as NodeJS.ErrnoException).code ?? String(e) };
      }
    };
    const viaMount = capture(m!.mnt);
    const direct = capture(twin);
    expect(viaMount).toEqual(direct);
    expect(viaMount).not.toHaveProperty('error');
  });

  it('left the source exactly as the same operations left the direct copy', () => {
    const opts = { nlink: true };
    expect(diffTrees(snapshotTree(src, opts), snapshotTree(twin, opts))).toEqual([]);
    const exact = { mtime: true, ino: true, nlink: true };
    expect(diffTrees(snapshotTree(m!.mnt, exact), snapshotTree(src, exact))).toEqual([]);
  });

  it('statfs of the mount reports the source filesystem', () => {
    const a = fs.statfsSync(m!.mnt);
    const b = fs.statfsSync(src);
    expect([a.bsize, a.blocks, a.files]).toEqual([b.bsize, b.blocks, b.files]);
    expect(Math.abs(a.bfree - b.bfree)).toBeLessThan(b.blocks / 100);
  });
});
