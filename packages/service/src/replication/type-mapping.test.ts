import { describe, expect, it } from 'vitest';
import { parsePgArray } from './pg-array.js';
import { builtinTypes, mapBytea, mapTimestamp, mapTimestamptz, PG_TYPE, TypeRegistry } from './type-mapping.js';

const map = (oid: number, text: string | null) => builtinTypes.map(oid, text);

describe('type mapping', () => {
  it('maps integers, keeping int8 beyond 2^53 exact', () => {
    expect(map(PG_TYPE.int2, '-32768')).toBe(-32768);
    expect(map(PG_TYPE.int4, '2147483647')).toBe(2147483647);
    expect(map(PG_TYPE.oid, '4294967295')).toBe(4294967295);
    expect(map(PG_TYPE.int8, '9007199254740991')).toBe(9007199254740991);
    expect(map(PG_TYPE.int8, '-9007199254740991')).toBe(-9007199254740991);
    expect(map(PG_TYPE.int8, '9007199254740993')).toBe(9007199254740993n);
    expect(map(PG_TYPE.int8, '-9223372036854775808')).toBe(-9223372036854775808n);
  });

  it('maps floats; NaN and infinities become NULL', () => {
    expect(map(PG_TYPE.float8, '1.5')).toBe(1.5);
    expect(map(PG_TYPE.float4, '-0.25')).toBe(-0.25);
    expect(map(PG_TYPE.float8, '1e+300')).toBe(1e300);
    expect(map(PG_TYPE.float8, 'NaN')).toBeNull();
    expect(map(PG_TYPE.float8, 'Infinity')).toBeNull();
    expect(map(PG_TYPE.float8, '-Infinity')).toBeNull();
  });

  it('keeps numeric exact as text', () => {
    expect(map(PG_TYPE.numeric, '12345678901234567890.123456789012345678')).toBe(
      '12345678901234567890.123456789012345678',
    );
    expect(map(PG_TYPE.numeric, 'NaN')).toBe('NaN');
  });

  it('maps bool to 1/0 and text-like types to strings', () => {
    expect(map(PG_TYPE.bool, 't')).toBe(1);
    expect(map(PG_TYPE.bool, 'f')).toBe(0);
    expect(map(PG_TYPE.uuid, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11')).toBe('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
    expect(map(PG_TYPE.bpchar, 'ab  ')).toBe('ab  ');
    expect(map(PG_TYPE.interval, '1 day 02:00:00')).toBe('1 day 02:00:00');
    expect(map(PG_TYPE.jsonb, '{"a": [1, 2]}')).toBe('{"a": [1, 2]}');
    expect(map(99999, 'whatever')).toBe('whatever');
    expect(map(PG_TYPE.text, null)).toBeNull();
  });

  it('normalizes timestamptz from any session zone to UTC with microseconds', () => {
    expect(mapTimestamptz('2024-05-01 09:30:00-03')).toBe('2024-05-01T12:30:00.000000Z');
    expect(mapTimestamptz('2024-05-01 09:30:00.5+05:30')).toBe('2024-05-01T04:00:00.500000Z');
    expect(mapTimestamptz('2024-12-31 23:59:59.123456-03')).toBe('2025-01-01T02:59:59.123456Z');
    expect(mapTimestamptz('1890-01-01 00:00:00-03:06:28')).toBe('1890-01-01T03:06:28.000000Z');
    expect(mapTimestamptz('0044-03-15 12:00:00+00')).toBe('0044-03-15T12:00:00.000000Z');
    expect(mapTimestamptz('12345-01-01 00:00:00+00')).toBe('12345-01-01T00:00:00.000000Z');
    expect(mapTimestamptz('infinity')).toBe('infinity');
  });

  it('formats timestamp and keeps date', () => {
    expect(mapTimestamp('2024-05-01 09:30:00')).toBe('2024-05-01T09:30:00.000000');
    expect(mapTimestamp('2024-05-01 09:30:00.25')).toBe('2024-05-01T09:30:00.250000');
    expect(map(PG_TYPE.date, '2024-05-01')).toBe('2024-05-01');
  });

  it('encodes bytea as base64 from hex or escape format', () => {
    expect(mapBytea('\\x00ff10')).toBe(Buffer.from([0, 255, 16]).toString('base64'));
    expect(mapBytea('\\x')).toBe('');
    expect(mapBytea('a\\000\\\\b')).toBe(Buffer.from([97, 0, 92, 98]).toString('base64'));
  });

  it('maps arrays to JSON arrays, with NULLs, quotes and nesting', () => {
    expect(map(1007, '{1,2,NULL}')).toBe('[1,2,null]');
    expect(map(1009, '{plain,"with \\"quote\\"","a,b",NULL,"NULL",""}')).toBe(
      '["plain","with \\"quote\\"","a,b",null,"NULL",""]',
    );
    expect(map(1007, '{{1,2},{3,4}}')).toBe('[[1,2],[3,4]]');
    expect(map(1016, '{9007199254740993,1}')).toBe('[9007199254740993,1]');
    expect(map(1000, '{t,f}')).toBe('[1,0]');
    expect(map(3807, '{"{\\"a\\": 1}",NULL}')).toBe('[{"a": 1},null]');
    expect(map(1185, '{"2024-05-01 09:30:00-03"}')).toBe('["2024-05-01T12:30:00.000000Z"]');
    expect(map(1007, '{}')).toBe('[]');
    expect(map(1007, '[0:1]={5,6}')).toBe('[5,6]');
    expect(map(1009, '{"back\\\\slash"}')).toBe('["back\\\\slash"]');
  });

  it('maps domains and custom arrays registered from the catalog', () => {
    const types = new TypeRegistry();
    types.add({ oid: 90001, kind: 'domain', baseOid: PG_TYPE.int8 });
    types.add({ oid: 90002, kind: 'array', elementOid: 90001, delimiter: ',' });
    types.add({ oid: 90003, kind: 'array', elementOid: 90010, delimiter: ';' });
    expect(types.map(90001, '9007199254740993')).toBe(9007199254740993n);
    expect(types.map(90002, '{1,NULL}')).toBe('[1,null]');
    expect(types.map(90003, '{(1,1),(0,0);(2,2),(1,1)}')).toBe('["(1,1),(0,0)","(2,2),(1,1)"]');
    expect(types.missing([PG_TYPE.int4, 90001, 90099, 1007])).toEqual([90099]);
  });
});

describe('parsePgArray', () => {
  it('parses text elements and rejects malformed input', () => {
    expect(parsePgArray('{a,"b c",NULL}')).toEqual(['a', 'b c', null]);
    expect(parsePgArray('{{a},{NULL}}')).toEqual([['a'], [null]]);
    expect(() => parsePgArray('{a,b')).toThrow(/array literal/);
    expect(() => parsePgArray('a,b}')).toThrow(/array literal/);
  });
});
