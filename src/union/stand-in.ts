// Minimal inodes for paths the kernel has not looked up through us (copy-up's walk to
// hard-link siblings, a rename or rmdir target): enough for resolve, readdir and copy-up,
// which need only data, type, path and parent. Never entered in the inode table, so no
// child of a stand-in is known to the kernel either.

import type { Inode } from '../fs/inode.js';
import type { UNode } from './node.js';

export function rootStandIn(data: UNode): Inode<UNode> {
  return { data, nodeid: 1, isRoot: true, type: 0o040000, path: () => '', childPath: (n: string) => n, parent: () => undefined, child: () => undefined } as unknown as Inode<UNode>;
}

export function standIn(parent: Inode<UNode>, name: string, data: UNode, type = 0): Inode<UNode> {
  const path = parent.childPath(name);
  return { data, type, nodeid: -1, isRoot: false, path: () => path, childPath: (n: string) => `${path}/${n}`, parent: () => parent, child: () => undefined } as unknown as Inode<UNode>;
}
