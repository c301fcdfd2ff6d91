// The hand-written layer stacks of the differential suite (bottom layer first), shared by
// differential.test.ts and layers.test.ts.
import { d, f, fifo, hl, opaque, sym, wh, type LayerSpec } from '../helpers/layers.js';

/** Three layers with a bit of everything; most scripts run on it. */
export const STD: LayerSpec[] = [
  {
    'etc/passwd': 'root:x:0:0:root:/root:/bin/sh\n',
    'etc/hosts': '127.0.0.1 localhost\n',
    'bin/sh': f('#!ELF sh\n', { mode: 0o755 }),
    'data/a.txt': 'alpha from layer 0\n',
    'data/b.txt': 'bravo from layer 0\n',
    'data/gone.txt': 'whited out by layer 2\n',
    'data/sub/deep.txt': 'deep from layer 0\n',
    'opq/old1': 'hidden by the opaque dir of layer 2\n',
    'opq/olddir/x': 'hidden too\n',
    'hard/one': 'linked content\n',
    'hard/two': hl('hard/one'),
    'meta/file': f('metadata test\n', { mode: 0o640, uid: 1000, gid: 1000, xattrs: { 'user.origin': 'layer0' } }),
    'meta/dir': d({ mode: 0o750, uid: 1000, gid: 1000, xattrs: { 'user.dir': 'd0' } }),
    'link-to-a': sym('data/a.txt'),
    pipe: fifo({ mode: 0o600 }),
    'deep/a': d({ mode: 0o750, uid: 1000, gid: 100 }),
    'deep/a/b': d({ mode: 0o711, uid: 0, gid: 1000 }),
    'deep/a/b/c': d({ mode: 0o700 }),
    'deep/a/b/c/d': d({ mode: 0o755, uid: 1234, gid: 5678 }),
    'deep/a/b/c/d/file': f('four levels down\n', { mode: 0o600 }),
    'tree/top': 'top from layer 0\n',
    'tree/x/y/z': 'z from layer 0\n',
    empty: d(),
    'emptyish/w1': 'whited out by layer 1\n',
  },
  {
    'data/a.txt': 'alpha from layer 1\n',
    'data/c.txt': 'charlie from layer 1\n',
    'data/sub/deep2.txt': 'deep2 from layer 1\n',
    'tree/x/y/w': 'w from layer 1\n',
    'tree/x/l1only': 'l1\n',
    'emptyish/w1': wh,
  },
  {
    'data/gone.txt': wh,
    'data/d.txt': 'delta from layer 2\n',
    opq: opaque(),
    'opq/new1': 'visible from layer 2\n',
    'tree/extra': 'extra from layer 2\n',
  },
];

export const WHITEOUTS: LayerSpec[] = [
  { 'w/file': 'lower file\n', 'w/dir/inner': 'inner\n', 'w/dir/sub/x': 'x\n', 'w/keep': 'keep\n', 'w/later': 'layer 0\n' },
  { 'w/file': wh, 'w/dir': wh, 'w/later': wh },
  { 'w/later': 'recreated in layer 2\n' },
];

export const OPAQUES: LayerSpec[] = [
  { 'o/a': 'a0', 'o/sub/b': 'b0', 'o2/hidden': 'h0', 'o2/sub/x': 'x0' },
  { 'o/c': 'c1', o2: opaque(), 'o2/m': 'm1', 'o2/sub/y': 'y1' },
  { o: opaque({ mode: 0o700 }), 'o/d': 'd2', 'o2/top': 't2' },
];

export const n3 = (i: number): string => `n${String(i).padStart(3, '0')}`;
export const BIGDIR: LayerSpec[] = [
  Object.fromEntries([...Array.from({ length: 60 }, (_, i) => [`big/${n3(i)}`, `l0 ${i}`]), ['big/dir0/inner', 'x']]),
  Object.fromEntries([...Array.from({ length: 60 }, (_, i) => [`big/${n3(i + 30)}`, `l1 ${i + 30}`]), ['big/n010', wh], ['big/n011', wh]]),
  { 'big/n050': wh, 'big/n090': 'top', 'big/dir0': 'now a file', 'big/n020': d(), 'big/n020/in': 'dir over file' },
];
export const BIGDIR_NAMES = [...Array.from({ length: 91 }, (_, i) => n3(i)).filter((n) => !['n010', 'n011', 'n050'].includes(n)), 'dir0'].sort();

export const TYPE_SWAPS: LayerSpec[] = [
  { x: 'file x\n', 'y/inner': 'inner y\n', 'z/deep/f': 'f0\n' },
  { 'x/child': 'child\n', y: 'y is a file now\n', z: 'z is a file\n' },
  { 'x/child2': 'child2\n', 'z/again': 'a dir again\n' },
];

/** Twenty layers with whiteouts, opaque dirs and re-creations in the middle ones. */
export function manyLayers(): LayerSpec[] {
  const specs: LayerSpec[] = [];
  for (let i = 0; i < 20; i++) {
    const s: LayerSpec = { [`m/L${i}`]: `layer ${i}\n`, 'm/shared': `v${i}\n` };
    if (i !== 7) s[`m/opq/o${i}`] = `o${i}`;
    if (i === 3) s['m/filedir'] = 'a file in layer 3\n';
    if (i === 5) Object.assign(s, { 'm/L1': wh, 'm/L2': wh });
    if (i === 7) Object.assign(s, { 'm/opq': opaque(), 'm/opq/o7': 'o7' });
    if (i < 9) s[`m/sub/s${i}`] = `s${i}`;
    if (i === 9) s['m/sub'] = wh;
    if (i === 12) s['m/sub/new12'] = 'new12';
    if (i > 12) s[`m/sub/s${i}`] = `s${i}`;
    if (i === 10) s['m/L4'] = wh;
    if (i === 14) s['m/L4'] = 're-added in layer 14\n';
    if (i === 16) s['m/filedir/c'] = 'a dir from layer 16 on\n';
    if (i === 18) s['m/L17'] = wh;
    if (i % 4 === 0) s[`m/deep/l${i}/x`] = `deep ${i}`;
    specs.push(s);
  }
  return specs;
}

