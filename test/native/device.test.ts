import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MNT_DETACH, native, type NativeError, type ReaderHandle } from '../../src/native/binding.js';

// Hand-encoded FUSE ABI, just enough to get a mount through INIT and a stat of its root.
const IN_HEADER = 40;
const OUT_HEADER = 16;
const OP_GETATTR = 3;
const OP_FORGET = 2;
const OP_INIT = 26;
const OP_BATCH_FORGET = 42;
const ENOSYS = 38;
const FUSE_INIT_EXT = 1 << 30;
const FUSE_PASSTHROUGH_FLAGS2 = 1 << (37 - 32);

interface Request {
  opcode: number;
  unique: bigint;
  nodeid: bigint;
  body: Buffer;
}

function parseRequest(msg: Buffer): Request {
  expect(msg.readUInt32LE(0)).toBe(msg.length);
  return {
    opcode: msg.readUInt32LE(4),
    unique: msg.readBigUInt64LE(8),
    nodeid: msg.readBigUInt64LE(16),
    body: msg.subarray(IN_HEADER),
  };
}

function outHeader(unique: bigint, bodyLen: number, error = 0): Buffer {
  const h = Buffer.alloc(OUT_HEADER);
  h.writeUInt32LE(OUT_HEADER + bodyLen, 0);
  h.writeInt32LE(error, 4);
  h.writeBigUInt64LE(unique, 8);
  return h;
}

function initOut(req: Request): Buffer {
  const b = Buffer.alloc(64);
  b.writeUInt32LE(7, 0); // major
  b.writeUInt32LE(31, 4); // minor
  b.writeUInt32LE(req.body.readUInt32LE(8), 8); // max_readahead: as offered
  b.writeUInt32LE(0, 12); // flags
  b.writeUInt16LE(0, 16); // max_background
  b.writeUInt16LE(0, 18); // congestion_threshold
  b.writeUInt32LE(131072, 20); // max_write
  b.writeUInt32LE(1, 24); // time_gran
  // max_pages, map_alignment, flags2, max_stack_depth, unused: 0
  return b;
}

function rootAttrOut(): Buffer {
  const b = Buffer.alloc(16 + 88);
  b.writeBigUInt64LE(1n, 0); // attr_valid
  const a = 16;
  b.writeBigUInt64LE(1n, a); // ino
  b.writeBigUInt64LE(4096n, a + 8); // size
  b.writeBigUInt64LE(8n, a + 16); // blocks
  b.writeUInt32LE(0o40755, a + 60); // mode
  b.writeUInt32LE(2, a + 64); // nlink
  b.writeUInt32LE(4096, a + 80); // blksize
  return b;
}

function mounted(target: string): boolean {
  const esc = target.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
  return fs.readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1] === esc);
}

