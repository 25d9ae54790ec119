import { createTestDatabase, sql } from '@ferry/test-utils';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileWriteRules, WriteRulesError } from './write-rules.js';
import { loadWriteSchema, type WriteTable } from './write-schema.js';

let client: pg.Client;

beforeAll(async () => {
  const url = await createTestDatabase('ferry_write_schema');
  await sql(
    url,
    `CREATE DOMAIN money_cents AS int8 CHECK (VALUE >= 0);
     CREATE TABLE tasks (
       id text PRIMARY KEY,
       workspace_id uuid NOT NULL,
       title text,
       estimate int8,
       price money_cents,
       title_length int GENERATED ALWAYS AS (length(title)) STORED
     );`,
  );
  client = new pg.Client({ connectionString: url });
  await client.connect();
});
afterAll(async () => {
  await client?.end();
});

async function bind(text: string): Promise<Map<string, WriteTable>> {
  return loadWriteSchema(client, await compileWriteRules(text, { file: 'write-rules.yaml' }));
}

async function bindFailure(text: string): Promise<WriteRulesError> {
  const error = await bind(text).catch((e: unknown) => e);
  if (!WriteRulesError.isWriteRulesError(error)) throw new Error(`expected a WriteRulesError, got ${String(error)}`);
  return error;
}

describe('loadWriteSchema', () => {
  it('binds conflicts scope and column policies, and gives each column its type OID', async () => {
    const tables = await bind(`tables:
  tasks:
    operations: [insert, update]
    columns: [title, estimate, price]
    conflicts:
      scope: workspace_id
      columns: { estimate: { merge: add }, title: client_wins }
`);
    const tasks = tables.get('tasks')!;
    expect(tasks.rule.conflicts.scope).toBe('workspace_id');
    const { rows } = await client.query<{ oid: number }>(`SELECT 'money_cents'::regtype::oid::int AS oid`);
    expect(Object.fromEntries([...tasks.columns].map(([name, column]) => [name, column.oid]))).toEqual({
      id: 25,
      workspace_id: 2950,
      title: 25,
      estimate: 20,
      // A domain keeps its own OID (its conversion follows the base type).
      price: rows[0]!.oid,
    });
    expect(tasks.columns.get('price')!.kind).toEqual({ kind: 'number' });
  });

  it('fails with FERRY_S1202 at the position of an unknown or generated scope or policy column', async () => {
    const error = await bindFailure(`tables:
  tasks:
    operations: [update]
    columns: [title]
    conflicts:
      scope: workspace
      columns:
        estimate: lww
        estimat: { merge: add }
        title_length: server_wins
`);
    expect(error.code).toBe('FERRY_S1202');
    expect(error.problems.map((p) => `${p.file}:${p.line}:${p.column} ${p.message}`)).toEqual([
      'write-rules.yaml:6:14 conflicts.scope: column tasks.workspace does not exist in the source database',
      'write-rules.yaml:9:9 conflicts.columns: column tasks.estimat does not exist in the source database',
      'write-rules.yaml:10:9 conflicts.columns: column tasks.title_length is generated; name a column that is not generated',
    ]);
  });

  it('fails with FERRY_S1202 for a generated scope column', async () => {
    const error = await bindFailure(`tables:
  tasks:
    operations: [delete]
    conflicts: { scope: title_length }
`);
    expect(error.message).toBe(
      'write-rules.yaml:4:25: conflicts.scope: column tasks.title_length is generated; name a column that is not generated',
    );
  });
});
