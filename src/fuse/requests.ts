// Decoders for every request the kernel sends: one fuse_in_header, then an opcode-specific
// body. Each decoder reads the fixed struct and the trailing names or data.

import { Op } from './abi.js';
import { cstring, u64 } from './wire.js';

export interface InHeader {
  len: number;
  opcode: number;
  unique: number;
  nodeid: number;
  uid: number;
  gid: number;
  pid: number;
}

export interface InitIn { major: number; minor: number; maxReadahead: number; flags: bigint }
export interface LookupIn { name: string }
export interface ForgetIn { nlookup: number }
export interface BatchForgetIn { forgets: Array<{ nodeid: number; nlookup: number }> }
export interface GetattrIn { getattrFlags: number; fh: number }
export interface SetattrIn {
  valid: number;
  fh: number;
  size: number;
  lockOwner: bigint;
  atime: number;
  mtime: number;
  ctime: number;
  atimensec: number;
  mtimensec: number;
  ctimensec: number;
  mode: number;
  uid: number;
  gid: number;
}
export interface SymlinkIn { name: string; target: Buffer }
export interface MknodIn { mode: number; rdev: number; umask: number; name: string }
export interface MkdirIn { mode: number; umask: number; name: string }
export interface NameIn { name: string }
export interface RenameIn { newdir: number; flags: number; oldname: string; newname: string }
export interface LinkIn { oldnodeid: number; newname: string }
export interface OpenIn { flags: number; openFlags: number }
export interface CreateIn { flags: number; mode: number; umask: number; openFlags: number; name: string }
export interface ReadIn { fh: number; offset: number; size: number; readFlags: number; lockOwner: bigint; flags: number }
export interface WriteIn { fh: number; offset: number; size: number; writeFlags: number; lockOwner: bigint; flags: number; data: Buffer }
export interface ReleaseIn { fh: number; flags: number; releaseFlags: number; lockOwner: bigint }
export interface FlushIn { fh: number; lockOwner: bigint }
export interface FsyncIn { fh: number; fsyncFlags: number }
export interface SetxattrIn { size: number; flags: number; name: string; value: Buffer }
export interface GetxattrIn { size: number; name?: string }
export interface FileLock { start: number; end: number; type: number; pid: number }
export interface LkIn { fh: number; owner: bigint; lk: FileLock; lkFlags: number }
export interface AccessIn { mask: number }
export interface InterruptIn { unique: number }
export interface FallocateIn { fh: number; offset: number; length: number; mode: number }
export interface LseekIn { fh: number; offset: number; whence: number }
export interface CopyFileRangeIn { fhIn: number; offIn: number; nodeidOut: number; fhOut: number; offOut: number; len: number; flags: number }

