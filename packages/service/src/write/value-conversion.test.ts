import { describe, expect, it } from 'vitest';
import { toPostgresText, ValueConversionError, type ValueKind } from './value-conversion.js';
import { parseWriteRequest } from './write-request.js';

const kind = (k: 'bool' | 'bytea' | 'json' | 'number' | 'text'): ValueKind => ({ kind: k });
const array = (element: ValueKind): ValueKind => ({ kind: 'array', element, delimiter: ',' });

describe('toPostgresText (SQLite form → Postgres input text)', () => {
  it('converts booleans, numbers and exact big integers', () => {
    expect(toPostgresText(kind('bool'), 1)).toBe('true');
    expect(toPostgresText(kind('bool'), 0)).toBe('false');
    expect(toPostgresText(kind('bool'), true)).toBe('true');
    expect(toPostgresText(kind('number'), 9223372036854775807n)).toBe('9223372036854775807');
    expect(toPostgresText(kind('number'), 2.5)).toBe('2.5');
    expect(toPostgresText(kind('number'), '12345678901234567890.000000000000000001')).toBe(
      '12345678901234567890.000000000000000001',
    );
    expect(() => toPostgresText(kind('number'), Number.NaN)).toThrow(ValueConversionError);
    expect(toPostgresText(kind('text'), null)).toBeNull();
  });

  it('converts base64 to bytea hex and rejects non-base64', () => {
    expect(toPostgresText(kind('bytea'), '3q2+7w==')).toBe('\\xdeadbeef');
    expect(() => toPostgresText(kind('bytea'), 'not base64!')).toThrow(ValueConversionError);
  });

  it('passes JSON text through and serializes other JSON values exactly', () => {
    expect(toPostgresText(kind('json'), '{"a": 1}')).toBe('{"a": 1}');
    expect(toPostgresText(kind('json'), 5)).toBe('5');
  });

  it('turns JSON arrays into array literals, nested and quoted, with element conversion', () => {
    expect(toPostgresText(array(kind('text')), '["x","y \\"q\\"",null,"a\\\\b"]')).toBe(
      '{"x","y \\"q\\"",NULL,"a\\\\b"}',
    );
    expect(toPostgresText(array(kind('number')), '[[1,2],[3,null]]')).toBe('{{"1","2"},{"3",NULL}}');
    expect(toPostgresText(array(kind('bool')), '[1,0]')).toBe('{"true","false"}');
    expect(toPostgresText(array(kind('number')), '[9223372036854775807]')).toBe('{"9223372036854775807"}');
    expect(toPostgresText(array(kind('json')), '[{"a":1},"s"]')).toBe('{"{\\"a\\":1}","\\"s\\""}');
    expect(toPostgresText(array(kind('text')), '{a,b}')).toBe('{a,b}');
    expect(() => toPostgresText(array(kind('text')), 'nope')).toThrow(ValueConversionError);
  });
});

describe('parseWriteRequest', () => {
  it("reads Ferry's shape with exact big integers", () => {
    const txs = parseWriteRequest(
      '{"client_id":"c","transactions":[{"id":"c:1","ops":[{"op":"PUT","type":"t","id":"1","data":{"n":9007199254740993}}]}]}',
    );
    expect(txs).toEqual([
      { id: 'c:1', key: 'c:1', ops: [{ op: 'PUT', type: 't', id: '1', data: { n: 9007199254740993n } }] },
    ]);
  });

  it("groups PowerSync's batch by tx_id", () => {
    const txs = parseWriteRequest(
      JSON.stringify({
        batch: [
          { op: 'PUT', type: 't', id: '1', opData: { a: 1 }, tx_id: 1 },
          { op: 'DELETE', type: 't', id: '2', tx_id: 1 },
          { op: 'PATCH', type: 't', id: '3', data: { b: 2 } },
        ],
      }),
    );
    expect(txs.map((t) => [t.id, t.key, t.ops.length])).toEqual([
      ['1', null, 2],
      ['batch:2', null, 1],
    ]);
  });

  it('rejects non-JSON and wrong shapes with FERRY_S4001', () => {
    expect(() => parseWriteRequest('{')).toThrow(expect.objectContaining({ code: 'FERRY_S4001' }));
    expect(() => parseWriteRequest('{"client_id":"c","transactions":[]}')).toThrow(
      expect.objectContaining({ code: 'FERRY_S4001' }),
    );
  });
});
