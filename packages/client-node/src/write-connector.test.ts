import { ferryConnector, type FerryWriteConnector } from '@ferry/client';
import { FerryError, type WriteResponse, type WriteTransactionResult } from '@ferry/protocol';
import { describe, expect, it } from 'vitest';
import { eventually, FakeBuckets, type RecordedWrite } from './test-support/fake-sync-service.js';
import { openTestDb, type TestContext } from './test-support/test-db.js';

const applied = (id: string, ops: number, duplicate = false): WriteTransactionResult => ({
  id,
  status: 'applied',
  ...(duplicate ? { duplicate } : {}),
  ops: Array.from({ length: ops }, () => ({ status: 'applied' as const })),
});

/** Answers every transaction as applied. */
function applyAll(request: RecordedWrite): Response {
  const response: WriteResponse = {
    transactions: request.body.transactions.map((tx) => applied(tx.id, tx.ops.length)),
  };
  return Response.json(response);
}

function connectorFor(t: TestContext, options: { batchSize?: number } = {}): FerryWriteConnector & { tokens: number } {
  let tokens = 0;
  const connector = ferryConnector({
    endpoint: 'http://ferry.test/',
    fetchToken: async () => `jwt-${++tokens}`,
    fetch: t.service.fetch,
    ...options,
  });
  return Object.defineProperty(connector, 'tokens', { get: () => tokens }) as FerryWriteConnector & { tokens: number };
}

async function writeLists(t: TestContext, ids: readonly string[]): Promise<void> {
  for (const id of ids) await t.db.execute(`INSERT INTO lists (id, name) VALUES (?, ?)`, [id, `name ${id}`]);
}

async function queuedIds(t: TestContext): Promise<string[]> {
  return ((await t.db.getCrudBatch(1000))?.crud ?? []).map((c) => c.id);
}

async function overlayIds(t: TestContext): Promise<string[]> {
  return (await t.db.getAll<{ row_id: string }>(`SELECT row_id FROM ferry_overlay ORDER BY id`)).map((r) => r.row_id);
}

