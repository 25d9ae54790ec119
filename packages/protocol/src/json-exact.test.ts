import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseJsonExact } from './json-exact.js';

/** What parseJsonExact should give for a JSON.parse result: unsafe integer literals as bigint. */
function exactly(value: unknown): unknown {
  if (typeof value === 'number') {
    const literal = String(value);
    return Number.isInteger(value) && !Number.isSafeInteger(value) && /^-?\d+$/.test(literal) ? BigInt(literal) : value;
  }
  if (Array.isArray(value)) return value.map(exactly);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, exactly(v)]));
  }
  return value;
}

describe('parseJsonExact', () => {
  it('keeps integers beyond 2^53 exact, as bigint', () => {
    const parsed = parseJsonExact(
      '{"a": 9223372036854775807, "b": -9223372036854775808, "c": 12, "d": [1.5, "9007199254740993"]}',
    );
    expect(parsed).toEqual({ a: 9223372036854775807n, b: -9223372036854775808n, c: 12, d: [1.5, '9007199254740993'] });
  });

  it('leaves digits inside strings alone and keeps safe integers as numbers', () => {
    expect(parseJsonExact('{"s": "12345678901234567890", "n": 9007199254740991}')).toEqual({
      s: '12345678901234567890',
      n: 9007199254740991,
    });
    expect(parseJsonExact('[9007199254740993, 1e300, "x\\"1234567890123456"]')).toEqual([
      9007199254740993n,
      1e300,
      'x"1234567890123456',
    ]);
  });

  it('does not let "__proto__" keys change the prototype', () => {
    const parsed = parseJsonExact('{"__proto__": {"polluted": 1}, "n": 12345678901234567890}') as Record<
      string,
      unknown
    >;
    expect(Object.getPrototypeOf(parsed)).toBe(Object.prototype);
    expect(parsed['__proto__']).toEqual({ polluted: 1 });
  });

  it('rejects malformed JSON with a SyntaxError', () => {
    for (const text of [
      '{"a": 12345678901234567890',
      '[12345678901234567890,]',
      '{a: 12345678901234567890}',
      '12345678901234567890 x',
    ]) {
      expect(() => parseJsonExact(text)).toThrow(SyntaxError);
    }
  });

  it('agrees with JSON.parse on any JSON value (numbers made safe)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), (value, big) => {
        const text = JSON.stringify({ value, big: 0 }).replace('"big":0', `"big":${big}`);
        const parsed = parseJsonExact(text) as { value: unknown; big: unknown };
        expect(parsed.value).toEqual(exactly(JSON.parse(JSON.stringify(value))));
        expect(parsed.big).toEqual(Number.isSafeInteger(Number(big)) ? Number(big) : big);
      }),
    );
  });
});
