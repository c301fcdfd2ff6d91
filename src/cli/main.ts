// strata: the command line. One file per command group; nothing imports cli/.

import { log } from '../util/log.js';
import { benchCommand, usage as benchUsage } from './bench.js';
import { commitCommand, createCommand, diffCommand, exportCommand, psCommand, rmCommand, usage as containersUsage } from './containers.js';
import { demoCommand } from './demo.js';
import {
  historyCommand,
  imageCommand,
  imagesCommand,
  importCommand,
  inspectCommand,
  loadCommand,
  rmiCommand,
  saveCommand,
  tagCommand,
  usage as imagesUsage,
} from './images.js';
import { indexCommand, usage as indexUsage } from './index-cmd.js';
import { loopbackCommand, usage as loopbackUsage } from './loopback.js';
import { mountCommand, usage as mountUsage } from './mount.js';
import { umountCommand } from './umount.js';
import { version } from './version.js';

const commands: Record<string, (argv: string[]) => Promise<number>> = {
  loopback: loopbackCommand,
  mount: mountCommand,
  umount: umountCommand,
  demo: demoCommand,
  image: imageCommand,
  images: imagesCommand,
  load: loadCommand,
  save: saveCommand,
  import: importCommand,
  inspect: inspectCommand,
  history: historyCommand,
  tag: tagCommand,
  rmi: rmiCommand,
  index: indexCommand,
  create: createCommand,
  ps: psCommand,
  rm: rmCommand,
  diff: diffCommand,
  commit: commitCommand,
  export: exportCommand,
  bench: benchCommand,
};

const help = `strata ${version} — a union filesystem for container images, over FUSE

Commands:
  ${mountUsage}
      mount the union of read-only layers (leftmost = top) and a writable upper dir
  ${loopbackUsage}
      mirror SRC at MNT through stratafs's FUSE layer (the reference filesystem)
  strata umount [-l] MNT|CONTAINER
      unmount a stratafs mount (or a container's); its daemon exits
  strata demo
      mount the built-in demo image with a writable layer, run its shell, show the changes, unmount
  ${benchUsage}
      benchmark stratafs against overlayfs, fuse-overlayfs and the plain disk (docs/benchmarks.md)
  ${indexUsage}
      the path index: what it holds, every difference from the dirs, or rebuild it from them
  strata --version

Images:
  ${imagesUsage}

Containers:
  ${containersUsage}

Logging: STRATAFS_LOG=debug|info|warn|error (default warn), JSON on stderr.
`;

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === '--version' || cmd === '-V' || cmd === 'version') {
    process.stdout.write(`strata version ${version}\n`);
    return 0;
  }
  if (!cmd || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    process.stdout.write(help);
    return cmd ? 0 : 2;
  }
  const run = commands[cmd];
  if (!run) {
    process.stderr.write(`strata: unknown command '${cmd}'\n\n${help}`);
    return 2;
  }
  // `strata CMD --help`: the entries of the help that are about CMD (before a `--`, which
  // ends the options).
  const opts = rest.includes('--') ? rest.slice(0, rest.indexOf('--')) : rest;
  if (opts.includes('--help') || opts.includes('-h')) {
    process.stdout.write(helpFor(cmd));
    return 0;
  }
  return run(rest);
}

/** The help's entries (a `strata ...` line and the indented lines under it) that name `strata CMD`. */
function helpFor(cmd: string): string {
  const entries: string[][] = [];
  for (const line of help.split('\n')) {
    if (/^ {2}strata /.test(line)) entries.push([line]);
    else if (/^ {4,}/.test(line) && entries.length > 0) entries[entries.length - 1]!.push(line);
  }
  const names = new RegExp(`\\bstrata ${cmd}(?![\\w-])`);
  return entries.filter((e) => names.test(e[0]!)).map((e) => e.join('\n') + '\n').join('');
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    const err = e as Error;
    log.debug({ err }, 'command failed');
    process.stderr.write(`strata: ${err.message}\n`);
    process.exitCode = 1;
  },
);
