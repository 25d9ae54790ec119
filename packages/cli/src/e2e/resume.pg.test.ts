/**
 * Resumability across a service restart: the service is stopped and a new
 * one started on the same database and port. The connected client resumes
 * from its bucket positions (it receives only the new ops), and the
 * replicator resumes from its slot without copying the tables again.
 */
import { column, Schema, Table } from '@ferry/client';
import { FerryService } from '@ferry/service';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../embedded-postgres.js';
import {
  Cleanup,
  openClient,
  pgQuery,
  serviceConfig,
  slotNameFor,
  startServiceFixture,
  type TestClient,
  type TestKeys,
  waitFor,
  waitForRows,
} from './stack.js';

const RULES = `
bucket_definitions:
  by_owner:
    parameters: SELECT request.user_id() AS owner
    data:
      - SELECT id, owner, title FROM todos WHERE owner = bucket.owner
`;

const INITIAL_ROWS = 120;

const SOURCE = `
  CREATE TABLE todos (id text PRIMARY KEY, owner text NOT NULL, title text NOT NULL);
  INSERT INTO todos SELECT 'r' || lpad(g::text, 4, '0'), CASE WHEN g % 2 = 0 THEN 'u1' ELSE 'u2' END, 'todo ' || g
    FROM generate_series(1, ${INITIAL_ROWS}) g;
`;

const schema = new Schema({ todos: new Table({ owner: column.text, title: column.text }) });
const TODOS = 'SELECT id, owner, title FROM todos ORDER BY id';

let url: string;
let port: number;
let keys: TestKeys;
let service: FerryService;
let client: TestClient;
const cleanup = new Cleanup();

async function serverTodos(): Promise<unknown[]> {
  return pgQuery(url, `SELECT id, owner, title FROM todos WHERE owner = 'u1' ORDER BY id COLLATE "C"`);
}

interface StorageCounts {
  ops: number;
  rowsCopied: number;
  snapshotDone: boolean;
  slots: number;
  lastOpId: number;
}

async function storageCounts(): Promise<StorageCounts> {
  const [ops] = await pgQuery<{ n: string }>(url, `SELECT count(*)::text AS n FROM ferry.ops`);
  const [copied] = await pgQuery<{ n: string }>(
    url,
    `SELECT coalesce(sum(rows_copied), 0)::text AS n FROM ferry.source_tables`,
  );
  const [state] = await pgQuery<{ snapshot_done: boolean; last_op_id: string }>(
    url,
    `SELECT snapshot_done, last_op_id::text AS last_op_id FROM ferry.state`,
  );
  const [slots] = await pgQuery<{ n: string }>(
    url,
    `SELECT count(*)::text AS n FROM pg_replication_slots WHERE database = current_database()`,
  );
  return {
    ops: Number(ops!.n),
    rowsCopied: Number(copied!.n),
    snapshotDone: state!.snapshot_done,
    slots: Number(slots!.n),
    lastOpId: Number(state!.last_op_id),
  };
}

beforeAll(async () => {
  port = await freePort();
  const fixture = await startServiceFixture(cleanup, {
    database: 'ferry_e2e_resume',
    source: SOURCE,
    rules: RULES,
    port,
  });
  url = fixture.url;
  service = fixture.service;
  const dir = fixture.dir;
  keys = fixture.keys;
  client = await openClient({
    cleanup,
    dir,
    schema,
    endpoint: () => `http://127.0.0.1:${port}`,
    token: () => keys.token('u1'),
  });
  await client.db.waitForFirstSync();
  await waitForRows(client.db, TODOS, await serverTodos());
});

afterAll(() => cleanup.run());

describe('after a service restart', () => {
  it('the client resumes from its positions and the replicator from its slot', async () => {
    // Before: one full download of u1's rows.
    expect(client.traffic.dataOpsSince(0)).toBe(INITIAL_ROWS / 2);
    const before = await storageCounts();
    expect(before.snapshotDone).toBe(true);
    expect(before.rowsCopied).toBe(INITIAL_ROWS);
    expect(before.ops).toBe(INITIAL_ROWS);
    const [slotBefore] = await pgQuery<{ slot_name: string; active: boolean }>(
      url,
      `SELECT slot_name, active FROM pg_replication_slots WHERE slot_name = $1`,
      [slotNameFor(url)],
    );
    expect(slotBefore?.active).toBe(true);

    await service.stop();
    await waitFor(() => !client.db.currentStatus.connected, {
      message: 'the client never noticed the service stopped',
    });
    const streamsBefore = client.traffic.streams.length;

    // Written while no service runs: must come through the slot, not a re-copy.
    await pgQuery(
      url,
      `INSERT INTO todos VALUES ('down1', 'u1', 'while down'), ('down2', 'u2', 'while down, other user')`,
    );
    await pgQuery(url, `UPDATE todos SET title = 'edited while down' WHERE id = 'r0002'`);

    service = await FerryService.start(serviceConfig({ databaseUrl: url, rules: RULES, keys, port }), {
      processMetrics: false,
    });
    cleanup.add(() => service.stop());
    expect(service.port).toBe(port);

    await pgQuery(url, `INSERT INTO todos VALUES ('up1', 'u1', 'after restart')`);
    await pgQuery(url, `DELETE FROM todos WHERE id = 'r0004'`);
    await waitForRows(client.db, TODOS, await serverTodos());

    // Only the new ops for u1 travelled: down1 PUT, r0002 PUT, up1 PUT, r0004 REMOVE.
    const requests = client.traffic.streams.slice(streamsBefore);
    expect(requests.length).toBeGreaterThan(0);
    for (const request of requests) {
      for (const bucket of request.request.buckets ?? []) expect(bucket.after, `resumed ${bucket.name}`).not.toBe('0');
    }
    await waitFor(() => client.traffic.dataOpsSince(streamsBefore) >= 4);
    expect(client.traffic.dataOpsSince(streamsBefore)).toBe(4);

    // The replicator did not copy again: ops grew by exactly the changes, rows_copied did not move.
    const after = await waitFor(async () => {
      const counts = await storageCounts();
      return counts.lastOpId >= before.lastOpId + 5 ? counts : undefined;
    });
    expect(after.rowsCopied).toBe(before.rowsCopied);
    // 2 inserts + 1 update while down, 1 insert + 1 delete after: 5 new op ids, nothing re-copied
    // (a re-copy would allocate another ${INITIAL_ROWS}). Compaction may shrink the log, never grow it.
    expect(after.lastOpId - before.lastOpId).toBe(5);
    expect(after.ops).toBeLessThanOrEqual(before.ops + 5);
    expect(after.slots).toBe(1);
    const [slotAfter] = await pgQuery<{ active: boolean }>(
      url,
      `SELECT active FROM pg_replication_slots WHERE slot_name = $1`,
      [slotNameFor(url)],
    );
    expect(slotAfter?.active).toBe(true);
  });
});
