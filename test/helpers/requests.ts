// FUSE requests a test's mount gets, counted by the kernel's own fuse tracepoints
// (src/bench/fuse-requests.ts): what the kernel asks the daemon, not what the daemon says.
import { FuseRequestTrace, fuseConnection } from '../../src/bench/fuse-requests.js';

/** How many requests per opcode the mount at `mnt` got while `f` ran: a count for an opcode name. */
export function requestsDuring(mnt: string, f: () => void): (opcode: string) => number {
  const t = FuseRequestTrace.open();
  if (typeof t === 'string') throw new Error(t);
  try {
    const { ops } = t.record(fuseConnection(mnt)!, f);
    return (opcode) => ops.get(opcode)?.sent ?? 0;
  } finally {
    t.close();
  }
}
