import * as reference from '@ferry/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { putChecksum, removeChecksum } from './op-checksum.js';

// Any UTF-16 sequence, including unpaired surrogates and astral characters.
const text = fc.string({ unit: 'binary', maxLength: 300 });
const ascii = fc.string({ maxLength: 40 });
const subkey = fc.option(fc.oneof(text, ascii), { nil: undefined });

describe('op checksums with node:crypto', () => {
  it('match @ferry/protocol for PUT ops', () => {
    fc.assert(
      fc.property(fc.oneof(ascii, text), fc.oneof(ascii, text), text, subkey, (type, id, data, sub) => {
        expect(putChecksum(type, id, data, sub)).toBe(reference.putChecksum(type, id, data, sub));
      }),
      { numRuns: 2000 },
    );
  });

  it('match @ferry/protocol for REMOVE ops', () => {
    fc.assert(
      fc.property(fc.oneof(ascii, text), fc.oneof(ascii, text), subkey, (type, id, sub) => {
        expect(removeChecksum(type, id, sub)).toBe(reference.removeChecksum(type, id, sub));
      }),
      { numRuns: 2000 },
    );
  });

  it('treats a null subkey like no subkey, and a long value like any other', () => {
    const long = '{"x":"' + 'é🚀'.repeat(5000) + '"}';
    expect(putChecksum('t', 'id', long, null)).toBe(reference.putChecksum('t', 'id', long));
    expect(removeChecksum('t', '\ud800x', null)).toBe(reference.removeChecksum('t', '\ud800x'));
    // Fixed vectors (sha256 of the canonical string, first four bytes little-endian), so a
    // change to both implementations at once is noticed too.
    expect(putChecksum('items', '1', '{"id":"1"}')).toBe(329880695);
    expect(removeChecksum('todos', 'a')).toBe(81631077);
  });
});
