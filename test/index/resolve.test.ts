// Property test of the path index: on seeded random stacks (whiteouts, opaque dirs,
// replaced dirs, symlinks, hard links, both whiteout formats), every lookup (with every
// attribute but the atime, which the index answers without an lstat) and every listing
// answered from the index equals what the reference resolver finds by probing the layer
// dirs, name by name; and a read-only mount served from the index shows the same tree
// as the kernel's overlayfs and as the generator's model.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PathIndex } from '../../src/index/path-index.js';
import { native } from '../../src/native/binding.js';
import type { Inode } from '../../src/fs/inode.js';
import { LinkNames } from '../../src/union/link-names.js';
import type { UNode } from '../../src/union/node.js';
import { mergedEntries } from '../../src/union/readdir.js';
import { resolveChild, resolveRoot } from '../../src/union/resolve.js';
import { LayerStack } from '../../src/union/stack.js';
import { rootStandIn, standIn } from '../../src/union/stand-in.js';
import { osPath } from '../../src/util/os-path.js';
import { buildStack, modelTree, randomStack, toOverlayFormat, type LayerFormat } from '../helpers/layers.js';
import { tmpdir } from '../helpers/mount.js';
import { canonTree, diffFields, mergedView, diffViews, withoutDirNlink } from '../union/harness.js';
import { MountRegistry, mountKernelOverlay, strataDriver } from '../union/overlay.js';

const root = tmpdir('index-resolve');
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

type Node = Inode<UNode>;

/** Every name any layer has under `rel` (markers included): the names worth asking about. */
function candidateNames(lowers: string[], rel: string): string[] {
  const names = new Set<string>();
  for (const l of lowers) {
    try {
      for (const n of fs.readdirSync(osPath(rel ? `${l}/${rel}` : l), { encoding: 'latin1' })) {
        names.add(n);
        if (n.startsWith('.wh.')) names.add(n.slice(4));
      }
    } catch {
      /* not a dir in this layer */
    }
  }
  names.add('never-there');
  return [...names].sort();
}

/** What the resolver answers for every name under every visible directory, and every listing. */
function answers(stack: LayerStack): Record<string, string> {
  const out: Record<string, string> = {};
  const r0 = resolveRoot(stack);
  const visit = (node: Node, rel: string): void => {
    const listing = mergedEntries(stack, node)
      .map((e) => `${e.name}:${e.mode.toString(8)}:${e.ino}`)
      .sort();
    out[`ls /${rel}`] = listing.join(' ');
    for (const name of candidateNames(stack.lowers, rel)) {
      const crel = rel ? `${rel}/${name}` : name;
      let r;
      try {
        r = resolveChild(stack, node, name);
      } catch (e) {
        out[crel] = (e as NodeJS.ErrnoException).code ?? String(e);
        continue;
      }
      // Every attribute but the atime (the index answers with the one it saw; a read moves it).
      const st = r.st;
      const attrs = `size=${st.size} blocks=${st.blocks} blksize=${st.blksize} nlink=${st.nlink} uid=${st.uid} gid=${st.gid} rdev=${st.rdev} dev=${st.dev} mtime=${st.mtime}.${st.mtimensec} ctime=${st.ctime}.${st.ctimensec}`;
      out[crel] = `${Number(st.mode).toString(8)} ino=${r.ino} ${attrs} lowers=${r.data.lowers.map((l) => `${l.layer}:${l.path}`).join(',')}`;
      if ((Number(r.st.mode) & 0o170000) === 0o040000) visit(standIn(node, name, r.data, 0o040000), crel);
    }
  };
  visit(rootStandIn(r0.data), '');
  return out;
}

