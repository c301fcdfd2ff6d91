// The one rule for which lower objects make up a union path, shared by the index-backed
// resolver and the disk prober in src/union/resolve.ts: walk the candidates top-down; a
// whiteout ends the search; the first object found is the one shown; a directory goes on
// merging the directories below it until one is opaque (or replaces what is below), and
// anything that is not a directory below a directory is hidden by it.

export type Found = 'none' | 'whiteout' | 'dir' | 'other';

export interface Probe {
  found: Found;
  /** For a directory: it hides the same path in the layers below (opaque, or replaced in its layer). */
  hides: boolean;
}

/**
 * `below` says what was found above the candidates: nothing, an upper directory (merge
 * lower dirs into it), or an upper metadata-only copy (find the file holding its data).
 */
export function mergeDown<T>(candidates: readonly T[], probe: (c: T) => Probe, below: 'none' | 'dir' | 'metacopy'): { refs: T[]; top?: T } {
  const refs: T[] = [];
  let top: T | undefined;
  for (const c of candidates) {
    const p = probe(c);
    if (p.found === 'none') continue;
    if (p.found === 'whiteout') break;
    const dir = p.found === 'dir';
    if (below === 'metacopy') {
      if (!dir) {
        refs.push(c);
        top = c;
      }
      break;
    }
    if (below === 'none' && refs.length === 0) {
      refs.push(c);
      top = c;
      if (!dir || p.hides) break;
      continue;
    }
    if (!dir) break;
    refs.push(c);
    if (p.hides) break;
  }
  return { refs, top };
}
