// The names of hard-linked files in a lower layer, by inode number, so that copying up one
// name can link the others to the same upper copy. Built once per layer on first need by
// walking it (lower layers never change), or answered by the path index when there is one.

import * as fs from 'node:fs';
import { joinRel, osPath } from '../util/os-path.js';
import type { LayerStack } from './stack.js';

export class LinkNames {
  private readonly byLayer = new Map<number, Map<bigint, string[]>>();

  constructor(private readonly stack: LayerStack) {}

  /** Every path in `layer` that is a name of the file with inode `ino`. */
  names(layer: number, ino: bigint): string[] {
    if (this.stack.view) return this.stack.view.linkNames(layer, Number(ino));
    let m = this.byLayer.get(layer);
    if (!m) {
      m = this.scan(layer);
      this.byLayer.set(layer, m);
    }
    return m.get(ino) ?? [];
  }

  private scan(layer: number): Map<bigint, string[]> {
    const m = new Map<bigint, string[]>();
    const root = this.stack.lowers[layer]!;
    const walk = (rel: string): void => {
      const dir = rel === '' ? root : `${root}/${rel}`;
      for (const d of fs.readdirSync(osPath(dir), { encoding: 'latin1', withFileTypes: true })) {
        const name = d.name;
        const path = joinRel(rel, name);
        if (d.isDirectory()) walk(path);
        else if (d.isFile()) {
          const st = fs.lstatSync(osPath(`${root}/${path}`), { bigint: true });
          if (st.nlink > 1n) m.set(st.ino, [...(m.get(st.ino) ?? []), path]);
        }
      }
    };
    walk('');
    return m;
  }
}