export type Request =
  | { op: Op.INIT; h: InHeader; body: InitIn }
  | { op: Op.LOOKUP | Op.UNLINK | Op.RMDIR | Op.REMOVEXATTR; h: InHeader; body: NameIn }
  | { op: Op.FORGET; h: InHeader; body: ForgetIn }
  | { op: Op.BATCH_FORGET; h: InHeader; body: BatchForgetIn }
  | { op: Op.GETATTR; h: InHeader; body: GetattrIn }
  | { op: Op.SETATTR; h: InHeader; body: SetattrIn }
  | { op: Op.SYMLINK; h: InHeader; body: SymlinkIn }
  | { op: Op.MKNOD; h: InHeader; body: MknodIn }
  | { op: Op.MKDIR; h: InHeader; body: MkdirIn }
  | { op: Op.RENAME | Op.RENAME2; h: InHeader; body: RenameIn }
  | { op: Op.LINK; h: InHeader; body: LinkIn }
  | { op: Op.OPEN | Op.OPENDIR; h: InHeader; body: OpenIn }
  | { op: Op.CREATE; h: InHeader; body: CreateIn }
  | { op: Op.TMPFILE; h: InHeader; body: CreateIn }
  | { op: Op.READ | Op.READDIR | Op.READDIRPLUS; h: InHeader; body: ReadIn }
  | { op: Op.WRITE; h: InHeader; body: WriteIn }
  | { op: Op.RELEASE | Op.RELEASEDIR; h: InHeader; body: ReleaseIn }
  | { op: Op.FLUSH; h: InHeader; body: FlushIn }
  | { op: Op.FSYNC | Op.FSYNCDIR; h: InHeader; body: FsyncIn }
  | { op: Op.SETXATTR; h: InHeader; body: SetxattrIn }
  | { op: Op.GETXATTR | Op.LISTXATTR; h: InHeader; body: GetxattrIn }
  | { op: Op.GETLK | Op.SETLK | Op.SETLKW; h: InHeader; body: LkIn }
  | { op: Op.ACCESS; h: InHeader; body: AccessIn }
  | { op: Op.INTERRUPT; h: InHeader; body: InterruptIn }
  | { op: Op.FALLOCATE; h: InHeader; body: FallocateIn }
  | { op: Op.LSEEK; h: InHeader; body: LseekIn }
  | { op: Op.COPY_FILE_RANGE; h: InHeader; body: CopyFileRangeIn }
  | { op: Op.READLINK | Op.STATFS | Op.DESTROY | Op.SYNCFS; h: InHeader; body: null }
  | { op: -1; h: InHeader; body: null };

export class DecodeError extends Error {}

export function decodeHeader(b: Buffer): InHeader {
  if (b.length < 40) throw new DecodeError(`short request: ${b.length} bytes`);
  return {
    len: b.readUInt32LE(0),
    opcode: b.readUInt32LE(4),
    unique: u64(b, 8),
    nodeid: u64(b, 16),
    uid: b.readUInt32LE(24),
    gid: b.readUInt32LE(28),
    pid: b.readUInt32LE(32),
  };
}

function need(b: Buffer, bytes: number, what: string): void {
  if (b.length < 40 + bytes) throw new DecodeError(`${what}: body of ${b.length - 40} bytes, need ${bytes}`);
}

const name = (b: Buffer, off: number): string => cstring(b, off).s;

function lockOf(b: Buffer, o: number): FileLock {
  return { start: u64(b, o), end: u64(b, o + 8), type: b.readUInt32LE(o + 16), pid: b.readUInt32LE(o + 20) };
}

type Decoder = (b: Buffer) => unknown;

