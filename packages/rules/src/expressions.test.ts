import type { SqliteRow, SqliteValue } from '@ferry/protocol';
import { describe, expect, test } from 'vitest';
import { compileSyncRules } from './index.js';

/** Evaluates `expr` as an output column over `row`, through the whole compiler. */
async function evaluate(expr: string, row: SqliteRow = {}): Promise<SqliteValue | undefined> {
  const rules = await compileSyncRules(
    `bucket_definitions:\n  a:\n    data:\n      - "SELECT id, ${expr.replaceAll('"', '\\"')} AS v FROM t"\n`,
  );
  const result = rules.evaluateRow({ schema: 'public', name: 't' }, { id: 1, ...row });
  expect(result.errors).toEqual([]);
  return result.rows[0]?.data['v'];
}

/** Whether `condition` keeps the row. */
async function keeps(condition: string, row: SqliteRow): Promise<boolean> {
  const rules = await compileSyncRules(
    `bucket_definitions:\n  a:\n    data:\n      - "SELECT * FROM t WHERE ${condition.replaceAll('"', '\\"')}"\n`,
  );
  return rules.evaluateRow({ schema: 'public', name: 't' }, { id: 1, ...row }).rows.length === 1;
}

describe('literals and casts', () => {
  const cases: [string, SqliteRow, SqliteValue][] = [
    ["'text'", {}, 'text'],
    ['42', {}, 42],
    ['-3', {}, -3],
    ['1.5', {}, 1.5],
    ['9223372036854775807', {}, 9223372036854775807n],
    ['true', {}, 1],
    ['false', {}, 0],
    ['NULL', {}, null],
    ['x::text', { x: 5 }, '5'],
    ['x::text', { x: 9007199254740993n }, '9007199254740993'],
    ['x::int', { x: '12abc' }, 12],
    ['x::integer', { x: 3.9 }, 3],
    ['x::bigint', { x: '9007199254740993' }, 9007199254740993n],
    ['x::real', { x: '2.5' }, 2.5],
    ['x::float', { x: 7n }, 7],
    ['x::numeric', { x: '10' }, 10],
    ['x::numeric', { x: '1.25' }, 1.25],
    ['x::boolean', { x: 'yes' }, 1],
    ['x::boolean', { x: 0 }, 0],
    ['x::int', { x: null }, null],
    ['CAST(x AS text)', { x: 1.5 }, '1.5'],
    ['completed::int', { completed: 1 }, 1],
  ];
  for (const [expr, row, expected] of cases) {
    test(`${expr} over ${JSON.stringify(row, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v))}`, async () => {
      expect(await evaluate(expr, row)).toEqual(expected);
    });
  }
});

describe('functions', () => {
  const cases: [string, SqliteRow, SqliteValue][] = [
    ['upper(s)', { s: 'abc' }, 'ABC'],
    ['lower(s)', { s: 'ÀB' }, 'àb'],
    ['length(s)', { s: 'Zoë☕' }, 4],
    ['length(s)', { s: null }, null],
    ['substring(s, 2, 3)', { s: 'abcdef' }, 'bcd'],
    ['substr(s, -2)', { s: 'abcdef' }, 'ef'],
    ['substring(s FROM 2 FOR 2)', { s: 'abcdef' }, 'bc'],
    ['coalesce(a, b, 3)', { a: null, b: null }, 3],
    ['coalesce(a, b)', { a: null, b: 'b' }, 'b'],
    ['ifnull(a, 0)', { a: null }, 0],
    ['nullif(a, 0)', { a: 0 }, null],
    ['nullif(a, 0)', { a: 2 }, 2],
    ["concat(a, '-', b)", { a: 'x', b: null }, 'x-'],
    ["a || '-' || b", { a: 'x', b: 2 }, 'x-2'],
    ["a || '-' || b", { a: 'x', b: null }, null],
    ["json_extract(j, '$.a.b[1]')", { j: '{"a":{"b":[1,2]}}' }, 2],
    ["json_extract(j, '$.o')", { j: '{"o":{"k":true}}' }, '{"k":true}'],
    ['json_array_length(j)', { j: '[1,2,3]' }, 3],
    ["json_array_length(j, '$.x')", { j: '{"x":[1]}' }, 1],
    ["j -> 'a'", { j: '{"a":"x"}' }, '"x"'],
    ["j ->> 'a'", { j: '{"a":"x"}' }, 'x'],
    ["j ->> 'flag'", { j: '{"flag":true}' }, 1],
    ["j -> 'a' ->> 'b'", { j: '{"a":{"b":5}}' }, 5],
    ["j ->> '$.a.b'", { j: '{"a":{"b":5}}' }, 5],
    ['j ->> 1', { j: '[10,20]' }, 20],
    ["j ->> 'missing'", { j: '{}' }, null],
    ["j ->> 'a'", { j: 'not json' }, null],
    ['hex(s)', { s: 'ab' }, '6162'],
    ['base64(s)', { s: 'hello' }, 'aGVsbG8='],
    ['unixepoch(ts)', { ts: '2024-01-02T03:04:05Z' }, 1704164645],
    ['unixepoch(ts)', { ts: '2024-01-02 03:04:05' }, 1704164645],
    ['datetime(ts)', { ts: '2024-01-02T03:04:05.678+01:00' }, '2024-01-02 02:04:05'],
    ["datetime(n, 'unixepoch')", { n: 0 }, '1970-01-01 00:00:00'],
    ["iif(n > 1, 'big', 'small')", { n: 2 }, 'big'],
    ["iif(n > 1, 'big', 'small')", { n: null }, 'small'],
    ['abs(n)', { n: -9007199254740993n }, 9007199254740993n],
    ['abs(n)', { n: -2.5 }, 2.5],
    ['round(n)', { n: 2.5 }, 3],
    ['round(n, 2)', { n: 1.005001 }, 1.01],
    ['typeof(n)', { n: 1 }, 'integer'],
    ['typeof(n)', { n: 1.5 }, 'real'],
    ['typeof(n)', { n: 'x' }, 'text'],
    ['typeof(n)', { n: null }, 'null'],
    ['n + 1', { n: 9007199254740992n }, 9007199254740993n],
    ['n / 2', { n: 7 }, 3],
    ['n / 2.0', { n: 7 }, 3.5],
    ["CASE WHEN n > 0 THEN 'pos' ELSE 'neg' END", { n: -1 }, 'neg'],
    ["CASE n WHEN 1 THEN 'one' END", { n: 1 }, 'one'],
  ];
  for (const [expr, row, expected] of cases) {
    test(`${expr}`, async () => {
      expect(await evaluate(expr, row)).toEqual(expected);
    });
  }
});

