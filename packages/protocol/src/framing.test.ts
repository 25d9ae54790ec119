import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bucketName, splitBucketName } from './bucket-name.js';
import { rowToJson } from './json.js';
import { NdjsonDecoder, encodeLine } from './ndjson.js';
import { compareOpIdStrings, formatOpId, parseOpId } from './op-id.js';

describe('ndjson framing', () => {
  const lines = [
    { checkpoint: { last_op_id: '12', buckets: [] } },
    { data: { bucket: 'b["é"]', data: [{ op_id: '3', op: 'PUT', data: '{"t":"☕ 𝄞"}', checksum: 1 }] } },
    { token_expires_in: 60 },
  ];
  const bytes = new TextEncoder().encode(lines.map(encodeLine).join(''));

  it('yields the same lines however the bytes are cut (every split point)', () => {
    for (let cut = 0; cut <= bytes.length; cut++) {
      const decoder = new NdjsonDecoder();
      const out: unknown[] = [];
      decoder.push(bytes.subarray(0, cut), (l) => out.push(JSON.parse(l)));
      decoder.push(bytes.subarray(cut), (l) => out.push(JSON.parse(l)));
      expect(decoder.end()).toBe('');
      expect(out).toEqual(lines);
    }
  });

  it('yields the same lines for random chunkings', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 7 }), { maxLength: 200 }), (sizes) => {
        const decoder = new NdjsonDecoder();
        const out: unknown[] = [];
        let offset = 0;
        for (const size of sizes) {
          decoder.push(bytes.subarray(offset, offset + size), (l) => out.push(JSON.parse(l)));
          offset += size;
        }
        decoder.push(bytes.subarray(offset), (l) => out.push(JSON.parse(l)));
        expect(out).toEqual(lines);
      }),
    );
  });

  it('skips blank lines, trims, and returns an unterminated last line from end()', () => {
    const decoder = new NdjsonDecoder();
    const out: string[] = [];
    const encoder = new TextEncoder();
    decoder.push(encoder.encode('\n  {"a":1}  \r\n\n{"b"'), (l) => out.push(l));
    decoder.push(encoder.encode(':2}'), (l) => out.push(l));
    expect(out).toEqual(['{"a":1}']);
    expect(decoder.end()).toBe('{"b":2}');
    expect(decoder.end()).toBe('');
  });

  it('does not keep a reference to a chunk the caller may reuse', () => {
    const decoder = new NdjsonDecoder();
    const out: string[] = [];
    const chunk = new TextEncoder().encode('{"x":"abc');
    decoder.push(chunk, (l) => out.push(l));
    chunk.fill(0x20);
    decoder.push(new TextEncoder().encode('"}\n'), (l) => out.push(l));
    expect(out).toEqual(['{"x":"abc"}']);
  });

  it('rejects bytes that are not UTF-8', () => {
    const decoder = new NdjsonDecoder();
    expect(() => decoder.push(new Uint8Array([0x7b, 0xff, 0x7d, 0x0a]), () => {})).toThrow(TypeError);
  });
  it('returns a trailing partial line from end()', () => {
    const decoder = new NdjsonDecoder();
    decoder.push('{"a":1}\n{"b":', () => {});
    expect(decoder.end()).toBe('{"b":');
  });

  it('frames string chunks the same way', () => {
    const text = lines.map(encodeLine).join('');
    for (let cut = 0; cut <= text.length; cut++) {
      const decoder = new NdjsonDecoder();
      const out: unknown[] = [];
      decoder.push(text.slice(0, cut), (l) => out.push(JSON.parse(l)));
      decoder.push(text.slice(cut), (l) => out.push(JSON.parse(l)));
      expect(decoder.end()).toBe('');
      expect(out).toEqual(lines);
    }
  });
});

describe('op ids', () => {
  it('round-trips canonical int64 decimal strings and rejects others', () => {
    expect(parseOpId('0')).toBe(0n);
    expect(formatOpId(parseOpId('9223372036854775807'))).toBe('9223372036854775807');
    for (const bad of ['', '-1', '01', '1.5', '9223372036854775808', ' 1', 'abc']) {
      expect(() => parseOpId(bad)).toThrow(RangeError);
    }
  });

  it('compares wire strings like the numbers they encode', () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: (1n << 63n) - 1n }),
        fc.bigInt({ min: 0n, max: (1n << 63n) - 1n }),
        (a, b) => {
          expect(Math.sign(compareOpIdStrings(formatOpId(a), formatOpId(b)))).toBe(a < b ? -1 : a > b ? 1 : 0);
        },
      ),
    );
  });
});

describe('row JSON', () => {
  it('writes bigints as exact JSON integers', () => {
    expect(rowToJson({ id: 'a', big: 9007199254740993n, n: 1.5, s: 'x"y', nul: null })).toBe(
      '{"id":"a","big":9007199254740993,"n":1.5,"s":"x\\"y","nul":null}',
    );
  });

  it('names buckets definition[params...] and splits them back', () => {
    const name = bucketName('by_list', ['l1', 12345678901234567890n]);
    expect(name).toBe('by_list["l1",12345678901234567890]');
    expect(splitBucketName(name)).toEqual({ definition: 'by_list', paramsJson: '["l1",12345678901234567890]' });
    expect(bucketName('global', [])).toBe('global[]');
  });
});
