// What the index tests share.

import { PathIndex } from '../../src/index/path-index.js';

/** An upper dir's changes as another process reads them (`strata diff`), as 'K /path' lines. */
export function journalLines(indexFile: string, upper: string): string[] {
  const index = PathIndex.open(indexFile);
  try {
    return index.upperChanges(upper).map((c) => `${c.kind} ${c.path}`);
  } finally {
    index.close();
  }
}
