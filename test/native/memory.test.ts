// native.lowMemory: V8's memory-reducing collection, run in this very process. A busy spell
// of allocation grows the young generation; the collection gives it back.
import * as v8 from 'node:v8';
import { expect, it } from 'vitest';
import { native } from '../../src/native/binding.js';

const newSpace = (): number => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.space_size;

it('lowMemory shrinks the young generation that allocation grew, and keeps live objects', () => {
  const live = Array.from({ length: 50_000 }, (_, i) => ({ i, name: `entry-${i}` }));
  // Short-lived garbage, each batch alive across a few scavenges: the young generation
  // grows to hold it.
  let sum = 0;
  for (let round = 0; round < 10; round++) sum += Array.from({ length: 100_000 }, (_, i) => [i, `x${i}`] as const).length;
  const grown = newSpace();
  expect(grown, 'the young generation did not grow: the test proves nothing').toBeGreaterThan(4 * 2 ** 20);
  native.lowMemory();
  expect(newSpace()).toBeLessThan(grown / 2);
  expect(live[49_999]!.name).toBe('entry-49999');
  expect(sum).toBe(1_000_000);
});
