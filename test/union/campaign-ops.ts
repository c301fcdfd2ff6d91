// The operations of the random campaign (test/union/campaign.ts): a script is plain data (a
// JSON array of Op), so a finding can be written out, replayed and minimized. This file
// holds the op set, the seeded generator, and the runner that performs one op on one mount,
// keeping fds open across steps in a table of numbered slots.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { native } from '../../src/native/binding.js';
import type { Rng } from '../helpers/layers.js';
import { lsTyped, truncatePath } from './harness.js';

/** [seconds, nanoseconds]; nanoseconds may be UTIME_NOW. */
export type Time = [number, number];

/** fallocate(2)'s modes that reach a FUSE daemon: allocate (may grow the file), keep-size, punch-hole, zero-range. */
export type FallocMode = 'plain' | 'keep' | 'punch' | 'zero';

/** What an open op asks for: read-only, read-write, read-append, read-write truncating. */
export type OpenFlags = 'r' | 'r+' | 'a+' | 'w+';

export type Op =
  | { op: 'read'; path: string }
  | { op: 'create'; path: string; data: string }
  | { op: 'append'; path: string; data: string }
  | { op: 'truncate'; path: string; size: number }
  | { op: 'chmod'; path: string; mode: number }
  | { op: 'chown'; path: string; uid: number; gid: number }
  | { op: 'utimens'; path: string; atime: Time; mtime: Time }
  | { op: 'setxattr'; path: string; name: string; value: string }
  | { op: 'removexattr'; path: string; name: string }
  | { op: 'link'; from: string; to: string }
  | { op: 'symlink'; target: string; path: string }
  | { op: 'mkfifo'; path: string; mode: number }
  | { op: 'mkdir'; path: string; mode: number }
  | { op: 'rmdir'; path: string }
  | { op: 'unlink'; path: string }
  | { op: 'rmrf'; path: string }
  | { op: 'rename'; from: string; to: string; flags?: 'noreplace' | 'exchange' }
  | { op: 'readdir'; path: string }
  | { op: 'readlink'; path: string }
  | { op: 'stat'; path: string }
  | { op: 'open'; fd: number; path: string; flags: OpenFlags }
  | { op: 'fstat'; fd: number }
  | { op: 'fread'; fd: number; pos: number; len: number }
  | { op: 'fwrite'; fd: number; pos: number; data: string }
  | { op: 'ftruncate'; fd: number; size: number }
  | { op: 'fchmod'; fd: number; mode: number }
  | { op: 'fchown'; fd: number; uid: number; gid: number }
  | { op: 'futimens'; fd: number; atime: Time; mtime: Time }
  | { op: 'fsetxattr'; fd: number; name: string; value: string }
  | { op: 'close'; fd: number }
  // STRATA_CAMPAIGN_MORE_OPS=1: fallocate(2) in its four modes a daemon is sent,
  // copy_file_range(2) from another slot's fd (from its start), lseek(2) SEEK_DATA/SEEK_HOLE.
  | { op: 'fallocate'; fd: number; mode: FallocMode; pos: number; len: number }
  | { op: 'fcopy'; fd: number; from: number; pos: number; len: number }
  | { op: 'fseek'; fd: number; pos: number; whence: 'data' | 'hole' }
  // The kernel forgets unused dentries and inodes of both mounts (echo 2 > drop_caches).
  | { op: 'dropcaches' };

export type OpName = Op['op'];

/** One line for a report: `rename a -> b (exchange)`, `fchmod fd1 0o600`. */
export function describeOp(op: Op): string {
  const rest = Object.entries(op)
    .filter(([k]) => k !== 'op')
    .map(([k, v]) => (k === 'mode' && typeof v === 'number' ? `0o${v.toString(8)}` : k === 'fd' ? `fd${v as number}` : JSON.stringify(v)));
  return `${op.op} ${rest.join(' ')}`;
}

/** The paths an op names, as given (before symlinks); the second element says whether the last component is followed. */
export function pathsOf(op: Op): Array<[string, boolean]> {
  switch (op.op) {
    case 'read':
    case 'create':
    case 'append':
    case 'truncate':
    case 'chmod':
    case 'readdir':
    case 'open':
      return [[op.path, true]];
    case 'link':
    case 'rename':
      return [
        [op.from, false],
        [op.to, false],
      ];
    case 'chown':
    case 'utimens':
    case 'setxattr':
    case 'removexattr':
    case 'symlink':
    case 'mkfifo':
    case 'mkdir':
    case 'rmdir':
    case 'unlink':
    case 'rmrf':
    case 'readlink':
    case 'stat':
      return [[op.path, false]];
    default:
      return [];
  }
}

