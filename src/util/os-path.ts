// Paths inside the filesystem are byte strings held as latin1 JS strings (see fuse/wire.ts).
// Node's fs takes a string as UTF-8, so anything beyond ASCII goes to it as a Buffer.

const NON_ASCII = /[^\x00-\x7f]/;

export function osPath(p: string): string | Buffer {
  return NON_ASCII.test(p) ? Buffer.from(p, 'latin1') : p;
}

/** The relative path ('a/b', '' for the root) of `name` in directory `dir`: union, layer and archive paths alike. */
export function joinRel(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}

