// Container tests: a private store root per suite, images built straight into it from
// layer specs (test/helpers/layers.ts), and the CLI run as child processes against it.
// Every container mount is recorded so teardown unmounts it and waits for its daemon.

import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { sha256Digest } from '../../src/store/digest.js';
import { ImageStore, type NewLayer } from '../../src/store/images.js';
import { packLayer } from '../../src/store/layer-pack.js';
import { parseReference } from '../../src/store/reference.js';
import { extractLayer } from '../../src/store/tar-extract.js';
import { buildLayer, type LayerSpec } from '../helpers/layers.js';
import { alive, isMounted, STRATA, waitFor } from '../helpers/mount.js';

/** Builds each spec (bottom first) into a layer, extracts it into the store, tags the image. */
export async function makeImage(root: string, specs: LayerSpec[], ref: string): Promise<string> {
  const store = ImageStore.open(root);
  try {
    const layers: NewLayer[] = [];
    for (const [i, spec] of specs.entries()) {
      const src = store.paths.makeTemp('spec');
      buildLayer(src, spec, 'overlay', i);
      const dest = store.paths.makeTemp('layer');
      const r = await extractLayer(Readable.from(packLayer(src)), dest);
      fs.rmSync(src, { recursive: true, force: true });
      layers.push({ diffId: r.diffId, tempDir: dest, blobDigest: r.blobDigest, blobSize: r.blobSize, size: r.size, files: r.files });
    }
    const created = '2024-01-01T00:00:00Z';
    const config = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        created,
        config: { Cmd: ['/bin/sh'] },
        rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
        history: specs.map((_, i) => ({ created, created_by: `layer ${i}` })),
      }),
    );
    const id = sha256Digest(config);
    store.commitImage({ id, config, layers, tags: [parseReference(ref)] });
    return id;
  } finally {
    store.close();
  }
}

export class Cli {
  /** Daemons of container mounts this suite made: [mount point, pid]. */
  readonly daemons: Array<[string, number]> = [];

  constructor(readonly root: string) {}

  run(args: string[], input?: Buffer): SpawnSyncReturns<string> {
    return spawnSync(STRATA, args, { encoding: 'utf8', input, env: { ...process.env, STRATAFS_ROOT: this.root }, timeout: 60_000, maxBuffer: 1 << 28 });
  }

  /** Runs and expects success; returns stdout. */
  ok(args: string[]): string {
    const r = this.run(args);
    if (r.status !== 0) throw new Error(`strata ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
    return r.stdout;
  }

  /** Runs and expects failure; returns stderr. */
  fails(args: string[]): string {
    const r = this.run(args);
    if (r.status === 0) throw new Error(`strata ${args.join(' ')} succeeded but should have failed: ${r.stdout}`);
    return r.stderr;
  }

  /** strata mount CONTAINER PATH; returns the daemon's pid. */
  mount(container: string, mnt: string): number {
    try {
      fs.mkdirSync(mnt);
    } catch (e) {
      // A stale mount point (its daemon killed) answers ENOTCONN: strata mount clears it.
      if (!['EEXIST', 'ENOTCONN', 'ECONNABORTED'].includes((e as NodeJS.ErrnoException).code!)) throw e;
    }
    const r = this.run(['mount', container, mnt]);
    if (r.status !== 0) throw new Error(`strata mount ${container} ${mnt} failed (${r.status}): ${r.stderr}`);
    const m = /daemon pid (\d+)/.exec(r.stderr);
    if (!m) throw new Error(`no daemon pid in: ${r.stderr}`);
    const pid = Number(m[1]);
    this.daemons.push([mnt, pid]);
    return pid;
  }

  /** The container's upper dir (its layer on disk). */
  upper(id: string): string {
    return path.join(this.root, 'containers', id, 'upper');
  }

  /** Unmounts whatever this suite mounted and makes sure every daemon is gone. */
  async cleanup(): Promise<void> {
    for (const [mnt, pid] of this.daemons.splice(0)) {
      if (isMounted(mnt)) spawnSync('umount', ['-l', mnt]);
      try {
        await waitFor(() => !alive(pid) || isZombie(pid), 5000, `daemon ${pid} to exit`);
      } catch {
        process.kill(pid, 'SIGKILL');
      }
    }
  }
}

export function isZombie(pid: number): boolean {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return true;
  }
}

/** Waits until a killed daemon is fully gone (reaped), as the path index's owner check needs. */
export async function waitReaped(pid: number): Promise<void> {
  await waitFor(() => !alive(pid), 10_000, `daemon ${pid} to be reaped`);
}