/** Hard-link sibling names of every lower file with more than one name. */
function linkSets(stack: LayerStack): Record<string, string> {
  const names = new LinkNames(stack);
  const out: Record<string, string> = {};
  stack.lowers.forEach((l, layer) => {
    const walk = (rel: string): void => {
      for (const d of fs.readdirSync(osPath(rel ? `${l}/${rel}` : l), { encoding: 'latin1', withFileTypes: true })) {
        const p = rel ? `${rel}/${d.name}` : d.name;
        if (d.isDirectory()) walk(p);
        else if (d.isFile()) {
          const st = fs.lstatSync(osPath(`${l}/${p}`), { bigint: true });
          if (st.nlink > 1n) out[`${layer}:${p}`] = names.names(layer, st.ino).sort().join(' ');
        }
      }
    };
    walk('');
  });
  return out;
}

const SEEDS: Array<{ seed: number; layers: number; format: LayerFormat }> = [];
for (let seed = 1; seed <= 24; seed++) SEEDS.push({ seed, layers: [1, 2, 3, 5, 8, 13, 20, 32][seed % 8]!, format: seed % 2 ? 'oci' : 'overlay' });

describe('index-backed resolution equals probing the layer dirs', () => {
  it.each(SEEDS)('seed $seed: $layers layers, $format', ({ seed, layers, format }) => {
    const stack = randomStack(seed, { layers });
    const built = buildStack(path.join(root, `prop-${seed}`), stack.specs, format);
    const disk = new LayerStack({ lowers: built.lowers });
    const indexed = new LayerStack({ lowers: built.lowers });
    const index = PathIndex.open(path.join(root, `prop-${seed}.db`));
    try {
      const s = index.stack(built.lowers);
      expect(s.special).toBe(false);
      indexed.view = s.view;
      const want = answers(disk);
      expect(Object.keys(want).length).toBeGreaterThan(10);
      expect(answers(indexed)).toEqual(want);
      expect(linkSets(indexed)).toEqual(linkSets(disk));
    } finally {
      index.close();
    }
  });

  it('an OCI layer that replaces a directory (`.wh.d` and `d/` in one layer) hides the old contents', () => {
    const base = path.join(root, 'replace');
    for (const f of ['l0/d/old', 'l0/d/sub/x', 'l1/d/new', 'l1/.wh.d', 'l2/d/top']) {
      fs.mkdirSync(path.dirname(path.join(base, f)), { recursive: true });
      fs.writeFileSync(path.join(base, f), f);
    }
    const lowers = ['l2', 'l1', 'l0'].map((l) => path.join(base, l));
    const disk = new LayerStack({ lowers });
    const indexed = new LayerStack({ lowers });
    const index = PathIndex.open(path.join(base, 'index.db'));
    try {
      indexed.view = index.stack(lowers).view;
      const want = answers(disk);
      expect(want['ls /d']).toMatch(/^new:100644:\d+ top:100644:\d+$/);
      expect(want['d/old']).toBe('ENOENT');
      expect(answers(indexed)).toEqual(want);
    } finally {
      index.close();
    }
  });

  it('lookups with no listing first (one query per name, then the whole directory) answer as the disk does, also past the listing bound', () => {
    const base = path.join(root, 'lookups');
    const put = (f: string): void => {
      fs.mkdirSync(path.dirname(path.join(base, f)), { recursive: true });
      fs.writeFileSync(path.join(base, f), f);
    };
    // big/ holds more rows than a lookup loads at once (src/index/stack-view.ts LISTED_ROWS).
    for (let i = 0; i < 2200; i++) put(`l0/big/f${i}`);
    for (let i = 0; i < 100; i++) put(`l1/big/f${i}`);
    put('l1/big/.wh.f100');
    for (const f of ['l0/small/c', 'l0/small/d', 'l1/small/a', 'l1/small/b', 'l1/small/.wh.d']) put(f);
    const lowers = ['l1', 'l0'].map((l) => path.join(base, l));
    const ask = (stack: LayerStack): string[] => {
      const top = rootStandIn(resolveRoot(stack).data);
      const out: string[] = [];
      for (const [dir, names] of [
        ['big', ['f0', 'f50', 'f100', 'f101', 'f2199', 'nope', 'f99', 'f1500']],
        ['small', ['a', 'nope', 'b', 'c', 'd', 'a']],
      ] as const) {
        const d = standIn(top, dir, resolveChild(stack, top, dir).data, 0o040000);
        for (const name of names) {
          try {
            const r = resolveChild(stack, d, name);
            out.push(`${dir}/${name} ${r.st.size} ino=${r.ino} lowers=${r.data.lowers.map((l) => `${l.layer}:${l.path}`).join(',')}`);
          } catch (e) {
            out.push(`${dir}/${name} ${(e as NodeJS.ErrnoException).code}`);
          }
        }
      }
      return out;
    };
    const disk = new LayerStack({ lowers });
    const indexed = new LayerStack({ lowers });
    const index = PathIndex.open(path.join(base, 'index.db'));
    try {
      indexed.view = index.stack(lowers).view;
      const want = ask(disk);
      expect(want).toContain('big/f50 10 ino=' + fs.statSync(path.join(base, 'l1/big/f50')).ino + ' lowers=0:big/f50');
      expect(want).toContain('big/f100 ENOENT');
      expect(want).toContain('small/d ENOENT');
      expect(ask(indexed)).toEqual(want);
    } finally {
      index.close();
    }
  });

  it("another image's rows in a shared directory are never read, nor counted against loading its listing", () => {
    const base = path.join(root, 'shared-dir');
    const put = (f: string): void => {
      fs.mkdirSync(path.dirname(path.join(base, f)), { recursive: true });
      fs.writeFileSync(path.join(base, f), f);
    };
    // The other image has more rows in usr/bin than a lookup would ever load at once.
    for (let i = 0; i < 2100; i++) put(`other/usr/bin/tool${i}`);
    for (const f of ['ours/usr/bin/sh', 'ours/usr/bin/ls', 'ours/usr/bin/cat']) put(f);
    put('ours/usr/bin/tool7');
    const index = PathIndex.open(path.join(base, 'index.db'));
    try {
      index.stack([path.join(base, 'other')]);
      const view = index.stack([path.join(base, 'ours')]).view;
      const bin = view.child(view.child(1, 'usr')!.ix, 'bin')!.ix;
      expect(view.child(bin, 'sh')?.rows.map((r) => r.layer)).toEqual([0]);
      expect(view.child(bin, 'tool5')).toBeUndefined();
      // Second lookup there: counted as 4 rows of this stack, so the listing is loaded...
      const listed = (view as unknown as { listCache: { get(ix: number): Map<string, unknown> | undefined } }).listCache.get(bin);
      expect([...(listed?.keys() ?? [])].sort()).toEqual(['cat', 'ls', 'sh', 'tool7']);
      // ...and answers, the other image's names included (absent here).
      expect(view.child(bin, 'tool7')?.rows).toHaveLength(1);
      expect(view.child(bin, 'tool8')).toBeUndefined();
      expect([...view.children(bin).keys()].sort()).toEqual(['cat', 'ls', 'sh', 'tool7']);
    } finally {
      index.close();
    }
  });

  it("a listing's inode numbers are the ones lookups give, for metadata-only copies (in place and renamed) too", () => {
    const base = path.join(root, 'listing-ino');
    const lower = path.join(base, 'lower');
    const upper = path.join(base, 'upper');
    const work = path.join(base, 'work');
    for (const d of [`${lower}/d`, `${upper}/d`, work]) fs.mkdirSync(d, { recursive: true });
    for (const n of ['a', 'b', 'c', 'plain']) fs.writeFileSync(`${lower}/d/${n}`, `${n} data\n`);
    // As copy-up leaves them: sparse at the lower size, marked, with the number of the file
    // they were copied from; 'moved' redirects to 'b'.
    const metacopy = (name: string, from: string, redirect?: string): void => {
      const p = `${upper}/d/${name}`;
      fs.writeFileSync(p, '');
      fs.truncateSync(p, 7);
      native.lsetxattr(p, 'trusted.overlay.metacopy', Buffer.alloc(0), 0);
      const ino = Buffer.alloc(8);
      ino.writeBigUInt64LE(fs.statSync(`${lower}/d/${from}`, { bigint: true }).ino);
      native.lsetxattr(p, 'trusted.stratafs.ino', ino, 0);
      if (redirect) native.lsetxattr(p, 'trusted.overlay.redirect', Buffer.from(redirect), 0);
    };
    metacopy('a', 'a');
    metacopy('moved', 'b', '/d/b');
    native.mknod(`${upper}/d/b`, 0o020000, 0, 0);
    fs.writeFileSync(`${upper}/d/new`, 'new\n');
    const check = (stack: LayerStack): void => {
      const top = rootStandIn(resolveRoot(stack).data);
      const d = standIn(top, 'd', resolveChild(stack, top, 'd').data, 0o040000);
      const listed = mergedEntries(stack, d).map((e) => [e.name, e.ino.toString()]).sort();
      const looked = listed.map(([n]) => [n!, resolveChild(stack, d, n!).ino.toString()]);
      expect(listed.map(([n]) => n)).toEqual(['a', 'c', 'moved', 'new', 'plain']);
      expect(listed).toEqual(looked);
      // The copies report their data file's number, not their own.
      expect(looked.find(([n]) => n === 'moved')![1]).toBe(String(fs.statSync(`${lower}/d/b`).ino));
    };
    check(new LayerStack({ lowers: [lower], upper, work }));
    const indexed = new LayerStack({ lowers: [lower], upper, work });
    const index = PathIndex.open(path.join(base, 'index.db'));
    try {
      indexed.view = index.stack([lower]).view;
      check(indexed);
    } finally {
      index.close();
    }
  });

  it('a second stack sharing the base shares its rows: only the new layer is ingested', () => {
    const stack = randomStack(99, { layers: 6 });
    const built = buildStack(path.join(root, 'shared'), stack.specs, 'overlay');
    const index = PathIndex.open(path.join(root, 'shared.db'));
    try {
      index.stack(built.lowers.slice(1));
      const before = index.stats();
      index.stack(built.lowers);
      const after = index.stats();
      expect(after.layers.length).toBe(before.layers.length + 1);
      expect(after.stacks).toBe(before.stacks + 1);
      expect(after.entries - before.entries).toBe(after.layers.at(-1)!.entries);
    } finally {
      index.close();
    }
  });
});

