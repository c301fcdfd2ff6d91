// The README's first command: `strata demo` mounts the demo image with a writable layer,
// runs the image's shell in it, shows the writable layer and `strata diff`'s view of it,
// and leaves no mount or daemon behind.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { expect, it } from 'vitest';
import { STRATA } from '../helpers/mount.js';

const mountsOfDemo = (): string[] => fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes('strata-demo-'));

it('strata demo runs the image shell in the mount, shows the changes, and cleans up', () => {
  const r = spawnSync(STRATA, ['demo'], { encoding: 'utf8', timeout: 120_000 });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  expect(r.stdout).toContain('stratafs demo (busybox)');
  expect(r.stdout).toMatch(/etc\/group {2}whiteout \(char 0\/0\): deleted from the image/);
  const diff = r.stdout.split('from the path index\'s journal)\n')[1]!.split('\n\n')[0]!.split('\n').map((l) => l.trim());
  expect(diff).toEqual(['C /etc', 'D /etc/group', 'C /etc/hostname', 'C /root', 'A /root/notes.txt', 'C /var', 'A /var/log', 'A /var/log/app']);
  expect(r.stdout).toContain('etc/hostname in the image: "demo"');
  expect(r.stdout).toContain('unmounted and cleaned up.');
  expect(mountsOfDemo()).toEqual([]);
});
