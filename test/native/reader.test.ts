import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

// startReader works on any pollable fd. A child node process reading its stdin (a socket
// from spawn) shows what cannot be seen from inside one process: whether the handle keeps
// the event loop alive, and when nextTick/microtasks run relative to the callback.
const addon = fileURLToPath(new URL('../../native-bindings/build/Release/stratafs_native.node', import.meta.url));

interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  lines: unknown[];
  stderr: string;
}

function runChild(script: string, feed: (stdin: NodeJS.WritableStream) => void): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', `const native = require(${JSON.stringify(addon)});\n${script}`], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      child.stdin.destroy();
      const lines = stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as unknown);
      resolve({ code, signal, lines, stderr });
    });
    feed(child.stdin);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('startReader', () => {
  it('keeps the loop alive while polling, not after stop(); ticks and microtasks follow each batch', async () => {
    const script = `
      const order = [];
      let got = '';
      const h = native.startReader(0, 8192, (batch, err) => {
        if (batch === null) { console.log(JSON.stringify({ unexpectedEnd: true, err: err && err.code })); return; }
        for (const b of batch) got += b.toString();
        order.push('cb');
        process.nextTick(() => order.push('tick'));
        Promise.resolve().then(() => order.push('micro'));
        setImmediate(() => order.push('immediate'));
        if (got.includes('STOP')) {
          h.stop();
          h.stop();
          setImmediate(() => console.log(JSON.stringify({ got, order })));
        }
      });`;
    const r = await runChild(script, (stdin) => {
      void (async () => {
        await sleep(300);
        stdin.write('hello');
        await sleep(300);
        stdin.write('STOP'); // stdin stays open: only stop() can let the child exit
      })();
    });
    expect(r.stderr).toBe('');
    expect(r.signal).toBeNull();
    expect(r.code).toBe(0);
    const out = r.lines[0] as { got: string; order: string[] };
    expect(out.got).toBe('helloSTOP');
    const batches = out.order.filter((x) => x === 'cb').length;
    expect(out.order).toEqual(Array.from({ length: batches }, () => ['cb', 'tick', 'micro', 'immediate']).flat());
  });

  it('delivers (null) without an error at end of file and stops by itself', async () => {
    const script = `
      const seen = [];
      native.startReader(0, 8192, (...args) => {
        seen.push(args[0] === null ? { end: true, argc: args.length } : args[0].map(String));
        if (args[0] === null) console.log(JSON.stringify(seen));
      });`;
    const r = await runChild(script, (stdin) => {
      stdin.end('abc');
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const seen = r.lines[0] as unknown[];
    expect(seen.at(-1)).toEqual({ end: true, argc: 1 });
    expect(
      seen
        .slice(0, -1)
        .flat()
        .join(''),
    ).toBe('abc');
  });

  it('reports an exception thrown by onBatch as uncaught', async () => {
    const script = `
      let h;
      process.on('uncaughtException', (e) => { console.log(JSON.stringify({ caught: e.message })); h.stop(); });
      h = native.startReader(0, 8192, () => { throw new Error('boom'); });`;
    const r = await runChild(script, (stdin) => {
      stdin.write('x');
    });
    expect(r.code).toBe(0);
    expect(r.lines).toEqual([{ caught: 'boom' }]);
  });

  describe('in worker threads', () => {
    let dir: string | undefined;
    afterEach(() => {
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
      dir = undefined;
    });

    it('survives terminating workers that poll, stopped, or exit from inside onBatch', async () => {
      // The addon may be unloaded with the worker; a uv close callback left behind would crash.
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stratafs-native-reader-'));
      const script = `
        const fs = require('fs');
        const { Worker } = require('worker_threads');
        const dir = ${JSON.stringify(dir)};
        const code = \`
          const fs = require('fs');
          const { parentPort, workerData } = require('worker_threads');
          const n = require(workerData.addon);
          const fd = fs.openSync(workerData.fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
          const h = n.startReader(fd, 8192, () => {
            if (workerData.mode === 'exit') process.exit(0);
            if (workerData.mode === 'stopInBatch') h.stop();
          });
          if (workerData.mode === 'stopped') h.stop();
          parentPort.postMessage('ready');\`;
        let pending = 0;
        for (let i = 0; i < 5; i++) for (const mode of ['polling', 'stopped', 'exit', 'stopInBatch']) {
          pending++;
          const fifo = dir + '/fifo-' + i + '-' + mode;
          require('child_process').execFileSync('mkfifo', [fifo]);
          const w = new Worker(code, { eval: true, workerData: { mode, fifo, addon: ${JSON.stringify(addon)} } });
          w.on('message', () => {
            if (mode === 'exit' || mode === 'stopInBatch') fs.writeFileSync(fifo, 'x');
            if (mode !== 'exit') setTimeout(() => w.terminate(), mode === 'stopInBatch' ? 20 : 0);
          });
          w.on('exit', () => { if (--pending === 0) console.log(JSON.stringify('all exited')); });
        }`;
      const r = await runChild(script, () => {});
      expect(r.stderr).toBe('');
      expect(r.signal).toBeNull();
      expect(r.code).toBe(0);
      expect(r.lines).toEqual(['all exited']);
    }, 20_000);
  });

  it('validates its arguments', async () => {
    const { native } = await import('../../src/native/binding.js');
    expect(() => native.startReader(0, 8192, 'nope' as never)).toThrow(TypeError);
    expect(() => native.startReader(0, 100, () => {})).toThrow(RangeError);
  });
});
