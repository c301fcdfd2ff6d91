// Layer directories for union-mount tests, built from a compact description.
//
// A stack is a list of LayerSpec, BOTTOM layer first (image order). buildStack() returns the
// directories TOP layer first, which is the order overlayfs's lowerdir= and
// `strata mount --lower` take. Every entry gets fixed times (per layer, with nanoseconds),
// so two builds of one spec are identical down to mtime and a merged view can be compared
// exactly wherever nothing was written through the mount.
//
// Formats: 'overlay' writes whiteouts as character devices 0/0 and opaque directories with
// trusted.overlay.opaque=y (what the kernel reads); 'oci' writes `.wh.NAME` files and
// `.wh..wh..opq` markers (what image tars carry). toOverlayFormat() turns the second into
// the first. randomStack() makes a seeded random stack together with a model of the merged
// view it should produce.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { native } from '../../src/native/binding.js';
import type { TreeEntry } from '../../src/util/tree.js';
import { prng } from '../../src/util/prng.js';

/** [seconds, nanoseconds] */
export type Time = readonly [number, number];

interface Attrs {
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: Time;
  atime?: Time;
  xattrs?: Record<string, string | Buffer>;
}

export type Entry =
  /** shorthand for a regular file with this content */
  | string
  | ({ type: 'file'; content?: string | Buffer } & Attrs)
  /** opaque: hides everything below this directory in lower layers */
  | ({ type: 'dir'; opaque?: boolean } & Attrs)
  | { type: 'symlink'; target: string; uid?: number; gid?: number; mtime?: Time }
  /** a hard link to another file of the same layer (path relative to the layer root) */
  | { type: 'link'; to: string }
  | ({ type: 'fifo' } & Attrs)
  /** hides the name in lower layers */
  | { type: 'whiteout' };

/** path (relative, '/'-separated; '.' is the layer root itself) -> entry. Missing parents are dirs 0755. */
export type LayerSpec = Record<string, Entry>;

export type LayerFormat = 'overlay' | 'oci';

export const OPAQUE_XATTR = 'trusted.overlay.opaque';
export const OCI_WHITEOUT_PREFIX = '.wh.';
export const OCI_OPAQUE_MARKER = '.wh..wh..opq';

/** Default times of layer i (bottom = 0): distinct per layer, with nanoseconds. */
export function layerTime(i: number): Time {
  return [1500000000 + i * 86400, 100000001 + i * 1000];
}

export const f = (content: string | Buffer, attrs: Attrs = {}): Entry => ({ type: 'file', content, ...attrs });
export const d = (attrs: Attrs & { opaque?: boolean } = {}): Entry => ({ type: 'dir', ...attrs });
export const opaque = (attrs: Attrs = {}): Entry => ({ type: 'dir', opaque: true, ...attrs });
export const wh: Entry = { type: 'whiteout' };
export const sym = (target: string): Entry => ({ type: 'symlink', target });
export const hl = (to: string): Entry => ({ type: 'link', to });
export const fifo = (attrs: Attrs = {}): Entry => ({ type: 'fifo', ...attrs });

type Norm = Exclude<Entry, string>;
const norm = (e: Entry): Norm => (typeof e === 'string' ? { type: 'file', content: e } : e);

function depth(p: string): number {
  return p === '.' ? 0 : p.split('/').length;
}

function setTimes(p: string, atime: Time, mtime: Time): void {
  native.utimens(p, atime[0], atime[1], mtime[0], mtime[1], true);
}

