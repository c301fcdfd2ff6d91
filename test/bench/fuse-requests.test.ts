// The FUSE request counter of `strata bench --requests` (src/bench/fuse-requests.ts): the
// trace parser and the per-run figures on known input, and what open() does without
// tracefs (mounts it, and unmounts it at close) or without fuse tracepoints. Its use on real
// mounts is in bench.test.ts (one SETATTR per chmod, no READ through passthrough).

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FuseRequestTrace, fuseConnection, mergeRuns, parseTrace } from '../../src/bench/fuse-requests.js';
import { cleanupsAfterEach, isMounted, mountWith, tmpdir } from '../helpers/mount.js';

const tmp = tmpdir('fuse-requests');
afterAll(() => {
  for (const d of fs.readdirSync(tmp)) if (isMounted(path.join(tmp, d))) execFileSync('umount', [path.join(tmp, d)]);
  fs.rmSync(tmp, { recursive: true, force: true });
});

const send = (t: string, req: number, op: number, name: string): string => `            node-6558    [000] ...1. ${t}: fuse_request_send: connection 40 req ${req} opcode ${op} (${name}) len 46 `;
const end = (t: string, req: number): string => `  node-6575    [001] ...1. ${t}: fuse_request_end: connection 40 req ${req} len 144 error 0`;

describe('parseTrace and mergeRuns', () => {
  it('pairs each request with its end, in microseconds, by opcode; ends of requests sent before the trace are left out', () => {
    const text = [
      '# tracer: nop',
      end('61679.586000', 1), // sent before the trace began
      send('61679.586605', 2, 1, 'FUSE_LOOKUP'),
      send('61679.586700', 3, 1, 'FUSE_LOOKUP'),
      end('61679.586664', 2),
      send('61679.999990', 4, 4, 'FUSE_SETATTR'),
      end('61680.000135', 4), // across a second
      end('61679.586800', 3),
      send('61680.100000', 5, 2, 'FUSE_FORGET'), // never answered
    ].join('\n');
    const ops = parseTrace(text);
    expect([...ops.keys()].sort()).toEqual(['FORGET', 'LOOKUP', 'SETATTR']);
    expect(ops.get('LOOKUP')).toEqual({ sent: 2, latenciesUs: [59, 100] });
    expect(ops.get('SETATTR')).toEqual({ sent: 1, latenciesUs: [145] });
    expect(ops.get('FORGET')).toEqual({ sent: 1, latenciesUs: [] });
  });

  it('gives per-run means of counts and times, the median latency over all runs, opcodes by time', () => {
    const a = new Map([['LOOKUP', { sent: 3, latenciesUs: [10, 20, 30] }]]);
    const b = new Map([
      ['LOOKUP', { sent: 1, latenciesUs: [40] }],
      ['SETATTR', { sent: 2, latenciesUs: [500, 700] }],
    ]);
    const r = mergeRuns([a, b], false);
    expect(r).toEqual({ runs: 2, ops: { SETATTR: { count: 1, totalMs: 0.6, p50Us: 500 }, LOOKUP: { count: 2, totalMs: 0.05, p50Us: 20 } } });
    expect(Object.keys(r.ops)).toEqual(['SETATTR', 'LOOKUP']);
    expect(mergeRuns([a], true).lost).toBe(true);
  });
});

describe('FuseRequestTrace.open', () => {
  it('says so when the kernel has no fuse tracepoints', () => {
    const fake = path.join(tmp, 'fake-tracefs');
    fs.mkdirSync(path.join(fake, 'events/sched'), { recursive: true });
    expect(FuseRequestTrace.open([fake])).toBe('this kernel has no fuse tracepoints (fuse_request_send, fuse_request_end)');
    expect(isMounted(fake)).toBe(false);
  });

  it('mounts tracefs at a place of its own where it is missing, makes its instance there, and takes both away at close', () => {
    const missing = path.join(tmp, 'not-mounted');
    const parent = path.join(tmp, 'mounts');
    fs.mkdirSync(missing);
    fs.mkdirSync(parent);
    const t = FuseRequestTrace.open([missing], parent);
    if (typeof t === 'string') throw new Error(t);
    try {
      expect(isMounted(missing)).toBe(false);
      const [at, ...more] = fs.readdirSync(parent).map((e) => path.join(parent, e));
      expect(more).toEqual([]);
      expect(isMounted(at!)).toBe(true);
      const [inst] = fs.readdirSync(path.join(at!, 'instances')).filter((e) => e.startsWith(`strata-bench-${process.pid}-`));
      expect(fs.readFileSync(path.join(at!, 'instances', inst!, 'trace_clock'), 'utf8')).toContain('[mono]');
      // A second trace at the same time gets an instance of its own.
      const t2 = FuseRequestTrace.open([missing], parent);
      if (typeof t2 === 'string') throw new Error(t2);
      t2.close();
    } finally {
      t.close();
    }
    expect(fs.readdirSync(parent)).toEqual([]);
  });

  it('finds no FUSE connection where no FUSE filesystem is mounted', () => {
    expect(fuseConnection(tmp)).toBeUndefined();
  });
});

describe('FuseRequestTrace on two stratafs mounts', () => {
  const cleanups = cleanupsAfterEach();

  it('counts the requests of the traced mount alone, per opcode', async () => {
    const mounts = ['a', 'b'].map((n) => {
      const base = path.join(tmp, n);
      for (const d of ['lower', 'upper', 'work', 'mnt']) fs.mkdirSync(path.join(base, d), { recursive: true });
      for (let i = 0; i < 5; i++) fs.writeFileSync(path.join(base, 'lower', `f${i}`), 'x');
      const m = mountWith(['mount', '--lower', path.join(base, 'lower'), '--upper', path.join(base, 'upper'), '--work', path.join(base, 'work')], path.join(base, 'mnt'));
      cleanups.push(() => m.cleanup());
      return m.mnt;
    });
    const [a, b] = mounts as [string, string];
    const conn = fuseConnection(a);
    expect(conn).toBeGreaterThan(0);
    expect(fuseConnection(b)).not.toBe(conn);
    const t = FuseRequestTrace.open();
    if (typeof t === 'string') throw new Error(t);
    try {
      const { ops, lost } = t.record(conn!, () => {
        for (let i = 0; i < 5; i++) {
          fs.chmodSync(path.join(a, `f${i}`), 0o600);
          fs.chmodSync(path.join(b, `f${i}`), 0o600);
          fs.mkdirSync(path.join(b, `d${i}`));
        }
      });
      expect(lost).toBe(false);
      expect(ops.get('SETATTR')).toMatchObject({ sent: 5, latenciesUs: [expect.any(Number), expect.any(Number), expect.any(Number), expect.any(Number), expect.any(Number)] });
      expect(ops.get('LOOKUP')!.sent).toBe(5);
      expect(ops.has('MKDIR')).toBe(false);
    } finally {
      t.close();
    }
  });
});
