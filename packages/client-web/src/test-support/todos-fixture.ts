/**
 * The data set the browser sync tests share: users own todos (one bucket
 * per user), and may write their own todos' title, n and done.
 */
import type { SchemaSpec } from './harness-api.js';

/** `todos` with `seedRows` rows owned by alice, then `extra` SQL. */
export function todosSource(seedRows: number, extra = ''): string {
  return `
  CREATE TABLE todos (
    id text PRIMARY KEY,
    owner text NOT NULL,
    title text NOT NULL,
    n int8,
    done boolean NOT NULL DEFAULT false
  );
  INSERT INTO todos (id, owner, title, n)
    SELECT 'seed-' || lpad(i::text, 5, '0'), 'alice', 'todo ' || i, i FROM generate_series(1, ${seedRows}) i;
  ${extra}`;
}

export const TODOS_RULES = `
bucket_definitions:
  mine:
    parameters: SELECT request.user_id() AS user_id
    data:
      - SELECT id, owner, title, n, done FROM todos WHERE owner = bucket.user_id
`;

export const TODOS_WRITE_RULES = `
tables:
  todos:
    operations: [insert, update, delete]
    columns: [title, n, done]
    owner: { column: owner }
`;

export const TODOS_TABLE: SchemaSpec['tables'] = {
  todos: { owner: 'text', title: 'text', n: 'integer', done: 'integer' },
};
