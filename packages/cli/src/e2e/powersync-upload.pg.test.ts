/**
 * The official `@powersync/node` client (1.1.0, HTTP streaming) writing:
 *
 * - Write checkpoints: its connector uploads local writes straight into
 *   Postgres with `pg`, then the client asks Ferry for a write checkpoint and
 *   waits for the stream to echo it before applying downloads over its local
 *   data. The client must not stall: the upload completes, the local row
 *   stays, the queue empties, another Ferry client sees the row and later
 *   server changes still arrive.
 * - Ferry's write API as a PowerSync upload endpoint: the connector POSTs
 *   its CRUD transactions (`CrudEntry.toJSON()`) to `/write`; write rules
 *   apply (a forged owner is corrected), a resent transaction is not applied
 *   twice, and the client keeps syncing.
 */
import { column as ferryColumn, Schema as FerrySchema, Table as FerryTable } from '@ferry/client';
import type { FerryService } from '@ferry/service';
import {
  column,
  PowerSyncDatabase,
  Schema,
  SyncStreamConnectionMethod,
  Table,
  UpdateType,
  type AbstractPowerSyncDatabase,
} from '@powersync/node';
import type { WriteResponse } from '@ferry/protocol';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cleanup, openClient, pgQuery, startServiceFixture, type TestKeys, waitFor, waitForRows } from './stack.js';

const RULES = `
bucket_definitions:
  mine:
    parameters: SELECT request.user_id() AS owner
    data:
      - SELECT id, owner, title, n FROM todos WHERE owner = bucket.owner
`;

const SOURCE = `
  CREATE TABLE todos (id text PRIMARY KEY, owner text NOT NULL, title text, n int);
  INSERT INTO todos VALUES ('t1', 'u1', 'first', 1), ('t2', 'u2', 'not mine', 2);
`;

const WRITE_RULES = `
tables:
  todos:
    operations: [insert, update, delete]
    columns: [title, n]
    owner: { column: owner }
`;

const COLUMNS = ['owner', 'title', 'n'] as const;

const psSchema = new Schema({
  todos: new Table({ owner: column.text, title: column.text, n: column.integer }),
});
const ferrySchema = new FerrySchema({
  todos: new FerryTable({ owner: ferryColumn.text, title: ferryColumn.text, n: ferryColumn.integer }),
});

const cleanup = new Cleanup();
let url: string;
let keys: TestKeys;
let service: FerryService;
let dir: string;

beforeAll(async () => {
  const fixture = await startServiceFixture(cleanup, {
    database: 'ferry_e2e_powersync_upload',
    source: SOURCE,
    rules: RULES,
    writeRules: WRITE_RULES,
  });
  url = fixture.url;
  service = fixture.service;
  dir = fixture.dir;
  keys = fixture.keys;
});

afterAll(() => cleanup.run());

/** Applies the client's CRUD transactions to Postgres directly, one SQL transaction each. */
function uploadingConnector(pool: pg.Pool, uploads: { ops: number }) {
  return {
    fetchCredentials: async () => ({ endpoint: service.url, token: await keys.token('u1') }),
    uploadData: async (db: AbstractPowerSyncDatabase) => {
      for (;;) {
        const tx = await db.getNextCrudTransaction();
        if (!tx) return;
        const client = await pool.connect();
        try {
          await client.query('BEGIN');
          for (const op of tx.crud) {
            if (op.table !== 'todos') throw new Error(`unexpected table ${op.table}`);
            const data = op.opData ?? {};
            const cols = COLUMNS.filter((c) => c in data);
            if (op.op === UpdateType.PUT) {
              const names = ['id', ...cols];
              const values = [op.id, ...cols.map((c) => data[c])];
              const sets = cols.map((c) => `${c} = EXCLUDED.${c}`).join(', ');
              await client.query(
                `INSERT INTO todos (${names.join(', ')}) VALUES (${names.map((_, i) => `$${i + 1}`).join(', ')})
                 ON CONFLICT (id) DO ${sets ? `UPDATE SET ${sets}` : 'NOTHING'}`,
                values,
              );
            } else if (op.op === UpdateType.PATCH) {
              if (cols.length > 0) {
                await client.query(
                  `UPDATE todos SET ${cols.map((c, i) => `${c} = $${i + 2}`).join(', ')} WHERE id = $1`,
                  [op.id, ...cols.map((c) => data[c])],
                );
              }
            } else {
              await client.query('DELETE FROM todos WHERE id = $1', [op.id]);
            }
            uploads.ops++;
          }
          await client.query('COMMIT');
        } catch (error) {
          await client.query('ROLLBACK').catch(() => {});
          throw error;
        } finally {
          client.release();
        }
        await tx.complete();
      }
    },
  };
}