/** Builds one layer directory (created if missing) from a spec. layerIndex picks default times. */
export function buildLayer(dir: string, spec: LayerSpec, format: LayerFormat = 'overlay', layerIndex = 0): void {
  const t = layerTime(layerIndex);
  fs.mkdirSync(dir, { recursive: true });
  fs.chmodSync(dir, 0o755);
  const entries = new Map<string, Norm>();
  for (const [k, v] of Object.entries(spec)) {
    const key = k === '' ? '.' : k.replace(/^\.\//, '').replace(/\/+$/, '');
    if (path.isAbsolute(key) || key.split('/').includes('..')) throw new Error(`bad layer path ${k}`);
    entries.set(key, norm(v));
  }
  // the root and other implicit parents: dirs 0755 with the layer's times
  if (!entries.has('.')) entries.set('.', { type: 'dir' });
  for (const key of [...entries.keys()]) {
    const parts = key === '.' ? [] : key.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      if (!entries.has(parent)) entries.set(parent, { type: 'dir' });
      else if (entries.get(parent)!.type !== 'dir') throw new Error(`layer path ${key}: parent ${parent} is not a dir`);
    }
  }
  const ordered = [...entries.entries()].sort(([a], [b]) => depth(a) - depth(b) || (a < b ? -1 : a > b ? 1 : 0));
  const abs = (p: string): string => (p === '.' ? dir : path.join(dir, p));
  const timed: Array<[string, Time, Time]> = [];
  const attrs = (p: string, e: Attrs & { type: string }, defMode: number): void => {
    // Owner first: chown drops security.capability.
    native.lchown(p, e.uid ?? 0, e.gid ?? 0);
    if (e.type !== 'symlink') {
      for (const [name, value] of Object.entries(e.xattrs ?? {})) native.lsetxattr(p, name, Buffer.from(value), 0);
    }
    if (e.type !== 'symlink') fs.chmodSync(p, e.mode ?? defMode);
    timed.push([p, e.atime ?? e.mtime ?? t, e.mtime ?? t]);
  };
  const links: Array<[string, string]> = [];
  for (const [key, e] of ordered) {
    const p = abs(key);
    const name = path.basename(key);
    const parent = path.dirname(p);
    switch (e.type) {
      case 'dir':
        if (key !== '.') fs.mkdirSync(p);
        if (e.opaque) {
          if (format === 'overlay') native.lsetxattr(p, OPAQUE_XATTR, Buffer.from('y'), 0);
          else {
            const m = path.join(p, OCI_OPAQUE_MARKER);
            fs.writeFileSync(m, '');
            timed.push([m, t, t]);
          }
        }
        attrs(p, e, 0o755);
        break;
      case 'file':
        fs.writeFileSync(p, e.content ?? '');
        attrs(p, e, 0o644);
        break;
      case 'symlink':
        fs.symlinkSync(e.target, p);
        attrs(p, e, 0o777);
        break;
      case 'fifo':
        native.mknod(p, 0o010000 | (e.mode ?? 0o644), 0, 0);
        attrs(p, e, 0o644);
        break;
      case 'whiteout':
        if (format === 'overlay') {
          native.mknod(p, 0o020000, 0, 0);
          timed.push([p, t, t]);
        } else {
          const m = path.join(parent, OCI_WHITEOUT_PREFIX + name);
          fs.writeFileSync(m, '');
          timed.push([m, t, t]);
        }
        break;
      case 'link':
        links.push([p, abs(e.to)]);
        break;
    }
  }
  for (const [p, to] of links) fs.linkSync(to, p);
  // deepest first, so creating children does not disturb a parent's times afterwards
  timed.sort(([a], [b]) => b.split('/').length - a.split('/').length);
  for (const [p, at, mt] of timed) setTimes(p, at, mt);
}

export interface BuiltStack {
  /** layer directories, bottom first */
  layers: string[];
  /** the same, top first: lowerdir= order */
  lowers: string[];
  format: LayerFormat;
}

/** Builds base/layer-0 .. layer-(n-1) from specs given bottom layer first. */
export function buildStack(base: string, specs: LayerSpec[], format: LayerFormat = 'overlay'): BuiltStack {
  fs.mkdirSync(base, { recursive: true });
  const layers = specs.map((spec, i) => {
    const dir = path.join(base, `layer-${String(i).padStart(2, '0')}`);
    buildLayer(dir, spec, format, i);
    return dir;
  });
  return { layers, lowers: [...layers].reverse(), format };
}

/** cp -a: keeps hard links, xattrs (trusted.* too, as root), owners and nanosecond times. */
export function copyTree(src: string, dst: string): void {
  fs.mkdirSync(path.dirname(dst), { recursive: true });
  execFileSync('cp', ['-a', '--', src, dst]);
}

/**
 * Converts an OCI-format layer directory to overlay format: `.wh.NAME` becomes a 0/0
 * character device NAME, `.wh..wh..opq` becomes trusted.overlay.opaque=y on its directory,
 * other `.wh..wh.*` (aufs bookkeeping) are dropped. Directory times are kept. With `dest`,
 * converts a copy made there and leaves `layerDir` alone. Returns the converted directory.
 */
