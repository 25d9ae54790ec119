import { addChecksums, putChecksum, type OplogEntry, type OpId } from '@ferry/protocol';
import { compileSyncRules, type CompiledSyncRules } from '@ferry/rules';
import { createTestDatabase } from '@ferry/test-utils';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BucketWriter, RowChange, StoredSourceTable } from './bucket-writer.js';
import { PostgresBucketStorage } from './postgres-bucket-storage.js';
import type { CheckpointUpdate } from './types.js';

const RULES = `
bucket_definitions:
  by_list:
    parameters: SELECT list_id FROM memberships WHERE user_id = request.user_id()
    data:
      - SELECT id, list_id, title FROM todos WHERE list_id = bucket.list_id
`;

let url: string;
let rules: CompiledSyncRules;
let schemaCounter = 0;
const opened: PostgresBucketStorage[] = [];

beforeAll(async () => {
  url = await createTestDatabase();
  rules = await compileSyncRules(RULES);
});

afterAll(async () => {
  for (const storage of opened) await storage.close();
});

interface Env {
  storage: PostgresBucketStorage;
  writer: BucketWriter;
  todos: StoredSourceTable;
  memberships: StoredSourceTable;
}

async function openEnv(): Promise<Env> {
  const storage = new PostgresBucketStorage({ connectionString: url, schema: `st_${schemaCounter++}` });
  opened.push(storage);
  await storage.migrate();
  await storage.migrate(); // idempotent
  const [todos, memberships] = await storage.resetForSnapshot({
    rulesHash: rules.hash,
    slotName: 'unused',
    tables: [
      { schema: 'public', name: 'todos', data: true, parameters: false },
      { schema: 'public', name: 'memberships', data: false, parameters: true },
    ],
  });
  const writer = await storage.openWriter(rules);
  await writer.completeSnapshot(1n);
  return { storage, writer, todos: todos!, memberships: memberships! };
}

const todo = (env: Env, kind: RowChange['kind'], id: string, list: string | null = null, title = ''): RowChange =>
  kind === 'delete'
    ? { kind, table: env.todos, key: JSON.stringify([id]) }
    : { kind, table: env.todos, key: JSON.stringify([id]), row: { id, list_id: list, title } };

let lsn = 100n;
async function commitTx(env: Env, changes: RowChange[]): Promise<OpId | null> {
  await env.writer.begin();
  for (const change of changes) if (env.writer.add(change)) await env.writer.flush();
  lsn += 10n;
  env.writer.sourceCommitted({ commitLsn: lsn, endLsn: lsn + 1n, commitTime: new Date() });
  return (await env.writer.commit()).checkpoint;
}

async function readAll(storage: PostgresBucketStorage, bucket: string, after: OpId, upTo: OpId): Promise<OplogEntry[]> {
  const ops: OplogEntry[] = [];
  for (;;) {
    const batch = await storage.readBucketOps(bucket, after, upTo, 3);
    if (batch.length === 0) return ops;
    ops.push(...batch);
    after = BigInt(batch[batch.length - 1]!.op_id);
  }
}

/** A client's view of a bucket: rows by object, and its checksum. */
function replay(
  ops: readonly OplogEntry[],
  start: { rows: Map<string, string>; checksum: number } = { rows: new Map(), checksum: 0 },
) {
  const rows = new Map(start.rows);
  let checksum = start.checksum;
  for (const op of ops) {
    const key = `${op.object_type}/${op.object_id}`;
    if (op.op === 'PUT') rows.set(key, op.data!);
    else if (op.op === 'REMOVE') rows.delete(key);
    else if (op.op === 'CLEAR') {
      rows.clear();
      checksum = 0;
    }
    checksum = addChecksums(checksum, op.checksum);
  }
  return { rows, checksum };
}

