import { FerryError, type SyncLine } from '@ferry/protocol';
import { describe, expect, it } from 'vitest';
import { eventually, FakeBuckets, type FakeStream } from './test-support/fake-sync-service.js';
import { openTestDb } from './test-support/test-db.js';

describe('first sync', () => {
  it('applies a complete checkpoint with typed values and reports status', async () => {
    await using t = await openTestDb();
    const server = new FakeBuckets();
    const global = server.bucket('global[]');
    global.put('todos', 't1', '{"id":"t1","list_id":"l1","title":"Milk","done":1,"amount":2.5,"big":9007199254740993}');
    global.put('todos', 't2', { id: 't2', list_id: 'l1', title: 'Bread', done: 0, amount: 1, big: 1 });
    global.put('lists', 'l1', { id: 'l1', name: 'Groceries' });

    expect(t.db.currentStatus.hasSynced).toBe(false);
    const firstSync = t.db.waitForFirstSync();
    await t.connect();
    const stream = await t.service.nextStream();
    expect(stream.request.url).toBe('http://ferry.test/sync/stream');
    expect(stream.request.headers['authorization']).toMatch(/^Token token-\d+$/);
    expect(stream.request.headers['content-type']).toBe('application/json');
    expect(stream.request.headers['accept']).toBe('application/x-ndjson');
    expect(stream.request.body).toMatchObject({ buckets: [], include_checksum: true, raw_data: true, parameters: {} });
    expect(typeof stream.request.body.client_id).toBe('string');

    stream.send(server.checkpoint());
    stream.send(global.data());
    await eventually(() => t.db.currentStatus.downloadProgress?.downloadedOps === 3);
    expect(t.db.currentStatus.downloading).toBe(true);
    expect(await t.db.getAll('SELECT * FROM todos')).toEqual([]);
    stream.send(server.complete());
    await firstSync;

    const rows = await t.db.getAll(
      'SELECT id, list_id, title, done, amount, CAST(big AS TEXT) AS big FROM todos ORDER BY id',
    );
    expect(rows).toEqual([
      { id: 't1', list_id: 'l1', title: 'Milk', done: 1, amount: 2.5, big: '9007199254740993' },
      { id: 't2', list_id: 'l1', title: 'Bread', done: 0, amount: 1, big: '1' },
    ]);
    expect(await t.db.get('SELECT typeof(big) AS t FROM todos WHERE id = ?', ['t1'])).toEqual({ t: 'integer' });
    expect(await t.db.get('SELECT name FROM lists')).toEqual({ name: 'Groceries' });
    const status = t.db.currentStatus;
    expect(status.hasSynced).toBe(true);
    expect(status.lastSyncedAt).toBeInstanceOf(Date);
    expect(status.connected).toBe(true);
    expect(status.downloading).toBe(false);
    expect(status.downloadError).toBeUndefined();
  });

  it('get() without a row rejects with FERRY_C1007', async () => {
    await using t = await openTestDb();
    const error = await t.db.get('SELECT * FROM todos').catch((e: unknown) => e);
    expect(FerryError.is(error) && error.code).toBe('FERRY_C1007');
    expect(await t.db.getOptional('SELECT * FROM todos')).toBeNull();
  });
});