function run(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const canMount = fs.existsSync('/dev/fuse') && native.capSysAdmin();
const mountpoints: string[] = [];

describe.skipIf(!canMount)('device', () => {
  let dir: string;
  let fd = -1;
  let reader: ReaderHandle | undefined;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stratafs-native-dev-'));
    mountpoints.push(dir);
  });

  afterEach(() => {
    reader?.stop();
    reader = undefined;
    if (mounted(dir)) native.umount(dir, MNT_DETACH);
    // Closing the device aborts the connection, releasing anything still waiting on it.
    if (fd >= 0) fs.closeSync(fd);
    fd = -1;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  afterAll(() => {
    for (const m of mountpoints) expect(mounted(m)).toBe(false);
    expect(fs.readFileSync('/proc/mounts', 'utf8')).not.toContain('stratafs-native-dev-');
  });

  it('mounts, serves INIT and GETATTR, and reports ENODEV after umount', async () => {
    fd = native.openDevice();
    expect(fd).toBeGreaterThan(2);
    native.mount(fd, dir, {
      rootMode: 0o40755,
      uid: 0,
      gid: 0,
      fsname: 'stratafs-test',
      subtype: 'stratafs',
      defaultPermissions: true,
      noSuid: true,
      noDev: true,
    });
    expect(mounted(dir)).toBe(true);
    const line = fs.readFileSync('/proc/mounts', 'utf8').split('\n').find((l) => l.split(' ')[1] === dir)!;
    expect(line.split(' ').slice(0, 3)).toEqual(['stratafs-test', dir, 'fuse.stratafs']);
    expect(line).toMatch(/nosuid,nodev/);

    const seen: number[] = [];
    const batchSizes: number[] = [];
    let endArgs: unknown[] | undefined;
    let onEnd!: () => void;
    const ended = new Promise<void>((r) => (onEnd = r));

    reader = native.startReader(fd, 256 * 1024, (...args: [Buffer[] | null, NativeError?]) => {
      const [batch] = args;
      if (batch === null) {
        endArgs = args;
        onEnd();
        return;
      }
      batchSizes.push(batch.length);
      for (const msg of batch) {
        const req = parseRequest(msg);
        seen.push(req.opcode);
        if (req.opcode === OP_FORGET || req.opcode === OP_BATCH_FORGET) continue; // never answered
        let parts: Buffer[];
        if (req.opcode === OP_INIT) {
          expect(req.body.readUInt32LE(0)).toBe(7);
          const body = initOut(req);
          parts = [outHeader(req.unique, body.length), body];
        } else if (req.opcode === OP_GETATTR && req.nodeid === 1n) {
          const body = rootAttrOut();
          parts = [outHeader(req.unique, body.length), body];
        } else {
          parts = [outHeader(req.unique, 0, -ENOSYS)];
        }
        const len = parts.reduce((n, p) => n + p.length, 0);
        try {
          expect(native.writev(fd, parts)).toBe(len);
        } catch (e) {
          // ENOENT: the request was interrupted meanwhile; the kernel no longer waits.
          if ((e as NativeError).code !== 'ENOENT') throw e;
        }
      }
    });

    // Never touch the mount from this thread: its requests are served on this very loop.
    const st = await run('stat', ['-c', '%f', dir]);
    expect(st.stderr).toBe('');
    expect(st.code).toBe(0);
    expect(st.stdout.trim()).toBe('41ed');
    expect(seen[0]).toBe(OP_INIT);
    expect(seen).toContain(OP_GETATTR);
    expect(batchSizes.every((n) => n >= 1 && n <= 256)).toBe(true);

    native.umount(dir, 0);
    expect(mounted(dir)).toBe(false);
    await ended;
    expect(endArgs).toEqual([null]); // ENODEV: no error argument
    reader.stop(); // idempotent after the reader stopped itself
    reader.stop();
  }, 20_000);

  it('registers and releases passthrough backing files (FUSE 7.40)', async () => {
    fd = native.openDevice();
    native.mount(fd, dir, { rootMode: 0o40755, uid: 0, gid: 0 });
    const backingFile = path.join(os.tmpdir(), `stratafs-native-backing-${process.pid}`);
    fs.writeFileSync(backingFile, 'backing');
    const backingFd = fs.openSync(backingFile, 'r');
    let kernelMinor = 0;
    const result: { id?: number; closeAgain?: NativeError; error?: unknown } = {};
    let onEnd!: () => void;
    const ended = new Promise<void>((r) => (onEnd = r));
    try {
      reader = native.startReader(fd, 256 * 1024, (batch) => {
        if (batch === null) return onEnd();
        for (const msg of batch) {
          const req = parseRequest(msg);
          if (req.opcode === OP_FORGET || req.opcode === OP_BATCH_FORGET) continue;
          if (req.opcode !== OP_INIT) {
            native.writev(fd, [outHeader(req.unique, 0, -ENOSYS)]);
            continue;
          }
          kernelMinor = req.body.readUInt32LE(4);
          const body = initOut(req);
          body.writeUInt32LE(40, 4);
          body.writeUInt32LE(FUSE_INIT_EXT, 12);
          body.writeUInt32LE(FUSE_PASSTHROUGH_FLAGS2, 32);
          body.writeUInt32LE(1, 36); // max_stack_depth
          native.writev(fd, [outHeader(req.unique, body.length), body]);
          try {
            result.id = native.backingOpen(fd, backingFd);
            native.backingClose(fd, result.id);
            try {
              native.backingClose(fd, result.id);
            } catch (e) {
              result.closeAgain = e as NativeError;
            }
          } catch (e) {
            result.error = e;
          }
        }
      });
      // Any access makes the kernel wait for INIT; the child's stat gets ENOSYS, which is fine.
      await run('stat', [dir]);
      native.umount(dir, 0);
      await ended;
    } finally {
      fs.closeSync(backingFd);
      fs.rmSync(backingFile, { force: true });
    }
    if (kernelMinor < 40) return; // no passthrough in this kernel
    if (result.error) {
      // Built without CONFIG_FUSE_PASSTHROUGH: still a Node-style error.
      expect((result.error as NativeError).syscall).toBe('backing_open');
      return;
    }
    expect(result.id).toBeGreaterThan(0);
    expect(result.closeAgain?.code).toBe('ENOENT');
    expect(result.closeAgain?.syscall).toBe('backing_close');
  }, 20_000);

  it('backingOpen without a connection is a Node-style error', () => {
    fd = native.openDevice();
    let err: NativeError | undefined;
    try {
      native.backingOpen(fd, 0);
    } catch (e) {
      err = e as NativeError;
    }
    expect(err?.code).toBe('EPERM');
    expect(err?.errno).toBe(-1);
    expect(err?.syscall).toBe('backing_open');
  });

  it('reports a read error other than ENODEV as (null, err)', async () => {
    // An unmounted /dev/fuse has no connection: read() fails with EPERM.
    fd = native.openDevice();
    const args = await new Promise<unknown[]>((resolve) => {
      reader = native.startReader(fd, 8192, (...a) => resolve(a));
    });
    expect(args[0]).toBeNull();
    const err = args[1] as NativeError;
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe('EPERM');
    expect(err.errno).toBe(-1);
    expect(err.syscall).toBe('read');
  });

  it('mount errors are Node-style', () => {
    fd = native.openDevice();
    const missing = path.join(dir, 'missing');
    let err: NativeError | undefined;
    try {
      native.mount(fd, missing, { rootMode: 0o40755, uid: 0, gid: 0 });
    } catch (e) {
      err = e as NativeError;
    }
    expect(err?.code).toBe('ENOENT');
    expect(err?.syscall).toBe('mount');
    expect(err?.path).toBe(missing);
    expect(() => native.umount(dir, 0)).toThrow(/EINVAL: invalid argument, umount2/);
  });

  it('rejects a read buffer the kernel would refuse', () => {
    fd = native.openDevice();
    expect(() => native.startReader(fd, 4096, () => {})).toThrow(RangeError);
  });
});
