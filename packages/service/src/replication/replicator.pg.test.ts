import { addChecksums, type OplogEntry, type OpId } from '@ferry/protocol';
import { compileSyncRules, type CompiledSyncRules } from '@ferry/rules';
import { createTestDatabase, sql } from '@ferry/test-utils';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { PostgresBucketStorage } from '../storage/postgres-bucket-storage.js';
import type { CheckpointUpdate } from '../storage/types.js';
import { Replicator, type ReplicatorOptions } from './replicator.js';
import { parseLsn } from './lsn.js';
import { dropSlot } from './source-schema.js';

const RULES = `
bucket_definitions:
  global:
    data:
      - SELECT id, title FROM todos
  by_list:
    parameters: SELECT list_id FROM memberships WHERE user_id = request.user_id()
    data:
      - SELECT * FROM todos WHERE list_id = bucket.list_id
`;

const SCHEMA = `
  CREATE TABLE todos (id text PRIMARY KEY, list_id text, title text, body text);
  CREATE TABLE memberships (id serial PRIMARY KEY, user_id text NOT NULL, list_id text NOT NULL);
`;

interface Env {
  url: string;
  rules: CompiledSyncRules;
  storage: PostgresBucketStorage;
  slotName: string;
  replicator(extra?: Partial<ReplicatorOptions>): Replicator;
  /** Starts a replicator and waits for the first checkpoint. */
  start(extra?: Partial<ReplicatorOptions>): Promise<Replicator>;
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => {});
});

let slotCounter = 0;
async function setup(schemaSql = SCHEMA, rulesYaml = RULES): Promise<Env> {
  const url = await createTestDatabase();
  await sql(url, schemaSql);
  const rules = await compileSyncRules(rulesYaml);
  const storage = new PostgresBucketStorage({ connectionString: url });
  await storage.migrate();
  const slotName = `ferry_rt_${process.pid}_${slotCounter++}`;
  const replicators: Replicator[] = [];
  cleanups.push(async () => {
    for (const r of replicators) await r.stop();
    await storage.close();
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await dropSlot(client, slotName);
    } finally {
      await client.end();
    }
  });
  const env: Env = {
    url,
    rules,
    storage,
    slotName,
    replicator(extra = {}) {
      const r = new Replicator({
        sourceConnectionString: url,
        storage,
        rules,
        slotName,
        publicationName: 'ferry_test',
        statusIntervalMs: 1000,
        minBackoffMs: 100,
        maxBackoffMs: 500,
        ...extra,
      });
      r.on('replicationError', ({ error }) => {
        if (process.env['FERRY_DEBUG']) console.error('replication error', error);
      });
      replicators.push(r);
      return r;
    },
    async start(extra = {}) {
      const r = env.replicator(extra);
      void r.run();
      await waitFor(async () => (await storage.getLatestCheckpoint()) !== null && r.state === 'streaming');
      return r;
    },
  };
  return env;
}