export const parentOf = (p: string): string => (p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '.');

// ---------------------------------------------------------------------------------------
// The generator

const MODES = [0o600, 0o755, 0o4711, 0o640, 0o2755, 0o444, 0o1777, 0o000];
const OWNERS: Array<[number, number]> = [
  [0, 0],
  [1000, 1000],
  [1234, 5678],
  [0, 100],
];
const XATTRS = ['user.k0', 'user.k1', 'user.k2', 'user.r'];
const FLAGS: OpenFlags[] = ['r', 'r', 'r', 'r+', 'r+', 'a+', 'w+'];

/** Op kinds with their weights: path ops first, then the fd ops (about a third of the script). */
const WEIGHTS: Array<[OpName, number]> = [
  ['read', 4],
  ['create', 5],
  ['append', 4],
  ['truncate', 2],
  ['chmod', 4],
  ['chown', 3],
  ['utimens', 3],
  ['setxattr', 3],
  ['removexattr', 2],
  ['link', 4],
  ['symlink', 2],
  ['mkfifo', 1],
  ['mkdir', 3],
  ['rmdir', 2],
  ['unlink', 4],
  ['rmrf', 2],
  ['rename', 8],
  ['readdir', 3],
  ['readlink', 1],
  ['stat', 2],
  ['open', 8],
  ['fstat', 4],
  ['fread', 4],
  ['fwrite', 3],
  ['ftruncate', 2],
  ['fchmod', 2],
  ['fchown', 1],
  ['futimens', 1],
  ['fsetxattr', 1],
  ['close', 3],
];
/**
 * STRATA_CAMPAIGN_DROP_CACHES=1 adds dropcaches (weight 2). Off by default: it changes every
 * seed's script, and what stratafs documents about names the kernel forgot (docs/union.md,
 * "Files unlinked while open": a lower file's fd after its names were forgotten) has no
 * filter in campaign-known.ts yet, so a finding may be that documented case.
 */
function weights(): Array<[OpName, number]> {
  const w = [...WEIGHTS];
  if (process.env.STRATA_CAMPAIGN_DROP_CACHES === '1') w.push(['dropcaches', 2]);
  if (process.env.STRATA_CAMPAIGN_MORE_OPS === '1') w.push(['fallocate', 2], ['fcopy', 2], ['fseek', 1]);
  return w;
}
const FD_OPS = new Set<OpName>(['fstat', 'fread', 'fwrite', 'ftruncate', 'fchmod', 'fchown', 'futimens', 'fsetxattr', 'close', 'fallocate', 'fcopy', 'fseek']);
const FALLOC_MODES: FallocMode[] = ['plain', 'keep', 'punch', 'zero'];

/**
 * A seeded script over the paths of a random stack (every one of them, '.' left out), of
 * 40..80 ops. The generator does not model the tree: it names the stack's paths and the names
 * it made itself, so many ops fail, on both mounts alike (an errno is a result too). fd ops
 * name slots opened earlier and not yet closed.
 */
