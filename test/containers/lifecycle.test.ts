// Container lifecycle through the real CLI: create, ps (table, -q, --format, --json), mount
// at one path at a time, umount by name and by path, rm refused while mounted and forced
// with -f, a daemon killed with SIGKILL shows as stale and the container mounts again.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alive, isMounted, tmpdir, waitFor } from '../helpers/mount.js';
import { Cli, isZombie, makeImage, waitReaped } from './helpers.js';

interface PsRow {
  ID: string;
  Names: string;
  Image: string;
  State: string;
  MountPoint: string;
  Pid: number | null;
}

let work: string;
let cli: Cli;

const ps = (...args: string[]): PsRow[] => JSON.parse(cli.ok(['ps', '--json', ...args])) as PsRow[];
const row = (name: string): PsRow | undefined => ps('-a').find((r) => r.Names === name);

beforeAll(async () => {
  work = tmpdir('containers-life');
  cli = new Cli(path.join(work, 'store'));
  await makeImage(cli.root, [{ 'etc/hostname': 'box\n', 'bin/sh': 'not really\n' }], 'tiny:1');
});

afterAll(async () => {
  await cli?.cleanup();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe('container lifecycle', () => {
  it('create gives an id and a name; names are unique; ps lists it unmounted only with -a', () => {
    const id = cli.ok(['create', '--name', 'web', 'tiny:1']).trim();
    expect(id).toMatch(/^[0-9a-f]{64}$/);
    expect(fs.statSync(cli.upper(id)).isDirectory()).toBe(true);
    expect(cli.fails(['create', '--name', 'web', 'tiny:1'])).toMatch(/name "web" is already in use/);
    expect(cli.fails(['create', '--name', 'bad/name', 'tiny:1'])).toMatch(/invalid container name/);
    expect(cli.fails(['create', 'nosuch:image'])).toMatch(/No such image/);
    const anon = cli.ok(['create', 'tiny:1']).trim();
    expect(row('web')).toMatchObject({ ID: id.slice(0, 12), Image: 'tiny:1', State: 'unmounted', MountPoint: '' });
    expect(ps()).toEqual([]);
    expect(cli.ok(['ps', '-a', '-q']).split('\n').filter(Boolean).sort()).toEqual([id.slice(0, 12), anon.slice(0, 12)].sort());
    expect(cli.ok(['ps', '-a', '--no-trunc', '--format', '{{.ID}} {{.State}}'])).toContain(`${id} unmounted\n`);
    const table = cli.ok(['ps', '-a']).split('\n');
    expect(table[0]).toMatch(/^CONTAINER ID\s+IMAGE\s+CREATED\s+STATE\s+MOUNT POINT\s+NAMES$/);
    cli.ok(['rm', anon.slice(0, 10)]);
    expect(row('web')).toBeDefined();
    expect(ps('-a')).toHaveLength(1);
  });

  it('mounts at one path at a time; umount by name or by path', async () => {
    const m1 = path.join(work, 'm1');
    const m2 = path.join(work, 'm2');
    const pid = cli.mount('web', m1);
    expect(fs.readFileSync(path.join(m1, 'etc/hostname'), 'utf8')).toBe('box\n');
    expect(ps()).toMatchObject([{ Names: 'web', State: 'mounted', MountPoint: m1, Pid: pid }]);
    fs.mkdirSync(m2);
    expect(cli.fails(['mount', 'web', m2])).toMatch(/already mounted at .*m1: a container is mounted at one path at a time/);
    expect(isMounted(m2)).toBe(false);
    // Nor over another mount.
    const other = cli.ok(['create', '--name', 'other', 'tiny:1']).trim();
    expect(cli.fails(['mount', 'other', m1])).toMatch(/already a mount point/);
    cli.ok(['rm', other]);
    expect(cli.ok(['umount', 'web'])).toBe('');
    expect(isMounted(m1)).toBe(false);
    expect(alive(pid) && !isZombie(pid)).toBe(false);
    expect(row('web')!.State).toBe('unmounted');
    expect(cli.fails(['umount', 'web'])).toMatch(/container web is not mounted/);
    // The raw path form unmounts a container's mount too; its record then names nothing.
    const pid2 = cli.mount('web', m2);
    cli.ok(['umount', m2]);
    await waitFor(() => !alive(pid2) || isZombie(pid2), 5000, 'daemon exit');
    expect(row('web')!.State).toBe('unmounted');
  });

  it('rm is refused while mounted; rm -f unmounts and removes', async () => {
    const id = cli.ok(['create', '--name', 'doomed', 'tiny:1']).trim();
    const mnt = path.join(work, 'm3');
    const pid = cli.mount('doomed', mnt);
    fs.writeFileSync(path.join(mnt, 'written'), 'x');
    expect(cli.fails(['rm', 'doomed'])).toMatch(/cannot remove a mounted container doomed.*strata umount doomed.*-f/);
    expect(row('doomed')!.State).toBe('mounted');
    expect(cli.ok(['rm', '-f', 'doomed'])).toBe('doomed\n');
    expect(isMounted(mnt)).toBe(false);
    await waitFor(() => !alive(pid) || isZombie(pid), 5000, 'daemon exit');
    expect(row('doomed')).toBeUndefined();
    expect(fs.existsSync(path.dirname(cli.upper(id)))).toBe(false);
    expect(cli.fails(['rm', 'doomed'])).toMatch(/No such container: doomed/);
  });

  it('a killed daemon leaves the container stale; mounting again clears it and works', async () => {
    const mnt = path.join(work, 'm4');
    const pid = cli.mount('web', mnt);
    fs.writeFileSync(path.join(mnt, 'kept'), 'survives the daemon\n');
    process.kill(pid, 'SIGKILL');
    await waitFor(() => row('web')!.State === 'stale', 5000, 'stale state');
    expect(ps()).toMatchObject([{ Names: 'web', State: 'stale', MountPoint: mnt }]);
    // The path index will not hand the upper's journal to a new daemon while the old pid
    // exists, even as a zombie: wait for init to reap it.
    await waitReaped(pid);
    expect(row('web')!.State).toBe('stale');
    // diff works on the dead daemon's container: the index repairs the journal from the upper dir.
    expect(cli.ok(['diff', 'web'])).toBe('A /kept\n');
    const pid2 = cli.mount('web', mnt);
    expect(row('web')).toMatchObject({ State: 'mounted', MountPoint: mnt, Pid: pid2 });
    expect(fs.readFileSync(path.join(mnt, 'kept'), 'utf8')).toBe('survives the daemon\n');
    expect(cli.ok(['diff', 'web'])).toBe('A /kept\n');
    // Killed again: umount clears the stale mount, rm works without -f.
    const again = row('web')!.Pid!;
    process.kill(again, 'SIGKILL');
    await waitReaped(again);
    expect(row('web')!.State).toBe('stale');
    expect(cli.run(['umount', 'web']).stderr).toMatch(/cleared the stale mount/);
    expect(isMounted(mnt)).toBe(false);
    expect(row('web')!.State).toBe('unmounted');
    cli.ok(['rm', 'web']);
    expect(ps('-a')).toEqual([]);
  });
});
