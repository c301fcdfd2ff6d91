// Paths inside the filesystem are byte strings held as latin1 JS strings (see fuse/wire.ts).
// Node's fs takes a string as UTF-8, so anything beyond ASCII goes to it as a Buffer.

import * as fs from 'node:fs';
import * as path from 'node:path';

const NON_ASCII = /[^\x00-\x7f]/;

export function osPath(p: string): string | Buffer {
  return NON_ASCII.test(p) ? Buffer.from(p, 'latin1') : p;
}

/** The relative path ('a/b', '' for the root) of `name` in directory `dir`: union, layer and archive paths alike. */
export function joinRel(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}

/**
 * The canonical path of a mount point as the mount table shows it, without touching the
 * mount point itself: a dead FUSE mount answers ENOTCONN, so only its parent is resolved.
 * (Here rather than in fuse/: a mount command names it without loading the FUSE layer.)
 */
export function mountpointPath(p: string): string {
  const abs = path.resolve(p);
  if (abs === '/') return abs;
  let parent: string;
  try {
    parent = fs.realpathSync(path.dirname(abs));
  } catch {
    return abs;
  }
  return path.join(parent, path.basename(abs));
}