export function toOverlayFormat(layerDir: string, dest?: string): string {
  let root = layerDir;
  if (dest) {
    copyTree(layerDir, dest);
    root = dest;
  }
  const walk = (dir: string): void => {
    const st = fs.lstatSync(dir, { bigint: true });
    let changed = false;
    for (const name of fs.readdirSync(dir, { encoding: 'latin1' }).sort()) {
      const p = path.join(dir, name);
      const raw = Buffer.from(p, 'latin1');
      if (name === OCI_OPAQUE_MARKER) {
        fs.unlinkSync(raw);
        native.lsetxattr(dir, OPAQUE_XATTR, Buffer.from('y'), 0);
        changed = true;
      } else if (name.startsWith(`${OCI_WHITEOUT_PREFIX}${OCI_WHITEOUT_PREFIX}`)) {
        fs.rmSync(raw, { recursive: true, force: true });
        changed = true;
      } else if (name.startsWith(OCI_WHITEOUT_PREFIX)) {
        const target = Buffer.from(path.join(dir, name.slice(OCI_WHITEOUT_PREFIX.length)), 'latin1');
        const ws = fs.lstatSync(raw, { bigint: true });
        fs.unlinkSync(raw);
        native.mknod(target, 0o020000, 0, 0);
        native.utimens(target, Number(ws.atimeNs / 1000000000n), Number(ws.atimeNs % 1000000000n), Number(ws.mtimeNs / 1000000000n), Number(ws.mtimeNs % 1000000000n), true);
        changed = true;
      } else if (fs.lstatSync(raw).isDirectory()) {
        walk(p);
      }
    }
    if (changed) {
      native.utimens(dir, Number(st.atimeNs / 1000000000n), Number(st.atimeNs % 1000000000n), Number(st.mtimeNs / 1000000000n), Number(st.mtimeNs % 1000000000n), true);
    }
  };
  walk(root);
  return root;
}

// ---------------------------------------------------------------------------------------
// Seeded random stacks

export { prng };

export interface Rng {
  next(): number;
  int(n: number): number;
  pick<T>(xs: readonly T[]): T;
  chance(p: number): boolean;
}

export function rng(seed: number): Rng {
  const next = prng(seed);
  return {
    next,
    int: (n) => Math.floor(next() * n),
    pick: (xs) => {
      if (xs.length === 0) throw new Error('pick from empty list');
      return xs[Math.floor(next() * xs.length)]!;
    },
    chance: (p) => next() < p,
  };
}

/** What a path should look like in the merged view (the model a random stack carries). */
export interface ModelEntry {
  type: 'file' | 'dir' | 'symlink' | 'fifo';
  mode: number;
  uid: number;
  gid: number;
  content?: Buffer;
  target?: string;
  mtime: Time;
  xattrs?: Record<string, string>;
  /** layer + first path of the real inode, for hard-link counts */
  inode: string;
}

export interface RandomStack {
  specs: LayerSpec[];
  /** merged view, '.' included */
  model: Map<string, ModelEntry>;
  /** real-inode key -> number of names in its layer (st_nlink of a lower file) */
  nlinks: Map<string, number>;
}

export interface RandomStackOptions {
  layers: number;
  /** entries in the base layer (default 40) */
  baseEntries?: number;
  /** changes per upper layer (default 2..8) */
  changesPerLayer?: [number, number];
}

const isUnder = (p: string, dir: string): boolean => dir === '.' || p.startsWith(`${dir}/`);

/**
 * A deterministic random stack: a base tree (nested dirs, files, symlinks, fifos, hard
 * links, xattrs, odd modes and owners), then layers that add and overwrite files, white out
 * files and whole trees, make directories opaque, replace files by directories and
 * directories by files, re-state directories with new attributes, and add hard links.
 */
