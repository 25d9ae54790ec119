import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  compareHlc,
  decodeHlc,
  encodeHlc,
  HLC_MAX_COUNTER,
  HLC_MAX_DRIFT_MS,
  hlcNow,
  hlcReceive,
  type Hlc,
} from './hlc.js';

const wall = fc.integer({ min: 0, max: 2 ** 44 });
const node = fc.string({ maxLength: 12 });
const hlc: fc.Arbitrary<Hlc> = fc.record({
  wallMs: wall,
  counter: fc.oneof(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: HLC_MAX_COUNTER })),
  node,
});

describe('hlcNow', () => {
  it('starts at the wall clock', () => {
    expect(hlcNow(null, 1000.7, 'a')).toEqual({ wallMs: 1000, counter: 0, node: 'a' });
  });

  it('bumps the counter when the wall clock stands still or goes back', () => {
    const first = hlcNow(null, 5000, 'a');
    expect(hlcNow(first, 5000, 'a')).toEqual({ wallMs: 5000, counter: 1, node: 'a' });
    expect(hlcNow(hlcNow(first, 5000, 'a'), 10, 'a')).toEqual({ wallMs: 5000, counter: 2, node: 'a' });
    expect(hlcNow(first, 6000, 'a')).toEqual({ wallMs: 6000, counter: 0, node: 'a' });
  });

  it('carries a counter overflow into wallMs', () => {
    expect(hlcNow({ wallMs: 7, counter: HLC_MAX_COUNTER, node: 'a' }, 0, 'a')).toEqual({
      wallMs: 8,
      counter: 0,
      node: 'a',
    });
  });

  it('rejects a wall clock outside the encodable range', () => {
    expect(() => hlcNow(null, -1, 'a')).toThrow(RangeError);
    expect(() => hlcNow(null, Number.NaN, 'a')).toThrow(RangeError);
  });

  it('is strictly monotonic under any sequence of wall clock readings', () => {
    fc.assert(
      fc.property(fc.array(wall, { minLength: 1, maxLength: 50 }), node, (readings, n) => {
        const stamps: Hlc[] = [];
        for (const now of readings) {
          const next = hlcNow(stamps.at(-1) ?? null, now, n);
          expect(next.wallMs).toBeGreaterThanOrEqual(now);
          stamps.push(next);
        }
        for (let i = 1; i < stamps.length; i++) expect(compareHlc(stamps[i]!, stamps[i - 1]!)).toBe(1);
      }),
    );
  });
});

describe('hlcReceive', () => {
  it('is after both inputs and at least the wall clock, keeping the local node', () => {
    fc.assert(
      fc.property(hlc, hlc, wall, (local, remote, now) => {
        fc.pre(remote.wallMs - now <= HLC_MAX_DRIFT_MS);
        const merged = hlcReceive(local, remote, now);
        expect(compareHlc(merged, local)).toBe(1);
        expect(
          merged.wallMs > remote.wallMs || (merged.wallMs === remote.wallMs && merged.counter > remote.counter),
        ).toBe(true);
        expect(merged.wallMs).toBeGreaterThanOrEqual(now);
        expect(merged.node).toBe(local.node);
      }),
    );
  });

  it('rejects a remote stamp too far in the future', () => {
    const local = hlcNow(null, 1_000_000, 'a');
    const remote = { wallMs: 1_000_000 + HLC_MAX_DRIFT_MS + 1, counter: 0, node: 'b' };
    expect(() => hlcReceive(local, remote, 1_000_000)).toThrow(RangeError);
    expect(hlcReceive(local, { ...remote, wallMs: remote.wallMs - 1 }, 1_000_000).wallMs).toBe(remote.wallMs - 1);
  });
});

describe('encoding', () => {
  it('round-trips', () => {
    fc.assert(
      fc.property(hlc, (h) => {
        expect(decodeHlc(encodeHlc(h))).toEqual(h);
      }),
    );
  });

  it('sorts as text exactly like compareHlc', () => {
    fc.assert(
      fc.property(hlc, hlc, (a, b) => {
        const ea = encodeHlc(a);
        const eb = encodeHlc(b);
        const textOrder = ea === eb ? 0 : ea < eb ? -1 : 1;
        expect(textOrder).toBe(compareHlc(a, b));
      }),
    );
  });

  it('rejects text that is not an HLC', () => {
    expect(() => decodeHlc('xyz')).toThrow(RangeError);
    expect(() => decodeHlc('0000000000zz00000000node')).toThrow(RangeError);
  });
});
