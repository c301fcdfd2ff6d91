// Options every mounting command shares, parsed once.

import type { ParseArgsConfig } from 'node:util';
import type { ServeOptions } from '../fs/server.js';

export const mountOptionSpec = {
  foreground: { type: 'boolean', short: 'f' },
  o: { type: 'string', multiple: true },
  passthrough: { type: 'boolean' },
  'no-passthrough': { type: 'boolean' },
  'entry-timeout': { type: 'string' },
  'attr-timeout': { type: 'string' },
  'negative-timeout': { type: 'string' },
  'log-file': { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

export interface MountFlags {
  foreground?: boolean;
  o?: string[];
  passthrough?: boolean;
  'no-passthrough'?: boolean;
  'entry-timeout'?: string;
  'attr-timeout'?: string;
  'negative-timeout'?: string;
  'log-file'?: string;
}

function seconds(v: string | undefined, option: string, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${option}: not a number of seconds: ${v}`);
  return n;
}

/** A -o value in whole milliseconds, or undefined when not given. */
export function millis(v: string | undefined, option: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${option}=${v}: want a whole number of milliseconds`);
  return n;
}

/** -o takes comma lists (fuse-overlayfs style); returns them as key -> value ('' for flags). */
export function splitO(list: string[] | undefined): Map<string, string> {
  const m = new Map<string, string>();
  for (const group of list ?? []) {
    for (const item of group.split(',')) {
      if (!item) continue;
      const eq = item.indexOf('=');
      m.set(eq < 0 ? item : item.slice(0, eq), eq < 0 ? '' : item.slice(eq + 1));
    }
  }
  return m;
}

/**
 * `namesOnlyThroughMount`: the filesystem's names change only through the mount (the union:
 * lower layers never change, the upper dir is the mount's alone), so the kernel may keep
 * "no such file" as long as it keeps names: it learns of every name made from the request
 * that makes it. Programs look for the same missing paths again and again (the loader's
 * search path, PATH, an interpreter's imports); overlayfs keeps such negative dentries, and
 * fuse-overlayfs answers them with its timeout too.
 */
export function serveOptions(f: MountFlags, defaults: { timeout: number; allowOther?: boolean; posixAcl?: boolean; namesOnlyThroughMount?: boolean }): ServeOptions {
  const o = splitO(f.o);
  // fuse-overlayfs's -o timeout=S: both cache lifetimes, and the negative one where it
  // follows the entry lifetime (the flags below still win).
  const timeout = seconds(o.get('timeout'), '-o timeout', defaults.timeout);
  const entry = seconds(f['entry-timeout'], '--entry-timeout', timeout);
  return {
    allowOther: o.has('allow_other') || (defaults.allowOther ?? false),
    readOnly: o.has('ro'),
    passthrough: !f['no-passthrough'],
    timeouts: { entry, attr: seconds(f['attr-timeout'], '--attr-timeout', timeout) },
    negativeTimeout: seconds(f['negative-timeout'], '--negative-timeout', defaults.namesOnlyThroughMount ? entry : 0),
    // fuse-overlayfs's -o noacl: permissions by the mode bits alone.
    posixAcl: (defaults.posixAcl ?? false) && !o.has('noacl'),
    memoryIdleMs: millis(o.get('memory_idle_ms'), '-o memory_idle_ms'),
  };
}

/** The argv to hand a background child: everything but the flags that made it background. */
export function childArgs(argv: string[]): string[] {
  return argv.filter((a) => a !== '-f' && a !== '--foreground');
}