/** Body decoders by opcode; the body starts at byte 40. */
const decoders: Partial<Record<number, Decoder>> = {
  [Op.INIT]: (b): InitIn => {
    need(b, 16, 'INIT');
    const flags = BigInt(b.readUInt32LE(52));
    const flags2 = b.length >= 60 ? BigInt(b.readUInt32LE(56)) : 0n;
    return { major: b.readUInt32LE(40), minor: b.readUInt32LE(44), maxReadahead: b.readUInt32LE(48), flags: flags | (flags2 << 32n) };
  },
  [Op.LOOKUP]: (b): NameIn => ({ name: name(b, 40) }),
  [Op.UNLINK]: (b): NameIn => ({ name: name(b, 40) }),
  [Op.RMDIR]: (b): NameIn => ({ name: name(b, 40) }),
  [Op.REMOVEXATTR]: (b): NameIn => ({ name: name(b, 40) }),
  [Op.FORGET]: (b): ForgetIn => (need(b, 8, 'FORGET'), { nlookup: u64(b, 40) }),
  [Op.BATCH_FORGET]: (b): BatchForgetIn => {
    need(b, 8, 'BATCH_FORGET');
    const count = b.readUInt32LE(40);
    need(b, 8 + count * 16, 'BATCH_FORGET');
    const forgets = new Array<{ nodeid: number; nlookup: number }>(count);
    for (let i = 0, o = 48; i < count; i++, o += 16) forgets[i] = { nodeid: u64(b, o), nlookup: u64(b, o + 8) };
    return { forgets };
  },
  [Op.GETATTR]: (b): GetattrIn => (b.length >= 56 ? { getattrFlags: b.readUInt32LE(40), fh: u64(b, 48) } : { getattrFlags: 0, fh: 0 }),
  [Op.SETATTR]: (b): SetattrIn => {
    need(b, 88, 'SETATTR');
    return {
      valid: b.readUInt32LE(40),
      fh: u64(b, 48),
      size: u64(b, 56),
      lockOwner: b.readBigUInt64LE(64),
      atime: Number(b.readBigInt64LE(72)),
      mtime: Number(b.readBigInt64LE(80)),
      ctime: Number(b.readBigInt64LE(88)),
      atimensec: b.readUInt32LE(96),
      mtimensec: b.readUInt32LE(100),
      ctimensec: b.readUInt32LE(104),
      mode: b.readUInt32LE(108),
      uid: b.readUInt32LE(116),
      gid: b.readUInt32LE(120),
    };
  },
  [Op.SYMLINK]: (b): SymlinkIn => {
    // SYMLINK carries two strings: the new entry's name, then the link target.
    const n = cstring(b, 40);
    let end = b.indexOf(0, n.next);
    if (end < 0) end = b.length;
    return { name: n.s, target: b.subarray(n.next, end) };
  },
  [Op.MKNOD]: (b): MknodIn => (need(b, 16, 'MKNOD'), { mode: b.readUInt32LE(40), rdev: b.readUInt32LE(44), umask: b.readUInt32LE(48), name: name(b, 56) }),
  [Op.MKDIR]: (b): MkdirIn => (need(b, 8, 'MKDIR'), { mode: b.readUInt32LE(40), umask: b.readUInt32LE(44), name: name(b, 48) }),
  [Op.RENAME]: (b): RenameIn => {
    need(b, 8, 'RENAME');
    const o = cstring(b, 48);
    return { newdir: u64(b, 40), flags: 0, oldname: o.s, newname: name(b, o.next) };
  },
  [Op.RENAME2]: (b): RenameIn => {
    need(b, 16, 'RENAME2');
    const o = cstring(b, 56);
    return { newdir: u64(b, 40), flags: b.readUInt32LE(48), oldname: o.s, newname: name(b, o.next) };
  },
  [Op.LINK]: (b): LinkIn => (need(b, 8, 'LINK'), { oldnodeid: u64(b, 40), newname: name(b, 48) }),
  [Op.OPEN]: (b): OpenIn => (need(b, 8, 'OPEN'), { flags: b.readUInt32LE(40), openFlags: b.readUInt32LE(44) }),
  [Op.OPENDIR]: (b): OpenIn => (need(b, 8, 'OPENDIR'), { flags: b.readUInt32LE(40), openFlags: b.readUInt32LE(44) }),
  [Op.CREATE]: (b): CreateIn => createIn(b, 'CREATE'),
  // O_TMPFILE: CREATE's body, the name being the kernel's placeholder for an unnamed dentry.
  [Op.TMPFILE]: (b): CreateIn => createIn(b, 'TMPFILE'),
  [Op.READ]: (b) => readIn(b),
  [Op.READDIR]: (b) => readIn(b),
  [Op.READDIRPLUS]: (b) => readIn(b),
  [Op.WRITE]: (b): WriteIn => {
    need(b, 40, 'WRITE');
    const size = b.readUInt32LE(56);
    need(b, 40 + size, 'WRITE data');
    return {
      fh: u64(b, 40),
      offset: u64(b, 48),
      size,
      writeFlags: b.readUInt32LE(60),
      lockOwner: b.readBigUInt64LE(64),
      flags: b.readUInt32LE(72),
      data: b.subarray(80, 80 + size),
    };
  },
  [Op.RELEASE]: (b) => releaseIn(b),
  [Op.RELEASEDIR]: (b) => releaseIn(b),
  [Op.FLUSH]: (b): FlushIn => (need(b, 24, 'FLUSH'), { fh: u64(b, 40), lockOwner: b.readBigUInt64LE(56) }),
  [Op.FSYNC]: (b) => fsyncIn(b),
  [Op.FSYNCDIR]: (b) => fsyncIn(b),
  [Op.SETXATTR]: (b): SetxattrIn => {
    // Without FUSE_SETXATTR_EXT negotiated the kernel sends the 8-byte compat struct.
    need(b, 8, 'SETXATTR');
    const size = b.readUInt32LE(40);
    const n = cstring(b, 48);
    return { size, flags: b.readUInt32LE(44), name: n.s, value: b.subarray(n.next, n.next + size) };
  },
  [Op.GETXATTR]: (b): GetxattrIn => (need(b, 8, 'GETXATTR'), { size: b.readUInt32LE(40), name: name(b, 48) }),
  [Op.LISTXATTR]: (b): GetxattrIn => (need(b, 8, 'LISTXATTR'), { size: b.readUInt32LE(40) }),
  [Op.GETLK]: (b) => lkIn(b),
  [Op.SETLK]: (b) => lkIn(b),
  [Op.SETLKW]: (b) => lkIn(b),
  [Op.ACCESS]: (b): AccessIn => (need(b, 8, 'ACCESS'), { mask: b.readUInt32LE(40) }),
  [Op.INTERRUPT]: (b): InterruptIn => (need(b, 8, 'INTERRUPT'), { unique: u64(b, 40) }),
  [Op.FALLOCATE]: (b): FallocateIn => (
    need(b, 32, 'FALLOCATE'), { fh: u64(b, 40), offset: u64(b, 48), length: u64(b, 56), mode: b.readUInt32LE(64) }
  ),
  [Op.LSEEK]: (b): LseekIn => (need(b, 24, 'LSEEK'), { fh: u64(b, 40), offset: Number(b.readBigInt64LE(48)), whence: b.readUInt32LE(56) }),
  [Op.COPY_FILE_RANGE]: (b): CopyFileRangeIn => (
    need(b, 56, 'COPY_FILE_RANGE'),
    { fhIn: u64(b, 40), offIn: u64(b, 48), nodeidOut: u64(b, 56), fhOut: u64(b, 64), offOut: u64(b, 72), len: u64(b, 80), flags: u64(b, 88) }
  ),
  [Op.READLINK]: () => null,
  [Op.STATFS]: () => null,
  [Op.DESTROY]: () => null,
  [Op.SYNCFS]: () => null,
};

