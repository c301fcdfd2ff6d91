// access(2) against the mode bits, for filesystems that leave the check to the bridge.
// The kernel checks permissions itself when mounted with default_permissions (our default),
// so this serves only mounts without it. Supplementary groups are not known to FUSE requests.

import { fsError } from '../fuse/errors.js';
import type { Attr, Context } from './api.js';

const R_OK = 4;
const W_OK = 2;
const X_OK = 1;

export function checkAccess(a: Attr, ctx: Context, mask: number): void {
  if (mask === 0) return; // F_OK: the inode exists, or getattr would have failed
  if (ctx.uid === 0) {
    // root reads and writes anything; it executes only what someone may execute.
    if (mask & X_OK && (a.mode & 0o170000) !== 0o040000 && (a.mode & 0o111) === 0) throw fsError('EACCES');
    return;
  }
  const shift = ctx.uid === a.uid ? 6 : ctx.gid === a.gid ? 3 : 0;
  const bits = (a.mode >>> shift) & 7;
  if ((mask & R_OK && !(bits & 4)) || (mask & W_OK && !(bits & 2)) || (mask & X_OK && !(bits & 1))) throw fsError('EACCES');
}