describe('a read-only mount served from the index, against kernel overlayfs', () => {
  const registry = new MountRegistry();
  afterAll(async () => registry.cleanupAll());

  it.each([
    { seed: 7, layers: 9, format: 'overlay' as const },
    { seed: 8, layers: 16, format: 'oci' as const },
  ])('seed $seed: $layers layers, $format', async ({ seed, layers, format }) => {
    const stack = randomStack(seed, { layers });
    const base = path.join(root, `ro-${seed}`);
    const built = buildStack(path.join(base, 'lowers'), stack.specs, format);
    const kbuilt = buildStack(path.join(base, 'klowers'), stack.specs, format);
    if (format === 'oci') for (const l of kbuilt.layers) toOverlayFormat(l);
    for (const m of ['mnt', 'kmnt']) fs.mkdirSync(path.join(base, m));
    const kernel = registry.track(mountKernelOverlay(kbuilt.lowers, undefined, undefined, path.join(base, 'kmnt'), []));
    const ours = registry.track(strataDriver.mountO(built.lowers, undefined, undefined, path.join(base, 'mnt'), `index=${base}/index.db`));
    expect(fs.existsSync(`${base}/index.db`)).toBe(true);
    const va = mergedView(kernel.mnt);
    const vb = mergedView(ours.mnt);
    expect(diffViews(va, vb)).toEqual([]);
    expect(diffFields(canonTree(modelTree(stack)), canonTree(withoutDirNlink(vb.tree)))).toEqual([]);
  });
});
