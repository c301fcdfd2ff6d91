// strata demo: the main job on the built-in demo image, with no network. Loads demo:latest
// (made from Debian's busybox-static) into a scratch store, mounts its layers as a union
// with a writable layer, runs the image's own shell inside it, changes a few files, shows
// what landed in the writable layer (copy-up, whiteout), unmounts and cleans up.

import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { settleMount } from '../containers/mount-state.js';
import { mountAt, unmount } from '../fuse/mount.js';
import { PathIndex } from '../index/path-index.js';
import { DEMO_REFERENCE, loadDemoImage } from '../store/demo-image.js';
import { ImageStore } from '../store/images.js';
import { spawnDaemon } from './daemon.js';

function show(title: string, lines: string[]): void {
  process.stdout.write(`\n== ${title}\n${lines.map((l) => `   ${l}`).join('\n')}\n`);
}

function describe(dir: string, rel: string): string {
  const st = fs.lstatSync(path.join(dir, rel));
  const kind = st.isCharacterDevice() && st.rdev === 0 ? 'whiteout (char 0/0): deleted from the image' : st.isDirectory() ? 'dir' : `${st.size} bytes`;
  return `${rel}  ${kind}`;
}

function walk(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const n of fs.readdirSync(path.join(dir, rel)).sort()) {
    const r = rel ? `${rel}/${n}` : n;
    out.push(describe(dir, r));
    if (fs.lstatSync(path.join(dir, r)).isDirectory()) out.push(...walk(dir, r));
  }
  return out;
}

export async function demoCommand(): Promise<number> {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-demo-'));
  const [upper, work, mnt] = ['upper', 'work', 'rootfs'].map((d) => path.join(base, d)) as [string, string, string];
  for (const d of [upper, work, mnt]) fs.mkdirSync(d);
  const store = ImageStore.open(path.join(base, 'store'));
  try {
    const id = await loadDemoImage(store);
    const image = store.resolveImage(DEMO_REFERENCE);
    const lowers = store.lowerDirs(image);
    show(`loaded ${DEMO_REFERENCE} (${id.slice(7, 19)}) into a scratch store`, [`${image.layers.length} layer(s), ${image.size} bytes`, ...lowers.map((l) => `layer dir ${l}`)]);

    const pid = await spawnDaemon(['mount', '--lower', lowers.join(':'), '--upper', upper, '--work', work, mnt]);
    show(`mounted the image with a writable layer at ${mnt} (daemon pid ${pid})`, fs.readdirSync(mnt).sort().map((n) => describe(mnt, n)));

    const sh = (cmd: string): string[] => execFileSync('chroot', [mnt, '/bin/sh', '-c', cmd], { encoding: 'utf8' }).trimEnd().split('\n');
    show("the image's own shell, chrooted into the mount", sh('. /etc/os-release; echo "$PRETTY_NAME"; echo "busybox: $(busybox | head -1)"; echo "$(ls /bin | wc -l) entries in /bin"'));

    sh('echo "changed by the demo" > /etc/hostname; echo hello > /root/notes.txt; rm /etc/group; mkdir -p /var/log/app');
    show('after writing, creating and deleting inside the container: the writable layer holds', walk(upper));
    settleMount(mnt);
    const index = PathIndex.open(path.join(work, 'stratafs-index.db'));
    try {
      show("what the container changed, as `strata diff` shows it (from the path index's journal)", index.upperChanges(upper).map((c) => `${c.kind} ${c.path}`));
    } finally {
      index.close();
    }
    show('the image layers are untouched', [`etc/hostname in the image: "${fs.readFileSync(path.join(lowers[lowers.length - 1]!, 'etc/hostname'), 'utf8').trim()}"`, `etc/hostname in the mount: "${fs.readFileSync(path.join(mnt, 'etc/hostname'), 'utf8').trim()}"`]);
  } finally {
    if (mountAt(mnt)) unmount(mnt, true);
    store.close();
    fs.rmSync(base, { recursive: true, force: true });
  }
  process.stdout.write('\nunmounted and cleaned up.\nTry it for real: strata image load-demo; strata create --name c1 demo; strata mount c1 /mnt/c1; strata diff c1 (docs/cli.md)\n');
  return 0;
}
