/**
 * Test support for the write API: a schema with a workspace/task model, a
 * table with one column of each interesting type, write rules over them,
 * and an apply log (a trigger) that proves how often rows were written.
 * Not part of the service's runtime API.
 */
import { createTestDatabase, sql } from '@ferry/test-utils';
import { WriteApi, type WriteApiOptions, type WriteClient } from './write-api.js';
import type { ClientTransaction } from './write-request.js';
import { compileWriteRules } from './write-rules.js';

export const WS_ALICE = '11111111-1111-4111-8111-111111111111';
export const WS_SHARED = '22222222-2222-4222-8222-222222222222';
export const WS_BOB = '33333333-3333-4333-8333-333333333333';

export const WRITE_TEST_SCHEMA = `
CREATE TABLE workspaces (id uuid PRIMARY KEY, name text NOT NULL);
CREATE TABLE workspace_members (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workspace_id uuid NOT NULL REFERENCES workspaces (id),
  user_id text NOT NULL
);
CREATE TABLE tasks (
  id uuid PRIMARY KEY,
  workspace_id uuid NOT NULL REFERENCES workspaces (id),
  title text NOT NULL CHECK (title <> 'forbidden'),
  done boolean NOT NULL DEFAULT false,
  position int8 NOT NULL DEFAULT 0,
  note text,
  edits int NOT NULL DEFAULT 0,
  created_by text
);
CREATE TABLE kinds (
  id text PRIMARY KEY,
  flag boolean,
  big int8,
  amount numeric,
  doc jsonb,
  raw json,
  tags text[],
  nums int4[],
  blob bytea,
  at timestamptz,
  day date,
  ref uuid,
  code varchar(3)
);
CREATE TABLE locked (id text PRIMARY KEY, v text);
CREATE TABLE apply_log (n serial PRIMARY KEY, tbl text NOT NULL, row_id text NOT NULL, op text NOT NULL);
CREATE FUNCTION log_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO apply_log (tbl, row_id, op) VALUES (TG_TABLE_NAME, COALESCE(NEW.id, OLD.id)::text, TG_OP);
  RETURN NULL;
END $$;
CREATE TRIGGER tasks_log AFTER INSERT OR UPDATE OR DELETE ON tasks FOR EACH ROW EXECUTE FUNCTION log_apply();
CREATE TRIGGER kinds_log AFTER INSERT OR UPDATE OR DELETE ON kinds FOR EACH ROW EXECUTE FUNCTION log_apply();
INSERT INTO workspaces VALUES ('${WS_ALICE}', 'alice only'), ('${WS_SHARED}', 'shared'), ('${WS_BOB}', 'bob only');
INSERT INTO workspace_members (workspace_id, user_id) VALUES
  ('${WS_ALICE}', 'alice'), ('${WS_SHARED}', 'alice'), ('${WS_SHARED}', 'bob'), ('${WS_BOB}', 'bob');
`;

export const WRITE_TEST_RULES = `tables:
  tasks:
    operations: [insert, update, delete]
    columns: [title, done, position, note]
    immutable: [workspace_id]
    owner: { column: created_by }
    where: "workspace_id IN (SELECT workspace_id FROM workspace_members WHERE user_id = request.user_id())"
  kinds:
    operations: [insert, update, delete]
    columns: '*'
  locked:
    operations: [delete]
`;

export const ALICE: WriteClient = { userId: 'alice', claims: { sub: 'alice' } };
export const BOB: WriteClient = { userId: 'bob', claims: { sub: 'bob' } };

/** A fresh database with {@link WRITE_TEST_SCHEMA}. */
export async function createWriteTestDatabase(): Promise<string> {
  const url = await createTestDatabase('ferry_write');
  await sql(url, WRITE_TEST_SCHEMA);
  return url;
}

/** A write API over {@link WRITE_TEST_RULES} (or other rules). */
export async function openTestWriteApi(
  url: string,
  options: Partial<WriteApiOptions> & { rulesText?: string } = {},
): Promise<WriteApi> {
  const rules = await compileWriteRules(options.rulesText ?? WRITE_TEST_RULES, { file: 'write-rules.yaml' });
  return WriteApi.open({ rules, connectionString: url, ...options });
}

let counter = 0;

/** A transaction with a fresh idempotency key. */
export function tx(
  ops: ClientTransaction['ops'],
  key: string | null = `k${process.pid}-${counter++}`,
): ClientTransaction {
  return { id: key ?? `anon-${counter++}`, key, ops };
}

export function taskId(n: number): string {
  return `aaaaaaaa-0000-4000-8000-${n.toString().padStart(12, '0')}`;
}
