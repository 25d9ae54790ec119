import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { retryDelay } from './backoff.js';

describe('retryDelay', () => {
  it('grows exponentially from 250 ms, is capped at 30 s, and is jittered into [half, full]', () => {
    expect(retryDelay(0, {}, () => 0.999999)).toBe(250);
    expect(retryDelay(0, {}, () => 0)).toBe(125);
    expect(retryDelay(3, {}, () => 0.999999)).toBe(2000);
    expect(retryDelay(20, {}, () => 0.999999)).toBe(30_000);
    fc.assert(
      fc.property(fc.nat(100), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (attempt, r) => {
        const full = Math.min(30_000, 250 * 2 ** Math.min(attempt, 30));
        const delay = retryDelay(attempt, {}, () => r);
        expect(delay).toBeGreaterThanOrEqual(Math.floor(full / 2));
        expect(delay).toBeLessThanOrEqual(full);
      }),
    );
  });
});
