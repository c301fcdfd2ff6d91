// strata: the command line. One file per command group; nothing imports cli/.

import { log } from '../util/log.js';
import { version } from './version.js';

type Command = (argv: string[]) => Promise<number>;

/**
 * Each command's module is loaded when the command runs: loading all of them took ~370 ms
 * (the bench's chart library alone ~250 ms), which every mount paid twice (the command and
 * its daemon), against ~110 ms for the mount's own.
 */
const commands: Record<string, () => Promise<Command>> = {
  loopback: async () => (await import('./loopback.js')).loopbackCommand,
  mount: async () => (await import('./mount.js')).mountCommand,
  umount: async () => (await import('./umount.js')).umountCommand,
  demo: async () => (await import('./demo.js')).demoCommand,
  image: async () => (await import('./images.js')).imageCommand,
  images: async () => (await import('./images.js')).imagesCommand,
  load: async () => (await import('./images.js')).loadCommand,
  save: async () => (await import('./images.js')).saveCommand,
  import: async () => (await import('./images.js')).importCommand,
  inspect: async () => (await import('./images.js')).inspectCommand,
  history: async () => (await import('./images.js')).historyCommand,
  tag: async () => (await import('./images.js')).tagCommand,
  rmi: async () => (await import('./images.js')).rmiCommand,
  index: async () => (await import('./index-cmd.js')).indexCommand,
  create: async () => (await import('./containers.js')).createCommand,
  ps: async () => (await import('./containers.js')).psCommand,
  rm: async () => (await import('./containers.js')).rmCommand,
  diff: async () => (await import('./containers.js')).diffCommand,
  commit: async () => (await import('./containers.js')).commitCommand,
  export: async () => (await import('./containers.js')).exportCommand,
  bench: async () => (await import('./bench.js')).benchCommand,
};

/** The whole help: it quotes every command's usage, so it loads every command's module. */
async function helpText(): Promise<string> {
  const [bench, containers, images, index, loopback, mount] = await Promise.all([
    import('./bench.js'),
    import('./containers.js'),
    import('./images.js'),
    import('./index-cmd.js'),
    import('./loopback.js'),
    import('./mount.js'),
  ]);
  const [benchUsage, containersUsage, imagesUsage, indexUsage, loopbackUsage, mountUsage] = [bench, containers, images, index, loopback, mount].map((m) => m.usage);
  return `strata ${version} — a union filesystem for container images, over FUSE

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
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === '--version' || cmd === '-V' || cmd === 'version') {
    process.stdout.write(`strata version ${version}\n`);
    return 0;
  }
  if (!cmd || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    process.stdout.write(await helpText());
    return cmd ? 0 : 2;
  }
  const load = commands[cmd];
  if (!load) {
    process.stderr.write(`strata: unknown command '${cmd}'\n\n${await helpText()}`);
    return 2;
  }
  // `strata CMD --help`: the entries of the help that are about CMD (before a `--`, which
  // ends the options).
  const opts = rest.includes('--') ? rest.slice(0, rest.indexOf('--')) : rest;
  if (opts.includes('--help') || opts.includes('-h')) {
    process.stdout.write(helpFor(cmd, await helpText()));
    return 0;
  }
  return (await load())(rest);
}

/** The help's entries (a `strata ...` line and the indented lines under it) that name `strata CMD`. */
function helpFor(cmd: string, help: string): string {
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
