// Image commands, in the spirit of `docker image`: load, images, image inspect, history,
// tag, rmi, image prune, save, import, image load-demo. Every command takes --root (else
// $STRATAFS_ROOT, else the default store root).

import * as fs from 'node:fs';
import { loadDemoImage } from '../store/demo-image.js';
import type { ImageRecord } from '../store/images.js';
import { importTarball } from '../store/import.js';
import { loadImages } from '../store/load.js';
import { parsePlatform } from '../store/platform.js';
import { formatReference, shortId } from '../store/reference.js';
import { saveImages, type SaveFormat } from '../store/save.js';
import { humanAge, humanSize, listingOptions, referenceGlob, renderFormat, renderListing, type Row } from './format.js';
import { forgetLayers, indexImage } from './index-layers.js';
import { layerProgress } from './progress.js';
import { forEachReported, out, parse, withStore, writeArchive } from './store-args.js';

export const usage = `strata load [-i FILE|DIR] [--platform OS/ARCH[/VARIANT]] [-q]
      load a docker-save archive or OCI layout/archive (stdin without -i)
  strata images [REPO[:TAG]] [-a] [-q] [--no-trunc] [--digests] [--filter dangling=true|false|reference=PATTERN] [--format TEMPLATE] [--json]
      list images
  strata image inspect [--format TEMPLATE] IMAGE...   (also: strata inspect)
  strata history [--no-trunc] [-q] [--format TEMPLATE] IMAGE
  strata tag SOURCE TARGET
  strata rmi [-f] IMAGE...
  strata image prune [-a]
      remove dangling images (-a: every image no container uses)
  strata save [-o FILE] [--format docker|oci] IMAGE...
  strata import FILE|- NAME[:TAG]
      a flat rootfs tarball as a one-layer image
  strata image load-demo
      the built-in demo image (demo:latest), made from this host's busybox-static
  Image commands take --root DIR (default $STRATAFS_ROOT, /var/lib/stratafs for root, else $XDG_DATA_HOME/stratafs).`;

// ---- load / save / import ---------------------------------------------------------------

export async function loadCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { input: { type: 'string', short: 'i' }, platform: { type: 'string' }, quiet: { type: 'boolean', short: 'q' } });
  const input = values.input && values.input !== '-' ? values.input : process.stdin;
  if (input === process.stdin && process.stdin.isTTY) throw new Error('requested load from stdin, but stdin is a terminal (use -i FILE)');
  await withStore(values.root, async (s) => {
    const images = await loadImages(s, input, { platform: values.platform ? parsePlatform(values.platform) : undefined, onProgress: values.quiet ? undefined : layerProgress() });
    // Said before indexing: the images are stored, whatever becomes of that (or of us).
    for (const img of images) {
      if (img.tags.length) for (const t of img.tags) out(`Loaded image: ${formatReference(t)}\n`);
      else out(`Loaded image ID: ${img.id}\n`);
    }
    for (const img of images) indexImage(s, img.id);
  });
  return 0;
}

export async function saveCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { output: { type: 'string', short: 'o' }, format: { type: 'string' } });
  if (!positionals.length) throw new Error('usage: strata save [-o FILE] [--format docker|oci] IMAGE...');
  const format = (values.format ?? 'docker') as SaveFormat;
  if (format !== 'docker' && format !== 'oci') throw new Error(`--format: expected docker or oci, got '${values.format}'`);
  await withStore(values.root, (s) => writeArchive(values.output, (sink) => saveImages(s, positionals, sink, format)));
  return 0;
}

export async function importCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { message: { type: 'string', short: 'm' } });
  if (positionals.length < 1 || positionals.length > 2) throw new Error('usage: strata import FILE|- [NAME[:TAG]]');
  const [file, name] = positionals as [string, string | undefined];
  const input = file === '-' ? process.stdin : fs.createReadStream(file);
  await withStore(values.root, async (s) => {
    const imported = await importTarball(s, input, { reference: name, source: file, comment: values.message, inputSize: file === '-' ? undefined : fs.statSync(file).size }).catch((e: Error) => {
      throw new Error(`${file}: ${e.message}`);
    });
    out(`${imported}\n`);
    indexImage(s, imported);
  });
  return 0;
}