export function randomStack(seed: number, opts: RandomStackOptions): RandomStack {
  const r = rng(seed);
  const specs: LayerSpec[] = [];
  const model = new Map<string, ModelEntry>();
  const nlinks = new Map<string, number>();
  let counter = 0;
  const fresh = (prefix: string): string => `${prefix}${(counter++).toString(36)}`;
  const modes = [0o644, 0o600, 0o755, 0o444, 0o640, 0o4755, 0o2750];
  const dirModes = [0o755, 0o700, 0o750, 0o1777, 0o2775, 0o555];
  const owners: Array<[number, number]> = [[0, 0], [0, 0], [1000, 1000], [1234, 5678]];
  const contentOf = (): Buffer => {
    const n = r.pick([0, 1, 7, 100, 4096, 5000]);
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = r.int(256);
    return b;
  };

  for (let li = 0; li < opts.layers; li++) {
    const spec: LayerSpec = {};
    const t = layerTime(li);
    // p, something below p, or a non-directory above p is already stated in this layer
    const inLayer = (p: string): boolean =>
      Object.keys(spec).some((k) => k === p || isUnder(k, p) || (isUnder(p, k) && norm(spec[k]!).type !== 'dir'));
    const dirs = (): string[] => [...model.entries()].filter(([, e]) => e.type === 'dir').map(([p]) => p);
    const nonRoot = (): string[] => [...model.keys()].filter((p) => p !== '.');
    const join = (dir: string, name: string): string => (dir === '.' ? name : `${dir}/${name}`);
    const removeSubtree = (p: string): void => {
      for (const k of [...model.keys()]) if (k === p || isUnder(k, p)) model.delete(k);
    };
    // state the parents of p in this layer with their merged attributes (as image layers do)
    const ensureParents = (p: string): void => {
      const parts = p.split('/');
      for (let i = 1; i < parts.length; i++) {
        const a = parts.slice(0, i).join('/');
        const cur = spec[a];
        if (cur !== undefined) continue;
        const m = model.get(a);
        if (!m || m.type !== 'dir') throw new Error(`randomStack: parent ${a} of ${p} is not a dir`);
        spec[a] = { type: 'dir', mode: m.mode, uid: m.uid, gid: m.gid };
        m.mtime = t;
      }
    };
    const putFile = (p: string, linkable: string[]): void => {
      const [uid, gid] = r.pick(owners);
      const mode = r.pick(modes);
      const content = contentOf();
      const xattrs = r.chance(0.2) ? { [`user.k${r.int(3)}`]: `v${r.int(1000)}` } : undefined;
      spec[p] = { type: 'file', content, mode, uid, gid, ...(xattrs ? { xattrs } : {}) };
      const inode = `${li}:${p}`;
      nlinks.set(inode, 1);
      model.set(p, { type: 'file', mode, uid, gid, content, mtime: t, inode, ...(xattrs ? { xattrs } : {}) });
      linkable.push(p);
    };
    const putDir = (p: string, opaqueDir = false): void => {
      const [uid, gid] = r.pick(owners);
      const mode = r.pick(dirModes);
      spec[p] = { type: 'dir', mode, uid, gid, ...(opaqueDir ? { opaque: true } : {}) };
      model.set(p, { type: 'dir', mode, uid, gid, mtime: t, inode: `${li}:${p}` });
    };
    const putOther = (p: string): void => {
      if (r.chance(0.6)) {
        // An absolute target that exists nowhere: random scripts follow symlinks (append,
        // truncate, chmod), and as root through one to a host file they would change it.
        const target = r.pick(['../x', 'a/b/c', '/nonexistent-stratafs-test/target', 'dangling', `${fresh('t')}`]);
        spec[p] = { type: 'symlink', target };
        model.set(p, { type: 'symlink', mode: 0o777, uid: 0, gid: 0, target, mtime: t, inode: `${li}:${p}` });
      } else {
        spec[p] = { type: 'fifo', mode: 0o640 };
        model.set(p, { type: 'fifo', mode: 0o640, uid: 0, gid: 0, mtime: t, inode: `${li}:${p}` });
      }
    };
    const linkable: string[] = [];
    const addLink = (p: string): void => {
      const to = r.pick(linkable);
      spec[p] = { type: 'link', to };
      const src = model.get(to)!;
      nlinks.set(src.inode, nlinks.get(src.inode)! + 1);
      model.set(p, { ...src });
    };
    // the layer root, restated by every layer like an image layer does
    spec['.'] = { type: 'dir', mode: 0o755 };
    model.set('.', { type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: t, inode: `${li}:.` });

    if (li === 0) {
      const n = opts.baseEntries ?? 40;
      for (let i = 0; i < n; i++) {
        const parent = r.pick(dirs());
        const p = join(parent, fresh(r.pick(['d', 'f', 'f', 'f', 's'])));
        ensureParents(p);
        const k = r.next();
        if (k < 0.3) putDir(p);
        else if (k < 0.8) putFile(p, linkable);
        else if (k < 0.9 && linkable.length) addLink(p);
        else putOther(p);
      }
      specs.push(spec);
      continue;
    }

    const [lo, hi] = opts.changesPerLayer ?? [2, 8];
    const changes = lo + r.int(hi - lo + 1);
    for (let c = 0, tries = 0; c < changes && tries < 200; tries++) {
      const kind = r.pick(['add', 'add', 'overwrite', 'whiteout', 'whiteout', 'opaque', 'file2dir', 'dir2file', 'nested', 'restate', 'link', 'other'] as const);
      const existing = nonRoot();
      if (kind === 'add' || kind === 'nested' || kind === 'other') {
        const parent = r.pick(dirs());
        let p = join(parent, fresh(kind === 'nested' ? 'n' : 'f'));
        if (inLayer(p)) continue;
        ensureParents(p);
        if (kind === 'nested') {
          for (let i = 0; i < 3; i++) {
            putDir(p);
            p = `${p}/${fresh('n')}`;
          }
          putFile(p, linkable);
        } else if (kind === 'other') putOther(p);
        else putFile(p, linkable);
      } else if (kind === 'link') {
        if (!linkable.length) continue;
        const parent = r.pick(dirs());
        const p = join(parent, fresh('h'));
        if (inLayer(p)) continue;
        ensureParents(p);
        addLink(p);
      } else {
        if (!existing.length) break;
        const p = r.pick(existing);
        const m = model.get(p)!;
        if (inLayer(p)) continue;
        if (kind === 'overwrite') {
          if (m.type !== 'file') continue;
          ensureParents(p);
          putFile(p, linkable);
        } else if (kind === 'whiteout') {
          ensureParents(p);
          spec[p] = { type: 'whiteout' };
          removeSubtree(p);
        } else if (kind === 'opaque') {
          if (m.type !== 'dir') continue;
          ensureParents(p);
          removeSubtree(p);
          putDir(p, true);
          for (let i = r.int(3); i > 0; i--) putFile(`${p}/${fresh('o')}`, linkable);
        } else if (kind === 'file2dir') {
          if (m.type === 'dir') continue;
          ensureParents(p);
          removeSubtree(p);
          putDir(p);
          putFile(`${p}/${fresh('c')}`, linkable);
        } else if (kind === 'dir2file') {
          if (m.type !== 'dir') continue;
          ensureParents(p);
          removeSubtree(p);
          putFile(p, linkable);
        } else if (kind === 'restate') {
          if (m.type !== 'dir') continue;
          ensureParents(p);
          const [uid, gid] = r.pick(owners);
          const mode = r.pick(dirModes);
          spec[p] = { type: 'dir', mode, uid, gid };
          Object.assign(m, { mode, uid, gid, mtime: t });
        }
      }
      c++;
    }
    specs.push(spec);
  }
  return { specs, model, nlinks };
}

/**
 * The model as snapshotTree() would see it: type, mode, owner, size, sha256, target, nlink,
 * mtime (not for symlinks, as snapshotTree), xattrs. Compare with canonTree() on both sides.
 */
export function modelTree(s: RandomStack): Record<string, TreeEntry> {
  const out: Record<string, TreeEntry> = {};
  for (const [p, m] of s.model) {
    const e: TreeEntry = { type: m.type, mode: m.mode, uid: m.uid, gid: m.gid };
    if (m.type === 'file') {
      e.size = m.content!.length;
      e.sha256 = createHash('sha256').update(m.content!).digest('hex');
    }
    if (m.type === 'symlink') e.target = m.target!;
    if (m.type !== 'dir') e.nlink = s.nlinks.get(m.inode) ?? 1;
    if (m.type !== 'symlink') e.mtimeNs = (BigInt(m.mtime[0]) * 1000000000n + BigInt(m.mtime[1])).toString();
    if (m.xattrs) e.xattrs = Object.fromEntries(Object.entries(m.xattrs).sort().map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
    out[p] = e;
  }
  return out;
}
