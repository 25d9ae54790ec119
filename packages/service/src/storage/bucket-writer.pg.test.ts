/**
 * The writer's two ways of storing a row's state (COPY for rows new to
 * storage, upsert otherwise) must give identical storage, and a wrong
 * "unique keys" promise must never wedge replication.
 */
import { compileSyncRules, type CompiledSyncRules } from '@ferry/rules';
import { createTestDatabase } from '@ferry/test-utils';
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BucketWriter, BucketWriterOptions, RowChange, StoredSourceTable } from './bucket-writer.js';
import { PostgresBucketStorage } from './postgres-bucket-storage.js';

const RULES = `
bucket_definitions:
  by_list:
    parameters: SELECT list_id FROM memberships WHERE user_id = request.user_id()
    data:
      - SELECT id, list_id, title FROM todos WHERE list_id = bucket.list_id
`;

let url: string;
let rules: CompiledSyncRules;
let db: pg.Client;
let schemaCounter = 0;
const opened: PostgresBucketStorage[] = [];

beforeAll(async () => {
  url = await createTestDatabase();
  rules = await compileSyncRules(RULES);
  db = new pg.Client({ connectionString: url });
  await db.connect();
});

afterAll(async () => {
  for (const storage of opened) await storage.close();
  await db.end();
});

interface Env {
  schema: string;
  storage: PostgresBucketStorage;
  writer: BucketWriter;
  todos: StoredSourceTable;
  memberships: StoredSourceTable;
}

async function openEnv(options: BucketWriterOptions = {}): Promise<Env> {
  const schema = `bw_${schemaCounter++}`;
  const storage = new PostgresBucketStorage({ connectionString: url, schema });
  opened.push(storage);
  await storage.migrate();
  const [todos, memberships] = await storage.resetForSnapshot({
    rulesHash: rules.hash,
    slotName: 'unused',
    tables: [
      { schema: 'public', name: 'todos', data: true, parameters: false },
      { schema: 'public', name: 'memberships', data: false, parameters: true },
    ],
  });
  const writer = await storage.openWriter(rules, options);
  await writer.completeSnapshot(1n);
  return { schema, storage, writer, todos: todos!, memberships: memberships! };
}

let lsn = 100n;
async function commitTx(writer: BucketWriter, changes: readonly RowChange[]): Promise<void> {
  await writer.begin();
  for (const change of changes) if (writer.add(change)) await writer.flush();
  lsn += 10n;
  writer.sourceCommitted({ commitLsn: lsn, endLsn: lsn + 1n, commitTime: new Date() });
  await writer.commit();
}

/** Everything the writer stored, in a comparable form. */
async function dump(schema: string) {
  const q = async (sql: string) => (await db.query(sql)).rows;
  return {
    ops: await q(`SELECT bucket, op_id, op, object_type, object_id, data, checksum FROM ${schema}.ops ORDER BY op_id`),
    buckets: await q(`SELECT * FROM ${schema}.bucket_state ORDER BY bucket`),
    rows: await q(`SELECT * FROM ${schema}.current_rows ORDER BY table_id, row_key`),
    params: await q(`SELECT * FROM ${schema}.parameter_rows ORDER BY lookup, table_id, row_key`),
    state: await q(`SELECT last_op_id, checkpoint FROM ${schema}.state`),
  };
}

