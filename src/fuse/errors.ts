// Errors travel as objects with a Node-style `code` ('ENOENT'); the session turns the code
// into the negative errno of the reply. Node's own fs errors already have this shape.

import { constants } from 'node:os';

const errnos = constants.errno as Record<string, number>;

export class FsError extends Error {
  constructor(
    readonly code: string,
    message?: string,
  ) {
    super(message ?? code);
  }
}

/** Throwable error for an errno name: `throw fsError('ENOENT')`. */
export function fsError(code: keyof typeof constants.errno, message?: string): FsError {
  return new FsError(code, message);
}

/** errno number for an error, or undefined when it is not an errno-carrying error (a bug). */
export function errnoOf(e: unknown): number | undefined {
  if (e && typeof e === 'object' && 'code' in e && typeof e.code === 'string') {
    const n = errnos[e.code];
    if (n !== undefined) return n;
  }
  return undefined;
}

export function errnoNumber(code: keyof typeof constants.errno): number {
  return errnos[code]!;
}

/**
 * A shared ENOENT for hot negative lookups: building a Node error with a message and a stack
 * costs more than the lstat that found nothing.
 */
export const ENOENT_ERROR = new FsError('ENOENT');

/** A shared ENODATA: "no such attribute" is what most getxattr requests hear (security.capability). */
export const ENODATA_ERROR = new FsError('ENODATA');
