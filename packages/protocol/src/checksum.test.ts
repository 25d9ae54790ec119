import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { addChecksums, normalizeChecksum, putChecksum, removeChecksum, subtractChecksums } from './checksum.js';

function reference(text: string): number {
  return createHash('sha256').update(text).digest().readUInt32LE(0);
}

describe('op checksums', () => {
  it('is the little-endian u32 of the first four sha256 bytes of put.<type>.<id>.<data>', () => {
    const data = '{"id":"t1","title":"Buy milk"}';
    expect(putChecksum('todos', 't1', data)).toBe(reference(`put.todos.t1.${data}`));
    expect(removeChecksum('todos', 't1')).toBe(reference('delete.todos.t1'));
  });

  it('hashes UTF-8, not UTF-16', () => {
    const data = '{"title":"café ☕ 𝄞"}';
    expect(putChecksum('t', 'x', data)).toBe(reference(`put.t.x.${data}`));
  });

  it('sums with u32 wrap-around, independent of order and grouping', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 0xffffffff })), (values) => {
        const forward = values.reduce(addChecksums, 0);
        const backward = [...values].reverse().reduce(addChecksums, 0);
        expect(forward).toBe(backward);
        expect(forward).toBeGreaterThanOrEqual(0);
        expect(forward).toBeLessThanOrEqual(0xffffffff);
        const half = Math.floor(values.length / 2);
        const grouped = addChecksums(
          values.slice(0, half).reduce(addChecksums, 0),
          values.slice(half).reduce(addChecksums, 0),
        );
        expect(grouped).toBe(forward);
      }),
    );
  });

  it('subtracts as the inverse of add', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffffffff }), (a, b) => {
        expect(subtractChecksums(addChecksums(a, b), b)).toBe(a);
      }),
    );
  });

  it('normalizes i32 and u32 forms and rejects the rest', () => {
    expect(normalizeChecksum(-1)).toBe(0xffffffff);
    expect(normalizeChecksum(3573495687)).toBe(3573495687);
    expect(normalizeChecksum(-721471609)).toBe(3573495687);
    expect(() => normalizeChecksum(1.5)).toThrow(RangeError);
    expect(() => normalizeChecksum(2 ** 32)).toThrow(RangeError);
    expect(() => normalizeChecksum('1')).toThrow(RangeError);
  });
});
