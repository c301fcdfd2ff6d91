// strata save writes each layer back from its extracted dir (layer-pack.ts). What it must
// keep: the rootfs's own root (mode, owner, time: without a "./" entry an extraction
// leaves the root as a private temporary dir, 0700, and non-root processes of a container
// cannot even reach /lib), and the same bytes for the same layer wherever it was
// extracted, so save -> load -> save is a fixpoint (whiteouts carry no extraction time).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { ImageStore } from '../../src/store/images.js';
import { importTarball } from '../../src/store/import.js';
import { loadImages } from '../../src/store/load.js';
import { saveImages } from '../../src/store/save.js';
import { encodeHeader, END_OF_ARCHIVE, padding, type TarEntry } from '../../src/store/tar-write.js';
import { tmpdir } from '../helpers/mount.js';

const work = tmpdir('store-save');
const open: ImageStore[] = [];
afterAll(() => {
  for (const s of open) s.close();
  fs.rmSync(work, { recursive: true, force: true });
});

const T = { sec: 1_650_000_000, nsec: 250_000_000 };

/** A rootfs tar as `tar -C DIR -cf - .` makes one: the root first, a whiteout of a name no layer below has. */
function rootfsTar(): Buffer {
  const entries: Array<[TarEntry, string?]> = [
    [{ name: '.', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: T }],
    [{ name: 'etc', type: 'dir', mode: 0o755, mtime: T }],
    [{ name: 'etc/hostname', type: 'file', mode: 0o644, size: 5, mtime: T }, 'box\n\n'],
    [{ name: 'etc/.wh.gone', type: 'file', mode: 0o600, size: 0, mtime: { sec: 1_700_000_123, nsec: 0 } }],
    [{ name: 'lib', type: 'dir', mode: 0o755, mtime: T }],
  ];
  const parts: Buffer[] = [];
  for (const [h, text] of entries) {
    const data = Buffer.from(text ?? '');
    parts.push(encodeHeader(h), data, padding(data.length));
  }
  return Buffer.concat([...parts, END_OF_ARCHIVE]);
}

async function saved(store: ImageStore, ref: string, file: string): Promise<Buffer> {
  await saveImages(store, [ref], fs.createWriteStream(file), 'docker');
  return fs.readFileSync(file);
}

describe('strata save', () => {
  it("keeps the rootfs's root and gives the same bytes after a load elsewhere (save -> load -> save)", async () => {
    const a = ImageStore.open(path.join(work, 'a'));
    const b = ImageStore.open(path.join(work, 'b'));
    open.push(a, b);
    await importTarball(a, Readable.from([rootfsTar()]), { reference: 'box:1', created: '2024-01-01T00:00:00Z' });
    const first = await saved(a, 'box:1', path.join(work, 'first.tar'));
    // Extracted later, elsewhere: the whiteout device gets another time on disk.
    await new Promise((r) => setTimeout(r, 1100));
    const [loaded] = await loadImages(b, path.join(work, 'first.tar'));
    const layerDir = b.lowerDirs(b.image(loaded!.id)!)[0]!;
    const root = fs.statSync(layerDir, { bigint: true });
    expect(Number(root.mode) & 0o7777).toBe(0o755);
    expect(root.mtimeNs).toBe(BigInt(T.sec) * 1_000_000_000n + BigInt(T.nsec));
    expect(fs.lstatSync(path.join(layerDir, 'etc/gone')).isCharacterDevice()).toBe(true);
    expect(loaded!.tags.map((t) => `${t.repository}:${t.tag}`)).toEqual(['box:1']);
    const again = await saved(b, 'box:1', path.join(work, 'again.tar'));
    expect(again.equals(first)).toBe(true);
  });
});