function createIn(b: Buffer, what: string): CreateIn {
  need(b, 16, what);
  return { flags: b.readUInt32LE(40), mode: b.readUInt32LE(44), umask: b.readUInt32LE(48), openFlags: b.readUInt32LE(52), name: name(b, 56) };
}

function readIn(b: Buffer): ReadIn {
  need(b, 40, 'READ');
  return {
    fh: u64(b, 40),
    offset: u64(b, 48),
    size: b.readUInt32LE(56),
    readFlags: b.readUInt32LE(60),
    lockOwner: b.readBigUInt64LE(64),
    flags: b.readUInt32LE(72),
  };
}

function releaseIn(b: Buffer): ReleaseIn {
  need(b, 24, 'RELEASE');
  return { fh: u64(b, 40), flags: b.readUInt32LE(48), releaseFlags: b.readUInt32LE(52), lockOwner: b.readBigUInt64LE(56) };
}

function fsyncIn(b: Buffer): FsyncIn {
  need(b, 16, 'FSYNC');
  return { fh: u64(b, 40), fsyncFlags: b.readUInt32LE(48) };
}

function lkIn(b: Buffer): LkIn {
  need(b, 48, 'LK');
  return { fh: u64(b, 40), owner: b.readBigUInt64LE(48), lk: lockOf(b, 56), lkFlags: b.readUInt32LE(80) };
}

/** Decode one request. Unknown opcodes decode to op -1 (the session answers ENOSYS). */
export function decodeRequest(b: Buffer): Request {
  const h = decodeHeader(b);
  const dec = decoders[h.opcode];
  if (!dec) return { op: -1, h, body: null };
  return { op: h.opcode, h, body: dec(b) } as Request;
}
