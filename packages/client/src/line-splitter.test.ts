import { encodeLine } from '@ferry/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LineSplitter } from './line-splitter.js';

describe('LineSplitter', () => {
  const lines = [
    { checkpoint: { last_op_id: '12', buckets: [] } },
    { data: { bucket: 'b["é"]', data: [{ op_id: '3', op: 'PUT', data: '{"t":"☕ 𝄞"}', checksum: 1 }] } },
    { token_expires_in: 60 },
  ];
  const text = lines.map(encodeLine).join('');
  const bytes = new TextEncoder().encode(text);

  const split = (sizes: readonly number[]): { out: unknown[]; rest: string } => {
    const splitter = new LineSplitter();
    const out: unknown[] = [];
    let offset = 0;
    for (const size of sizes) {
      splitter.push(bytes.subarray(offset, offset + size), (l) => out.push(JSON.parse(l)));
      offset += size;
    }
    splitter.push(bytes.subarray(offset), (l) => out.push(JSON.parse(l)));
    return { out, rest: splitter.end() };
  };

  it('yields the same lines however the bytes are cut (every split point, even inside a character)', () => {
    for (let cut = 0; cut <= bytes.length; cut++) {
      const { out, rest } = split([cut]);
      expect(rest).toBe('');
      expect(out).toEqual(lines);
    }
  });

  it('yields the same lines for random chunkings', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 9 }), { maxLength: 200 }), (sizes) => {
        const { out, rest } = split(sizes);
        expect(rest).toBe('');
        expect(out).toEqual(lines);
      }),
    );
  });

  it('skips blank lines, trims, and returns an unterminated last line from end()', () => {
    const splitter = new LineSplitter();
    const out: string[] = [];
    const encoder = new TextEncoder();
    splitter.push(encoder.encode('\n  {"a":1}  \r\n\n{"b"'), (l) => out.push(l));
    splitter.push(encoder.encode(':2}'), (l) => out.push(l));
    expect(out).toEqual(['{"a":1}']);
    expect(splitter.end()).toBe('{"b":2}');
    expect(splitter.end()).toBe('');
  });

  it('does not keep a reference to a chunk the caller may reuse', () => {
    const splitter = new LineSplitter();
    const out: string[] = [];
    const chunk = new TextEncoder().encode('{"x":"abc');
    splitter.push(chunk, (l) => out.push(l));
    chunk.fill(0x20);
    splitter.push(new TextEncoder().encode('"}\n'), (l) => out.push(l));
    expect(out).toEqual(['{"x":"abc"}']);
  });

  it('rejects bytes that are not UTF-8', () => {
    const splitter = new LineSplitter();
    expect(() => splitter.push(new Uint8Array([0x7b, 0xff, 0x7d, 0x0a]), () => {})).toThrow(TypeError);
  });
});