// ---- listing ------------------------------------------------------------------------------

interface ImageRow extends Row {
  ID: string;
  Repository: string;
  Tag: string;
  Digest: string;
  CreatedSince: string;
  CreatedAt: string;
  Size: string;
}

const IMAGE_HEADERS: Record<string, string> = { Repository: 'REPOSITORY', Tag: 'TAG', Digest: 'DIGEST', ID: 'IMAGE ID', CreatedSince: 'CREATED', CreatedAt: 'CREATED AT', Size: 'SIZE' };

function imageRows(images: ImageRecord[], noTrunc: boolean): ImageRow[] {
  const rows: ImageRow[] = [];
  for (const img of images) {
    const base = {
      ID: noTrunc ? img.id : shortId(img.id),
      Digest: img.digest ?? '<none>',
      CreatedSince: humanAge(img.created),
      CreatedAt: img.created ?? '',
      Size: humanSize(img.size),
    };
    if (!img.tags.length) rows.push({ ...base, Repository: '<none>', Tag: '<none>' });
    for (const t of img.tags) rows.push({ ...base, Repository: t.repository, Tag: t.tag });
  }
  return rows;
}

export async function imagesCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { ...listingOptions, digests: { type: 'boolean' }, filter: { type: 'string', short: 'f', multiple: true } });
  if (positionals.length > 1) throw new Error('usage: strata images [REPO[:TAG]] [options]');
  const images = await withStore(values.root, (s) => s.images());
  let rows = imageRows(images, !!values['no-trunc']);
  const refs: RegExp[] = [];
  if (positionals[0]) refs.push(referenceGlob(positionals[0]));
  for (const f of values.filter ?? []) {
    const [k, v = ''] = f.split(/=(.*)/s) as [string, string?];
    if (k === 'dangling') {
      if (v !== 'true' && v !== 'false') throw new Error(`--filter dangling: expected true or false, got '${v}'`);
      rows = rows.filter((r) => (r.Repository === '<none>') === (v === 'true'));
    } else if (k === 'reference') refs.push(referenceGlob(v));
    else throw new Error(`--filter: unsupported filter '${k}' (supported: dangling, reference)`);
  }
  // A pattern without ":" matches the repository; with one, "repository:tag".
  for (const re of refs) rows = rows.filter((r) => r.Repository !== '<none>' && (re.test(r.Repository) || re.test(`${r.Repository}:${r.Tag}`)));

  out(renderListing(values, rows, IMAGE_HEADERS, ['Repository', 'Tag', ...(values.digests ? ['Digest'] : []), 'ID', 'CreatedSince', 'Size']));
  return 0;
}

// ---- inspect / history --------------------------------------------------------------------

function inspectView(img: ImageRecord): Record<string, unknown> {
  const c = JSON.parse(img.config.toString('utf8')) as Record<string, unknown>;
  return {
    Id: img.id,
    RepoTags: img.tags.map(formatReference),
    RepoDigests: img.digest ? [...new Set(img.tags.map((t) => `${t.repository}@${img.digest}`))] : [],
    Created: c.created ?? null,
    Author: c.author ?? '',
    Config: c.config ?? {},
    Architecture: c.architecture ?? '',
    Variant: c.variant,
    Os: c.os ?? '',
    Size: img.size,
    RootFS: { Type: 'layers', Layers: img.layers },
    Metadata: { LastTagTime: img.loaded },
  };
}

export async function inspectCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { format: { type: 'string', short: 'f' } });
  if (!positionals.length) throw new Error('usage: strata image inspect [--format TEMPLATE] IMAGE...');
  const views = await withStore(values.root, (s) => positionals.map((p) => inspectView(s.resolveImage(p))));
  if (values.format) out(renderFormat(values.format, views, {}));
  else out(JSON.stringify(views, null, 4) + '\n');
  return 0;
}

