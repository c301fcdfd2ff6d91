// The inode table's bookkeeping without a mount: lookup counts, hard links sharing one
// inode, and superseded inodes (an object moved to a new nodeid while the kernel still
// holds the old one), which must route requests to the object and be let go of exactly
// when the kernel has forgotten every nodeid of it.
import { describe, expect, it } from 'vitest';
import { InodeTable } from '../../src/fs/inode-table.js';

const FILE = 0o100000;
const DIR = 0o040000;

function table(): InodeTable<{ tag: string }> {
  return new InodeTable(1n, { tag: 'root' });
}

/** A file looked up as 'f', superseded, and looked up again (as the kernel's retry does). */
function superseded(t: InodeTable<{ tag: string }>, ino: bigint) {
  const old = t.remember(t.root, 'f', ino, FILE, () => ({ tag: 'f' }));
  const next = t.supersede(old);
  t.remember(t.root, 'f', ino, FILE, () => ({ tag: 'f' }));
  return { old, next };
}

describe('InodeTable', () => {
  it('hard links are one inode; FORGET of every lookup lets it go', () => {
    const t = table();
    const a = t.remember(t.root, 'a', 10n, FILE, () => ({ tag: 'x' }));
    const b = t.remember(t.root, 'b', 10n, FILE, () => ({ tag: 'y' }));
    expect(b).toBe(a);
    expect(a.links.map((l) => l.name)).toEqual(['a', 'b']);
    expect(t.forget(a.nodeid, 1)).toBeUndefined();
    expect(t.forget(a.nodeid, 1)).toBe(a);
    expect(() => t.get(a.nodeid)).toThrow(/unknown nodeid/);
    expect(t.find(10n)).toBeUndefined();
  });

  it('a superseded nodeid reaches the object; new lookups get the new nodeid', () => {
    const t = table();
    const old = t.remember(t.root, 'f', 20n, FILE, () => ({ tag: 'f' }));
    const next = t.supersede(old);
    expect(next.nodeid).not.toBe(old.nodeid);
    expect(next.data).toBe(old.data);
    expect(t.get(old.nodeid)).toBe(next);
    expect(t.exact(old.nodeid)).toBe(old);
    expect(next.path()).toBe('f');
    expect(old.links).toEqual([]);
    expect(t.root.child('f')).toBe(next);
    expect(t.remember(t.root, 'f', 20n, FILE, () => ({ tag: 'other' }))).toBe(next);
  });

  it('the successor outlives its lookups while the old nodeid is known, and both go after', () => {
    const t = table();
    const { old, next } = superseded(t, 30n);
    // The kernel drops the lookup of the new nodeid first (revalidation queues a FORGET).
    expect(t.forget(next.nodeid, 1)).toBeUndefined();
    expect(t.get(next.nodeid)).toBe(next);
    expect(t.get(old.nodeid)).toBe(next);
    expect(next.path()).toBe('f');
    // Then the old one: both are gone, and the object is handed back once.
    expect(t.forget(old.nodeid, 1)).toBe(next);
    expect(() => t.exact(old.nodeid)).toThrow();
    expect(() => t.exact(next.nodeid)).toThrow();
    expect(t.find(30n)).toBeUndefined();
    expect(t.root.child('f')).toBeUndefined();
  });

  it('forgetting the old nodeid first leaves the successor as any inode', () => {
    const t = table();
    const { old, next } = superseded(t, 40n);
    expect(t.forget(old.nodeid, 1)).toBeUndefined();
    expect(t.get(next.nodeid)).toBe(next);
    expect(t.forget(next.nodeid, 1)).toBe(next);
    expect(t.size).toBe(1);
  });

  it('an object superseded after its last name was removed stays one whose name was removed', () => {
    const t = table();
    const d = t.remember(t.root, 'd', 60n, DIR, () => ({ tag: 'd' }));
    const f = t.remember(d, 'f', 61n, FILE, () => ({ tag: 'f' }));
    t.unlinkName(d, 'f');
    const next = t.supersede(f);
    expect(next.links).toEqual([]);
    expect(next.unlinkedFrom).toBe(d);
  });

  it('superseded twice: requests on the first nodeid reach the newest', () => {
    const t = table();
    const { old: a, next: b } = superseded(t, 50n);
    const c = t.supersede(b);
    expect(t.get(a.nodeid)).toBe(c);
    expect(t.forget(b.nodeid, 1)).toBeUndefined();
    expect(t.forget(a.nodeid, 1)).toBe(c);
    expect(t.size).toBe(1);
  });

  it('a directory the kernel forgets takes the names below it along: a hard-linked file keeps its other name', () => {
    // The kernel drops a directory's dentry (an interrupted rmdir or rename, a failed
    // revalidation, memory pressure) and with it every dentry below; a file with a hard
    // link elsewhere stays known, and its name in that directory must go with the directory.
    const t = table();
    const d = t.remember(t.root, 'd', 60n, DIR, () => ({ tag: 'd' }));
    const e = t.remember(t.root, 'e', 61n, DIR, () => ({ tag: 'e' }));
    const x = t.remember(d, 'x', 62n, FILE, () => ({ tag: 'x' }));
    expect(t.remember(e, 'y', 62n, FILE, () => ({ tag: 'x' }))).toBe(x);
    expect(t.forget(d.nodeid, 1)).toBe(d);
    expect(x.path()).toBe('e/y');
    expect(x.parent()).toBe(e);
    // Looked up again: a new nodeid for the directory, the same inode for the file, and
    // both of its names work.
    const d2 = t.remember(t.root, 'd', 60n, DIR, () => ({ tag: 'd' }));
    expect(d2).not.toBe(d);
    expect(t.remember(d2, 'x', 62n, FILE, () => ({ tag: 'x' }))).toBe(x);
    expect(x.links.map((l) => `${l.parent.path()}/${l.name}`)).toEqual(['e/y', 'd/x']);
    expect(d2.child('x')).toBe(x);
    // The file still goes when the kernel has forgotten every lookup of it.
    expect(t.forget(x.nodeid, 3)).toBe(x);
    expect(d2.child('x')).toBeUndefined();
    expect(e.child('y')).toBeUndefined();
  });

  it('an inode whose last name goes with a forgotten directory is told while its path works, and is not taken as unlinked', () => {
    const t = table();
    const told: string[] = [];
    t.orphaned = (n) => told.push(n.path());
    const d = t.remember(t.root, 'd', 70n, DIR, () => ({ tag: 'd' }));
    const sub = t.remember(d, 'sub', 71n, DIR, () => ({ tag: 'sub' }));
    const { old, next } = superseded(t, 72n);
    // The kernel forgets the successor's lookup; the old nodeid (an open fd) keeps it.
    t.rename(t.root, 'f', sub, 'f', false);
    expect(t.forget(next.nodeid, 1)).toBeUndefined();
    expect(t.forget(sub.nodeid, 1)).toBe(sub);
    expect(told).toEqual(['d/sub/f']);
    expect(next.links).toEqual([]);
    expect(next.unlinkedFrom).toBeUndefined();
    expect(t.get(old.nodeid)).toBe(next);
    // A name removed through the mount is an unlink.
    const g = t.remember(d, 'g', 73n, FILE, () => ({ tag: 'g' }));
    t.unlinkName(d, 'g');
    expect(g.unlinkedFrom).toBe(d);
    expect(told).toEqual(['d/sub/f']);
    // Linked again (a LINK of an open unlinked file): named once more.
    g.addLink(d, 'g2');
    expect(g.unlinkedFrom).toBeUndefined();
  });

  it('a file unlinked at its last known name keeps its number when it survives under other names, and gives it up otherwise', () => {
    const t = table();
    const a = t.remember(t.root, 'a', 80n, FILE, () => ({ tag: 'a' }));
    t.unlinkName(t.root, 'a', true);
    expect(a.unlinkedFrom).toBe(t.root);
    // Its other name, looked up now: the same inode (the kernel still holds it: an fd).
    expect(t.remember(t.root, 'b', 80n, FILE, () => ({ tag: 'b' }))).toBe(a);
    expect(a.unlinkedFrom).toBeUndefined();
    t.unlinkName(t.root, 'b');
    expect(t.remember(t.root, 'c', 80n, FILE, () => ({ tag: 'c' }))).not.toBe(a);
  });

  it('a file a rename replaced keeps its number when it survives under other names, and gives it up otherwise', () => {
    const t = table();
    const a = t.remember(t.root, 'a', 80n, FILE, () => ({ tag: 'a' }));
    const d = t.remember(t.root, 'd', 83n, DIR, () => ({ tag: 'd' }));
    t.remember(d, 'x', 81n, FILE, () => ({ tag: 'x' }));
    // Moved in from another directory: a was in the rename's new parent.
    t.rename(d, 'x', t.root, 'a', false, true);
    expect(a.unlinkedFrom).toBe(t.root);
    expect(t.remember(t.root, 'b', 80n, FILE, () => ({ tag: 'b' }))).toBe(a);
    t.remember(t.root, 'y', 82n, FILE, () => ({ tag: 'y' }));
    t.rename(t.root, 'y', t.root, 'b', false);
    expect(t.remember(t.root, 'c', 80n, FILE, () => ({ tag: 'c' }))).not.toBe(a);
  });
});
