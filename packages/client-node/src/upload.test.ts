import { join } from 'node:path';
import type { SyncStatus } from '@ferry/client';
import { FerryError, type SyncLine } from '@ferry/protocol';
import { describe, expect, it } from 'vitest';
import { openFerryDatabase } from './open-ferry-database.js';
import { eventually, FakeBuckets, FakeSyncService, type FakeStream } from './test-support/fake-sync-service.js';
import { openTestDb, tempDir, todoSchema, type TestContext } from './test-support/test-db.js';
import { drainAll, ScriptedConnector } from './test-support/upload-connector.js';

const fast = { retryDelay: { initialMs: 5, maxMs: 20 } };

async function syncTo(t: TestContext, server: FakeBuckets, stream: FakeStream, lines: SyncLine[]): Promise<void> {
  const before = t.db.currentStatus.lastSyncedAt;
  for (const line of lines) stream.send(line);
  stream.send(server.complete());
  await eventually(() => t.db.currentStatus.lastSyncedAt !== before && !t.db.currentStatus.downloading);
}

describe('upload loop', () => {
  it('retries a failing uploadData with backoff while downloads keep applying, then drains the queue', async () => {
    await using t = await openTestDb();
    const server = new FakeBuckets();
    const g = server.bucket('g[]');
    g.put('lists', 'l1', { name: 'first' });
    let down = true; // the backend is down
    const connector = new ScriptedConnector(async (db, options) => {
      if (down) throw new TypeError('fetch failed');
      await drainAll(db, options);
    });
    const statuses: SyncStatus[] = [];
    t.db.registerListener({ statusChanged: (s) => statuses.push(s) });
    // Offline writes before connecting.
    await t.db.execute(`INSERT INTO todos (id, title) VALUES ('a', 'offline 1')`);
    await t.db.execute(`INSERT INTO todos (id, title) VALUES ('b', 'offline 2')`);
    await t.db.connect(connector, fast);
    const stream = await t.service.nextStream();
    await eventually(() => connector.calls >= 2);
    const failed = t.db.currentStatus;
    expect(FerryError.is(failed.lastUploadError) && failed.lastUploadError.code).toBe('FERRY_C1009');
    expect((failed.lastUploadError as Error).cause).toBeInstanceOf(TypeError);
    expect(failed.dataFlowStatus.uploadError).toBe(failed.lastUploadError);
    expect(failed.pendingCount).toBe(2);
    expect(failed.oldestPendingAt).toBeInstanceOf(Date);
    expect(statuses.some((s) => s.uploading && s.dataFlowStatus.uploading)).toBe(true);

    // Downloads apply while uploads fail.
    await syncTo(t, server, stream, [server.checkpoint(), g.data()]);
    expect(await t.db.getAll(`SELECT id, name FROM lists`)).toEqual([{ id: 'l1', name: 'first' }]);
    g.put('lists', 'l2', { name: 'second' });
    await syncTo(t, server, stream, [server.diff(['g[]']), g.data()]);
    expect(await t.db.get(`SELECT count(*) AS n FROM lists`)).toEqual({ n: 2 });
    expect(await t.db.getAll(`SELECT id FROM todos ORDER BY id`)).toEqual([{ id: 'a' }, { id: 'b' }]);
    expect(t.db.currentStatus.lastUploadError).toBeDefined();

    // The backend comes back: the next retry drains everything, the error clears.
    const callsWhileDown = connector.calls;
    down = false;
    await eventually(() => t.db.currentStatus.pendingCount === 0 && t.db.currentStatus.lastUploadError === undefined);
    expect(connector.calls).toBeGreaterThan(callsWhileDown);
    expect(t.db.currentStatus.dataFlowStatus.uploadError).toBeUndefined();
    expect(t.db.currentStatus.oldestPendingAt).toBeNull();
    await eventually(() => t.service.writeCheckpointRequests.length === 1);
    expect(await t.db.getAll(`SELECT row_id, write_checkpoint FROM ferry_overlay ORDER BY id`)).toEqual([
      { row_id: 'a', write_checkpoint: '1' },
      { row_id: 'b', write_checkpoint: '1' },
    ]);

    // A later local write is uploaded at once, and gets its own write checkpoint.
    await t.db.execute(`INSERT INTO todos (id, title) VALUES ('c', 'online')`);
    await eventually(() => t.service.writeCheckpointRequests.length === 2);
    await eventually(
      async () => (await t.db.getAll(`SELECT 1 FROM ferry_overlay WHERE write_checkpoint = '2'`)).length === 1,
    );
    expect(t.db.currentStatus.pendingCount).toBe(0);
  });

  it('acknowledges uploaded ops whose write checkpoint the stream echoed before the client recorded it', async () => {
    await using t = await openTestDb();
    const server = new FakeBuckets();
    const g = server.bucket('g[]');
    g.put('todos', 'a', { title: 'server' });
    const connector = new ScriptedConnector();
    await t.db.connect(connector, fast);
    const stream = await t.service.nextStream();
    await syncTo(t, server, stream, [server.checkpoint(), g.data()]);

    // The upload is applied, but loses to a concurrent edit on the server: the row is 'winner' there.
    // The service covers the write checkpoint at once and the stream echoes it before the client has
    // even received the checkpoint's id.
    t.service.beforeWriteCheckpointAnswer = async (id) => {
      g.put('todos', 'a', { title: 'winner' });
      await syncTo(t, server, stream, [server.diff(['g[]'], String(id)), g.data()]);
    };
    await t.db.execute(`UPDATE todos SET title = 'mine' WHERE id = 'a'`);
    await eventually(() => t.service.writeCheckpointRequests.length === 1);
    // The overlay lets the op go (without waiting for a later write checkpoint) and the row shows the server.
    await eventually(async () => (await t.db.getAll(`SELECT 1 FROM ferry_overlay`)).length === 0);
    expect(await t.db.getAll(`SELECT title FROM todos WHERE id = 'a'`)).toEqual([{ title: 'winner' }]);
  });

  it('uploadData that settles nothing counts as a failure and is retried', async () => {
    await using t = await openTestDb();
    let lazy = true;
    const connector = new ScriptedConnector(async (db, options) => {
      if (lazy) return; // forgot to call complete()
      await drainAll(db, options);
    });
    await t.db.execute(`INSERT INTO lists (id, name) VALUES ('l1', 'x')`);
    await t.db.connect(connector, fast);
    await eventually(() => connector.calls >= 2);
    const error = t.db.currentStatus.lastUploadError;
    expect(FerryError.is(error) && error.code).toBe('FERRY_C1009');
    expect(error?.message).toMatch(/complete\(\)/);
    expect(t.db.currentStatus.pendingCount).toBe(1);
    lazy = false;
    await eventually(() => t.db.currentStatus.pendingCount === 0 && t.db.currentStatus.lastUploadError === undefined);
  });

  it('a failing write checkpoint request is retried; uploads are not held back by it', async () => {
    await using t = await openTestDb();
    t.service.respondNextWriteCheckpoint({ kind: 'network-error' });
    t.service.respondNextWriteCheckpoint({ kind: 'status', status: 503, body: '{}' });
    const connector = new ScriptedConnector();
    await t.db.execute(`INSERT INTO lists (id, name) VALUES ('l1', 'x')`);
    await t.db.connect(connector, fast);
    await eventually(
      async () => (await t.db.getAll(`SELECT 1 FROM ferry_overlay WHERE write_checkpoint = '1'`)).length === 1,
    );
    expect(t.service.writeCheckpointRequests).toHaveLength(3);
    await eventually(() => t.db.currentStatus.lastUploadError === undefined);
  });

  it('disconnect stops the loop and aborts the upload in flight; nothing settled is lost', async () => {
    await using t = await openTestDb();
    let aborted = false;
    const connector = new ScriptedConnector(
      (_db, options) =>
        new Promise<void>((resolve) => {
          options.signal?.addEventListener('abort', () => {
            aborted = true;
            resolve();
          });
        }),
    );
    await t.db.execute(`INSERT INTO lists (id, name) VALUES ('l1', 'x')`);
    await t.db.connect(connector, fast);
    await eventually(() => t.db.currentStatus.uploading);
    await t.db.disconnect();
    expect(aborted).toBe(true);
    expect(t.db.currentStatus.uploading).toBe(false);
    expect(t.db.currentStatus.pendingCount).toBe(1);
    const calls = connector.calls;
    await t.db.execute(`INSERT INTO lists (id, name) VALUES ('l2', 'y')`);
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(connector.calls).toBe(calls);
  });

  it('after a restart, overlay ops without a write checkpoint get one on the next connect', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const path = join(dir, 'app.db');
      const service = new FakeSyncService();
      const db = await openFerryDatabase({ path, schema: todoSchema, fetch: service.fetch });
      await db.execute(`INSERT INTO lists (id, name) VALUES ('l1', 'mine')`);
      // Uploaded by the app itself, then the process stops before any write checkpoint.
      await (await db.getCrudBatch())!.complete();
      await db.close();

      const reopened = await openFerryDatabase({ path, schema: todoSchema, fetch: service.fetch });
      try {
        expect(await reopened.getAll(`SELECT row_id, write_checkpoint FROM ferry_overlay`)).toEqual([
          { row_id: 'l1', write_checkpoint: null },
        ]);
        // A read-only connector (no uploadData): the write checkpoint is obtained all the same.
        await reopened.connect({ fetchCredentials: async () => ({ endpoint: 'http://ferry.test', token: 't' }) }, fast);
        const stream = await service.nextStream();
        await eventually(
          async () => (await reopened.getAll(`SELECT 1 FROM ferry_overlay WHERE write_checkpoint = '1'`)).length === 1,
        );
        expect(service.writeCheckpointRequests[0]!.clientId).toBe(await reopened.clientId());
        const server = new FakeBuckets();
        server.bucket('g[]').put('lists', 'l1', { name: 'mine' });
        stream.send(server.checkpoint(undefined, '1'));
        stream.send(server.bucket('g[]').data());
        stream.send(server.complete());
        await eventually(async () => (await reopened.getAll(`SELECT 1 FROM ferry_overlay`)).length === 0);
        expect(await reopened.getAll(`SELECT id, name FROM lists`)).toEqual([{ id: 'l1', name: 'mine' }]);
      } finally {
        await reopened.close();
      }
    } finally {
      cleanup();
    }
  });

  it('disconnectAndClear empties the queue, the overlay and the rejections', async () => {
    await using t = await openTestDb();
    await t.db.execute(`INSERT INTO lists (id, name) VALUES ('a', 'x')`);
    await t.db.execute(`INSERT INTO lists (id, name) VALUES ('b', 'x')`);
    await t.db.execute(`INSERT INTO lists (id, name) VALUES ('c', 'x')`);
    const first = await t.db.getNextCrudTransaction();
    await first!.complete();
    const second = await t.db.getNextCrudTransaction();
    await second!.complete({ rejected: [{ op: second!.crud[0]!, code: 'FERRY_S6001', message: 'no' }] });
    expect(
      await t.db.get(`SELECT (SELECT count(*) FROM ferry_crud) AS q, (SELECT count(*) FROM ferry_overlay) AS o,
      (SELECT count(*) FROM ferry_rejections) AS r`),
    ).toEqual({ q: 1, o: 1, r: 1 });
    const clientId = await t.db.clientId();
    await t.db.disconnectAndClear();
    expect(
      await t.db.get(`SELECT (SELECT count(*) FROM ferry_crud) AS q, (SELECT count(*) FROM ferry_overlay) AS o,
      (SELECT count(*) FROM ferry_rejections) AS r`),
    ).toEqual({ q: 0, o: 0, r: 0 });
    expect(await t.db.clientId()).not.toBe(clientId);
  });
});
