// The merged tree of a container (or a subtree of it) as tar entries, exactly as the mount
// shows it: names from the union's merged listing, each looked up by the union's resolver,
// metadata from the object the union shows, content from where the union reads it. Export
// writes the whole tree this way; commit writes renamed lower dirs this way.

import { constants } from 'node:fs';
import type { Inode } from '../fs/inode.js';
import type { UNode } from '../union/node.js';
import { joinRel } from '../util/os-path.js';
import { type TarPlan } from './tar-plan.js';
import type { ContainerView } from './view.js';

/** Everything below the directory `node` (at union path `rel`), depth first, names sorted. */
export function addMergedBelow(plan: TarPlan, view: ContainerView, node: Inode<UNode>, rel: string): void {
  for (const name of view.names(node)) {
    const childRel = joinRel(rel, name);
    const r = view.child(node, name);
    plan.add(childRel, r.st, view.metaPath(childRel, r), view.dataPath(childRel, r), r.ino);
    if ((r.st.mode & constants.S_IFMT) === constants.S_IFDIR) addMergedBelow(plan, view, view.dirNode(node, name, r), childRel);
  }
}

/** strata export: the whole merged tree, root entry first, no whiteouts (docker export's flat tar). */
export function planRootfs(plan: TarPlan, view: ContainerView): void {
  const root = view.resolveRoot();
  plan.add('.', root.st, view.metaPath('', root), undefined, root.ino);
  addMergedBelow(plan, view, view.root(), '');
}
