// The upper-change journal on real mounts: scripted changes give exactly docker's A/C/D
// lines; the journal always agrees with a rebuild from the upper dir (`strata index check`);
// a daemon killed mid-burst, a deleted or corrupted index file, all end in a correct mount
// and a clean check after remounting.

import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { settleMount } from '../../src/containers/mount-state.js';
import { knownSound } from '../../src/index/known-sound.js';
import { snapshotTree } from '../../src/util/tree.js';
import { buildStack } from '../helpers/layers.js';
import { alive, isMounted, mountWith, STRATA, tmpdir, waitFor, type Mounted } from '../helpers/mount.js';
import { STD } from '../union/stacks.js';
import { journalLines } from './helpers.js';

const root = tmpdir('index-journal');
const mounts: Mounted[] = [];
afterEach(async () => {
  for (const m of mounts.splice(0).reverse()) await m.cleanup();
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

interface Env {
  lowers: string[];
  upper: string;
  work: string;
  mnt: string;
  index: string;
}

let n = 0;
function setup(): Env {
  const base = path.join(root, `t${++n}`);
  const { lowers } = buildStack(path.join(base, 'lowers'), STD, 'overlay');
  const e = { lowers, upper: `${base}/upper`, work: `${base}/work`, mnt: `${base}/mnt`, index: `${base}/work/stratafs-index.db` };
  for (const d of [e.upper, e.work, e.mnt]) fs.mkdirSync(d);
  return e;
}

function mount(e: Env, extraO = ''): Mounted {
  const m = mountWith(['mount', '-o', `lowerdir=${e.lowers.join(':')},upperdir=${e.upper},workdir=${e.work}${extraO}`], e.mnt);
  mounts.push(m);
  return m;
}

async function umount(m: Mounted): Promise<void> {
  expect(spawnSync(STRATA, ['umount', m.mnt]).status).toBe(0);
  await waitFor(() => !alive(m.pid), 5000, 'daemon exit');
}

function strata(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(STRATA, args, { encoding: 'utf8' });
}

function changes(e: Env): string[] {
  // A live daemon writes its records within milliseconds; FSYNCDIR makes it write them now.
  if (isMounted(e.mnt)) settleMount(e.mnt);
  return recorded(e);
}

/** What the journal holds right now, without asking a live daemon to write what it holds back. */
function recorded(e: Env): string[] {
  return journalLines(e.index, e.upper);
}

describe('upper-change journal', () => {
  it('strata index stats tells a journal its daemon stopped writing apart from a complete one', async () => {
    const e = setup();
    const m = mount(e);
    fs.writeFileSync(`${e.mnt}/data/new.txt`, 'new');
    await umount(m);
    const stats = (): string => strata('index', 'stats', '--index', e.index).stdout;
    expect(stats()).toMatch(/\bclosed\s*$/m);
    const db = new Database(e.index);
    db.prepare('UPDATE uppers SET broken = ?').run('SQLITE_FULL: database or disk is full');
    db.close();
    expect(stats()).toContain('closed, journal incomplete (SQLITE_FULL: database or disk is full): rebuilt at the next mount');
    mounts.push(mount(e));
    expect(stats()).not.toContain('journal incomplete');
  });

  it('writes records after the reply, at once on an fsync of a mount directory (strata diff) and at unmount', async () => {
    const e = setup();
    // Held back ten minutes unless asked: only FSYNCDIR or unmount can write them.
    const m = mount(e, ',journal_delay_ms=600000');
    fs.writeFileSync(`${e.mnt}/data/new.txt`, 'new');
    fs.chmodSync(`${e.mnt}/etc/hosts`, 0o600);
    expect(recorded(e)).toEqual([]);
    settleMount(e.mnt);
    expect(recorded(e)).toEqual(['C /data', 'A /data/new.txt', 'C /etc', 'C /etc/hosts']);
    fs.unlinkSync(`${e.mnt}/data/b.txt`);
    fs.renameSync(`${e.mnt}/data/new.txt`, `${e.mnt}/data/new2.txt`);
    // Lower objects moving leave whiteouts: the records of both ends are written without
    // reading the upper dir again, and must still agree with it (index check below).
    fs.renameSync(`${e.mnt}/data/a.txt`, `${e.mnt}/data/a2.txt`);
    fs.renameSync(`${e.mnt}/link-to-a`, `${e.mnt}/data/link`);
    fs.renameSync(`${e.mnt}/data/a2.txt`, `${e.mnt}/data/a3.txt`);
    expect(recorded(e)).not.toContain('D /data/b.txt');
    await umount(m);
    expect(recorded(e)).toEqual(['C /data', 'D /data/a.txt', 'A /data/a3.txt', 'D /data/b.txt', 'A /data/link', 'A /data/new2.txt', 'C /etc', 'C /etc/hosts', 'D /link-to-a']);
    expect(strata('index', 'check', '--index', e.index).status).toBe(0);
  });

  it('a directory rename recorded after its old parent became a file writes its records and keeps the journal going', async () => {
    const e = setup();
    const m = mount(e, ',journal_delay_ms=600000');
    fs.mkdirSync(`${e.mnt}/p/q`, { recursive: true });
    fs.writeFileSync(`${e.mnt}/p/q/f`, 'f');
    fs.renameSync(`${e.mnt}/p/q`, `${e.mnt}/moved`);
    // The rename's record reads the old name when it is written: its parent is a file by then.
    fs.rmdirSync(`${e.mnt}/p`);
    fs.writeFileSync(`${e.mnt}/p`, 'now a file');
    settleMount(e.mnt);
    expect(strata('index', 'stats', '--index', e.index).stdout).not.toContain('journal incomplete');
    fs.writeFileSync(`${e.mnt}/later`, 'still recorded');
    await umount(m);
    expect(recorded(e)).toEqual(['A /later', 'A /moved', 'A /moved/f', 'A /p']);
    expect(strata('index', 'check', '--index', e.index).status).toBe(0);
  });

  it('a record that fails takes no other of its batch with it; readers of the live mount then go by the upper dir, and the next mount repairs the journal', async () => {
    const e = setup();
    const m = mount(e, ',journal_delay_ms=600000');
    // A trigger (written from outside, as a damaged or full index would fail) refuses one record.
    const db = new Database(e.index);
    db.exec(`CREATE TRIGGER refuse BEFORE INSERT ON changes WHEN NEW.path = '/data/bad.txt' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`);
    db.close();
    for (const f of ['good1.txt', 'bad.txt', 'good2.txt']) fs.writeFileSync(`${e.mnt}/data/${f}`, f);
    settleMount(e.mnt);
    // The rest of its batch went in; the daemon marked its journal incomplete and stopped recording.
    const db2 = new Database(e.index);
    expect(db2.prepare('SELECT path FROM changes ORDER BY path').pluck().all()).toEqual(['/data', '/data/good1.txt', '/data/good2.txt']);
    expect(db2.prepare('SELECT broken FROM uppers').pluck().get()).toMatch(/refused by the test/);
    db2.exec('DROP TRIGGER refuse');
    db2.close();
    const all = ['C /data', 'A /data/bad.txt', 'A /data/good1.txt', 'A /data/good2.txt'];
    // `strata diff` of the live mount goes by the upper dir, and `strata index check` says why it differs.
    expect(changes(e)).toEqual(all);
    const live = strata('index', 'check', '--index', e.index);
    expect(live.status).toBe(1);
    expect(live.stdout).toMatch(/the journal is incomplete: its running daemon stopped recording after a failed write/);
    await umount(m);
    // Left marked unfinished: rebuilt from the upper dir by the next mount.
    await umount(mount(e));
    expect(recorded(e)).toEqual(all);
    expect(strata('index', 'check', '--index', e.index).status).toBe(0);
  });

  it('records scripted changes as docker diff shows them, and agrees with the upper dir', async () => {
    const e = setup();
    const m = mount(e);
    const r = e.mnt;
    fs.writeFileSync(`${r}/data/new.txt`, 'new');
    fs.appendFileSync(`${r}/data/a.txt`, 'more');
    fs.chmodSync(`${r}/etc/hosts`, 0o600);
    fs.unlinkSync(`${r}/data/b.txt`);
    fs.rmSync(`${r}/tree`, { recursive: true });
    fs.rmdirSync(`${r}/empty`);
    fs.mkdirSync(`${r}/empty`);
    fs.rmSync(`${r}/opq`, { recursive: true });
    fs.mkdirSync(`${r}/opq`);
    fs.renameSync(`${r}/deep`, `${r}/deep2`);
    fs.linkSync(`${r}/data/c.txt`, `${r}/data/c-link`);
    fs.symlinkSync('data/a.txt', `${r}/sl`);
    fs.writeFileSync(`${r}/gone-again`, 'x');
    fs.unlinkSync(`${r}/gone-again`);
    fs.mkdirSync(`${r}/newdir/sub`, { recursive: true });
    fs.writeFileSync(`${r}/newdir/sub/f`, 'f');
    fs.renameSync(`${r}/newdir`, `${r}/moved`);
    const expected = [
      'A /deep2',
      'A /deep2/a',
      'A /deep2/a/b',
      'A /deep2/a/b/c',
      'A /deep2/a/b/c/d',
      'A /deep2/a/b/c/d/file',
      'A /moved',
      'A /moved/sub',
      'A /moved/sub/f',
      'A /sl',
      'C /data',
      'A /data/c-link',
      'C /data/a.txt',
      'D /data/b.txt',
      'C /data/c.txt',
      'A /data/new.txt',
      'D /deep',
      'C /empty',
      'C /etc',
      'C /etc/hosts',
      'C /opq',
      'D /opq/new1',
      'D /tree',
    ].sort((a, b) => (a.slice(2) < b.slice(2) ? -1 : 1));
    // While mounted: readers see what the daemon recorded.
    expect(changes(e)).toEqual(expected);
    await umount(m);
    expect(changes(e)).toEqual(expected);
    const check = strata('index', 'check', '--index', e.index);
    expect(check.stdout).toBe('');
    expect(check.status).toBe(0);
  });

  it('strata index check lists what changed behind its back, and rebuild repairs it', async () => {
    const e = setup();
    const m = mount(e);
    fs.writeFileSync(`${e.mnt}/data/x`, 'x');
    await umount(m);
    fs.writeFileSync(`${e.upper}/sneaked-in`, 'x');
    fs.chmodSync(`${e.lowers[0]}/data/d.txt`, 0o600);
    const check = strata('index', 'check', '--index', e.index);
    expect(check.status).toBe(1);
    expect(check.stdout).toContain(`upper ${e.upper}: A /sneaked-in is on disk, not in the journal`);
    expect(check.stdout).toMatch(new RegExp(`layer ${e.lowers[0]}: /data/d.txt: mode index=33188 disk=33152`));
    expect(strata('index', 'rebuild', '--index', e.index).status).toBe(0);
    expect(strata('index', 'check', '--index', e.index).status).toBe(0);
    expect(changes(e)).toContain('A /sneaked-in');
  });

  it('strata index rebuild is refused while a daemon holds the index (its mount reads the rows a rebuild replaces), and works once it is unmounted', async () => {
    const e = setup();
    const m = mount(e);
    const r = strata('index', 'rebuild', '--index', e.index);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(`in use by the stratafs daemon with pid ${m.pid} (upper dir ${fs.realpathSync(e.upper)})`);
    // Names the kernel has not asked for yet are still found through the index's rows.
    expect(fs.readdirSync(`${e.mnt}/data`)).toContain('d.txt');
    expect(fs.statSync(`${e.mnt}/data/d.txt`).isFile()).toBe(true);
    await umount(m);
    expect(strata('index', 'rebuild', '--index', e.index).status).toBe(0);
    expect(strata('index', 'check', '--index', e.index).status).toBe(0);
  });

  it('a second daemon on the same upper dir is refused while the first runs', () => {
    const e = setup();
    mount(e);
    const mnt2 = `${e.mnt}2`;
    fs.mkdirSync(mnt2);
    const r = spawnSync(STRATA, ['mount', '-o', `lowerdir=${e.lowers.join(':')},upperdir=${e.upper},workdir=${e.work}`, mnt2], { encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    // Refused before the index is touched: the first daemon holds the upper dir (flock).
    expect(r.stderr).toContain(`${e.upper}: in use by another stratafs mount (EBUSY)`);
    expect(isMounted(mnt2)).toBe(false);
  });

  it('kill -9 during a burst of writes: the remount repairs the journal and check is clean', async () => {
    const e = setup();
    const m = mount(e);
    // A writer in another process, so the burst is under way when the daemon dies.
    const burst = spawnSync(
      'sh',
      ['-c', `i=0; while [ $i -lt 400 ]; do echo $i > '${e.mnt}/data/f'$i; mv '${e.mnt}/data/f'$i '${e.mnt}/tree/x/g'$i 2>/dev/null; rm -f '${e.mnt}/data/a.txt'; i=$((i+1)); done & sleep 0.4; kill -9 ${m.pid}; wait`],
      { encoding: 'utf8', timeout: 30_000 },
    );
    expect(burst.error).toBeUndefined();
    await waitFor(() => !alive(m.pid), 5000, 'daemon death');
    spawnSync('umount', ['-l', e.mnt]);
    const m2 = mount(e);
    const seen = snapshotTree(e.mnt);
    expect(Object.keys(seen).some((p) => p.startsWith('tree/x/g'))).toBe(true);
    expect(fs.readFileSync(m2.log, 'utf8')).toMatch(/journal rebuilt from the upper dir: its last daemon died/);
    await umount(m2);
    const check = strata('index', 'check', '--index', e.index);
    expect(check.stdout).toBe('');
    expect(check.status).toBe(0);
  });

  it.each(['deleted', 'corrupted', 'older'])('a %s index file is rebuilt at mount, with a warning, and the mount is right', async (how) => {
    const e = setup();
    let m = mount(e);
    fs.writeFileSync(`${e.mnt}/data/new.txt`, 'new');
    fs.unlinkSync(`${e.mnt}/data/b.txt`);
    const before = snapshotTree(e.mnt);
    const want = changes(e);
    await umount(m);
    if (how === 'deleted') for (const s of ['', '-wal', '-shm']) fs.rmSync(e.index + s, { force: true });
    else if (how === 'older') {
      // As an index of schema version 1 (no attribute columns) says of itself.
      const db = new Database(e.index);
      db.pragma('user_version = 1');
      db.close();
    } else {
      const fd = fs.openSync(e.index, 'r+');
      fs.writeSync(fd, Buffer.alloc(4096, 0x5a), 0, 4096, 0);
      fs.closeSync(fd);
    }
    m = mount(e);
    expect(snapshotTree(e.mnt)).toEqual(before);
    // The damaged file is kept aside for a post-mortem (the warning went to the mount command's stderr).
    if (how === 'corrupted') expect(fs.readdirSync(e.work).some((f) => f.startsWith('stratafs-index.db.broken-'))).toBe(true);
    if (how === 'older') expect(fs.readdirSync(e.work).some((f) => f.startsWith('stratafs-index.db.old-'))).toBe(true);
    expect(fs.readFileSync(m.log, 'utf8')).toMatch(/journal rebuilt from the upper dir/);
    await umount(m);
    // The daemon's clean close left the file known sound: the next open reads no page to check it.
    expect(knownSound(e.index)).toBe(true);
    expect(changes(e)).toEqual(want);
    expect(strata('index', 'check', '--index', e.index).status).toBe(0);
  });
});