describe('PostgresBucketStorage', () => {
  it('stores ops, keeps bucket state equal to the sum of op checksums, and reads ranges', async () => {
    const env = await openEnv();
    const cp1 = await commitTx(env, [
      todo(env, 'insert', 't1', 'l1', 'a'),
      todo(env, 'insert', 't2', 'l1', 'b'),
      todo(env, 'insert', 't3', 'l2', 'c'),
    ]);
    expect(cp1).not.toBeNull();
    const cp2 = await commitTx(env, [
      todo(env, 'update', 't1', 'l1', 'a2'),
      todo(env, 'update', 't2', 'l2', 'b'),
      todo(env, 'delete', 't3'),
    ]);
    expect(cp2! > cp1!).toBe(true);
    expect(await env.storage.getLatestCheckpoint()).toBe(cp2);

    const { checkpoint, states } = await env.storage.getCheckpointState([
      'by_list["l1"]',
      'by_list["l2"]',
      'by_list["nope"]',
    ]);
    expect(checkpoint).toBe(cp2);
    expect(states.get('by_list["nope"]')).toEqual({ checksum: 0, count: 0, lastOpId: 0n });
    for (const bucket of ['by_list["l1"]', 'by_list["l2"]']) {
      const ops = await readAll(env.storage, bucket, 0n, checkpoint);
      const state = states.get(bucket)!;
      expect(state.count).toBe(ops.length);
      expect(state.checksum).toBe(ops.reduce((sum, op) => addChecksums(sum, op.checksum), 0));
      expect(state.lastOpId).toBe(BigInt(ops[ops.length - 1]!.op_id));
    }
    const l1 = await readAll(env.storage, 'by_list["l1"]', 0n, checkpoint);
    expect(l1.map((op) => [op.op, op.object_id])).toEqual([
      ['PUT', 't1'],
      ['PUT', 't2'],
      ['PUT', 't1'],
      ['REMOVE', 't2'], // moved to l2
    ]);
    const put = l1[2]!;
    expect(put.data).toBe('{"id":"t1","list_id":"l1","title":"a2"}');
    expect(put.checksum).toBe(putChecksum('todos', 't1', put.data!));
    expect(typeof put.op_id).toBe('string');
    const l2 = await readAll(env.storage, 'by_list["l2"]', 0n, checkpoint);
    expect(l2.map((op) => [op.op, op.object_id])).toEqual([
      ['PUT', 't3'],
      ['PUT', 't2'],
      ['REMOVE', 't3'],
    ]);
    // Ranges and limits.
    expect(await env.storage.readBucketOps('by_list["l1"]', BigInt(l1[0]!.op_id), BigInt(l1[2]!.op_id), 10)).toEqual(
      l1.slice(1, 3),
    );
    expect(await env.storage.readBucketOps('by_list["l1"]', 0n, checkpoint, 1)).toEqual(l1.slice(0, 1));
    expect(await env.storage.readBucketOps('by_list["l1"]', 0n, cp1!, 100)).toEqual(l1.slice(0, 2));
  });

  it('stores parameter rows by lookup and reports changed lookups with one read per checkpoint', async () => {
    const env = await openEnv();
    const lookup = rules.querierFor({ userId: 'u1', tokenPayload: {}, clientParameters: {} }).lookups[0]!;
    const updates: CheckpointUpdate[] = [];
    const updates2: CheckpointUpdate[] = [];
    const unsubscribe = env.storage.subscribe((u) => updates.push(u));
    const unsubscribe2 = env.storage.subscribe((u) => updates2.push(u));
    await env.storage.subscriptionReady();
    await waitFor(() => updates.length >= 1); // the initial read
    const member = (kind: RowChange['kind'], id: number, user: string, list: string): RowChange =>
      kind === 'delete'
        ? { kind, table: env.memberships, key: `[${id}]` }
        : { kind, table: env.memberships, key: `[${id}]`, row: { id: String(id), user_id: user, list_id: list } };

    const cp = await commitTx(env, [
      member('insert', 1, 'u1', 'l1'),
      member('insert', 2, 'u1', 'l2'),
      member('insert', 3, 'u2', 'l1'),
    ]);
    expect(cp).not.toBeNull(); // no ops, but parameter rows changed: still a new checkpoint
    const rows = await env.storage.getParameterRows([lookup, 'unknown-lookup']);
    expect(
      rows
        .get(lookup)
        ?.map((r) => r['list_id'])
        .sort(),
    ).toEqual(['l1', 'l2']);
    expect(rows.has('unknown-lookup')).toBe(false);
    await waitFor(() => updates.some((u) => u.checkpoint === cp));
    const update = updates.find((u) => u.checkpoint === cp)!;
    expect(update.previous).toBe(updates[updates.indexOf(update) - 1]!.checkpoint);
    expect(update.changedLookups?.has(lookup)).toBe(true);
    expect(update.changedBuckets?.size).toBe(0);

    const cp2 = await commitTx(env, [member('delete', 2, 'u1', 'l2'), todo(env, 'insert', 't9', 'l1')]);
    await waitFor(() => updates2.some((u) => u.checkpoint === cp2));
    const update2 = updates2.find((u) => u.checkpoint === cp2)!;
    expect([...update2.changedLookups!]).toEqual([lookup]);
    expect([...update2.changedBuckets!.keys()]).toEqual(['by_list["l1"]']);
    expect(update2.changedBuckets!.get('by_list["l1"]')!.lastOpId).toBe(cp2);
    expect((await env.storage.getParameterRows([lookup])).get(lookup)?.map((r) => r['list_id'])).toEqual(['l1']);
    unsubscribe();
    unsubscribe2();
  });

  it('keeps op ids strictly increasing across writers and a rollback', async () => {
    const env = await openEnv();
    const cp1 = await commitTx(env, [todo(env, 'insert', 'a', 'l1')]);
    await env.writer.begin();
    env.writer.add(todo(env, 'insert', 'b', 'l1'));
    await env.writer.flush();
    await env.writer.rollback();
    expect(env.writer.lastOpId).toBe(cp1);
    await env.writer.close();
    env.writer = await env.storage.openWriter(rules);
    const cp2 = await commitTx(env, [todo(env, 'insert', 'c', 'l1')]);
    expect(cp2).toBe(cp1! + 1n);
    const ops = await readAll(env.storage, 'by_list["l1"]', 0n, cp2!);
    expect(ops.map((o) => o.object_id)).toEqual(['a', 'c']);
  });

  it('compaction keeps checksums and what every client ends with (random op sequences)', async () => {
    const ids = ['a', 'b', 'c', 'd'];
    // Each step sets a row's list (or deletes it); it becomes an INSERT, UPDATE or DELETE depending on the model.
    const step = fc.record({
      id: fc.constantFrom(...ids),
      list: fc.constantFrom('l1', 'l2', null),
      title: fc.string({ maxLength: 4 }),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(step, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 6 }),
        fc.boolean(),
        async (txs, clear) => {
          const env = await openEnv();
          const checkpoints: OpId[] = [];
          const model = new Map<string, { list: string; title: string }>();
          for (const tx of txs) {
            const changes: RowChange[] = [];
            for (const { id, list, title } of tx) {
              if (list === null) {
                if (model.delete(id)) changes.push(todo(env, 'delete', id));
              } else {
                changes.push(todo(env, model.has(id) ? 'update' : 'insert', id, list, title));
                model.set(id, { list, title });
              }
            }
            if (changes.length === 0) continue;
            const cp = await commitTx(env, changes);
            if (cp !== null) checkpoints.push(cp);
          }
          const latest = (await env.storage.getLatestCheckpoint())!;
          const buckets = ['by_list["l1"]', 'by_list["l2"]'];
          const before = new Map<string, OplogEntry[]>();
          for (const b of buckets) before.set(b, await readAll(env.storage, b, 0n, latest));
          const statesBefore = (await env.storage.getCheckpointState(buckets)).states;

          await env.storage.compact({ clear });

          const statesAfter = (await env.storage.getCheckpointState(buckets)).states;
          for (const b of buckets) {
            const old = before.get(b)!;
            const compacted = await readAll(env.storage, b, 0n, latest);
            expect(statesAfter.get(b)!.checksum).toBe(statesBefore.get(b)!.checksum);
            expect(statesAfter.get(b)!.count).toBe(compacted.length);
            const full = replay(old);
            const expected = new Map(
              [...model]
                .filter(([, v]) => `by_list["${v.list}"]` === b)
                .map(([id, v]) => [`todos/${id}`, JSON.stringify({ id, list_id: v.list, title: v.title })]),
            );
            expect(full.rows).toEqual(expected);
            expect(replay(compacted).checksum).toBe(full.checksum);
            expect(replay(compacted).rows).toEqual(full.rows);
            expect(
              compacted.filter((o) => o.op === 'MOVE' || o.op === 'CLEAR').every((o) => o.data === undefined),
            ).toBe(true);
            // A client that synced up to any earlier position p, then continues on the compacted log.
            for (const p of [0n, ...checkpoints]) {
              const client = replay(old.filter((o) => BigInt(o.op_id) <= p));
              const resumed = replay(
                compacted.filter((o) => BigInt(o.op_id) > p),
                client,
              );
              expect(resumed.rows).toEqual(full.rows);
              expect(resumed.checksum).toBe(full.checksum);
            }
          }
          await env.writer.close();
          await env.storage.close();
        },
      ),
      { numRuns: 25 },
    );
  });

  it('rejects reads before the first checkpoint with a not-ready error', async () => {
    const storage = new PostgresBucketStorage({ connectionString: url, schema: `st_${schemaCounter++}` });
    opened.push(storage);
    await storage.migrate();
    expect(await storage.getLatestCheckpoint()).toBeNull();
    await expect(storage.getCheckpointState(['x[]'])).rejects.toMatchObject({ code: 'FERRY_S4006' });
    expect(() => new PostgresBucketStorage({ connectionString: url, schema: 'Bad-Name' })).toThrow(/schema/);
  });

  it('fails with a storage error when the database is unreachable', async () => {
    const storage = new PostgresBucketStorage({ connectionString: 'postgres://nobody:x@127.0.0.1:1/none' });
    await expect(storage.getLatestCheckpoint()).rejects.toMatchObject({ code: 'FERRY_S5001' });
    await storage.close();
  });
});

async function waitFor(predicate: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error('timed out waiting for condition');
    await new Promise((r) => setTimeout(r, 20));
  }
}
