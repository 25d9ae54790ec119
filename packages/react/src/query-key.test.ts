import { describe, expect, it } from 'vitest';
import { queryKey } from './query-key.js';

describe('queryKey', () => {
  it('is equal for equal SQL and parameter values', () => {
    expect(queryKey('SELECT ?', ['a', 1, null])).toBe(queryKey('SELECT ?', ['a', 1, null]));
    expect(queryKey('SELECT 1', [])).toBe(queryKey('SELECT 1', []));
    expect(queryKey('SELECT ?', [new Uint8Array([1, 2])])).toBe(queryKey('SELECT ?', [new Uint8Array([1, 2])]));
    expect(queryKey('SELECT ?', [2n ** 64n])).toBe(queryKey('SELECT ?', [18446744073709551616n]));
  });

  it('tells apart values of different types and different SQL', () => {
    const keys = [
      queryKey('SELECT ?', [1]),
      queryKey('SELECT ?', [1n]),
      queryKey('SELECT ?', ['1']),
      queryKey('SELECT ?', [true]),
      queryKey('SELECT ?', [null]),
      queryKey('SELECT ?', [Number.NaN]),
      queryKey('SELECT ?', [Number.POSITIVE_INFINITY]),
      queryKey('SELECT ?', [new Uint8Array([1])]),
      queryKey('SELECT ?', []),
      queryKey('SELECT  ?', [1]),
      queryKey('SELECT ?', [1, 1]),
    ];
    expect(new Set(keys).size).toBe(keys.length);
  });
});