describe('BucketWriter row states', () => {
  it('stores the same whether new rows are appended with COPY or upserted (random changes, small batches)', async () => {
    const ids = ['a', 'b', 'c'];
    const step = fc.record({
      table: fc.constantFrom('todos', 'memberships'),
      id: fc.constantFrom(...ids),
      list: fc.constantFrom('l1', 'l2', null),
      title: fc.string({ maxLength: 3 }),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(step, { minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 5 }),
        fc.integer({ min: 1, max: 4 }),
        async (txs, batchSize) => {
          const envs = [await openEnv({ batchSize }), await openEnv({ batchSize })];
          // The source model: an INSERT only for an absent row, as a table with a primary key guarantees.
          const model = new Set<string>();
          for (const tx of txs) {
            const changes: { change: RowChange; insert: boolean }[] = [];
            for (const { table, id, list, title } of tx) {
              const present = model.has(`${table}/${id}`);
              const key = JSON.stringify([id]);
              const row =
                table === 'todos'
                  ? { id, list_id: list, title }
                  : { id, user_id: title === '' ? 'u1' : 'u2', list_id: list };
              if (list === null) {
                if (!present) continue;
                model.delete(`${table}/${id}`);
                changes.push({ change: { kind: 'delete', table: envs[0]!.todos, key }, insert: false });
              } else {
                model.add(`${table}/${id}`);
                changes.push({
                  change: { kind: present ? 'update' : 'insert', table: envs[0]!.todos, key, row },
                  insert: !present,
                });
              }
              changes[changes.length - 1]!.change.table = table === 'todos' ? envs[0]!.todos : envs[0]!.memberships;
            }
            if (changes.length === 0) continue;
            // Same table ids in both schemas (both registered the same tables in the same order).
            await commitTx(
              envs[0]!.writer,
              changes.map((c) => c.change),
            );
            await commitTx(
              envs[1]!.writer,
              changes.map((c) => (c.insert ? { ...c.change, uniqueKeys: true } : c.change)),
            );
          }
          expect(await dump(envs[1]!.schema)).toEqual(await dump(envs[0]!.schema));
          for (const env of envs) await env.writer.close();
        },
      ),
      { numRuns: 30 },
    );
  });

  it('stores the same for snapshot rows with and without unique keys', async () => {
    const envs = [await openEnv({ batchSize: 3 }), await openEnv({ batchSize: 3 })];
    const rows = Array.from({ length: 10 }, (_, i) => ({
      key: JSON.stringify([`t${i}`]),
      row: { id: `t${i}`, list_id: `l${i % 3}`, title: `title ${i}` },
    }));
    for (const [i, env] of envs.entries()) {
      // Fresh schemas restart at the snapshot: the writer refuses an open transaction, so use a new writer.
      await env.writer.close();
      env.writer = await env.storage.openWriter(rules, { batchSize: 3 });
      expect(await env.writer.writeSnapshotRows(env.todos, rows, (r) => r, { uniqueKeys: i === 1 })).toBe(10);
      // The batch's COMMIT is queued, not awaited: marking the table copied waits for it.
      await env.writer.markTableCopied(env.todos);
    }
    const [a, b] = [await dump(envs[0]!.schema), await dump(envs[1]!.schema)];
    expect(b).toEqual(a);
    expect(a.rows).toHaveLength(10);
    for (const env of envs) await env.writer.close();
  });

  it('surfaces a failed snapshot batch, whose COMMIT was only queued, before the table counts as copied', async () => {
    const env = await openEnv();
    await env.writer.close();
    env.writer = await env.storage.openWriter(rules);
    const batch = [{ key: '["x"]', row: { id: 'x', list_id: 'l1', title: 'x' } }];
    await env.writer.writeSnapshotRows(env.todos, batch, (r) => r, { uniqueKeys: true });
    // The same key again, promised unique: the COPY fails inside the queued transaction.
    await env.writer.writeSnapshotRows(env.todos, batch, (r) => r, { uniqueKeys: true });
    await expect(env.writer.markTableCopied(env.todos)).rejects.toMatchObject({ code: '23505' });
    const { rows } = await db.query(
      `SELECT snapshot_done, rows_copied FROM ${env.schema}.source_tables WHERE id = $1`,
      [env.todos.id],
    );
    expect(rows[0]).toEqual({ snapshot_done: false, rows_copied: '1' });
    await env.writer.close();
  });

  it('falls back to upserts for good when a key promised unique repeats', async () => {
    const env = await openEnv();
    const insert = (title: string): RowChange => ({
      kind: 'insert',
      table: env.todos,
      key: '["dup"]',
      row: { id: 'dup', list_id: 'l1', title },
      uniqueKeys: true,
    });
    await commitTx(env.writer, [insert('first')]);
    // The promise is broken: the same key is inserted again in a later transaction.
    await expect(commitTx(env.writer, [insert('second')])).rejects.toMatchObject({ code: '23505' });
    await env.writer.rollback();
    await env.writer.close();
    // The replicator's next session gets a new writer from the same storage: it upserts and succeeds.
    env.writer = await env.storage.openWriter(rules);
    await commitTx(env.writer, [insert('second')]);
    const { rows, ops } = await dump(env.schema);
    expect(rows).toHaveLength(1);
    expect(JSON.parse(rows[0]!.data as string)).toMatchObject({ title: 'second' });
    expect(ops.map((o) => JSON.parse(o.data as string).title)).toEqual(['first', 'second']);
    await env.writer.close();
  });
});