describe('atomic checkpoints', () => {
  it('a watcher sees nothing until checkpoint_complete, then the whole checkpoint at once', async () => {
    await using t = await openTestDb();
    const server = new FakeBuckets();
    const a = server.bucket('a[]');
    const b = server.bucket('b[]');
    for (let i = 0; i < 50; i++) a.put('todos', `a${i}`, { title: `a${i}` });
    for (let i = 0; i < 50; i++) b.put('todos', `b${i}`, { title: `b${i}` });

    const emissions: number[] = [];
    const stop = t.db.watch<{ n: number }>('SELECT count(*) AS n FROM todos', [], {
      onResult: (rows) => emissions.push(rows[0]!.n),
    });
    await eventually(() => emissions.length === 1);

    await t.connect();
    const stream = await t.service.nextStream();
    stream.send(server.checkpoint());
    stream.send(a.data());
    // split b's data over two chunks, mid-line
    const line = JSON.stringify(b.data()) + '\n';
    stream.sendRaw(line.slice(0, 100));
    await eventually(() => t.db.currentStatus.downloadProgress?.downloadedOps === 50);
    stream.sendRaw(line.slice(100));
    await eventually(() => t.db.currentStatus.downloadProgress?.downloadedOps === 100);
    expect(await t.db.get('SELECT count(*) AS n FROM todos')).toEqual({ n: 0 });
    expect(emissions).toEqual([0]);

    stream.send(server.complete());
    await t.db.waitForFirstSync();
    await eventually(() => emissions.length === 2);
    expect(emissions).toEqual([0, 100]);

    // an update checkpoint: again all or nothing
    a.put('todos', 'a0', { title: 'changed' });
    a.remove('todos', 'a1');
    stream.send({
      checkpoint_diff: { last_op_id: server.lastOpId, updated_buckets: [a.entry()], removed_buckets: [] },
    });
    stream.send(a.data());
    await eventually(() => t.db.currentStatus.downloadProgress?.downloadedOps === 2);
    expect(await t.db.get('SELECT title FROM todos WHERE id = ?', ['a0'])).toEqual({ title: 'a0' });
    stream.send(server.complete());
    await eventually(() => emissions.length === 3);
    expect(emissions).toEqual([0, 100, 99]);
    expect(await t.db.get('SELECT title FROM todos WHERE id = ?', ['a0'])).toEqual({ title: 'changed' });
    stop();
  });
});

