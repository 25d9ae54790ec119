import { FerryError } from '@ferry/protocol';
import { describe, expect, test } from 'vitest';
import { compileSyncRules, SyncRulesError } from './index.js';

async function compileError(source: string, file = 'sync-rules.yaml'): Promise<SyncRulesError> {
  const error: unknown = await compileSyncRules(source, { file }).then(
    () => new Error('expected the rules not to compile'),
    (e: unknown) => e,
  );
  expect(SyncRulesError.isSyncRulesError(error)).toBe(true);
  expect(FerryError.is(error)).toBe(true);
  return error as SyncRulesError;
}

/** 1-based position of the `nth` occurrence of `marker` after `from` in `source`. */
function markerPosition(source: string, from: number, marker: string, nth: number): { line: number; column: number } {
  let offset = from - 1;
  for (let i = 0; i <= nth; i++) {
    offset = source.indexOf(marker, offset + 1);
    if (offset < 0) throw new Error(`marker ${marker} not in source`);
  }
  const before = source.slice(0, offset);
  return { line: before.split('\n').length, column: offset - before.lastIndexOf('\n') };
}

/** The query as a plain one-line scalar in a data list. */
function plainData(sql: string, parameters?: string): string {
  return `bucket_definitions:\n  defn:\n${parameters ? `    parameters: ${parameters}\n` : ''}    data:\n      - ${sql}\n`;
}

/** The query as a `|` block scalar, one clause per line. */
function blockData(sql: string, parameters?: string): string {
  const lines = sql.split(/ (?=FROM |WHERE |AND |GROUP |ORDER |LIMIT |JOIN |UNION )/);
  return `bucket_definitions:\n  defn:\n${parameters ? `    parameters: ${parameters}\n` : ''}    data:\n      - |\n${lines.map((l) => `        ${l}\n`).join('')}`;
}

interface Case {
  name: string;
  sql: string;
  code: string;
  /** Text the error must point at (its first character); in the data query unless `inParameters`. */
  marker: string;
  message: RegExp;
  parameters?: string;
  /** Which occurrence of the marker (default the first). */
  nth?: number;
}