async function waitFor(
  predicate: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * A client's view of a bucket at the latest checkpoint, replayed from the op
 * log; also checks that the bucket state equals the sum and count of its ops.
 */
async function bucket(
  storage: PostgresBucketStorage,
  name: string,
): Promise<{ rows: Map<string, Record<string, unknown>>; ops: OplogEntry[]; checkpoint: OpId }> {
  const { checkpoint, states } = await storage.getCheckpointState([name]);
  const ops: OplogEntry[] = [];
  let after = 0n;
  for (;;) {
    const batch = await storage.readBucketOps(name, after, checkpoint, 500);
    if (batch.length === 0) break;
    ops.push(...batch);
    after = BigInt(batch[batch.length - 1]!.op_id);
  }
  const rows = new Map<string, Record<string, unknown>>();
  let checksum = 0;
  for (const op of ops) {
    if (op.op === 'PUT') rows.set(op.object_id!, JSON.parse(op.data!) as Record<string, unknown>);
    if (op.op === 'REMOVE') rows.delete(op.object_id!);
    checksum = addChecksums(checksum, op.checksum);
  }
  const state = states.get(name)!;
  expect(state.checksum).toBe(checksum);
  expect(state.count).toBe(ops.length);
  return { rows, ops, checkpoint };
}

const ids = async (storage: PostgresBucketStorage, name: string) =>
  [...(await bucket(storage, name)).rows.keys()].sort();

async function totalOps(url: string): Promise<number> {
  return Number((await sql(url, 'SELECT count(*)::int AS n FROM ferry.ops')).rows[0].n);
}

describe('Replicator', () => {
  it('copies the snapshot, then streams insert, update, delete and truncate into buckets', async () => {
    const env = await setup();
    await sql(
      env.url,
      `INSERT INTO todos (id, list_id, title) VALUES ('t1', 'l1', 'one'), ('t2', 'l1', 'two'), ('t3', 'l2', 'three')`,
    );
    const progress: { table: string; rowsCopied: number; done: boolean }[] = [];
    const r = env.replicator({ snapshotBatchSize: 2 });
    r.on('snapshotProgress', (p) => progress.push(p));
    void r.run();
    await waitFor(async () => (await env.storage.getLatestCheckpoint()) !== null);
    expect(await ids(env.storage, 'by_list["l1"]')).toEqual(['t1', 't2']);
    expect(await ids(env.storage, 'global[]')).toEqual(['t1', 't2', 't3']);
    expect((await bucket(env.storage, 'global[]')).rows.get('t1')).toEqual({ id: 't1', title: 'one' });
    expect(progress.find((p) => p.table === 'public.todos' && p.done)?.rowsCopied).toBe(3);
    expect(progress.filter((p) => p.table === 'public.todos' && !p.done).length).toBeGreaterThanOrEqual(2);

    await sql(env.url, `INSERT INTO todos (id, list_id, title) VALUES ('t4', 'l1', 'four')`);
    await waitFor(async () => (await ids(env.storage, 'by_list["l1"]')).includes('t4'));
    await sql(env.url, `UPDATE todos SET title = 'ONE' WHERE id = 't1'`);
    await waitFor(async () => (await bucket(env.storage, 'by_list["l1"]')).rows.get('t1')?.['title'] === 'ONE');
    expect((await bucket(env.storage, 'global[]')).rows.get('t1')).toEqual({ id: 't1', title: 'ONE' });
    await sql(env.url, `DELETE FROM todos WHERE id = 't2'`);
    await waitFor(async () => !(await ids(env.storage, 'by_list["l1"]')).includes('t2'));
    const l1 = await bucket(env.storage, 'by_list["l1"]');
    expect(l1.ops.at(-1)).toMatchObject({ op: 'REMOVE', object_type: 'todos', object_id: 't2' });
    expect(await ids(env.storage, 'global[]')).toEqual(['t1', 't3', 't4']);

    await sql(env.url, `TRUNCATE todos`);
    await waitFor(async () => (await ids(env.storage, 'global[]')).length === 0);
    expect(await ids(env.storage, 'by_list["l1"]')).toEqual([]);
    expect(await ids(env.storage, 'by_list["l2"]')).toEqual([]);
    // Rows inserted after a truncate are not confused with the removed ones.
    await sql(env.url, `INSERT INTO todos (id, list_id, title) VALUES ('t1', 'l1', 'again')`);
    await waitFor(async () => (await ids(env.storage, 'by_list["l1"]')).includes('t1'));
  });

  it('publishes a multi-row transaction as exactly one checkpoint covering all of it', async () => {
    const env = await setup();
    const r = await env.start();
    const checkpoints: OpId[] = [];
    r.on('checkpoint', (e) => checkpoints.push(e.checkpoint));
    const updates: CheckpointUpdate[] = [];
    env.storage.subscribe((u) => updates.push(u));
    await env.storage.subscriptionReady();
    const values = Array.from({ length: 300 }, (_, i) => `('m${i}', 'big', 'row ${i}')`).join(',');
    await sql(env.url, `INSERT INTO todos (id, list_id, title) VALUES ${values}`);
    await waitFor(async () => (await ids(env.storage, 'by_list["big"]')).length === 300);
    expect(checkpoints.length).toBe(1);
    // At any checkpoint the transaction is either absent or complete.
    const all = (await bucket(env.storage, 'by_list["big"]')).ops;
    for (const cp of [...checkpoints, ...updates.map((u) => u.checkpoint)]) {
      const visible = all.filter((o) => BigInt(o.op_id) <= cp).length;
      expect([0, 300]).toContain(visible);
    }
    await waitFor(() => updates.some((u) => u.checkpoint === checkpoints[0]));
    const update = updates.find((u) => u.checkpoint === checkpoints[0])!;
    expect(update.changedBuckets === null || update.changedBuckets.get('by_list["big"]')?.count === 300).toBe(true);
  });

  it('moves a row between buckets with a REMOVE in the old one', async () => {
    const env = await setup();
    await sql(env.url, `INSERT INTO todos (id, list_id, title) VALUES ('t1', 'l1', 'x')`);
    await env.start();
    await sql(env.url, `UPDATE todos SET list_id = 'l2' WHERE id = 't1'`);
    await waitFor(async () => (await ids(env.storage, 'by_list["l2"]')).includes('t1'));
    const l1 = await bucket(env.storage, 'by_list["l1"]');
    expect(l1.rows.size).toBe(0);
    expect(l1.ops.map((o) => o.op)).toEqual(['PUT', 'REMOVE']);
    // A primary key change is a move of the object too.
    await sql(env.url, `UPDATE todos SET id = 't1b' WHERE id = 't1'`);
    await waitFor(async () => (await ids(env.storage, 'by_list["l2"]')).join() === 't1b');
    expect(await ids(env.storage, 'global[]')).toEqual(['t1b']);
  });

  it('stores membership rows under lookups and reports them as changed', async () => {
    const env = await setup();
    await sql(env.url, `INSERT INTO memberships (user_id, list_id) VALUES ('u1', 'l1')`);
    await env.start();
    const querier = env.rules.querierFor({ userId: 'u1', tokenPayload: {}, clientParameters: {} });
    const lookup = querier.lookups[0]!;
    const resolve = async () =>
      querier
        .resolve(await env.storage.getParameterRows(querier.lookups))
        .map((b) => b.bucket)
        .sort();
    expect(await resolve()).toEqual(['by_list["l1"]']);

    const updates: CheckpointUpdate[] = [];
    env.storage.subscribe((u) => updates.push(u));
    await env.storage.subscriptionReady();
    await waitFor(() => updates.length > 0);
    await sql(env.url, `INSERT INTO memberships (user_id, list_id) VALUES ('u1', 'l2'), ('u2', 'l3')`);
    await waitFor(async () => (await resolve()).length === 2);
    expect(await resolve()).toEqual(['by_list["l1"]', 'by_list["l2"]']);
    await waitFor(() => updates.some((u) => u.changedLookups?.has(lookup) === true));
    await sql(env.url, `DELETE FROM memberships WHERE list_id = 'l1'`);
    await waitFor(async () => (await resolve()).length === 1);
    expect(await resolve()).toEqual(['by_list["l2"]']);
  });

  it('keeps replicating across ADD COLUMN and DROP COLUMN, and fills unchanged TOAST values', async () => {
    const env = await setup();
    const big = Array.from({ length: 3000 }, (_, i) => String.fromCharCode(33 + ((i * 7919) % 90)))
      .join('')
      .repeat(4);
    // EXTERNAL storage: never compressed, so a value this size is always TOASTed out of line.
    await sql(env.url, `ALTER TABLE todos ALTER COLUMN body SET STORAGE EXTERNAL`);
    await sql(env.url, `INSERT INTO todos (id, list_id, title, body) VALUES ('t1', 'l1', 'x', $1)`, [big]);
    await env.start();
    const { rows: toastRows } = await sql(
      env.url,
      `SELECT pg_column_size(body) AS size, octet_length(body) AS len FROM todos`,
    );
    expect(toastRows[0].size).toBeGreaterThanOrEqual(toastRows[0].len);
    await sql(env.url, `UPDATE todos SET title = 'y' WHERE id = 't1'`); // body is TOASTed and unchanged
    await waitFor(async () => (await bucket(env.storage, 'by_list["l1"]')).rows.get('t1')?.['title'] === 'y');
    expect((await bucket(env.storage, 'by_list["l1"]')).rows.get('t1')?.['body']).toBe(big);

    await sql(env.url, `ALTER TABLE todos ADD COLUMN priority int8`);
    await sql(env.url, `INSERT INTO todos (id, list_id, title, priority) VALUES ('t2', 'l1', 'z', 9007199254740993)`);
    await waitFor(async () => (await ids(env.storage, 'by_list["l1"]')).includes('t2'));
    const l1 = await bucket(env.storage, 'by_list["l1"]');
    expect(l1.ops.at(-1)!.data).toBe('{"id":"t2","list_id":"l1","title":"z","body":null,"priority":9007199254740993}');
    await sql(env.url, `UPDATE todos SET title = 'w' WHERE id = 't1'`);
    await waitFor(async () => (await bucket(env.storage, 'by_list["l1"]')).rows.get('t1')?.['title'] === 'w');
    expect((await bucket(env.storage, 'by_list["l1"]')).rows.get('t1')).toMatchObject({ body: big, priority: null });

    await sql(env.url, `ALTER TABLE todos DROP COLUMN body`);
    await sql(env.url, `UPDATE todos SET title = 'v' WHERE id = 't1'`);
    await waitFor(async () => (await bucket(env.storage, 'by_list["l1"]')).rows.get('t1')?.['title'] === 'v');
    expect((await bucket(env.storage, 'by_list["l1"]')).rows.get('t1')).toEqual({
      id: 't1',
      list_id: 'l1',
      title: 'v',
      priority: null,
    });
  });

  it('resumes from the slot after a restart without copying again', async () => {
    const env = await setup();
    await sql(
      env.url,
      `INSERT INTO todos (id, list_id, title) SELECT 'r' || i, 'l1', 'x' FROM generate_series(1, 50) i`,
    );
    const first = await env.start();
    const afterSnapshot = await totalOps(env.url);
    expect(afterSnapshot).toBe(100); // 50 rows × (global + by_list)
    await sql(env.url, `INSERT INTO todos (id, list_id, title) VALUES ('s1', 'l1', 'streamed')`);
    await waitFor(async () => (await ids(env.storage, 'global[]')).includes('s1'));
    await first.stop();
    expect(first.state).toBe('stopped');

    // Written while no replicator runs: must arrive exactly once after the restart.
    await sql(env.url, `INSERT INTO todos (id, list_id, title) VALUES ('s2', 'l1', 'while stopped')`);
    await sql(env.url, `UPDATE todos SET title = 'changed' WHERE id = 's1'`);
    const second = env.replicator();
    const snapshotOps: number[] = [];
    second.on('opsStored', (e) => {
      if (e.phase === 'snapshot') snapshotOps.push(e.count);
    });
    void second.run();
    await waitFor(async () => (await ids(env.storage, 'global[]')).includes('s2'));
    await waitFor(async () => (await bucket(env.storage, 'global[]')).rows.get('s1')?.['title'] === 'changed');
    expect(snapshotOps).toEqual([]);
    expect(await totalOps(env.url)).toBe(afterSnapshot + 2 + 2 + 2);
    expect((await bucket(env.storage, 'global[]')).rows.size).toBe(52);
  });

  it('elects one replicator with the advisory lock; a second takes over when the first stops', async () => {
    const env = await setup();
    const first = await env.start();
    const second = env.replicator({ lockRetryMs: 100 });
    void second.run();
    await waitFor(() => second.state === 'waiting-for-lock');
    await sql(env.url, `INSERT INTO todos (id, list_id, title) VALUES ('a', 'l1', 'by first')`);
    await waitFor(async () => (await ids(env.storage, 'global[]')).includes('a'));
    expect(second.state).toBe('waiting-for-lock');
    await first.stop();
    await waitFor(() => second.state === 'streaming');
    await sql(env.url, `INSERT INTO todos (id, list_id, title) VALUES ('b', 'l1', 'by second')`);
    await waitFor(async () => (await ids(env.storage, 'global[]')).includes('b'));
    expect(await totalOps(env.url)).toBe(4);
  });

  it('confirms the slot only up to what is stored', async () => {
    const env = await setup();
    await env.start();
    await sql(env.url, `INSERT INTO todos (id, list_id, title) VALUES ('a', 'l1', 'x')`);
    await waitFor(async () => (await ids(env.storage, 'global[]')).includes('a'));
    const state = await env.storage.getReplicationState();
    expect(state.endLsn).not.toBeNull();
    const confirmed = async () => {
      const { rows } = await sql(
        env.url,
        `SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1`,
        [env.slotName],
      );
      return parseLsn(rows[0].lsn as string);
    };
    // The slot catches up with what storage holds (sent right after the storage commit)…
    await waitFor(async () => (await confirmed()) >= state.endLsn!);
    // …and never passes a transaction that is not stored: hold storage back with a lock and write.
    const blocker = new pg.Client({ connectionString: env.url });
    await blocker.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE ferry.state IN ACCESS EXCLUSIVE MODE');
      await sql(env.url, `INSERT INTO todos (id, list_id, title) VALUES ('b', 'l1', 'y')`);
      const { rows } = await sql(env.url, 'SELECT pg_current_wal_insert_lsn()::text AS lsn');
      const written = parseLsn(rows[0].lsn as string); // at or after the end of the INSERT's commit record
      await new Promise((r) => setTimeout(r, 1500)); // several status intervals
      expect(await confirmed()).toBeLessThan(written);
      await blocker.query('COMMIT');
    } finally {
      await blocker.end();
    }
    await waitFor(async () => (await ids(env.storage, 'global[]')).includes('b'));
    await waitFor(async () => (await confirmed()) > state.endLsn!);
  });

  it('skips transactions that were stored but not yet confirmed to the slot (no duplicates)', async () => {
    const env = await setup();
    const first = await env.start();
    // A copy of the slot at the current position stands for a slot whose confirmation was lost in a crash.
    const behind = `${env.slotName}_b`;
    await sql(env.url, `SELECT pg_copy_logical_replication_slot($1, $2)`, [env.slotName, behind]);
    cleanups.push(async () => {
      const client = new pg.Client({ connectionString: env.url });
      await client.connect();
      await dropSlot(client, behind).finally(() => client.end());
    });
    await sql(env.url, `INSERT INTO todos (id, list_id, title) VALUES ('a', 'l1', 'x')`);
    await sql(env.url, `INSERT INTO todos (id, list_id, title) VALUES ('b', 'l1', 'y')`);
    await waitFor(async () => (await ids(env.storage, 'global[]')).length === 2);
    await first.stop();
    const before = await totalOps(env.url);
    // Resume from the lagging slot, from its own confirmed position (no start LSN hint).
    await sql(env.url, `UPDATE ferry.state SET slot_name = $1, end_lsn = NULL`, [behind]);
    const second = env.replicator({ slotName: behind });
    void second.run();
    await waitFor(() => second.state === 'streaming');
    await sql(env.url, `INSERT INTO todos (id, list_id, title) VALUES ('c', 'l1', 'z')`);
    await waitFor(async () => (await ids(env.storage, 'global[]')).length === 3);
    expect(await totalOps(env.url)).toBe(before + 2);
    await second.stop();
  });

  it('survives losing its connections: reconnects and resumes without loss or duplicates', async () => {
    const env = await setup();
    const r = await env.start();
    const errors: unknown[] = [];
    r.on('replicationError', (e) => errors.push(e.error));
    await sql(env.url, `INSERT INTO todos (id, list_id, title) VALUES ('a', 'l1', 'x')`);
    await waitFor(async () => (await ids(env.storage, 'global[]')).includes('a'));
    await sql(
      env.url,
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'ferry-%' AND pid <> pg_backend_pid()`,
    );
    await sql(env.url, `INSERT INTO todos (id, list_id, title) VALUES ('b', 'l1', 'y')`);
    await waitFor(() => errors.length > 0);
    await waitFor(async () => (await ids(env.storage, 'global[]')).includes('b'));
    await sql(env.url, `INSERT INTO todos (id, list_id, title) VALUES ('c', 'l1', 'z')`);
    await waitFor(async () => (await ids(env.storage, 'global[]')).includes('c'));
    expect(await totalOps(env.url)).toBe(6);
    expect(r.state).toBe('streaming');
  });

  it('rebuilds storage from a new snapshot when the rules change or the copy was incomplete', async () => {
    const env = await setup();
    await sql(env.url, `INSERT INTO todos (id, list_id, title) VALUES ('a', 'l1', 'x'), ('b', 'l2', 'y')`);
    const first = await env.start();
    await first.stop();
    const checkpointBefore = (await env.storage.getLatestCheckpoint())!;

    // New rules: only global buckets, with another column list.
    const rules = await compileSyncRules(
      `bucket_definitions:\n  everything:\n    data:\n      - SELECT id, list_id FROM todos\n`,
    );
    const second = env.replicator({ rules });
    const snapshotted: string[] = [];
    second.on('snapshotProgress', (p) => p.done && snapshotted.push(p.table));
    void second.run();
    await waitFor(
      async () => (await env.storage.getReplicationState()).rulesHash === rules.hash && second.state === 'streaming',
    );
    expect(snapshotted).toEqual(['public.todos']);
    expect(await ids(env.storage, 'everything[]')).toEqual(['a', 'b']);
    expect((await bucket(env.storage, 'everything[]')).rows.get('a')).toEqual({ id: 'a', list_id: 'l1' });
    expect(await totalOps(env.url)).toBe(2); // the old buckets are gone
    expect((await env.storage.getLatestCheckpoint())! > checkpointBefore).toBe(true); // op ids keep increasing
    await second.stop();

    // An interrupted copy (simulated) is never resumed: everything is copied again, once.
    await sql(env.url, `UPDATE ferry.state SET snapshot_done = false`);
    const third = env.replicator({ rules });
    void third.run();
    await waitFor(async () => (await env.storage.getReplicationState()).snapshotDone && third.state === 'streaming');
    expect(await totalOps(env.url)).toBe(2);
    await sql(env.url, `INSERT INTO todos (id, list_id, title) VALUES ('c', 'l1', 'z')`);
    await waitFor(async () => (await ids(env.storage, 'everything[]')).includes('c'));
  });

  it('handles REPLICA IDENTITY FULL and USING INDEX tables', async () => {
    const env = await setup(
      `CREATE TABLE notes (id text NOT NULL, owner text, body text);
       ALTER TABLE notes REPLICA IDENTITY FULL;
       CREATE TABLE tags (id text NOT NULL, label text);
       CREATE UNIQUE INDEX tags_id ON tags (id);
       ALTER TABLE tags REPLICA IDENTITY USING INDEX tags_id;`,
      `bucket_definitions:
  notes:
    data:
      - SELECT * FROM notes
      - SELECT * FROM tags`,
    );
    await sql(env.url, `INSERT INTO notes VALUES ('n1', 'a', 'x'); INSERT INTO tags VALUES ('g1', 'red')`);
    await env.start();
    await sql(env.url, `UPDATE notes SET body = 'y' WHERE id = 'n1'; UPDATE tags SET label = 'blue' WHERE id = 'g1'`);
    await waitFor(async () => (await bucket(env.storage, 'notes[]')).rows.get('g1')?.['label'] === 'blue');
    expect((await bucket(env.storage, 'notes[]')).rows.get('n1')).toEqual({ id: 'n1', owner: 'a', body: 'y' });
    await sql(env.url, `DELETE FROM notes WHERE id = 'n1'; DELETE FROM tags WHERE id = 'g1'`);
    await waitFor(async () => (await bucket(env.storage, 'notes[]')).rows.size === 0);
  });

  it('reports a missing table and a table without replica identity as clear errors, and recovers once fixed', async () => {
    const env = await setup(`CREATE TABLE memberships (id serial PRIMARY KEY, user_id text, list_id text)`);
    const r = env.replicator();
    const errors: unknown[] = [];
    r.on('replicationError', (e) => errors.push(e.error));
    void r.run();
    await waitFor(() => errors.length > 0);
    expect(errors[0]).toMatchObject({ code: 'FERRY_S3002' });
    expect(String((errors[0] as Error).message)).toContain('public.todos');
    await sql(env.url, `CREATE TABLE todos (id text, list_id text, title text)`);
    const seen = errors.length;
    await waitFor(() => errors.length > seen);
    expect(errors.at(-1)).toMatchObject({ code: 'FERRY_S3003' });
    await sql(env.url, `ALTER TABLE todos ADD PRIMARY KEY (id)`);
    await waitFor(() => r.state === 'streaming');
  });
});