describe('op semantics', () => {
  async function syncTo(
    t: Awaited<ReturnType<typeof openTestDb>>,
    server: FakeBuckets,
    stream: FakeStream,
    lines: SyncLine[],
  ) {
    const before = t.db.currentStatus.lastSyncedAt;
    for (const line of lines) stream.send(line);
    stream.send(server.complete());
    await eventually(
      () => t.db.currentStatus.lastSyncedAt !== before && t.db.currentStatus.downloadError === undefined,
    );
  }

  it('PUT replaces, REMOVE deletes, MOVE only adds its checksum, CLEAR drops earlier ops', async () => {
    await using t = await openTestDb();
    const server = new FakeBuckets();
    const g = server.bucket('g[]');
    g.put('todos', 't1', { title: 'one' });
    g.put('todos', 't2', { title: 'two' });
    g.put('todos', 't1', { title: 'one v2' });
    await t.connect();
    const stream = await t.service.nextStream();
    await syncTo(t, server, stream, [server.checkpoint(), g.data()]);
    expect(await t.db.getAll('SELECT id, title FROM todos ORDER BY id')).toEqual([
      { id: 't1', title: 'one v2' },
      { id: 't2', title: 'two' },
    ]);

    g.remove('todos', 't2');
    g.move(123456);
    await syncTo(t, server, stream, [server.checkpoint(), g.data()]);
    expect(await t.db.getAll('SELECT id, title FROM todos ORDER BY id')).toEqual([{ id: 't1', title: 'one v2' }]);

    // compaction on the server: CLEAR then the live row again, plus a new one
    g.clear();
    g.put('todos', 't1', { title: 'one v3' });
    g.put('todos', 't3', { title: 'three' });
    await syncTo(t, server, stream, [server.checkpoint(), g.data()]);
    expect(await t.db.getAll('SELECT id, title FROM todos ORDER BY id')).toEqual([
      { id: 't1', title: 'one v3' },
      { id: 't3', title: 'three' },
    ]);
    expect(t.db.currentStatus.downloadError).toBeUndefined();
  });

  it('a row held by two buckets stays when one drops it; removed buckets take their rows', async () => {
    await using t = await openTestDb();
    const server = new FakeBuckets();
    const a = server.bucket('a[]');
    const b = server.bucket('b[]');
    a.put('todos', 'shared', { title: 'from a' });
    b.put('todos', 'shared', { title: 'from b' }); // later op wins
    b.put('todos', 'only-b', { title: 'b' });
    await t.connect();
    const stream = await t.service.nextStream();
    await syncTo(t, server, stream, [server.checkpoint(), a.data(), b.data()]);
    expect(await t.db.getAll('SELECT id, title FROM todos ORDER BY id')).toEqual([
      { id: 'only-b', title: 'b' },
      { id: 'shared', title: 'from b' },
    ]);

    // b drops the shared row: a still holds it, with its own (older) data
    b.remove('todos', 'shared');
    await syncTo(t, server, stream, [
      { checkpoint_diff: { last_op_id: server.lastOpId, updated_buckets: [b.entry()], removed_buckets: [] } },
      b.data(),
    ]);
    expect(await t.db.getAll('SELECT id, title FROM todos ORDER BY id')).toEqual([
      { id: 'only-b', title: 'b' },
      { id: 'shared', title: 'from a' },
    ]);

    // bucket b is removed entirely
    await syncTo(t, server, stream, [
      { checkpoint_diff: { last_op_id: server.lastOpId, updated_buckets: [], removed_buckets: ['b[]'] } },
    ]);
    expect(await t.db.getAll('SELECT id, title FROM todos ORDER BY id')).toEqual([{ id: 'shared', title: 'from a' }]);

    // a full checkpoint without bucket a removes it too
    server.bucket('c[]').put('lists', 'l1', { name: 'L' });
    await syncTo(t, server, stream, [server.checkpoint(['c[]']), server.bucket('c[]').data()]);
    expect(await t.db.getAll('SELECT id FROM todos')).toEqual([]);
    expect(await t.db.getAll('SELECT id, name FROM lists')).toEqual([{ id: 'l1', name: 'L' }]);
  });

  it('rows of types the schema does not declare are kept but not materialized', async () => {
    await using t = await openTestDb();
    const server = new FakeBuckets();
    const g = server.bucket('g[]');
    g.put('unknown_things', 'u1', { x: 1 });
    g.put('todos', 't1', { title: 'ok' });
    await t.connect();
    const stream = await t.service.nextStream();
    await syncTo(t, server, stream, [server.checkpoint(), g.data()]);
    expect(await t.db.getAll('SELECT id FROM todos')).toEqual([{ id: 't1' }]);
    expect(await t.db.get('SELECT count(*) AS n FROM ferry_oplog WHERE row_type = ?', ['unknown_things'])).toEqual({
      n: 1,
    });
  });
});