describe('ferryConnector (Ferry write API)', () => {
  it('sends whole transactions with idempotency keys and exact values; applied and duplicate complete', async () => {
    await using t = await openTestDb();
    await t.db.writeTransaction(async (tx) => {
      await tx.execute(`INSERT INTO todos (id, title, big, amount) VALUES ('t1', 'Milk', 9007199254740993, 2.5)`);
      await tx.execute(`INSERT INTO lists (id, name) VALUES ('l1', 'Groceries')`);
    });
    await t.db.execute(`UPDATE todos SET title = 'Oat milk' WHERE id = 't1'`);
    await t.db.execute(`DELETE FROM lists WHERE id = 'l1'`);
    let first = true;
    t.service.writeHandler = (request) => {
      const results = request.body.transactions.map((tx) => applied(tx.id, tx.ops.length, !first));
      first = false;
      return Response.json({ transactions: results } satisfies WriteResponse);
    };
    const connector = connectorFor(t);
    await connector.uploadData(t.db);

    expect(t.service.writes).toHaveLength(1);
    const write = t.service.writes[0]!;
    const clientId = await t.db.clientId();
    expect(write.url).toBe('http://ferry.test/write');
    expect(write.headers['authorization']).toBe('Token jwt-1');
    expect(write.headers['content-type']).toBe('application/json');
    expect(write.text).toContain('"big":9007199254740993');
    const ops = await t.db.getAll<{ tx_id: number; hlc: string }>(`SELECT tx_id, hlc FROM ferry_overlay ORDER BY id`);
    expect(write.body).toEqual({
      client_id: clientId,
      transactions: [
        {
          id: `${clientId}:${ops[0]!.tx_id}`,
          ops: [
            {
              op: 'PUT',
              type: 'todos',
              id: 't1',
              data: { list_id: null, title: 'Milk', done: null, amount: 2.5, big: 9007199254740993n },
              hlc: ops[0]!.hlc,
            },
            { op: 'PUT', type: 'lists', id: 'l1', data: { name: 'Groceries' }, hlc: ops[1]!.hlc },
          ],
        },
        {
          id: `${clientId}:${ops[2]!.tx_id}`,
          ops: [
            {
              op: 'PATCH',
              type: 'todos',
              id: 't1',
              data: { title: 'Oat milk' },
              hlc: ops[2]!.hlc,
              old: { title: 'Milk' },
            },
          ],
        },
        { id: `${clientId}:${ops[3]!.tx_id}`, ops: [{ op: 'DELETE', type: 'lists', id: 'l1', hlc: ops[3]!.hlc }] },
      ],
    });
    expect(await queuedIds(t)).toEqual([]);
    expect(await overlayIds(t)).toEqual(['t1', 'l1', 't1', 'l1']);

    // A duplicate answer (already applied by an earlier request) settles the same way.
    await writeLists(t, ['l2']);
    await connector.uploadData(t.db);
    expect(await queuedIds(t)).toEqual([]);
    expect(await overlayIds(t)).toEqual(['t1', 'l1', 't1', 'l1', 'l2']);
    expect(await t.db.getRejections()).toEqual([]);
  });

  it('batches never split a transaction; batchSize bounds the ops per request', async () => {
    await using t = await openTestDb();
    await writeLists(t, ['a', 'b']);
    await t.db.writeTransaction(async (tx) => {
      for (const id of ['c', 'd', 'e']) await tx.execute(`INSERT INTO lists (id, name) VALUES (?, 'x')`, [id]);
    });
    await writeLists(t, ['f']);
    t.service.writeHandler = applyAll;
    await connectorFor(t, { batchSize: 3 }).uploadData(t.db);
    expect(t.service.writes.map((w) => w.body.transactions.map((tx) => tx.ops.map((o) => o.id).join('')))).toEqual([
      ['a', 'b'],
      ['cde'],
      ['f'],
    ]);
    expect(await queuedIds(t)).toEqual([]);
  });

  it('a retry answer settles the transactions before it and throws a retryable FERRY_C1009', async () => {
    await using t = await openTestDb();
    await writeLists(t, ['a', 'b', 'c']);
    let busy = true;
    t.service.writeHandler = (request) => {
      if (!busy) return applyAll(request);
      const [first, ...rest] = request.body.transactions;
      return Response.json({
        transactions: [
          applied(first!.id, 1),
          ...rest.map((tx): WriteTransactionResult => ({
            id: tx.id,
            status: 'retry',
            ops: [{ status: 'rejected', retryable: true, code: 'FERRY_S6008', message: 'deadlock' }],
          })),
        ],
      } satisfies WriteResponse);
    };
    const connector = connectorFor(t);
    const error = await connector.uploadData(t.db).catch((e: unknown) => e);
    expect(FerryError.is(error) && error.code).toBe('FERRY_C1009');
    expect(await overlayIds(t)).toEqual(['a']);
    expect(await queuedIds(t)).toEqual(['b', 'c']);
    busy = false;
    await connector.uploadData(t.db);
    expect(await queuedIds(t)).toEqual([]);
    expect(await overlayIds(t)).toEqual(['a', 'b', 'c']);
  });

  it('401 drops the cached token and throws; the next attempt uses a fresh one', async () => {
    await using t = await openTestDb();
    await writeLists(t, ['a']);
    t.service.writeHandler = (request) =>
      request.headers['authorization'] === 'Token jwt-1'
        ? Response.json({ error: { code: 'FERRY_S2003', message: 'expired' } }, { status: 401 })
        : applyAll(request);
    const connector = connectorFor(t);
    const error = await connector.uploadData(t.db).catch((e: unknown) => e);
    expect(FerryError.is(error) && error.code).toBe('FERRY_C1002');
    expect(await queuedIds(t)).toEqual(['a']);
    await connector.uploadData(t.db);
    expect(connector.tokens).toBe(2);
    expect(await queuedIds(t)).toEqual([]);
  });

  it('413 halves the batch until it fits; a single transaction too large is rejected with the server code', async () => {
    await using t = await openTestDb();
    await writeLists(t, ['a', 'b', 'c', 'd', 'e']);
    await t.db.execute(`INSERT INTO todos (id, title) VALUES ('huge', ?)`, ['x'.repeat(5000)]);
    await writeLists(t, ['f']);
    t.service.writeHandler = (request) =>
      request.text.length > 2000 || request.body.transactions.length > 2
        ? Response.json({ error: { code: 'FERRY_S4002', message: 'body too large' } }, { status: 413 })
        : applyAll(request);
    await connectorFor(t).uploadData(t.db);
    expect(await queuedIds(t)).toEqual([]);
    expect(await overlayIds(t)).toEqual(['a', 'b', 'c', 'd', 'e', 'f']);
    const rejected = await t.db.getRejections();
    expect(rejected.map(({ rowId, code, message }) => ({ rowId, code, message }))).toEqual([
      { rowId: 'huge', code: 'FERRY_S4002', message: 'body too large' },
    ]);
    expect(rejected[0]!.opData?.['title']).toBe('x'.repeat(5000)); // the data is kept
    expect(await t.db.getOptional(`SELECT id FROM todos WHERE id = 'huge'`)).toBeNull();
  });

  it('400 isolates the malformed transaction, which is rejected with the server code; the rest is applied', async () => {
    await using t = await openTestDb();
    await writeLists(t, ['a', 'b', 'bad', 'c', 'd']);
    t.service.writeHandler = (request) =>
      request.body.transactions.some((tx) => tx.ops.some((op) => op.id === 'bad'))
        ? Response.json({ error: { code: 'FERRY_S4001', message: 'malformed: bad' } }, { status: 400 })
        : applyAll(request);
    await connectorFor(t).uploadData(t.db);
    expect(await queuedIds(t)).toEqual([]);
    expect(await overlayIds(t)).toEqual(['a', 'b', 'c', 'd']);
    expect((await t.db.getRejections()).map((r) => [r.rowId, r.code, r.message])).toEqual([
      ['bad', 'FERRY_S4001', 'malformed: bad'],
    ]);
    expect((await t.db.getAll<{ id: string }>(`SELECT id FROM lists ORDER BY id`)).map((r) => r.id)).toEqual([
      'a',
      'b',
      'c',
      'd',
    ]);
  });

  it('rejected transactions are recorded with the per-op codes', async () => {
    await using t = await openTestDb();
    await t.db.writeTransaction(async (tx) => {
      await tx.execute(`INSERT INTO lists (id, name) VALUES ('mine', 'x')`);
      await tx.execute(`INSERT INTO todos (id, title) VALUES ('theirs', 'y')`);
    });
    await writeLists(t, ['ok']);
    t.service.writeHandler = (request) =>
      Response.json({
        transactions: request.body.transactions.map((tx): WriteTransactionResult =>
          tx.ops.length === 2
            ? {
                id: tx.id,
                status: 'rejected',
                ops: [
                  { status: 'rejected', retryable: false, code: 'FERRY_S6006', message: 'aborted' },
                  { status: 'rejected', retryable: false, code: 'FERRY_S6004', message: 'row not writable' },
                ],
              }
            : applied(tx.id, tx.ops.length),
        ),
      } satisfies WriteResponse);
    await connectorFor(t).uploadData(t.db);
    expect((await t.db.getRejections()).map((r) => [r.rowId, r.code])).toEqual([
      ['mine', 'FERRY_S6006'],
      ['theirs', 'FERRY_S6004'],
    ]);
    expect(await t.db.getAll(`SELECT id FROM lists`)).toEqual([{ id: 'ok' }]);
    expect(await t.db.getAll(`SELECT id FROM todos`)).toEqual([]);
  });

  it('runs in the sync loop: 5xx and network errors retry until the write API accepts, then a write checkpoint', async () => {
    await using t = await openTestDb();
    await writeLists(t, ['a']);
    let answers = 0;
    t.service.writeHandler = (request) => {
      answers++;
      if (answers === 1) throw new TypeError('fetch failed');
      if (answers === 2) return Response.json({ error: { code: 'FERRY_S5001', message: 'down' } }, { status: 503 });
      return applyAll(request);
    };
    const connector = connectorFor(t);
    await t.db.connect(connector, { retryDelay: { initialMs: 5, maxMs: 20 } });
    const stream = await t.service.nextStream();
    expect(stream.request.headers['authorization']).toBe('Token jwt-1');
    await eventually(
      async () => (await t.db.getAll(`SELECT 1 FROM ferry_overlay WHERE write_checkpoint = '1'`)).length === 1,
    );
    expect(answers).toBe(3);
    expect(t.db.currentStatus.pendingCount).toBe(0);
    expect(t.db.currentStatus.lastUploadError).toBeUndefined();
    const server = new FakeBuckets();
    server.bucket('g[]').put('lists', 'a', { name: 'name a' });
    stream.send(server.checkpoint(undefined, '1'));
    stream.send(server.bucket('g[]').data());
    stream.send(server.complete());
    await eventually(async () => (await overlayIds(t)).length === 0);
    expect(await t.db.getAll(`SELECT id, name FROM lists`)).toEqual([{ id: 'a', name: 'name a' }]);
  });
});
