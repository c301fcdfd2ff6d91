// The merged listing of a directory: upper entries first, then each merged lower dir
// top-down; whiteouts (char 0/0 and `.wh.NAME`) hide names below them and are never shown,
// nor are `.wh.` markers themselves. The first occurrence of a name wins.

import * as fs from 'node:fs';
import type { DirEntry } from '../fs/api.js';
import type { Inode } from '../fs/inode.js';
import { lstatOrUndefined } from '../host/files.js';
import { osPath } from '../util/os-path.js';
import { isOciMarker, isWhiteout, OCI_OPAQUE, OCI_WHITEOUT_PREFIX } from './markers.js';
import type { UNode } from './node.js';
import { inoOf } from './resolve.js';
import type { LayerStack } from './stack.js';

export function mergedEntries(stack: LayerStack, node: Inode<UNode>): DirEntry[] {
  const seen = new Set<string>();
  const out: DirEntry[] = [];
  const scan = (dir: string, upper: boolean): void => {
    const names = fs.readdirSync(osPath(dir), { encoding: 'latin1' });
    for (const n of names) {
      if (seen.has(n) || (!upper && isOciMarker(n))) continue;
      seen.add(n);
      const p = osPath(`${dir}/${n}`);
      const st = lstatOrUndefined(p);
      if (!st || isWhiteout(st)) continue;
      out.push({ name: n, ino: inoOf(stack, st, upper ? p : undefined), mode: Number(st.mode) });
    }
    // A layer's `.wh.NAME` hides NAME in the layers below it, not a NAME the same layer
    // re-creates (OCI puts the whiteout and the new entry in one layer to replace a dir).
    if (!upper) {
      for (const n of names) if (isOciMarker(n) && n !== OCI_OPAQUE) seen.add(n.slice(OCI_WHITEOUT_PREFIX.length));
    }
  };
  if (node.data.upper && stack.upper) scan(stack.upperPathString(node.path()), true);
  for (const ref of node.data.lowers) scan(stack.lowerPathString(ref), false);
  return out;
}