export function generateScript(r: Rng, stackPaths: string[]): Op[] {
  const known = [...stackPaths];
  const dirsOf = (): string[] => ['.', ...known];
  let fresh = 0;
  const newName = (): string => {
    const p = `${r.pick(dirsOf())}/n${(fresh++).toString(36)}`.replace(/^\.\//, '');
    known.push(p);
    return p;
  };
  // A recent name more often than an old one: ops pile up on what the script just touched.
  const somePath = (): string => (r.chance(0.4) ? known[known.length - 1 - r.int(Math.min(6, known.length))]! : r.pick(known));
  const target = (): string => (r.chance(0.3) ? newName() : somePath());
  const time = (): Time => [1000000000 + r.int(100000000), r.chance(0.1) ? native.UTIME_NOW : r.int(1000000000)];
  const data = (): string => `w${r.int(1000)}${'.'.repeat(r.int(40))}\n`;
  const open: number[] = [];
  let slots = 0;
  const table = weights();
  const total = table.reduce((s, [, w]) => s + w, 0);
  const script: Op[] = [];
  const length = 40 + r.int(41);
  while (script.length < length) {
    let x = r.int(total);
    let kind: OpName = 'stat';
    for (const [k, w] of table) {
      if (x < w) {
        kind = k;
        break;
      }
      x -= w;
    }
    if (FD_OPS.has(kind) && open.length === 0) kind = 'open';
    const fd = open.length ? r.pick(open) : 0;
    const owner = r.pick(OWNERS);
    switch (kind) {
      case 'read':
      case 'readdir':
      case 'readlink':
      case 'stat':
      case 'rmdir':
      case 'unlink':
      case 'rmrf':
        script.push({ op: kind, path: somePath() });
        break;
      case 'create':
        script.push({ op: 'create', path: r.chance(0.6) ? newName() : somePath(), data: data() });
        break;
      case 'append':
        script.push({ op: 'append', path: somePath(), data: data() });
        break;
      case 'truncate':
        script.push({ op: 'truncate', path: somePath(), size: r.int(60) });
        break;
      case 'chmod':
        script.push({ op: 'chmod', path: somePath(), mode: r.pick(MODES) });
        break;
      case 'chown':
        script.push({ op: 'chown', path: somePath(), uid: owner[0], gid: owner[1] });
        break;
      case 'utimens':
        script.push({ op: 'utimens', path: somePath(), atime: time(), mtime: time() });
        break;
      case 'setxattr':
        script.push({ op: 'setxattr', path: somePath(), name: r.pick(XATTRS), value: `v${r.int(100)}` });
        break;
      case 'removexattr':
        script.push({ op: 'removexattr', path: somePath(), name: r.pick(XATTRS) });
        break;
      case 'link':
        script.push({ op: 'link', from: somePath(), to: target() });
        break;
      case 'symlink': {
        const at = newName();
        // Relative targets inside the mount (or nowhere): a script that follows one must not
        // leave the mount (the runner checks that too, for links the script later moves).
        const to = r.chance(0.3) ? 'dangling' : path.relative(parentOf(at), r.pick(known));
        script.push({ op: 'symlink', target: to || '.', path: at });
        break;
      }
      case 'mkfifo':
        script.push({ op: 'mkfifo', path: newName(), mode: 0o640 });
        break;
      case 'mkdir':
        script.push({ op: 'mkdir', path: newName(), mode: r.pick([0o755, 0o700, 0o2775, 0o1777]) });
        break;
      case 'rename': {
        const flags = r.pick([undefined, undefined, undefined, 'noreplace', 'exchange'] as const);
        const to = flags === 'exchange' ? somePath() : target();
        script.push(flags ? { op: 'rename', from: somePath(), to, flags } : { op: 'rename', from: somePath(), to });
        break;
      }
      case 'open': {
        const slot = ++slots;
        open.push(slot);
        script.push({ op: 'open', fd: slot, path: r.chance(0.15) ? newName() : somePath(), flags: r.pick(FLAGS) });
        break;
      }
      case 'fstat':
        script.push({ op: 'fstat', fd });
        break;
      case 'fread':
        script.push({ op: 'fread', fd, pos: r.int(40), len: 1 + r.int(100) });
        break;
      case 'fwrite':
        script.push({ op: 'fwrite', fd, pos: r.int(60), data: data() });
        break;
      case 'ftruncate':
        script.push({ op: 'ftruncate', fd, size: r.int(60) });
        break;
      case 'fchmod':
        script.push({ op: 'fchmod', fd, mode: r.pick(MODES) });
        break;
      case 'fchown':
        script.push({ op: 'fchown', fd, uid: owner[0], gid: owner[1] });
        break;
      case 'futimens':
        script.push({ op: 'futimens', fd, atime: time(), mtime: time() });
        break;
      case 'fsetxattr':
        script.push({ op: 'fsetxattr', fd, name: r.pick(XATTRS), value: `f${r.int(100)}` });
        break;
      case 'close':
        open.splice(open.indexOf(fd), 1);
        script.push({ op: 'close', fd });
        break;
      case 'fallocate':
        script.push({ op: 'fallocate', fd, mode: r.pick(FALLOC_MODES), pos: r.int(60), len: 1 + r.int(80) });
        break;
      case 'fcopy':
        script.push({ op: 'fcopy', fd, from: r.pick(open), pos: r.int(60), len: 1 + r.int(80) });
        break;
      case 'fseek':
        script.push({ op: 'fseek', fd, pos: r.int(80), whence: r.pick(['data', 'hole'] as const) });
        break;
      case 'dropcaches':
        script.push({ op: 'dropcaches' });
        break;
    }
  }
  return script;
}

// ---------------------------------------------------------------------------------------
// The runner

export interface OpenFile {
  fd: number;
  /** the path the open named */
  path: string;
  flags: OpenFlags;
}

/** A mount's open fds by slot number. */
export type FdTable = Map<number, OpenFile>;

/** An errno-shaped failure for ops that have no syscall of their own (a closed slot). */
function errno(code: string): Error {
  return Object.assign(new Error(code), { code });
}

/** Opening a fifo would block: ops that open look first (following symlinks, as open would). */
function isFifo(p: string): boolean {
  try {
    return fs.statSync(p).isFIFO();
  } catch {
    return false;
  }
}

/** Length and a digest of data read: enough to compare, short enough to read in a report. */
export function digest(b: Buffer): string {
  return `${b.length}:${createHash('sha256').update(b).digest('hex').slice(0, 12)}`;
}

/** pread of up to len bytes at pos. */
export function pread(fd: number, pos: number, len: number): Buffer {
  const b = Buffer.alloc(len);
  return b.subarray(0, fs.readSync(fd, b, 0, len, pos));
}

/**
 * Whether following `rel` under `root` (every symlink on the way, the last one too when
 * `followLast`) would leave the mount: layer symlinks like `../x` and moved relative links
 * point above it, and the same host path outside would be shared by both mounts.
 */
export function escapes(root: string, rel: string, followLast: boolean): boolean {
  let parts = rel.split('/');
  const cur: string[] = [];
  for (let hops = 0; parts.length; ) {
    const c = parts.shift()!;
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (!cur.length) return true;
      cur.pop();
      continue;
    }
    if (!parts.length && !followLast) return false;
    let st: fs.Stats;
    try {
      st = fs.lstatSync(path.join(root, ...cur, c));
    } catch {
      return false; // what does not exist is made (or fails) inside the mount
    }
    if (!st.isSymbolicLink()) {
      cur.push(c);
      continue;
    }
    if (++hops > 40) return false; // ELOOP on both mounts
    const t = fs.readlinkSync(path.join(root, ...cur, c));
    if (t.startsWith('/')) return true;
    parts = [...t.split('/'), ...parts];
  }
  return false;
}

