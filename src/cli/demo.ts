// strata demo: builds a small tree, mounts it through stratafs, shows reads, writes and
// metadata arriving at the source, and unmounts. Needs root and /dev/fuse; no network.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { mountAt, unmount } from '../fuse/mount.js';
import { spawnDaemon } from './daemon.js';

function show(title: string, lines: string[]): void {
  process.stdout.write(`\n== ${title}\n${lines.map((l) => `   ${l}`).join('\n')}\n`);
}

function listing(dir: string): string[] {
  return fs.readdirSync(dir).sort().map((n) => {
    const st = fs.lstatSync(path.join(dir, n), { bigint: true });
    const kind = st.isDirectory() ? 'dir ' : st.isSymbolicLink() ? `link -> ${fs.readlinkSync(path.join(dir, n))}` : `file ${st.size} bytes`;
    return `${(Number(st.mode) & 0o7777).toString(8).padStart(4, '0')} ino=${st.ino} ${n}  (${kind})`;
  });
}

export async function demoCommand(): Promise<number> {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-demo-'));
  const src = path.join(base, 'source');
  const mnt = path.join(base, 'mnt');
  fs.mkdirSync(path.join(src, 'etc'), { recursive: true });
  fs.mkdirSync(mnt);
  fs.writeFileSync(path.join(src, 'etc', 'os-release'), 'NAME="stratafs demo"\nVERSION_ID=1\n');
  fs.writeFileSync(path.join(src, 'hello.txt'), 'hello from the lower directory\n');
  fs.symlinkSync('etc/os-release', path.join(src, 'os-release'));
  try {
    const pid = await spawnDaemon(['loopback', src, mnt]);
    show(`mounted ${src} at ${mnt} (daemon pid ${pid})`, listing(mnt));
    show('read through the mount: etc/os-release', fs.readFileSync(path.join(mnt, 'os-release'), 'utf8').trimEnd().split('\n'));
    fs.writeFileSync(path.join(mnt, 'written.txt'), 'written through FUSE\n');
    fs.chmodSync(path.join(mnt, 'written.txt'), 0o640);
    const when = new Date('2024-01-02T03:04:05.123Z');
    fs.utimesSync(path.join(mnt, 'written.txt'), when, when);
    const st = fs.statSync(path.join(src, 'written.txt'), { bigint: true });
    show('written through the mount, seen in the source directory', [
      `written.txt: "${fs.readFileSync(path.join(src, 'written.txt'), 'utf8').trimEnd()}" mode ${(Number(st.mode) & 0o777).toString(8)} mtime ${new Date(Number(st.mtimeMs)).toISOString()}`,
    ]);
    show('statfs of the mount', [`${JSON.stringify(fs.statfsSync(mnt))}`]);
    const m = mountAt(mnt);
    show('mount table entry', [`${m?.source} on ${mnt} type ${m?.fstype}`]);
  } finally {
    if (mountAt(mnt)) unmount(mnt, true);
    fs.rmSync(base, { recursive: true, force: true });
  }
  process.stdout.write('\nunmounted and cleaned up. Next: `npm test`, `strata loopback SRC MNT`, docs/cli.md\n');
  return 0;
}
