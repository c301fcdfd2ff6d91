// strata export: the container's merged rootfs as one flat tar, with no whiteouts or
// layer markers (docker export). Read in this process through the union's resolver
// (view.ts), so it works the same whether the container is mounted or not and never
// touches a mount from the process that might serve it.

import type { Writable } from 'node:stream';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ImageStore } from '../store/images.js';
import { planRootfs } from './rootfs-plan.js';
import { TarPlan, tarChunks } from './tar-plan.js';
import { ContainerView } from './view.js';

export interface ExportOptions {
  /** File content written so far, of `total`. */
  onProgress?: (bytes: number, total: number) => void;
}

/** Returns the number of entries written. */
export async function exportContainer(store: ImageStore, ref: string, sink: Writable, opts: ExportOptions = {}): Promise<number> {
  const view = ContainerView.open(store, store.resolveContainer(ref));
  try {
    const plan = new TarPlan();
    planRootfs(plan, view);
    const total = plan.dataBytes;
    await pipeline(Readable.from(tarChunks(plan, (bytes) => opts.onProgress?.(bytes, total))), sink);
    return plan.entries.length;
  } finally {
    view.close();
  }
}