describe('WHERE semantics follow SQLite', () => {
  const cases: [string, SqliteRow, boolean][] = [
    ['n = 5', { n: 5n }, true],
    ['n = 5', { n: 5.0 }, true],
    ['n = 5', { n: '5' }, false],
    ['n = 9007199254740993', { n: 9007199254740993n }, true],
    ['n = 9007199254740993', { n: 9007199254740992 }, false],
    ['n <> 1', { n: null }, false],
    ['NOT (n <> 1)', { n: null }, false],
    ['n != 1', { n: 2 }, true],
    ['n < 10', { n: 9007199254740993n }, false],
    ["n < 'a'", { n: 99 }, true],
    ['n >= 2 AND n <= 3', { n: 3 }, true],
    ['n BETWEEN 2 AND 3', { n: 4 }, false],
    ['n IS NULL', { n: null }, true],
    ['n IS NOT NULL', { n: null }, false],
    ['n IS NULL', {}, true],
    ["a = 'x' OR b = 'y'", { a: null, b: 'y' }, true],
    ["NOT (a = 'x')", { a: 'y' }, true],
    ['archived = false', { archived: 0 }, true],
    ['archived = false', { archived: 1 }, false],
    ['archived', { archived: 1 }, true],
    ['n IN (1, 2, 3)', { n: 2n }, true],
    ['n NOT IN (1, 2)', { n: 3 }, true],
    ['n NOT IN (1, NULL)', { n: 3 }, false],
    ['n IS DISTINCT FROM NULL', { n: 1 }, true],
    ['flag IS TRUE', { flag: 1 }, true],
    ["lower(name) = 'zoë'", { name: 'ZOË' }, true],
    ["tags ->> 'pinned' = 'yes'", { tags: '{"pinned":"yes"}' }, true],
  ];
  for (const [condition, row, expected] of cases) {
    test(`${condition} → ${expected}`, async () => {
      expect(await keeps(condition, row)).toBe(expected);
    });
  }
});

test('quoted identifiers keep case; unquoted fold to lower case', async () => {
  const rules = await compileSyncRules(
    `bucket_definitions:\n  a:\n    data:\n      - 'SELECT "Id" AS id, Name, "Name" AS exact FROM "Things"'\n`,
  );
  expect(rules.sourceTables[0]).toMatchObject({
    table: { schema: 'public', name: 'Things' },
    columns: ['Id', 'Name', 'name'],
  });
  expect(
    rules.evaluateRow({ schema: 'public', name: 'Things' }, { Id: 'a', name: 'lower', Name: 'Upper' }).rows[0]?.data,
  ).toEqual({
    id: 'a',
    name: 'lower',
    exact: 'Upper',
  });
});