const DATA_CASES: Case[] = [
  {
    name: 'subquery',
    sql: 'SELECT * FROM t WHERE id IN (SELECT x FROM y)',
    code: 'FERRY_S1103',
    marker: 'SELECT x',
    message: /subqueries are not supported/,
  },
  {
    name: 'join',
    sql: 'SELECT * FROM a JOIN b ON a.id = b.id',
    code: 'FERRY_S1103',
    marker: 'JOIN',
    message: /JOIN is not supported/,
  },
  { name: 'comma join', sql: 'SELECT * FROM a, b', code: 'FERRY_S1103', marker: 'b', message: /only one table/ },
  {
    name: 'group by',
    sql: 'SELECT id FROM t GROUP BY id',
    code: 'FERRY_S1103',
    marker: 'GROUP',
    message: /GROUP BY is not supported/,
  },
  {
    name: 'order by',
    sql: 'SELECT * FROM t ORDER BY id',
    code: 'FERRY_S1103',
    marker: 'ORDER',
    message: /ORDER BY is not supported/,
  },
  { name: 'limit', sql: 'SELECT * FROM t LIMIT 10', code: 'FERRY_S1103', marker: 'LIMIT', message: /LIMIT and OFFSET/ },
  {
    name: 'distinct',
    sql: 'SELECT DISTINCT id FROM t',
    code: 'FERRY_S1103',
    marker: 'DISTINCT',
    message: /DISTINCT is not supported/,
  },
  {
    name: 'union',
    sql: 'SELECT id FROM a UNION SELECT id FROM b',
    code: 'FERRY_S1103',
    marker: 'UNION',
    message: /UNION/,
  },
  {
    name: 'aggregate',
    sql: 'SELECT id, count(*) AS n FROM t',
    code: 'FERRY_S1103',
    marker: 'count',
    message: /aggregate functions/,
  },
  {
    name: 'window function',
    sql: 'SELECT id, row_number() OVER () AS n FROM t',
    code: 'FERRY_S1103',
    marker: 'row_number',
    message: /window functions/,
  },
  {
    name: 'unknown function',
    sql: 'SELECT id, frobnicate(name) AS n FROM t',
    code: 'FERRY_S1104',
    marker: 'frobnicate',
    message: /unknown function frobnicate\(\); supported: /,
  },
  {
    name: 'wrong arity',
    sql: 'SELECT id, upper(a, b) AS n FROM t',
    code: 'FERRY_S1104',
    marker: 'upper',
    message: /upper\(\) takes 1 argument, got 2/,
  },
  {
    name: 'unsupported cast',
    sql: 'SELECT id, created_at::date AS d FROM t',
    code: 'FERRY_S1103',
    marker: 'date',
    message: /cast to "date" is not supported/,
  },
  { name: 'LIKE', sql: "SELECT * FROM t WHERE name LIKE 'a%'", code: 'FERRY_S1103', marker: 'LIKE', message: /LIKE/ },
  {
    name: 'request value in data query',
    sql: 'SELECT * FROM t WHERE owner = request.user_id()',
    code: 'FERRY_S1103',
    marker: 'request',
    message: /request\.user_id\(\) cannot be used here: data queries/,
  },
  {
    name: 'unknown table alias',
    sql: 'SELECT * FROM t AS x WHERE t.id = 1',
    code: 'FERRY_S1104',
    marker: 't.id',
    message: /unknown table or alias "t"/,
  },
  {
    name: 'missing id',
    sql: 'SELECT name FROM t',
    code: 'FERRY_S1103',
    marker: 'SELECT',
    message: /must output an `id` column/,
  },
  {
    name: 'unnamed expression',
    sql: 'SELECT id, upper(name) FROM t',
    code: 'FERRY_S1103',
    marker: 'upper',
    message: /AS name/,
  },
  {
    name: 'syntax error',
    sql: 'SELECT * FROM t WHERE WHERE id = 1',
    code: 'FERRY_S1102',
    marker: 'WHERE id',
    message: /SQL syntax error: syntax error at or near "WHERE"/,
  },
  {
    name: 'not a select',
    sql: "DELETE FROM t WHERE id = '1'",
    code: 'FERRY_S1103',
    marker: 'DELETE',
    message: /only SELECT queries/,
  },
  {
    name: 'two statements',
    sql: 'SELECT * FROM t; SELECT * FROM u',
    code: 'FERRY_S1103',
    marker: 'SELECT',
    nth: 1,
    message: /one statement per query/,
  },
  {
    name: 'bucket param in a global definition',
    sql: 'SELECT * FROM t WHERE id = bucket.x',
    code: 'FERRY_S1104',
    marker: 'bucket.x',
    message: /unknown bucket parameter bucket\.x: bucket definition "defn" has no parameters query/,
  },
  {
    name: 'unknown bucket param',
    sql: 'SELECT * FROM t WHERE id = bucket.nope',
    parameters: 'SELECT request.user_id() AS user_id',
    code: 'FERRY_S1104',
    marker: 'bucket.nope',
    message: /unknown bucket parameter bucket\.nope; "defn" has bucket\.user_id/,
  },
  {
    name: 'unbound bucket param',
    sql: "SELECT * FROM t WHERE kind = 'a'",
    parameters: 'SELECT request.user_id() AS user_id',
    code: 'FERRY_S1103',
    marker: 'WHERE',
    message: /bucket parameter bucket\.user_id is not used/,
  },
  {
    name: 'bucket param bound in an OR',
    sql: "SELECT * FROM t WHERE owner = bucket.user_id OR kind = 'public'",
    parameters: 'SELECT request.user_id() AS user_id',
    code: 'FERRY_S1103',
    marker: 'bucket.user_id',
    message: /can only be used in a data query's WHERE clause, as `column = bucket\.user_id`/,
  },
  {
    name: 'bucket param bound twice',
    sql: 'SELECT * FROM t WHERE a = bucket.user_id AND b = bucket.user_id',
    parameters: 'SELECT request.user_id() AS user_id',
    code: 'FERRY_S1103',
    marker: 'bucket.user_id',
    nth: 1,
    message: /compared more than once/,
  },
];

