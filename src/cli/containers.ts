// Container commands, in the spirit of docker's: create, ps, rm, diff, commit, export.
// `strata mount CONTAINER PATH` and `strata umount CONTAINER` live in mount.ts and
// umount.ts beside the raw layer forms. Every command takes --root, as the image commands.

import { commitContainer } from '../containers/commit.js';
import { createContainer } from '../containers/create.js';
import { containerChanges } from '../containers/diff.js';
import { exportContainer } from '../containers/export.js';
import { ContainerDirs } from '../containers/layout.js';
import { removeContainer } from '../containers/lifecycle.js';
import { mountStatus } from '../containers/mount-state.js';
import type { ImageStore } from '../store/images.js';
import { formatReference, shortId } from '../store/reference.js';
import { humanAge, listingOptions, renderListing, type Row } from './format.js';
import { indexImage } from './index-layers.js';
import { phaseProgress } from './progress.js';
import { forEachReported, out, parse, withStore, writeArchive } from './store-args.js';

export const usage = `strata create [--name NAME] IMAGE
      a container: the image plus a writable layer of its own (prints its ID)
  strata ps [-a] [-q] [--no-trunc] [--format TEMPLATE] [--json]
      list mounted containers (-a: all) with image, created, state (mounted/unmounted/stale), mount point
  strata mount CONTAINER PATH   /   strata umount CONTAINER|PATH
      mount a container's rootfs (image layers + its layer) at PATH; one path at a time
  strata rm [-f] CONTAINER...
      remove containers (-f: unmount a mounted one first)
  strata diff [--json] CONTAINER
      the container layer's changes: A (added), C (changed), D (deleted) lines
  strata commit [-m MSG] [-a AUTHOR] [--compress] CONTAINER [REPO[:TAG]]
      the container layer as a new image layer on top of its image (prints the image ID)
  strata export [-o FILE] CONTAINER
      the merged rootfs as one flat tar
  Container commands take --root DIR, as the image commands.`;

interface ContainerRow extends Row {
  ID: string;
  Names: string;
  Image: string;
  ImageID: string;
  CreatedAt: string;
  RunningFor: string;
  State: string;
  Status: string;
  MountPoint: string;
  Pid: number | null;
}

const PS_HEADERS: Record<string, string> = {
  ID: 'CONTAINER ID',
  Image: 'IMAGE',
  ImageID: 'IMAGE ID',
  RunningFor: 'CREATED',
  CreatedAt: 'CREATED AT',
  State: 'STATE',
  Status: 'STATUS',
  MountPoint: 'MOUNT POINT',
  Pid: 'PID',
  Names: 'NAMES',
};

function containerRows(store: ImageStore, noTrunc: boolean): ContainerRow[] {
  // Newest first, as docker ps.
  return store
    .containers()
    .reverse()
    .map((c) => {
      const image = store.image(c.imageId);
      const s = mountStatus(new ContainerDirs(store.paths, c.id));
      const r = s.record;
      const status = s.state === 'mounted' ? `Mounted ${humanAge(r!.since)}` : s.state === 'stale' ? `Stale (daemon ${r!.pid} died)` : 'Created';
      return {
        ID: noTrunc ? c.id : c.id.slice(0, 12),
        Names: c.name,
        Image: image?.tags[0] ? formatReference(image.tags[0]) : shortId(c.imageId),
        ImageID: c.imageId,
        CreatedAt: c.created,
        RunningFor: humanAge(c.created),
        State: s.state,
        Status: status,
        MountPoint: r?.path ?? '',
        Pid: r?.pid ?? null,
      };
    });
}

export async function createCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { name: { type: 'string' } });
  if (positionals.length !== 1) throw new Error('usage: strata create [--name NAME] IMAGE');
  const c = await withStore(values.root, (s) => createContainer(s, positionals[0]!, values.name));
  out(`${c.id}\n`);
  return 0;
}

export async function psCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, listingOptions);
  if (positionals.length) throw new Error('usage: strata ps [-a] [-q] [--no-trunc] [--format TEMPLATE] [--json]');
  let rows = await withStore(values.root, (s) => containerRows(s, !!values['no-trunc']));
  if (!values.all) rows = rows.filter((r) => r.State !== 'unmounted');
  out(renderListing(values, rows, PS_HEADERS, ['ID', 'Image', 'RunningFor', 'State', 'MountPoint', 'Names']));
  return 0;
}

export async function rmCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { force: { type: 'boolean', short: 'f' } });
  if (!positionals.length) throw new Error('usage: strata rm [-f] CONTAINER...');
  return withStore(values.root, (s) =>
    forEachReported(positionals, async (p) => {
      await removeContainer(s, p, !!values.force);
      out(`${p}\n`);
    }),
  );
}

export async function diffCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { json: { type: 'boolean' } });
  if (positionals.length !== 1) throw new Error('usage: strata diff [--json] CONTAINER');
  const changes = await withStore(values.root, (s) => containerChanges(s, positionals[0]!));
  // Paths are bytes (latin1 strings): written as they are, and as UTF-8 text in JSON.
  if (values.json) out(JSON.stringify(changes.map((c) => ({ ...c, path: Buffer.from(c.path, 'latin1').toString('utf8') })), null, 2) + '\n');
  else process.stdout.write(Buffer.from(changes.map((c) => `${c.kind} ${c.path}\n`).join(''), 'latin1'));
  return 0;
}

export async function commitCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    message: { type: 'string', short: 'm' },
    author: { type: 'string', short: 'a' },
    compress: { type: 'boolean' },
  });
  if (positionals.length < 1 || positionals.length > 2) throw new Error('usage: strata commit [-m MSG] [-a AUTHOR] [--compress] CONTAINER [REPO[:TAG]]');
  const draw = phaseProgress();
  await withStore(values.root, async (s) => {
    const committed = await commitContainer(s, positionals[0]!, {
      reference: positionals[1],
      message: values.message,
      author: values.author,
      compress: !!values.compress,
      onProgress: draw && ((p) => draw(p.phase === 'writing' ? 'Writing layer' : 'Extracting  ', p.bytes, p.total)),
    });
    // Said before indexing, as load does: the image is stored, whatever becomes of that.
    out(`${committed.imageId}\n`);
    indexImage(s, committed.imageId);
  });
  return 0;
}

export async function exportCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { output: { type: 'string', short: 'o' } });
  if (positionals.length !== 1) throw new Error('usage: strata export [-o FILE] CONTAINER');
  const draw = phaseProgress();
  await withStore(values.root, (s) =>
    writeArchive(values.output, (sink) => exportContainer(s, positionals[0]!, sink, { onProgress: draw && ((bytes, total) => draw('Exporting', bytes, total)) })),
  );
  return 0;
}