describe('the official @powersync/node client uploading', () => {
  it('uploads a local insert, gets its write checkpoint, keeps the row and keeps syncing', async () => {
    const pool = new pg.Pool({ connectionString: url, max: 2 });
    cleanup.add(() => pool.end());
    const uploads = { ops: 0 };
    const ps = new PowerSyncDatabase({
      schema: psSchema,
      database: { dbFilename: 'powersync-upload.db', dbLocation: dir },
    });
    cleanup.add(() => ps.close());
    await ps.connect(uploadingConnector(pool, uploads), { connectionMethod: SyncStreamConnectionMethod.HTTP });
    await ps.waitForFirstSync({ signal: AbortSignal.timeout(30_000) });
    expect(await ps.getAll('SELECT id, title FROM todos ORDER BY id')).toEqual([{ id: 't1', title: 'first' }]);

    // A local write: it is uploaded, the write checkpoint comes back, nothing stalls.
    await ps.execute(`INSERT INTO todos (id, owner, title, n) VALUES ('local-1', 'u1', 'written offline', 7)`);
    await waitFor(async () => (await pgQuery(url, `SELECT title FROM todos WHERE id = 'local-1'`)).length === 1, {
      timeoutMs: 30_000,
      message: 'the upload did not reach Postgres',
    });
    await waitFor(
      async () => {
        const [{ count }] = (await ps.getAll('SELECT count(*) AS count FROM ps_crud')) as { count: number }[];
        const status = ps.currentStatus;
        return count === 0 && status.hasSynced === true && status.dataFlowStatus.uploading === false;
      },
      { timeoutMs: 30_000, message: () => `client stalled: ${describePowerSyncStatus(ps)}` },
    );
    // The official client applies a checkpoint over local data only once its
    // write checkpoint came back; the row is then there as the server has it.
    await waitFor(
      async () => {
        const rows = (await ps.getAll(`SELECT id, owner, title, n FROM todos WHERE id = 'local-1'`)) as unknown[];
        return (
          JSON.stringify(rows) === JSON.stringify([{ id: 'local-1', owner: 'u1', title: 'written offline', n: 7 }])
        );
      },
      { timeoutMs: 30_000, message: 'the local row was lost' },
    );
    expect(uploads.ops).toBe(1);
    // The row arrived via sync too: it is in a bucket, not only local.
    await waitFor(
      async () => ((await ps.getAll(`SELECT 1 FROM ps_oplog WHERE row_id = 'local-1'`)) as unknown[]).length === 1,
      { timeoutMs: 30_000, message: 'the uploaded row never came back in a checkpoint' },
    );

    // Another device (a Ferry client) sees it.
    const other = await openClient({
      cleanup,
      dir,
      schema: ferrySchema,
      endpoint: () => service.url,
      token: () => keys.token('u1'),
    });
    await waitForRows(other.db, 'SELECT id, title FROM todos ORDER BY id', [
      { id: 'local-1', title: 'written offline' },
      { id: 't1', title: 'first' },
    ]);

    // The official client keeps syncing: a later server-side insert arrives. (While it
    // waits for a write checkpoint that never comes it applies no checkpoint at all.)
    await pgQuery(url, `INSERT INTO todos VALUES ('t3', 'u1', 'from the server', 3)`);
    await waitFor(async () => ((await ps.getAll(`SELECT 1 FROM todos WHERE id = 't3'`)) as unknown[]).length === 1, {
      timeoutMs: 30_000,
      message: 'a server-side insert did not arrive after the upload',
    });

    // A second local write (an update) also goes through without a stall.
    await ps.execute(`UPDATE todos SET title = 'edited locally' WHERE id = 't1'`);
    await waitFor(
      async () =>
        (await pgQuery<{ title: string }>(url, `SELECT title FROM todos WHERE id = 't1'`))[0]?.title ===
        'edited locally',
      { timeoutMs: 30_000, message: 'the PATCH did not reach Postgres' },
    );
    await waitFor(
      async () => {
        const [{ count }] = (await ps.getAll('SELECT count(*) AS count FROM ps_crud')) as { count: number }[];
        const rows = (await ps.getAll(`SELECT title FROM todos WHERE id = 't1'`)) as { title: string }[];
        return count === 0 && !ps.currentStatus.dataFlowStatus.uploading && rows[0]?.title === 'edited locally';
      },
      {
        timeoutMs: 30_000,
        message: () => `client stalled after a PATCH: ${describePowerSyncStatus(ps)}`,
      },
    );
    expect(uploads.ops).toBe(2);
    await ps.disconnect();
  });
});