describe('unsupported constructs in data queries point at the construct', () => {
  for (const c of DATA_CASES) {
    test(`${c.name} (plain scalar)`, async () => {
      const source = plainData(c.sql, c.parameters);
      const error = await compileError(source);
      expect(error.code).toBe(c.code);
      expect(error.problems[0]?.message).toMatch(c.message);
      const expected = markerPosition(source, source.indexOf('      - '), c.marker, c.nth ?? 0);
      expect({ line: error.details.line, column: error.details.column }).toEqual(expected);
      expect(error.message.startsWith(`sync-rules.yaml:${expected.line}:${expected.column}: `)).toBe(true);
    });

    test(`${c.name} (| block scalar)`, async () => {
      const source = blockData(c.sql, c.parameters);
      const error = await compileError(source);
      expect(error.code).toBe(c.code);
      expect(error.problems[0]?.message).toMatch(c.message);
      const expected = markerPosition(source, source.indexOf('- |'), c.marker, c.nth ?? 0);
      expect({ line: error.details.line, column: error.details.column }).toEqual(expected);
    });
  }
});

describe('parameter query errors', () => {
  const cases: { name: string; parameters: string; code: string; marker: string; message: RegExp }[] = [
    {
      name: 'OR between lookup conditions',
      parameters: "SELECT id AS list_id FROM lists WHERE owner_id = request.user_id() OR shared = 'yes'",
      code: 'FERRY_S1103',
      marker: 'OR',
      message: /mix table columns and request values/,
    },
    {
      name: 'SELECT *',
      parameters: 'SELECT * FROM lists WHERE owner_id = request.user_id()',
      code: 'FERRY_S1103',
      marker: '*',
      message: /SELECT \* is not allowed in a parameter query/,
    },
    {
      name: 'unknown request function',
      parameters: 'SELECT request.role() AS role',
      code: 'FERRY_S1104',
      marker: 'request.role',
      message: /unknown function request\.role\(\)/,
    },
    {
      name: 'column without FROM',
      parameters: 'SELECT owner_id AS user_id',
      code: 'FERRY_S1104',
      marker: 'owner_id',
      message: /this query has no FROM table/,
    },
    {
      name: 'bucket reference',
      parameters: 'SELECT bucket.x AS x',
      code: 'FERRY_S1103',
      marker: 'bucket.x',
      message: /bucket\.x can only be used/,
    },
    {
      name: 'table function',
      parameters: "SELECT value AS list_id FROM json_each(request.jwt() -> 'lists')",
      code: 'FERRY_S1103',
      marker: 'FROM',
      message: /table functions/,
    },
    {
      name: 'NOT IN array',
      parameters: "SELECT id AS list_id FROM lists WHERE id NOT IN request.jwt() -> 'ids'",
      code: 'FERRY_S1102',
      marker: 'request',
      message: /NOT IN <array expression>` is not supported/,
    },
    {
      name: 'mixed output',
      parameters: 'SELECT id || request.user_id() AS k FROM lists WHERE owner_id = request.user_id()',
      code: 'FERRY_S1103',
      marker: 'id ||',
      message: /from the table or from the request, not both/,
    },
  ];
  for (const c of cases) {
    test(`${c.name}`, async () => {
      const source = `bucket_definitions:\n  defn:\n    parameters: ${c.parameters}\n    data:\n      - SELECT * FROM t WHERE id = bucket.x\n`;
      const error = await compileError(source);
      expect(error.code).toBe(c.code);
      expect(error.problems[0]?.message).toMatch(c.message);
      expect({ line: error.details.line, column: error.details.column }).toEqual(
        markerPosition(source, source.indexOf('parameters:'), c.marker, 0),
      );
    });
  }

  test('parameter queries of one definition must output the same columns', async () => {
    const source = `bucket_definitions:
  defn:
    parameters:
      - SELECT id AS list_id FROM lists WHERE owner_id = request.user_id()
      - SELECT list_id AS other FROM shares WHERE user_id = request.user_id()
    data:
      - SELECT * FROM todos WHERE list_id = bucket.list_id
`;
    const error = await compileError(source);
    expect(error.code).toBe('FERRY_S1104');
    expect(error.message).toBe(
      'sync-rules.yaml:5:9: every parameter query of "defn" must output the same columns: expected (list_id), got (other)',
    );
  });
});

describe('rules file shape', () => {
  test('invalid YAML is FERRY_S1101 at the YAML error', async () => {
    const error = await compileError('bucket_definitions:\n  a:\n    data: [\n');
    expect(error.code).toBe('FERRY_S1101');
    expect(error.message).toMatch(/^sync-rules\.yaml:\d+:\d+: invalid YAML/);
  });

  test('unknown keys, missing data and bad priority are reported together, each at its line', async () => {
    const source = `bucket_definitions:
  a:
    parameter: SELECT request.user_id() AS u
    data:
      - SELECT * FROM t
  b:
    priority: 7
    data:
      - SELECT * FROM t
  c:
    parameters: SELECT request.user_id() AS u
extra: 1
`;
    const error = await compileError(source, 'rules/app.yaml');
    expect(error.code).toBe('FERRY_S1101');
    expect(error.message.split('\n').sort()).toEqual(
      [
        'rules/app.yaml:3:5: unknown key "parameter" in bucket definition "a"; expected parameters, data or priority',
        'rules/app.yaml:12:1: unknown top-level key "extra"; Ferry supports `bucket_definitions` (sync streams and `config` are not supported yet)',
        'rules/app.yaml:7:15: `priority` must be an integer from 0 (highest) to 3 (default)',
        'rules/app.yaml:10:3: bucket definition "c" has no `data` queries',
      ].sort(),
    );
    expect(error.problems.map((p) => `${p.location.line}:${p.location.column}`).sort()).toEqual([
      '10:3',
      '12:1',
      '3:5',
      '7:15',
    ]);
    expect(error.details.file).toBe('rules/app.yaml');
  });

  test('problems in several queries are all listed; details hold the first', async () => {
    const source = `bucket_definitions:
  a:
    data:
      - SELECT * FROM t ORDER BY id
      - SELECT name FROM t
`;
    const error = await compileError(source);
    expect(error.problems.map((p) => [p.code, p.location.line, p.location.column])).toEqual([
      ['FERRY_S1103', 4, 25],
      ['FERRY_S1103', 5, 9],
    ]);
    expect(error.details).toMatchObject({ file: 'sync-rules.yaml', line: 4, column: 25 });
    expect(error.details.problems).toHaveLength(2);
  });

  test('a missing bucket_definitions key is FERRY_S1101', async () => {
    const error = await compileError('buckets: {}\n');
    expect(error.code).toBe('FERRY_S1101');
  });

  test('an empty query is FERRY_S1101', async () => {
    const error = await compileError("bucket_definitions:\n  a:\n    data:\n      - ''\n");
    expect(error.code).toBe('FERRY_S1101');
    expect(error.details.line).toBe(4);
  });
});

describe('locations in folded and quoted scalars land on the right line', () => {
  test('> folded scalar', async () => {
    const source = `bucket_definitions:
  a:
    data:
      - >
        SELECT *
        FROM t
        ORDER BY id
`;
    const error = await compileError(source);
    expect(error.details).toMatchObject({ line: 7, column: 9 });
  });

  test('double-quoted scalar', async () => {
    const source = `bucket_definitions:\n  a:\n    data:\n      - "SELECT * FROM t WHERE name = 'x' ORDER BY id"\n`;
    const error = await compileError(source);
    expect(error.details).toMatchObject({ line: 4, column: source.split('\n')[3]!.indexOf('ORDER') + 1 });
  });

  test('multi-line plain scalar', async () => {
    const source = `bucket_definitions:
  a:
    data:
      - SELECT * FROM t
        WHERE x = 1
        LIMIT 5
`;
    const error = await compileError(source);
    expect(error.details).toMatchObject({ line: 6, column: 9 });
  });

  test('non-ASCII text before the error keeps columns in characters', async () => {
    const source = `bucket_definitions:\n  a:\n    data:\n      - SELECT * FROM t WHERE name = 'Zoë ☕' ORDER BY id\n`;
    const error = await compileError(source);
    expect(error.details).toMatchObject({ line: 4, column: source.split('\n')[3]!.indexOf('ORDER') + 1 });
  });
});
