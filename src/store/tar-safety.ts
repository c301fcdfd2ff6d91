// The rules that keep a hostile layer tar inside its layer directory. They are checked
// for each entry before anything is written for it, while the tar streams past:
//   - names are normalised; "..", absolute names and empty names are refused;
//   - no entry may lie below a symlink of the same layer (we never follow links while
//     extracting, so a link to "/etc" cannot redirect later writes);
//   - hard links must name an earlier non-directory entry of the same layer;
//   - a path may appear once (a directory entry may repeat for the same directory);
//   - sizes beyond what the input can hold, or beyond a hard limit, are refused.

export const MAX_ENTRY_SIZE = 64 * 1024 ** 3;

export type EntryKind = 'dir' | 'file' | 'symlink' | 'hardlink' | 'whiteout' | 'special';

export class UnsafeEntryError extends Error {}

/** "./a//b/" -> "a/b"; throws for absolute names, ".." components and empty names. */
export function normaliseEntryName(name: string): string {
  if (name.startsWith('/')) throw new UnsafeEntryError(`absolute path '${name}'`);
  const parts: string[] = [];
  for (const c of name.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') throw new UnsafeEntryError(`path '${name}' contains '..'`);
    if (c.includes('\0')) throw new UnsafeEntryError(`path '${name}' contains a NUL byte`);
    parts.push(c);
  }
  return parts.join('/');
}

export function parentOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i < 0 ? '' : p.slice(0, i);
}

/**
 * Everything one layer's extraction has created so far, by normalised path ('' is the
 * layer root). Directories created implicitly (a file whose parent had no entry) are
 * 'dir' with `implicit` set, so a later explicit entry for them is not a duplicate.
 */
export class LayerGuard {
  private readonly seen = new Map<string, { kind: EntryKind; implicit: boolean }>([['', { kind: 'dir', implicit: true }]]);

  constructor(private readonly maxSize: number = MAX_ENTRY_SIZE) {}

  kindOf(p: string): EntryKind | undefined {
    return this.seen.get(p)?.kind;
  }

  /**
   * Checks an entry about to be written at `p` and returns the parent directories that do
   * not exist yet (outermost first); the caller creates them and calls `created` for them.
   */
  admit(p: string, kind: EntryKind, size: number): string[] {
    if (p === '' && kind !== 'dir') throw new UnsafeEntryError(`entry for the layer root is not a directory`);
    if (!(size >= 0) || size > this.maxSize) throw new UnsafeEntryError(`'${p}': absurd size ${size} bytes`);
    const prev = this.seen.get(p);
    if (prev && !(kind === 'dir' && prev.kind === 'dir')) throw new UnsafeEntryError(`duplicate entry '${p}'`);
    const missing: string[] = [];
    for (let dir = parentOf(p); ; dir = parentOf(dir)) {
      const k = this.seen.get(dir)?.kind;
      if (k === 'symlink') throw new UnsafeEntryError(`'${p}' lies below symlink '${dir}'`);
      if (k !== undefined && k !== 'dir') throw new UnsafeEntryError(`'${p}': parent '${dir}' is not a directory`);
      if (k === undefined) missing.unshift(dir);
      if (dir === '' || k !== undefined) break;
    }
    return missing;
  }

  /** A hard link's target must be an earlier non-directory entry of this layer. */
  checkLinkTarget(p: string, target: string): void {
    const k = this.seen.get(target)?.kind;
    if (k === undefined) throw new UnsafeEntryError(`hard link '${p}' points to '${target}', which is not an earlier entry of this layer`);
    if (k === 'dir' || k === 'whiteout') throw new UnsafeEntryError(`hard link '${p}' points to ${k} '${target}'`);
  }

  created(p: string, kind: EntryKind, implicit = false): void {
    this.seen.set(p, { kind, implicit });
  }

  get count(): number {
    return this.seen.size - 1;
  }
}