function slot(fds: FdTable, n: number): OpenFile {
  const f = fds.get(n);
  if (!f) throw errno('EBADF');
  return f;
}

const NODE_FLAGS: Record<OpenFlags, string> = { r: 'r', 'r+': 'r+', 'a+': 'a+', 'w+': 'w+' };
const FALLOC_FLAGS: Record<FallocMode, number> = {
  plain: 0,
  keep: native.FALLOC_FL_KEEP_SIZE,
  punch: native.FALLOC_FL_PUNCH_HOLE | native.FALLOC_FL_KEEP_SIZE,
  zero: native.FALLOC_FL_ZERO_RANGE,
};

/** Performs one op on the mount at root; returns what it saw ('OK' for nothing) or throws the errno. */
export function runOp(op: Op, root: string, fds: FdTable): unknown {
  const at = (p: string): string => path.join(root, p);
  switch (op.op) {
    case 'read':
      return isFifo(at(op.path)) ? 'fifo' : digest(fs.readFileSync(at(op.path)));
    case 'create':
      if (isFifo(at(op.path))) return 'fifo';
      fs.writeFileSync(at(op.path), op.data);
      return 'OK';
    case 'append':
      if (isFifo(at(op.path))) return 'fifo';
      fs.appendFileSync(at(op.path), op.data);
      return 'OK';
    case 'truncate': {
      const r = truncatePath(at(op.path), op.size);
      if (r !== 'OK') throw errno(r);
      return 'OK';
    }
    case 'chmod':
      fs.chmodSync(at(op.path), op.mode);
      return 'OK';
    case 'chown':
      fs.lchownSync(at(op.path), op.uid, op.gid);
      return 'OK';
    case 'utimens':
      native.utimens(at(op.path), op.atime[0], op.atime[1], op.mtime[0], op.mtime[1], true);
      return 'OK';
    case 'setxattr':
      native.lsetxattr(at(op.path), op.name, Buffer.from(op.value), 0);
      return 'OK';
    case 'removexattr':
      native.lremovexattr(at(op.path), op.name);
      return 'OK';
    case 'link':
      fs.linkSync(at(op.from), at(op.to));
      return 'OK';
    case 'symlink':
      fs.symlinkSync(op.target, at(op.path));
      return 'OK';
    case 'mkfifo':
      native.mknod(at(op.path), 0o010000 | op.mode, 0, 0);
      return 'OK';
    case 'mkdir':
      fs.mkdirSync(at(op.path), op.mode);
      return 'OK';
    case 'rmdir':
      fs.rmdirSync(at(op.path));
      return 'OK';
    case 'unlink':
      fs.unlinkSync(at(op.path));
      return 'OK';
    case 'rmrf':
      fs.rmSync(at(op.path), { recursive: true });
      return 'OK';
    case 'rename':
      if (!op.flags) fs.renameSync(at(op.from), at(op.to));
      else native.renameat2(at(op.from), at(op.to), op.flags === 'exchange' ? native.RENAME_EXCHANGE : native.RENAME_NOREPLACE);
      return 'OK';
    case 'readdir':
      return lsTyped(at(op.path));
    case 'readlink':
      return fs.readlinkSync(at(op.path));
    case 'stat':
      return 'OK'; // what it saw is the path's snapshot, taken after every op
    case 'open': {
      if (fds.has(op.fd)) throw errno('EBUSY'); // a replayed script reusing a slot: not a real errno
      if (isFifo(at(op.path))) return 'fifo';
      fds.set(op.fd, { fd: fs.openSync(at(op.path), NODE_FLAGS[op.flags], 0o644), path: op.path, flags: op.flags });
      return 'OK';
    }
    case 'fstat':
      slot(fds, op.fd);
      return 'OK'; // as stat: the fd's snapshot is taken after every op
    case 'fread':
      return digest(pread(slot(fds, op.fd).fd, op.pos, op.len));
    case 'fwrite':
      fs.writeSync(slot(fds, op.fd).fd, op.data, op.pos);
      return 'OK';
    case 'ftruncate':
      fs.ftruncateSync(slot(fds, op.fd).fd, op.size);
      return 'OK';
    case 'fchmod':
      fs.fchmodSync(slot(fds, op.fd).fd, op.mode);
      return 'OK';
    case 'fchown':
      fs.fchownSync(slot(fds, op.fd).fd, op.uid, op.gid);
      return 'OK';
    case 'futimens':
      native.futimens(slot(fds, op.fd).fd, op.atime[0], op.atime[1], op.mtime[0], op.mtime[1]);
      return 'OK';
    case 'fsetxattr':
      native.fsetxattr(slot(fds, op.fd).fd, op.name, Buffer.from(op.value), 0);
      return 'OK';
    case 'close': {
      const f = slot(fds, op.fd);
      fds.delete(op.fd);
      fs.closeSync(f.fd);
      return 'OK';
    }
    case 'fallocate':
      native.fallocate(slot(fds, op.fd).fd, FALLOC_FLAGS[op.mode], op.pos, op.len);
      return 'OK';
    case 'fcopy':
      // How many bytes it copied is the result (it stops at the source's end).
      return native.copyFileRange(slot(fds, op.from).fd, 0, slot(fds, op.fd).fd, op.pos, op.len);
    case 'fseek':
      return native.lseek(slot(fds, op.fd).fd, op.pos, op.whence === 'data' ? native.SEEK_DATA : native.SEEK_HOLE);
    case 'dropcaches':
      fs.writeFileSync('/proc/sys/vm/drop_caches', '2');
      return 'OK';
  }
}

/** Closes every fd of a table (teardown: an open fd would keep the mount busy). */
export function closeAll(fds: FdTable): void {
  for (const f of fds.values()) {
    try {
      fs.closeSync(f.fd);
    } catch {
      /* already gone with its mount */
    }
  }
  fds.clear();
}
