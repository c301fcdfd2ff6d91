// The built-in demo image (demo:latest): a few-file rootfs made from this host's Debian
// busybox-static (/bin/busybox, statically linked) plus /etc basics, so the README's first
// command needs no network. Times come from the busybox binary, so the image ID is the
// same on every machine with the same busybox-static package.

import * as fs from 'node:fs';
import { Readable } from 'node:stream';
import type { ImageStore } from './images.js';
import { importTarball } from './import.js';
import { encodeHeader, END_OF_ARCHIVE, fileEntry, padding, type TarEntry } from './tar-write.js';

export const DEMO_REFERENCE = 'demo:latest';
const BUSYBOX = '/bin/busybox';
const APPLETS = ['sh', 'ls', 'cat', 'echo', 'mkdir', 'rm', 'cp', 'mv', 'ps', 'uname', 'id', 'stat', 'touch', 'find', 'grep', 'vi', 'du', 'df', 'ln', 'head', 'tail', 'wc', 'sleep', 'env'];

async function* demoRootfs(mtime: number): AsyncGenerator<Buffer> {
  const t = { sec: mtime, nsec: 0 };
  const dir = (name: string, mode = 0o755): Buffer => encodeHeader({ name, type: 'dir', mode, mtime: t });
  const file = (name: string, text: string, mode = 0o644): Buffer[] => {
    const data = Buffer.from(text);
    return [encodeHeader({ name, type: 'file', mode, size: data.length, mtime: t }), data, padding(data.length)];
  };
  for (const d of ['bin', 'etc', 'root', 'home', 'usr', 'var']) yield dir(d, d === 'root' ? 0o700 : 0o755);
  yield dir('tmp', 0o1777);
  const size = fs.statSync(BUSYBOX).size;
  yield encodeHeader({ name: 'bin/busybox', type: 'file', mode: 0o755, size, mtime: t } satisfies TarEntry);
  for await (const c of fs.createReadStream(BUSYBOX)) yield c as Buffer;
  yield padding(size);
  for (const a of APPLETS) yield encodeHeader({ name: `bin/${a}`, type: 'symlink', mode: 0o777, linkname: 'busybox', mtime: t });
  yield* file('etc/os-release', 'NAME="stratafs demo"\nID=strata-demo\nPRETTY_NAME="stratafs demo (busybox)"\n');
  yield* file('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  yield* file('etc/group', 'root:x:0:\nnogroup:x:65534:\n');
  yield* file('etc/hostname', 'demo\n');
  yield* fileEntry('root/.profile', Buffer.from('PS1="demo# "\n'), mtime);
  yield END_OF_ARCHIVE;
}

/** True if an ELF executable names a program interpreter (is dynamically linked). */
function isDynamicElf(file: string): boolean {
  const fd = fs.openSync(file, 'r');
  try {
    const eh = Buffer.alloc(64);
    fs.readSync(fd, eh, 0, 64, 0);
    if (eh.readUInt32BE(0) !== 0x7f454c46 || eh[4] !== 2) return false; // not ELF64: let it be
    const little = eh[5] === 1;
    const phoff = Number(little ? eh.readBigUInt64LE(32) : eh.readBigUInt64BE(32));
    const phentsize = little ? eh.readUInt16LE(54) : eh.readUInt16BE(54);
    const phnum = little ? eh.readUInt16LE(56) : eh.readUInt16BE(56);
    const ph = Buffer.alloc(phentsize * phnum);
    fs.readSync(fd, ph, 0, ph.length, phoff);
    for (let i = 0; i < phnum; i++) if ((little ? ph.readUInt32LE(i * phentsize) : ph.readUInt32BE(i * phentsize)) === 3) return true; // PT_INTERP
    return false;
  } finally {
    fs.closeSync(fd);
  }
}

/** Imports demo:latest (again, if present: same ID) and returns its image ID. */
export async function loadDemoImage(store: ImageStore): Promise<string> {
  if (!fs.existsSync(BUSYBOX)) throw new Error(`${BUSYBOX}: not found; the demo image is made from Debian's busybox-static (apt-get install busybox-static)`);
  // An image has no libc: Debian's dynamic busybox package would give a shell that cannot start.
  if (isDynamicElf(BUSYBOX)) throw new Error(`${BUSYBOX}: dynamically linked; the demo image needs Debian's busybox-static (apt-get install busybox-static)`);
  const mtime = Math.floor(fs.statSync(BUSYBOX).mtimeMs / 1000);
  return importTarball(store, Readable.from(demoRootfs(mtime)), {
    reference: DEMO_REFERENCE,
    created: new Date(mtime * 1000).toISOString(),
    createdBy: 'strata image load-demo (busybox-static from the host)',
    comment: 'stratafs built-in demo image',
    runConfig: { Env: ['PATH=/bin'], Cmd: ['/bin/sh'], WorkingDir: '/' },
  });
}