interface HistoryEntry {
  created?: string;
  created_by?: string;
  comment?: string;
  empty_layer?: boolean;
}

export async function historyCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { 'no-trunc': { type: 'boolean' }, quiet: { type: 'boolean', short: 'q' }, format: { type: 'string' } });
  if (positionals.length !== 1) throw new Error('usage: strata history [--no-trunc] [-q] [--format TEMPLATE] IMAGE');
  const rows = await withStore(values.root, (s) => {
    const img = s.resolveImage(positionals[0]!);
    const hist = ((JSON.parse(img.config.toString('utf8')) as { history?: HistoryEntry[] }).history ?? []).slice();
    // Non-empty history entries pair with the layers, bottom up.
    let layer = 0;
    const sized = hist.map((h) => ({ h, size: h.empty_layer ? 0 : (s.layer(img.layers[layer++] ?? '')?.size ?? 0) }));
    const noTrunc = !!values['no-trunc'];
    return sized.reverse().map(({ h, size }, i) => {
      const by = h.created_by ?? '';
      return {
        ID: i === 0 ? (noTrunc ? img.id : shortId(img.id)) : '<missing>',
        CreatedSince: humanAge(h.created ?? null),
        CreatedAt: h.created ?? '',
        CreatedBy: noTrunc || by.length <= 45 ? by : `${by.slice(0, 44)}…`,
        Size: humanSize(size),
        Comment: h.comment ?? '',
      };
    });
  });
  const headers = { ID: 'IMAGE', CreatedSince: 'CREATED', CreatedBy: 'CREATED BY', Size: 'SIZE', Comment: 'COMMENT' };
  if (values.quiet) out(rows.map((r) => `${r.ID}\n`).join(''));
  else out(renderFormat(values.format ?? 'table', rows, headers));
  return 0;
}

// ---- tag / rmi / prune --------------------------------------------------------------------

export async function tagCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {});
  if (positionals.length !== 2) throw new Error('usage: strata tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]');
  await withStore(values.root, (s) => s.tag(positionals[0]!, positionals[1]!));
  return 0;
}

export async function rmiCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { force: { type: 'boolean', short: 'f' } });
  if (!positionals.length) throw new Error('usage: strata rmi [-f] IMAGE...');
  return withStore(values.root, (s) =>
    forEachReported(positionals, (p) => {
      const r = s.remove(p, !!values.force);
      out(r.lines.map((l) => `${l}\n`).join(''));
      forgetLayers(s, r.removedDirs);
    }),
  );
}

export async function pruneCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, { all: { type: 'boolean', short: 'a' }, force: { type: 'boolean', short: 'f' } });
  const r = await withStore(values.root, (s) => {
    const pruned = s.prune(!!values.all);
    forgetLayers(s, pruned.removedDirs);
    return pruned;
  });
  if (r.lines.length) out(`Deleted Images:\n${r.lines.map((l) => `${l}\n`).join('')}\n`);
  out(`Total reclaimed space: ${humanSize(r.reclaimed)}\n`);
  return 0;
}

export async function loadDemoCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {});
  await withStore(values.root, async (s) => {
    const demo = await loadDemoImage(s);
    out(`Loaded image: demo:latest\n${demo}\n`);
    indexImage(s, demo);
  });
  return 0;
}

/** strata image SUBCOMMAND ... */
export async function imageCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const subs: Record<string, (a: string[]) => Promise<number>> = {
    ls: imagesCommand,
    list: imagesCommand,
    inspect: inspectCommand,
    history: historyCommand,
    tag: tagCommand,
    rm: rmiCommand,
    prune: pruneCommand,
    load: loadCommand,
    save: saveCommand,
    import: importCommand,
    'load-demo': loadDemoCommand,
  };
  const run = sub ? subs[sub] : undefined;
  if (!run) throw new Error(`usage: strata image ${Object.keys(subs).join('|')} ...`);
  return run(rest);
}