describe('integrity', () => {
  it('a checksum mismatch applies nothing, resets the bucket and re-downloads it from 0', async () => {
    await using t = await openTestDb();
    const server = new FakeBuckets();
    const good = server.bucket('good[]');
    const bad = server.bucket('bad[]');
    good.put('lists', 'l1', { name: 'list' });
    bad.put('todos', 't1', { title: 'one' });
    await t.connect();
    const first = await t.service.nextStream();
    const lying = server.checkpoint();
    if ('checkpoint' in lying) lying.checkpoint.buckets[1]!.checksum = (bad.checksum() + 1) >>> 0;
    first.send(lying);
    first.send(good.data());
    first.send(bad.data());
    first.send(server.complete());

    // the client drops this stream and reconnects at once, asking for bad[] from scratch
    const second = await t.service.nextStream();
    expect(second.request.body.buckets).toEqual([
      { name: 'good[]', after: good.ops.at(-1)!.op_id },
      { name: 'bad[]', after: '0' },
    ]);
    const error = t.db.currentStatus.downloadError;
    expect(FerryError.is(error) && error.code).toBe('FERRY_C1004');
    expect(await t.db.getAll('SELECT id FROM todos')).toEqual([]);
    expect(await t.db.getAll('SELECT id FROM lists')).toEqual([]);
    expect(t.db.currentStatus.hasSynced).toBe(false);

    second.send(server.checkpoint());
    second.send(bad.data('0'));
    second.send(server.complete());
    await t.db.waitForFirstSync();
    expect(await t.db.getAll('SELECT id FROM todos')).toEqual([{ id: 't1' }]);
    expect(await t.db.getAll('SELECT id FROM lists')).toEqual([{ id: 'l1' }]);
    expect(t.db.currentStatus.downloadError).toBeUndefined();
  });

  for (const corruption of [
    'UPDATE ferry_oplog SET checksum = checksum + 1',
    'DELETE FROM ferry_oplog WHERE row_id = ?',
  ]) {
    it(`heals a corrupted local bucket (${corruption.split(' ')[0]})`, async () => {
      await using t = await openTestDb();
      const server = new FakeBuckets();
      const g = server.bucket('g[]');
      g.put('todos', 't1', { title: 'one' });
      g.put('todos', 't2', { title: 'two' });
      await t.connect();
      let stream = await t.service.nextStream();
      stream.send(server.checkpoint());
      stream.send(g.data());
      stream.send(server.complete());
      await t.db.waitForFirstSync();
      await t.db.disconnect();

      await t.db.execute(corruption, corruption.includes('?') ? ['t2'] : []);
      await t.connect();
      stream = await t.service.nextStream();
      expect(stream.request.body.buckets).toEqual([{ name: 'g[]', after: g.ops.at(-1)!.op_id }]);
      stream.send(server.checkpoint());
      stream.send(server.complete());
      // mismatch detected → reconnect from 0 → full bucket again
      stream = await t.service.nextStream();
      expect(stream.request.body.buckets).toEqual([{ name: 'g[]', after: '0' }]);
      // rows stay visible meanwhile
      expect(await t.db.getAll('SELECT id FROM todos ORDER BY id')).toEqual([{ id: 't1' }, { id: 't2' }]);
      stream.send(server.checkpoint());
      stream.send(g.data('0'));
      stream.send(server.complete());
      await eventually(
        () => t.db.currentStatus.downloadError === undefined && t.db.currentStatus.downloading === false,
      );
      expect(await t.db.getAll('SELECT id, title FROM todos ORDER BY id')).toEqual([
        { id: 't1', title: 'one' },
        { id: 't2', title: 'two' },
      ]);
      // healed: the next connection resumes at the end again
      await t.db.disconnect();
      await t.connect();
      stream = await t.service.nextStream();
      expect(stream.request.body.buckets).toEqual([{ name: 'g[]', after: g.ops.at(-1)!.op_id }]);
    });
  }
});

