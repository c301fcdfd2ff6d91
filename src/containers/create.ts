// strata create: a container is an image plus a writable layer of its own. Its dirs are
// built under the store's tmp/ and renamed into containers/<id>/ before its row is
// written, so a row never names a missing dir (a dir without a row is garbage from a
// crash, never listed).

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { native } from '../native/binding.js';
import { isPrivateXattr } from '../union/markers.js';
import type { ContainerRecord, ImageRecord, ImageStore } from '../store/images.js';
import { removeTree } from '../store/paths.js';
import { shortId } from '../store/reference.js';
import { readXattrs } from '../util/xattrs.js';
import { ContainerDirs } from './layout.js';

/** docker's rule for container names. */
const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

function defaultName(store: ImageStore, image: ImageRecord): string {
  const repo = image.tags[0]?.repository.split('/').pop() ?? 'container';
  for (;;) {
    const name = `${repo}-${randomBytes(3).toString('hex')}`;
    if (!store.containers().some((c) => c.name === name)) return name;
  }
}

/**
 * The union shows the upper dir's own root as the container's "/", so it starts as a copy
 * of the image's root (mode, owner, times, user xattrs): a fresh container's "/" is the
 * image's, and a container of a committed image has the committed container's "/".
 */
function copyRootMeta(imageRoot: string, upper: string): void {
  const st = fs.lstatSync(imageRoot, { bigint: true });
  for (const [n, v] of readXattrs(imageRoot, (x) => !isPrivateXattr(x))) native.lsetxattr(upper, n, v, 0);
  native.lchown(upper, Number(st.uid), Number(st.gid));
  fs.chmodSync(upper, Number(st.mode) & 0o7777);
  const ns = 1_000_000_000n;
  native.utimens(upper, Number(st.atimeNs / ns), Number(st.atimeNs % ns), Number(st.mtimeNs / ns), Number(st.mtimeNs % ns), true);
}

export function createContainer(store: ImageStore, imageRef: string, name?: string): ContainerRecord {
  const image = store.resolveImage(imageRef);
  if (!image.layers.length) throw new Error(`image ${shortId(image.id)} has no layers: nothing to mount`);
  for (const l of image.layers) if (!store.hasLayer(l)) throw new Error(`image ${shortId(image.id)}: layer ${l} is missing from the store (${store.paths.layerDir(l)}: ENOENT)`);
  if (name !== undefined) {
    if (!NAME.test(name)) throw new Error(`invalid container name '${name}': only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    const taken = store.containers().find((c) => c.name === name);
    if (taken) throw new Error(`Conflict. The container name "${name}" is already in use by container ${taken.id}. You have to remove (or rename) that container to be able to reuse that name.`);
  }
  const id = randomBytes(32).toString('hex');
  const dirs = new ContainerDirs(store.paths, id);
  const tmp = store.paths.makeTemp('container');
  try {
    fs.mkdirSync(path.join(tmp, 'upper'), { mode: 0o755 });
    fs.mkdirSync(path.join(tmp, 'work'), { mode: 0o700 });
    copyRootMeta(store.paths.layerDir(image.layers[image.layers.length - 1]!), path.join(tmp, 'upper'));
    fs.mkdirSync(ContainerDirs.base(store.paths), { recursive: true, mode: 0o700 });
    fs.renameSync(tmp, dirs.dir);
  } catch (e) {
    removeTree(tmp);
    throw e;
  }
  try {
    return store.addContainer({ id, name: name ?? defaultName(store, image), imageId: image.id });
  } catch (e) {
    removeTree(dirs.dir);
    throw e;
  }
}
