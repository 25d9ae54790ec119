import { describe, expect, it } from 'vitest';
import { loadWhereParser, parseWhereExpression, renderWhere, whereParams, WhereProblem } from './where-expression.js';
import { compileWriteRules, WriteRulesError } from './write-rules.js';

async function failure(text: string): Promise<WriteRulesError> {
  try {
    await compileWriteRules(text, { file: 'write-rules.yaml' });
  } catch (error) {
    if (WriteRulesError.isWriteRulesError(error)) return error;
    throw error;
  }
  throw new Error('expected compileWriteRules to fail');
}

const GOOD = `tables:
  tasks:
    operations: [insert, update, delete]
    columns: [title, done, position]
    immutable: [workspace_id]
    owner: { column: created_by }
    where: "workspace_id IN (SELECT workspace_id FROM workspace_members WHERE user_id = request.user_id())"
  app.notes:
    operations: [insert]
    columns: '*'
    owner: { column: owner_id, claim: org }
`;

describe('compileWriteRules', () => {
  it('compiles a good file', async () => {
    const rules = await compileWriteRules(GOOD, { file: 'w.yaml' });
    expect([...rules.tables.keys()]).toEqual(['tasks', 'notes']);
    const tasks = rules.tables.get('tasks')!;
    expect([...tasks.operations]).toEqual(['insert', 'update', 'delete']);
    expect(tasks.columns).toEqual(['title', 'done', 'position']);
    expect(tasks.immutable).toEqual(['workspace_id']);
    expect(tasks.owner).toEqual({ column: 'created_by', claim: 'sub' });
    expect(tasks.where?.inputs).toEqual([{ kind: 'user_id' }]);
    expect(tasks.where?.tables).toEqual(['public.workspace_members']);
    expect(tasks.positions.columns.get('position')).toEqual({ line: 4, column: 28 });
    const notes = rules.tables.get('notes')!;
    expect(notes.schema).toBe('app');
    expect(notes.columns).toBe('*');
    expect(notes.owner).toEqual({ column: 'owner_id', claim: 'org' });
  });

  it('reports bad YAML with line:col (FERRY_S1201)', async () => {
    const error = await failure('tables:\n  tasks: [unclosed\n');
    expect(error.code).toBe('FERRY_S1201');
    expect(error.message).toMatch(/^write-rules\.yaml:\d+:\d+: invalid YAML/);
  });

  it('reports wrong shapes with their positions', async () => {
    const error = await failure(`tables:
  tasks:
    operations: [insert, upsert]
    colums: [a]
`);
    expect(error.code).toBe('FERRY_S1201');
    expect(error.problems.map((p) => `${p.line}:${p.column} ${p.message}`)).toEqual([
      '3:26 unknown operation "upsert"; expected insert, update or delete',
      '4:5 unknown key "colums" in the rule of table "tasks"; expected operations, columns, immutable, owner, where, conflicts',
      '2:3 table "tasks" needs `columns` (a list of writable columns, or \'*\')',
    ]);
  });

  it('reports a SQL syntax error in where at its line and column', async () => {
    const error = await failure(`tables:
  tasks:
    operations: [delete]
    where: "workspace_id = = 1"
`);
    expect(error.code).toBe('FERRY_S1201');
    expect(error.message).toBe('write-rules.yaml:4:28: SQL syntax error in where: syntax error at or near "="');
  });

  it('reports a syntax error inside a block scalar on the right line', async () => {
    const error = await failure(`tables:
  tasks:
    operations: [delete]
    where: |
      workspace_id IN (SELECT workspace_id FROM m
        WHERE user_id = request.user_id() AND AND)
`);
    expect(error.message).toBe('write-rules.yaml:6:47: SQL syntax error in where: syntax error at or near "AND"');
  });

  it('rejects a smuggled statement after `;`', async () => {
    const error = await failure(`tables:
  tasks:
    operations: [delete]
    where: "true); DROP TABLE tasks; --"
`);
    expect(error.code).toBe('FERRY_S1201');
    expect(error.message).toMatch(/^write-rules\.yaml:4:\d+: the where expression must be one boolean expression; `;`/);
  });

  it('rejects trailing clauses, parameters, other request functions and state-changing functions', async () => {
    await loadWhereParser();
    expect(() => parseWhereExpression('true) ORDER BY (1')).toThrow(/trailing SORT clause/);
    expect(() => parseWhereExpression('id = $1')).toThrow(/parameters/);
    expect(() => parseWhereExpression("request.parameters() ->> 'x' = 'y'")).toThrow(/unknown request function/);
    expect(() => parseWhereExpression("request.jwt() = 'x'")).toThrow(/only allowed as request.jwt\(\) ->> 'claim'/);
    expect(() => parseWhereExpression("set_config('role', 'x', true) = 'x'")).toThrow(/set_config\(\) is not allowed/);
    expect(() => parseWhereExpression('pg_sleep(1) IS NULL')).toThrow(WhereProblem);
    expect(() => parseWhereExpression('EXISTS (WITH d AS (DELETE FROM t RETURNING 1) SELECT 1 FROM d)')).toThrow(
      /data-modifying/,
    );
  });

  it('turns request functions into bind parameters', async () => {
    await loadWhereParser();
    const where = parseWhereExpression(
      "owner = request.user_id() OR (request.jwt() ->> 'role' = 'admin' AND org = request.jwt()->>'org' AND x = 'request.user_id()')",
    );
    expect(where.inputs).toEqual([
      { kind: 'user_id' },
      { kind: 'claim', claim: 'role' },
      { kind: 'claim', claim: 'org' },
    ]);
    expect(renderWhere(where, 3)).toBe(
      "COALESCE((owner = $3::text OR ($4::text = 'admin' AND org = $5::text AND x = 'request.user_id()')), false)",
    );
    expect(whereParams(where, 'alice', { role: 'admin', org: 42 })).toEqual(['alice', 'admin', '42']);
  });
});

