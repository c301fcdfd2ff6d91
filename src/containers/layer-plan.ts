// The container layer as OCI layer tar entries. The upper dir on disk is the truth: it is
// walked (names sorted, depth first) and its overlayfs records become OCI ones:
//   char device 0/0                 -> dir/.wh.NAME
//   trusted.overlay.opaque=y        -> dir/ and dir/.wh..wh..opq
//   trusted.overlay.redirect (a lower dir renamed here)
//                                   -> dir/, dir/.wh..wh..opq and the dir's whole merged
//                                      content: the upper holds only a reference to it
//   trusted.overlay.metacopy (metadata-only copy-up)
//                                   -> the file with the upper's metadata and the lower's data
// Those two references are resolved by the union's own resolver (view.ts), never here.
// The root is an entry ("./") so the committed layer carries the container root's mode,
// owner and times.

import * as fs from 'node:fs';
import type { Inode } from '../fs/inode.js';
import { lstatHostOrThrow } from '../fs/attr.js';
import { inoOf } from '../union/resolve.js';
import { isMetacopy, isOciMarker, isOpaqueDir, isWhiteout, redirectOf } from '../union/markers.js';
import type { UNode } from '../union/node.js';
import { log } from '../util/log.js';
import { joinRel } from '../util/os-path.js';
import { addMergedBelow } from './rootfs-plan.js';
import { type TarPlan } from './tar-plan.js';
import type { ContainerView } from './view.js';

/** A directory node resolved only when something below it needs the resolver. */
type LazyNode = () => Inode<UNode>;

function lazyChild(view: ContainerView, parent: LazyNode, name: string): LazyNode {
  let node: Inode<UNode> | undefined;
  return () => (node ??= view.dirNode(parent(), name));
}

export function planLayer(plan: TarPlan, view: ContainerView): void {
  const { stack } = view;
  const walk = (rel: string, node: LazyNode): void => {
    const dir = stack.upperPath(rel);
    let names: string[];
    try {
      names = fs.readdirSync(dir, { encoding: 'latin1' }).sort();
    } catch (e) {
      throw new Error(`${stack.upperPathString(rel)}: cannot list the container layer: ${(e as NodeJS.ErrnoException).code}`);
    }
    for (const name of names) {
      const childRel = joinRel(rel, name);
      const p = stack.upperPath(childRel);
      const st = lstatHostOrThrow(p);
      if (isWhiteout(st)) {
        plan.whiteout(rel, name);
        continue;
      }
      if (isOciMarker(name)) {
        // Made through the mount (the upper's format has no such markers), but in a layer
        // tar the name would delete something instead.
        log.warn({ path: stack.upperPathString(childRel) }, 'a name starting with .wh. cannot go into a layer tar; left out');
        continue;
      }
      const ino = inoOf(stack, st, p);
      if ((st.mode & fs.constants.S_IFMT) === fs.constants.S_IFDIR) {
        const child = lazyChild(view, node, name);
        plan.add(childRel, st, p, undefined, ino);
        if (redirectOf(p) !== undefined) {
          plan.opaque(childRel);
          addMergedBelow(plan, view, child(), childRel);
        } else {
          if (isOpaqueDir(p, stack.upperPathString(childRel))) plan.opaque(childRel);
          walk(childRel, child);
        }
      } else if ((st.mode & fs.constants.S_IFMT) === fs.constants.S_IFREG && isMetacopy(p)) {
        const r = view.child(node(), name);
        plan.add(childRel, st, p, view.dataPath(childRel, r), ino);
      } else plan.add(childRel, st, p, p, ino);
    }
  };
  const rootSt = lstatHostOrThrow(stack.upperPath(''));
  plan.add('.', rootSt, stack.upperPath(''), undefined, inoOf(stack, rootSt, stack.upperPath('')));
  walk('', () => view.root());
}