describe('resumability and reconnects', () => {
  it('reconnects resume from the stored positions, including after a dropped connection mid-checkpoint', async () => {
    await using t = await openTestDb();
    const server = new FakeBuckets();
    const a = server.bucket('a[]');
    const b = server.bucket('b[]');
    a.put('todos', 't1', { title: 'one' });
    b.put('lists', 'l1', { name: 'list' });
    await t.connect({ org: 'acme' });
    let stream = await t.service.nextStream();
    expect(stream.request.body.parameters).toEqual({ org: 'acme' });
    const clientId = stream.request.body.client_id;
    stream.send(server.checkpoint());
    stream.send(a.data());
    stream.send(b.data());
    stream.send(server.complete());
    await t.db.waitForFirstSync();

    // new data, but the connection drops before checkpoint_complete
    a.put('todos', 't2', { title: 'two' });
    stream.send(server.checkpoint());
    stream.send(a.data());
    await eventually(() => t.db.currentStatus.downloadProgress?.downloadedOps === 1);
    stream.fail();

    stream = await t.service.nextStream();
    expect(stream.request.body.client_id).toBe(clientId);
    expect(stream.request.body.buckets).toEqual([
      { name: 'a[]', after: a.ops.at(-1)!.op_id },
      { name: 'b[]', after: b.ops.at(-1)!.op_id },
    ]);
    expect(await t.db.getAll('SELECT id FROM todos ORDER BY id')).toEqual([{ id: 't1' }]);
    // the service only sends the checkpoint: nothing is missing
    stream.send(server.checkpoint());
    stream.send(server.complete());
    await eventually(async () => (await t.db.getAll('SELECT id FROM todos')).length === 2);
  });

  it('retries with backoff after network errors and 5xx answers, with fresh credentials each time', async () => {
    await using t = await openTestDb();
    const tokens: string[] = [];
    const countingConnector = {
      n: 0,
      async fetchCredentials() {
        const token = `tok-${++this.n}`;
        tokens.push(token);
        return { endpoint: 'http://ferry.test', token };
      },
    };
    t.service.respondNext({ kind: 'network-error' });
    t.service.respondNext({
      kind: 'status',
      status: 503,
      body: '{"error":{"code":"FERRY_S4006","message":"not ready"}}',
    });
    const statuses: boolean[] = [];
    t.db.registerListener({ statusChanged: (s) => statuses.push(s.connecting) });
    await t.db.connect(countingConnector, { retryDelay: { initialMs: 5, maxMs: 10 } });
    const stream = await t.service.nextStream();
    expect(t.service.requests).toHaveLength(3);
    expect(t.service.requests.map((r) => r.headers['authorization'])).toEqual([
      'Token tok-1',
      'Token tok-2',
      'Token tok-3',
    ]);
    expect(statuses).toContain(true);
    const server = new FakeBuckets();
    server.bucket('g[]').put('todos', 't1', { title: 'x' });
    stream.send(server.checkpoint());
    stream.send(server.bucket('g[]').data());
    stream.send(server.complete());
    await t.db.waitForFirstSync();
    expect(t.db.currentStatus.connected).toBe(true);
    expect(t.db.currentStatus.downloadError).toBeUndefined();
  });

  it('a 401 reports FERRY_C1002, invalidates the credentials and retries with fresh ones', async () => {
    await using t = await openTestDb();
    let invalidated = 0;
    let n = 0;
    const auth = {
      async fetchCredentials() {
        return { endpoint: 'http://ferry.test', token: `t${++n}` };
      },
      invalidateCredentials() {
        invalidated++;
      },
    };
    t.service.respondNext({
      kind: 'status',
      status: 401,
      body: '{"error":{"code":"FERRY_S2003","message":"expired"}}',
    });
    const errors: unknown[] = [];
    t.db.registerListener({ statusChanged: (s) => s.downloadError && errors.push(s.downloadError) });
    await t.db.connect(auth, { retryDelay: { initialMs: 5, maxMs: 10 } });
    const stream = await t.service.nextStream();
    expect(invalidated).toBe(1);
    expect(errors.some((e) => FerryError.is(e) && e.code === 'FERRY_C1002')).toBe(true);
    expect(stream.request.headers['authorization']).toBe('Token t2');
  });

  it('token_expires_in <= 0 reconnects at once with fresh credentials, keeping its place', async () => {
    await using t = await openTestDb();
    const server = new FakeBuckets();
    const g = server.bucket('g[]');
    g.put('todos', 't1', { title: 'x' });
    await t.connect();
    let stream = await t.service.nextStream();
    const firstToken = stream.request.headers['authorization'];
    stream.send(server.checkpoint());
    stream.send(g.data());
    stream.send(server.complete());
    await t.db.waitForFirstSync();
    stream.send({ token_expires_in: 30 });
    stream.send({ token_expires_in: 0 });
    const before = stream;
    stream = await t.service.nextStream();
    await before.cancelled;
    expect(stream.request.headers['authorization']).not.toBe(firstToken);
    expect(stream.request.body.buckets).toEqual([{ name: 'g[]', after: g.ops.at(-1)!.op_id }]);
  });

  it('disconnect closes the stream and reports disconnected', async () => {
    await using t = await openTestDb();
    await t.connect();
    const stream = await t.service.nextStream();
    await eventually(() => t.db.currentStatus.connected);
    await t.db.disconnect();
    await stream.cancelled;
    expect(t.db.currentStatus.connected).toBe(false);
    expect(t.db.currentStatus.connecting).toBe(false);
  });
});
