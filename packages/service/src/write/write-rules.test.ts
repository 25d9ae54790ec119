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
      '4:5 unknown key "colums" in the rule of table "tasks"; expected operations, columns, immutable, owner, where',
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