describe('compileWriteRules: conflicts', () => {
  it('defaults to tracked, no scope, lww, no column policies', async () => {
    const rules = await compileWriteRules(GOOD);
    const conflicts = rules.tables.get('tasks')!.conflicts;
    expect(conflicts.track).toBe(true);
    expect(conflicts.scope).toBeNull();
    expect(conflicts.policy).toEqual({ kind: 'lww' });
    expect(conflicts.columns.size).toBe(0);
    expect(conflicts.positions.merges.size).toBe(0);
  });

  it('reads `off`, a scope, a table policy and per-column policies with their positions', async () => {
    const rules = await compileWriteRules(`tables:
  tasks:
    operations: [insert, update]
    columns: '*'
    conflicts:
      scope: workspace_id
      policy: server_wins
      columns:
        estimate: { merge: add }
        position: client_wins
        title: lww
        votes:
          merge: add
  notes:
    operations: [update]
    columns: [body]
    conflicts: off
  cards:
    operations: [update]
    columns: [body]
    conflicts: { policy: { merge: concat } }
  empty:
    operations: [delete]
    conflicts: {}
`);
    const tasks = rules.tables.get('tasks')!.conflicts;
    expect(tasks.track).toBe(true);
    expect(tasks.scope).toBe('workspace_id');
    expect(tasks.positions.scope).toEqual({ line: 6, column: 14 });
    expect(tasks.policy).toEqual({ kind: 'server_wins' });
    expect([...tasks.columns]).toEqual([
      ['estimate', { kind: 'merge', name: 'add' }],
      ['position', { kind: 'client_wins' }],
      ['title', { kind: 'lww' }],
      ['votes', { kind: 'merge', name: 'add' }],
    ]);
    expect(tasks.positions.columns.get('estimate')).toEqual({ line: 9, column: 9 });
    expect(tasks.positions.columns.get('votes')).toEqual({ line: 12, column: 9 });
    // First use only.
    expect([...tasks.positions.merges]).toEqual([['add', { line: 9, column: 28 }]]);

    const notes = rules.tables.get('notes')!.conflicts;
    expect(notes.track).toBe(false);
    expect(notes.scope).toBeNull();
    expect(notes.policy).toEqual({ kind: 'lww' });
    expect(notes.columns.size).toBe(0);

    const cards = rules.tables.get('cards')!.conflicts;
    expect(cards.policy).toEqual({ kind: 'merge', name: 'concat' });
    expect([...cards.positions.merges]).toEqual([['concat', { line: 21, column: 35 }]]);

    const empty = rules.tables.get('empty')!.conflicts;
    expect(empty).toMatchObject({ track: true, scope: null, policy: { kind: 'lww' } });
  });

  it('reports every bad key, policy and name at its line:col (FERRY_S1201)', async () => {
    const error = await failure(`tables:
  tasks:
    operations: [update]
    columns: '*'
    conflicts:
      scope: [workspace_id]
      policy: newest_wins
      strategy: lww
      columns:
        id: lww
        estimate: { merge: 'add-up' }
        position: { merge: add, fallback: lww }
        done: merge
        note: {}
        title: 3
  notes:
    operations: [update]
    columns: [body]
    conflicts: on
  cards:
    operations: [update]
    columns: [body]
    conflicts:
      columns: [body]
clock_skew_ms: 5
`);
    expect(error.code).toBe('FERRY_S1201');
    expect(error.problems.map((p) => `${p.line}:${p.column} ${p.message}`)).toEqual([
      // clock_skew_ms belongs in ferry.yaml (write_rules.max_clock_skew_ms), not here.
      '25:1 unknown top-level key "clock_skew_ms"; expected `tables`',
      '6:14 `conflicts.scope` must be a column name',
      '7:15 `conflicts.policy`: unknown policy "newest_wins"; expected lww, server_wins, client_wins or { merge: <name> }',
      '8:7 unknown key "strategy" in `conflicts` of table "tasks"; expected scope, policy, columns (or `conflicts: off`)',
      '10:9 `conflicts.columns`: the id column identifies the row and has no policy',
      '11:28 `conflicts.columns.estimate`: invalid merge function name "add-up"; expected a JavaScript identifier',
      '12:33 `conflicts.columns.position`: unknown key "fallback"; expected { merge: <function name> }',
      '13:15 `conflicts.columns.done`: write a merge policy as { merge: <function name> }',
      '14:15 `conflicts.columns.note`: expected { merge: <function name> }',
      '15:16 `conflicts.columns.title`: expected lww, server_wins, client_wins or { merge: <name> }',
      '19:16 `conflicts` of table "notes" must be `off` or a mapping (scope, policy, columns)',
      '24:16 `conflicts.columns` must be a mapping of column names to policies',
    ]);
    expect(error.message.split('\n')[1]).toBe('write-rules.yaml:6:14: `conflicts.scope` must be a column name');
  });

  it('rejects an empty conflicts value', async () => {
    const error = await failure(`tables:\n  tasks:\n    operations: [delete]\n    conflicts:\n`);
    expect(error.problems.map((p) => `${p.line}:${p.column} ${p.message}`)).toEqual([
      '4:15 `conflicts` of table "tasks" must be `off` or a mapping (scope, policy, columns)',
    ]);
  });
});
