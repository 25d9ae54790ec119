import { describe, expect, it } from 'vitest';
import { int2Array, int4Array, int8Array, textArray } from './pg-binary-array.js';

describe('binary array parameters', () => {
  it('lays out a text[] as array_send does', () => {
    const buffer = textArray(['ab', null, 'é']);
    expect(buffer.readInt32BE(0)).toBe(1); // ndim
    expect(buffer.readInt32BE(8)).toBe(25); // text
    expect(buffer.readInt32BE(12)).toBe(3); // length
    expect(buffer.readInt32BE(16)).toBe(1); // lower bound
    expect(buffer.readInt32BE(20)).toBe(2);
    expect(buffer.toString('utf8', 24, 26)).toBe('ab');
    expect(buffer.readInt32BE(26)).toBe(-1);
    expect(buffer.readInt32BE(30)).toBe(2); // UTF-8 bytes, not UTF-16 units
    expect(buffer.toString('utf8', 34)).toBe('é');
    expect(buffer.length).toBe(36);
  });

  it('encodes an empty array with no dimensions', () => {
    const buffer = textArray([]);
    expect(buffer.length).toBe(12);
    expect(buffer.readInt32BE(0)).toBe(0);
  });

  it('writes int8 from numbers and bigints, negative ones included', () => {
    const values = [0, 1, -1, 2 ** 32, -(2 ** 32) - 5, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER];
    const buffer = int8Array([...values, 2n ** 63n - 1n, -(2n ** 63n)]);
    expect(buffer.readInt32BE(8)).toBe(20);
    const read = (i: number) => buffer.readBigInt64BE(20 + i * 12 + 4);
    values.forEach((v, i) => expect(read(i)).toBe(BigInt(v)));
    expect(read(values.length)).toBe(2n ** 63n - 1n);
    expect(read(values.length + 1)).toBe(-(2n ** 63n));
    expect(() => int8Array([1.5])).toThrow(RangeError);
  });

  it('writes int4 and int2', () => {
    const i4 = int4Array([7, -3]);
    expect([i4.readInt32BE(8), i4.readInt32BE(24), i4.readInt32BE(32)]).toEqual([23, 7, -3]);
    const i2 = int2Array([4, -2]);
    expect([i2.readInt32BE(8), i2.readInt16BE(24), i2.readInt16BE(30)]).toEqual([21, 4, -2]);
  });
});
