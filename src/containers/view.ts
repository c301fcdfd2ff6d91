// A container's merged tree read in this process through the union's own resolver
// (resolve.ts, readdir.ts): what commit needs for the objects its upper dir only refers
// to (a renamed lower dir, a metadata-only copy-up), and what export walks. Nothing is
// written to the container's dirs: LayerStack wants a work dir and empties its scratch
// subdir, so the view gets a private one under the store's tmp/ (same filesystem), and a
// daemon serving the container at the same time keeps its own.

import * as fs from 'node:fs';
import type { Inode } from '../fs/inode.js';
import type { ContainerRecord, ImageStore } from '../store/images.js';
import { removeTree } from '../store/paths.js';
import { lowerData, type UNode } from '../union/node.js';
import { mergedEntries } from '../union/readdir.js';
import { resolveChild, resolveRoot, type Resolved } from '../union/resolve.js';
import { LayerStack } from '../union/stack.js';
import { rootStandIn, standIn } from '../union/stand-in.js';
import { ContainerDirs } from './layout.js';
import { mountStatus, settleMount } from './mount-state.js';

const S_IFDIR = 0o040000;

export class ContainerView {
  readonly stack: LayerStack;
  readonly dirs: ContainerDirs;
  private rootNode: Inode<UNode> | undefined;

  private constructor(
    store: ImageStore,
    readonly container: ContainerRecord,
    private readonly scratch: string,
  ) {
    const image = store.image(container.imageId);
    if (!image) throw new Error(`container ${container.name}: its image ${container.imageId} is gone from the store`);
    this.dirs = new ContainerDirs(store.paths, container.id);
    if (!fs.existsSync(this.dirs.upper)) throw new Error(`${this.dirs.upper}: container layer is missing (ENOENT)`);
    const lowers = store.lowerDirs(image);
    this.stack = new LayerStack({ lowers, upper: this.dirs.upper, work: scratch });
  }

  static open(store: ImageStore, container: ContainerRecord): ContainerView {
    // A daemon serving the container may have copies landing (their marks say "data
    // below" until then, src/union/landing.ts): read the upper dir once they have landed.
    const m = mountStatus(new ContainerDirs(store.paths, container.id));
    if (m.state === 'mounted' && m.record) settleMount(m.record.path);
    const scratch = store.paths.makeTemp('view');
    try {
      return new ContainerView(store, container, scratch);
    } catch (e) {
      removeTree(scratch);
      throw e;
    }
  }

  close(): void {
    removeTree(this.scratch);
  }

  root(): Inode<UNode> {
    return (this.rootNode ??= rootStandIn(resolveRoot(this.stack).data));
  }

  resolveRoot(): Resolved {
    return resolveRoot(this.stack);
  }

  /** Looks a name up below a directory node, as a lookup through the mount would. */
  child(parent: Inode<UNode>, name: string): Resolved {
    return resolveChild(this.stack, parent, name);
  }

  /** A directory node below `parent`, for walking further down. */
  dirNode(parent: Inode<UNode>, name: string, r: Resolved = this.child(parent, name)): Inode<UNode> {
    return standIn(parent, name, r.data, S_IFDIR);
  }

  /** The names the mount lists in a directory, sorted by bytes (a stable order for tars). */
  names(dir: Inode<UNode>): string[] {
    return mergedEntries(this.stack, dir)
      .map((e) => e.name)
      .sort();
  }

  /** Where an object's metadata and xattrs are read: its upper copy, else its top lower one. */
  metaPath(rel: string, r: Resolved): string | Buffer {
    return r.data.upper ? this.stack.upperPath(rel) : this.stack.lowerPath(r.data.lowers[0]!);
  }

  /** Where a file's content is read: the upper copy, unless it is a metacopy (data below). */
  dataPath(rel: string, r: Resolved): string | Buffer {
    const data = lowerData(r.data);
    return data ? this.stack.lowerPath(data) : this.stack.upperPath(rel);
  }
}
