// strata loopback SRC MNT: mirror one directory through our FUSE layer (the reference
// filesystem, used by tests and benchmarks).

import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { mountpointPath } from '../util/os-path.js';
import { LoopbackFs } from '../loopback/loopback.js';
import { spawnDaemon } from './daemon.js';
import { childArgs, mountOptionSpec, serveOptions, type MountFlags } from './mount-options.js';
import { serveForeground } from './serve.js';

export const usage = 'strata loopback [-f] [--no-passthrough] [-o allow_other,ro] [--entry-timeout S] [--attr-timeout S] [--negative-timeout S] [--log-file F] SRC MNT';

export async function loopbackCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: mountOptionSpec, allowPositionals: true });
  const flags = values as MountFlags;
  if (positionals.length !== 2) throw new Error(`usage: ${usage}`);
  const src = fs.realpathSync(positionals[0]!);
  const mnt = mountpointPath(positionals[1]!);
  if (!fs.statSync(src).isDirectory()) throw new Error(`${src}: not a directory`);
  if (!flags.foreground) {
    const pid = await spawnDaemon(['loopback', ...childArgs(argv)], flags['log-file']);
    process.stderr.write(`mounted ${src} at ${mnt} (daemon pid ${pid})\n`);
    return 0;
  }
  const opts = serveOptions(flags, { timeout: 1 });
  await serveForeground(mnt, new LoopbackFs(src, { passthrough: opts.passthrough }), { ...opts, autoInvalData: true, fsname: src, subtype: 'stratafs-loopback' });
  return 0;
}
