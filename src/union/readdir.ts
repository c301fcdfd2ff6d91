// The merged listing of a directory: upper entries first, then each merged lower dir
// top-down; whiteouts (char 0/0 and `.wh.NAME`) hide names below them and are never shown,
// nor are `.wh.` markers themselves. The first occurrence of a name wins. An indexed stack's
// lower part comes from the path index in one query (the layers are not listed on disk).

import * as fs from 'node:fs';
import type { DirEntry } from '../fs/api.js';
import type { Inode } from '../fs/inode.js';
import { lstatHost } from '../fs/attr.js';
import { F_WHITEOUT } from '../index/schema.js';
import type { StackView } from '../index/stack-view.js';
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
      const st = lstatHost(p);
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
  if (stack.view && node.data.ix !== undefined) indexedLowers(stack, stack.view, node.data, seen, out);
  else for (const ref of node.data.lowers) scan(stack.lowerPathString(ref), false);
  return out;
}

/**
 * The lower part of a listing from the path index: every name under the directory in its
 * merged layers, shown as its topmost row there decides (a whiteout row hides it).
 */
function indexedLowers(stack: LayerStack, view: StackView, dir: UNode, seen: Set<string>, out: DirEntry[]): void {
  if (dir.lowers.length === 0) return;
  const merged = new Set(dir.lowers.map((r) => r.layer));
  for (const [name, found] of view.children(dir.ix!)) {
    if (seen.has(name)) continue;
    const top = found.rows.find((r) => merged.has(r.layer));
    if (!top || top.flags & F_WHITEOUT) continue;
    out.push({ name, ino: stack.unionIno(stack.lowerDevs[top.layer]!, BigInt(top.ino)), mode: top.mode });
  }
}
