// Reading all xattrs of an object without following a symlink: the names sorted (a stable
// order for archives and comparisons), the values as bytes. A filesystem without xattr
// support has none.

import { native } from '../native/binding.js';

/** [name, value] of every xattr of p that `keep` accepts, sorted by name. */
export function readXattrs(p: string | Buffer, keep: (name: string) => boolean = () => true): Array<[string, Buffer]> {
  let names: string[];
  try {
    names = native.llistxattr(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTSUP' || code === 'EOPNOTSUPP') return [];
    throw e;
  }
  return names
    .sort()
    .filter(keep)
    .map((n) => [n, native.lgetxattr(p, n)]);
}
