// The cache lifetimes a mounting command gives its daemon, from its flags and -o options
// (src/cli/mount-options.ts): what the union and loopback mounts get by default, and which
// spelling wins.
import { describe, expect, it } from 'vitest';
import { serveOptions } from '../../src/cli/mount-options.js';

const union = { timeout: 86400, namesOnlyThroughMount: true };
const loopback = { timeout: 1 };

describe('cache lifetimes from the command line', () => {
  it('a union mount keeps names that do not exist as long as names; loopback never', () => {
    expect(serveOptions({}, union)).toMatchObject({ timeouts: { entry: 86400, attr: 86400 }, negativeTimeout: 86400 });
    expect(serveOptions({}, loopback)).toMatchObject({ timeouts: { entry: 1, attr: 1 }, negativeTimeout: 0 });
    expect(serveOptions({ 'entry-timeout': '30' }, loopback).negativeTimeout).toBe(0);
  });

  it('-o timeout=S and --entry-timeout shorten the negative lifetime with the entry one; --negative-timeout wins', () => {
    expect(serveOptions({ o: ['timeout=0'] }, union)).toMatchObject({ timeouts: { entry: 0, attr: 0 }, negativeTimeout: 0 });
    expect(serveOptions({ o: ['lowerdir=/l,timeout=5'] }, union)).toMatchObject({ timeouts: { entry: 5, attr: 5 }, negativeTimeout: 5 });
    expect(serveOptions({ 'entry-timeout': '2' }, union)).toMatchObject({ timeouts: { entry: 2, attr: 86400 }, negativeTimeout: 2 });
    expect(serveOptions({ 'negative-timeout': '0' }, union)).toMatchObject({ timeouts: { entry: 86400 }, negativeTimeout: 0 });
    expect(serveOptions({ o: ['timeout=0'], 'negative-timeout': '7' }, union).negativeTimeout).toBe(7);
    expect(() => serveOptions({ 'negative-timeout': 'soon' }, union)).toThrow('--negative-timeout: not a number of seconds: soon');
  });
});