describe('the official @powersync/node client uploading through the write API', () => {
  it('posts its CRUD transactions to /write: rules apply, a resend is not applied twice, syncing goes on', async () => {
    const token = await keys.token('u1');
    const sent: string[] = [];
    const answers: WriteResponse[] = [];
    const connector = {
      fetchCredentials: async () => ({ endpoint: service.url, token }),
      uploadData: async (db: AbstractPowerSyncDatabase) => {
        for (;;) {
          const tx = await db.getNextCrudTransaction();
          if (!tx) return;
          const body = JSON.stringify({ client_id: await db.getClientId(), batch: tx.crud.map((e) => e.toJSON()) });
          const response = await fetch(`${service.url}/write`, {
            method: 'POST',
            headers: { authorization: `Token ${token}`, 'content-type': 'application/json' },
            body,
          });
          if (!response.ok) throw new Error(`/write answered ${response.status}: ${await response.text()}`);
          const answer = (await response.json()) as WriteResponse;
          if (answer.transactions.some((t) => t.status === 'retry')) throw new Error('the write API asked to retry');
          sent.push(body);
          answers.push(answer);
          await tx.complete();
        }
      },
    };
    const ps = new PowerSyncDatabase({
      schema: psSchema,
      database: { dbFilename: 'powersync-write-api.db', dbLocation: dir },
    });
    cleanup.add(() => ps.close());
    await ps.connect(connector, { connectionMethod: SyncStreamConnectionMethod.HTTP });
    await ps.waitForFirstSync({ signal: AbortSignal.timeout(30_000) });

    // One local transaction with an insert (forging another owner) and an update.
    await ps.writeTransaction(async (tx) => {
      await tx.execute(`INSERT INTO todos (id, owner, title, n) VALUES ('ps-1', 'u2', 'via the write API', 5)`);
      await tx.execute(`UPDATE todos SET n = 60 WHERE id = 't1'`);
    });
    await waitFor(
      async () =>
        JSON.stringify(await pgQuery(url, `SELECT id, owner, n FROM todos WHERE id IN ('ps-1', 't1') ORDER BY id`)) ===
        JSON.stringify([
          { id: 'ps-1', owner: 'u1', n: 5 },
          { id: 't1', owner: 'u1', n: 60 },
        ]),
      { timeoutMs: 30_000, message: 'the upload did not reach Postgres as the write rules say' },
    );
    expect(answers).toHaveLength(1);
    expect(answers[0]!.transactions.map((t) => t.status)).toEqual(['applied']);

    // The client converges to the server's (corrected) row and does not stall.
    await waitFor(
      async () => {
        const [{ count }] = (await ps.getAll('SELECT count(*) AS count FROM ps_crud')) as { count: number }[];
        const rows = (await ps.getAll(`SELECT owner FROM todos WHERE id = 'ps-1'`)) as { owner: string }[];
        return count === 0 && !ps.currentStatus.dataFlowStatus.uploading && rows[0]?.owner === 'u1';
      },
      { timeoutMs: 30_000, message: () => `client stalled: ${describePowerSyncStatus(ps)}` },
    );

    // The same request again (a lost answer, retried): acknowledged, not applied again.
    const before = await pgQuery(url, `SELECT count(*)::int AS n FROM todos`);
    const again = await fetch(`${service.url}/write`, {
      method: 'POST',
      headers: { authorization: `Token ${token}`, 'content-type': 'application/json' },
      body: sent[0]!,
    });
    const repeated = (await again.json()) as WriteResponse;
    expect(repeated.transactions).toMatchObject([{ status: 'applied', duplicate: true }]);
    expect(await pgQuery(url, `SELECT count(*)::int AS n FROM todos`)).toEqual(before);

    // Downloads keep coming.
    await pgQuery(url, `INSERT INTO todos VALUES ('t5', 'u1', 'after the write API', 5)`);
    await waitFor(async () => ((await ps.getAll(`SELECT 1 FROM todos WHERE id = 't5'`)) as unknown[]).length === 1, {
      timeoutMs: 30_000,
      message: 'a server-side insert did not arrive after uploading through the write API',
    });
    await ps.disconnect();
  });
});

/** A readable summary of the official client's status for failure messages. */
function describePowerSyncStatus(db: {
  currentStatus: { connected: boolean; hasSynced?: boolean | undefined; dataFlowStatus: unknown };
}): string {
  const status = db.currentStatus;
  return JSON.stringify({ connected: status.connected, hasSynced: status.hasSynced, dataFlow: status.dataFlowStatus });
}
