import { addChecksums, type OplogEntry } from '@ferry/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import type { MemoryBucketStorage } from '../storage/memory-storage.js';
import {
  membershipLookup,
  openStream,
  replicateRow,
  startTestServer,
  testRules,
  testToken,
  type TestServer,
} from './testing.js';

/** A parsed line of the stream: tests read whatever field the kind they expect carries. */
// oxlint-disable-next-line typescript/no-explicit-any -- arbitrary parsed JSON, asserted field by field
type Line = Record<string, any>;

const servers: TestServer[] = [];
afterEach(async () => {
  while (servers.length > 0) await servers.pop()!.close();
});

async function server(options: Parameters<typeof startTestServer>[0] = {}): Promise<TestServer> {
  const started = await startTestServer(options);
  servers.push(started);
  return started;
}

function seed(storage: MemoryBucketStorage): void {
  for (let i = 0; i < 3; i++)
    storage.put('global[]', { object_type: 'items', object_id: `g${i}`, data: { id: `g${i}`, n: i } });
  storage.put('user["u1"]', { object_type: 'profile', object_id: 'u1', data: { id: 'u1', name: 'Ann' } });
  storage.put('user["u2"]', { object_type: 'profile', object_id: 'u2', data: { id: 'u2', name: 'Bob' } });
  storage.put('lists["l1"]', { object_type: 'todos', object_id: 't1', data: { id: 't1', list_id: 'l1' } });
  storage.put('lists["l1"]', { object_type: 'todos', object_id: 't2', data: { id: 't2', list_id: 'l1' } });
  storage.put('lists["l2"]', { object_type: 'todos', object_id: 't3', data: { id: 't3', list_id: 'l2' } });
  storage.remove('global[]', { object_type: 'items', object_id: 'g0' });
  storage.setParameterRows(membershipLookup('u1'), [{ list_id: 'l1' }]);
  storage.setParameterRows(membershipLookup('u2'), [{ list_id: 'l2' }]);
  storage.commit();
}

/** Ops per bucket from data lines. */
function opsByBucket(lines: Line[]): Map<string, OplogEntry[]> {
  const out = new Map<string, OplogEntry[]>();
  for (const line of lines) {
    if (!('data' in line)) continue;
    const list = out.get(line.data.bucket) ?? [];
    list.push(...line.data.data);
    out.set(line.data.bucket, list);
  }
  return out;
}

function checksum(ops: OplogEntry[]): number {
  return ops.reduce((sum, op) => addChecksums(sum, op.checksum), 0);
}

describe('POST /sync/stream', () => {
  it('sends a first-time client its checkpoint, all its data, then checkpoint_complete', async () => {
    const { url, storage } = await server();
    seed(storage);
    const { response, reader } = await openStream(url, await testToken('u1'));
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/x-ndjson');
    const lines = (await reader!.checkpoint()) as Line[];
    await reader!.cancel();

    const checkpoint = lines[0]!.checkpoint;
    expect(checkpoint.last_op_id).toBe('9');
    expect(checkpoint.write_checkpoint).toBeUndefined();
    const announced = new Map<string, Line>(checkpoint.buckets.map((b: Line) => [b.bucket, b]));
    expect([...announced.keys()].sort()).toEqual(['global[]', 'lists["l1"]', 'user["u1"]']);
    expect(announced.get('user["u1"]')!.priority).toBe(1);

    const ops = opsByBucket(lines);
    for (const [bucket, state] of announced) {
      expect(ops.get(bucket)!.length).toBe(state.count);
      expect(checksum(ops.get(bucket)!)).toBe(state.checksum);
    }
    expect(ops.get('global[]')!.map((op) => op.op)).toEqual(['PUT', 'PUT', 'PUT', 'REMOVE']);
    expect(ops.get('lists["l1"]')![0]!.data).toBe('{"id":"t1","list_id":"l1"}');

    // Priority 1 first, announced complete before the rest.
    const kinds = lines.map((line) => Object.keys(line)[0]);
    const firstData = lines.find((line) => 'data' in line)!;
    expect(firstData.data.bucket).toBe('user["u1"]');
    const partial = kinds.indexOf('partial_checkpoint_complete');
    expect(partial).toBe(2);
    expect(lines[partial]!.partial_checkpoint_complete).toEqual({ last_op_id: '9', priority: 1 });
    expect(kinds.at(-1)).toBe('checkpoint_complete');
    expect(lines.at(-1)!.checkpoint_complete).toEqual({ last_op_id: '9' });
  });

  it('sends a resuming client only the ops after its positions, in pages', async () => {
    const { url, storage } = await server({ opCache: { pageSize: 2 } });
    seed(storage);
    const { reader } = await openStream(url, await testToken('u1'), {
      buckets: [
        { name: 'global[]', after: '2' },
        { name: 'lists["l1"]', after: '7' },
        { name: 'user["u1"]', after: '4' },
        { name: 'gone[]', after: '1' },
      ],
    });
    const lines = (await reader!.checkpoint()) as Line[];
    await reader!.cancel();
    const ops = opsByBucket(lines);
    expect(ops.get('global[]')!.map((op) => op.op_id)).toEqual(['3', '9']);
    expect(ops.has('user["u1"]')).toBe(false);
    expect(ops.has('lists["l1"]')).toBe(false);
    // Pages chain through after/next_after with has_more.
    const pages = lines.filter((line) => 'data' in line && line.data.bucket === 'global[]').map((line) => line.data);
    expect(pages).toHaveLength(1);
    expect(pages[0]).toMatchObject({ after: '2', next_after: '9', has_more: false });
    // The checkpoint lists only the client's buckets (not `gone[]`).
    expect(lines[0]!.checkpoint.buckets.map((b: Line) => b.bucket).sort()).toEqual([
      'global[]',
      'lists["l1"]',
      'user["u1"]',
    ]);
  });

  it('pages a large bucket with has_more and continuous after/next_after', async () => {
    const { url, storage } = await server({ opCache: { pageSize: 3 } });
    for (let i = 0; i < 10; i++)
      storage.put('global[]', { object_type: 'items', object_id: String(i), data: { id: String(i) } });
    storage.commit();
    const { reader } = await openStream(url, await testToken('u9'));
    const pages = ((await reader!.checkpoint()) as Line[]).filter((line) => 'data' in line).map((line) => line.data);
    await reader!.cancel();
    expect(pages.map((p) => [p.after, p.next_after, p.has_more, p.data.length])).toEqual([
      ['0', '3', true, 3],
      ['3', '6', true, 3],
      ['6', '9', true, 3],
      ['9', '10', false, 1],
    ]);
  });

  it('delivers a new commit as checkpoint_diff + data + checkpoint_complete, and nothing for others', async () => {
    const { url, storage } = await server();
    seed(storage);
    const { reader } = await openStream(url, await testToken('u1'));
    await reader!.checkpoint();

    storage.put('user["u2"]', { object_type: 'profile', object_id: 'u2', data: { id: 'u2', name: 'Bobby' } });
    storage.commit();
    expect(await reader!.quietFor(200)).toBe(true);

    const opId = storage.put('lists["l1"]', {
      object_type: 'todos',
      object_id: 't1',
      data: { id: 't1', list_id: 'l1', done: 1 },
    });
    const cp = storage.commit();
    const lines = (await reader!.checkpoint()) as Line[];
    await reader!.cancel();
    expect(Object.keys(lines[0]!)).toEqual(['checkpoint_diff']);
    const diff = lines[0]!.checkpoint_diff;
    expect(diff.last_op_id).toBe(String(cp));
    expect(diff.removed_buckets).toEqual([]);
    expect(diff.updated_buckets).toHaveLength(1);
    expect(diff.updated_buckets[0]).toMatchObject({ bucket: 'lists["l1"]', count: 3 });
    const data = lines.filter((line) => 'data' in line);
    expect(data).toHaveLength(1);
    expect(data[0]!.data).toMatchObject({ bucket: 'lists["l1"]', after: '7' });
    expect(data[0]!.data.data.map((op: OplogEntry) => op.op_id)).toEqual([String(opId)]);
    expect(lines.at(-1)).toEqual({ checkpoint_complete: { last_op_id: String(cp) } });
  });

  it('re-reads state when an update carries no change sets', async () => {
    const { url, storage } = await server();
    seed(storage);
    const { reader } = await openStream(url, await testToken('u1'));
    await reader!.checkpoint();
    storage.put('global[]', { object_type: 'items', object_id: 'g9', data: { id: 'g9' } });
    storage.commit({ withoutChangeSets: true });
    const lines = (await reader!.checkpoint()) as Line[];
    await reader!.cancel();
    expect(lines[0]!.checkpoint_diff.updated_buckets.map((b: Line) => b.bucket)).toEqual(['global[]']);
    expect(
      opsByBucket(lines)
        .get('global[]')!
        .map((op) => op.object_id),
    ).toEqual(['g9']);
  });

  it('adds and removes buckets when membership rows change, without reconnecting', async () => {
    const { url, storage } = await server();
    seed(storage);
    const { reader } = await openStream(url, await testToken('u1'));
    await reader!.checkpoint();

    storage.setParameterRows(membershipLookup('u1'), [{ list_id: 'l1' }, { list_id: 'l2' }]);
    const added = storage.commit();
    let lines = (await reader!.checkpoint()) as Line[];
    let diff = lines[0]!.checkpoint_diff;
    expect(diff.last_op_id).toBe(String(added));
    expect(diff.updated_buckets).toEqual([
      { bucket: 'lists["l2"]', checksum: expect.any(Number), count: 1, priority: 3 },
    ]);
    expect(diff.removed_buckets).toEqual([]);
    expect(
      opsByBucket(lines)
        .get('lists["l2"]')!
        .map((op) => op.object_id),
    ).toEqual(['t3']);

    storage.setParameterRows(membershipLookup('u1'), [{ list_id: 'l2' }]);
    storage.commit();
    lines = (await reader!.checkpoint()) as Line[];
    diff = lines[0]!.checkpoint_diff;
    expect(diff.updated_buckets).toEqual([]);
    expect(diff.removed_buckets).toEqual(['lists["l1"]']);
    expect(lines.filter((line) => 'data' in line)).toEqual([]);

    // Writes to the removed bucket no longer reach the client.
    storage.put('lists["l1"]', { object_type: 'todos', object_id: 't9', data: { id: 't9' } });
    storage.commit();
    expect(await reader!.quietFor(200)).toBe(true);
    await reader!.cancel();
  });

  it("never lets two users see each other's buckets", async () => {
    const { url, storage } = await server();
    seed(storage);
    const a = (await openStream(url, await testToken('u1'))).reader!;
    const b = (await openStream(url, await testToken('u2'))).reader!;
    const linesA = (await a.checkpoint()) as Line[];
    const linesB = (await b.checkpoint()) as Line[];
    storage.put('user["u2"]', { object_type: 'profile', object_id: 'u2', data: { id: 'u2', secret: 'b-only' } });
    storage.put('lists["l2"]', { object_type: 'todos', object_id: 't4', data: { id: 't4', secret: 'b-only' } });
    storage.commit();
    linesB.push(...((await b.checkpoint()) as Line[]));
    expect(await a.quietFor(200)).toBe(true);
    await a.cancel();
    await b.cancel();
    const bucketsOf = (lines: Line[]) =>
      new Set(
        lines.flatMap((line) =>
          [
            ...(line.checkpoint?.buckets ?? []),
            ...(line.checkpoint_diff?.updated_buckets ?? []),
            ...(line.data ? [line.data] : []),
          ].map((x: Line) => x.bucket),
        ),
      );
    expect([...bucketsOf(linesA)].sort()).toEqual(['global[]', 'lists["l1"]', 'user["u1"]']);
    expect([...bucketsOf(linesB)].sort()).toEqual(['global[]', 'lists["l2"]', 'user["u2"]']);
    expect(JSON.stringify(linesA)).not.toContain('b-only');
  });

  it('waits for the first checkpoint when replication has not published one', async () => {
    const { url, storage } = await server();
    const { reader } = await openStream(url, await testToken('u1'));
    expect(await reader!.quietFor(150)).toBe(true);
    storage.put('global[]', { object_type: 'items', object_id: 'g1', data: { id: 'g1' } });
    storage.setParameterRows(membershipLookup('u1'), [{ list_id: 'l1' }]);
    storage.commit();
    const lines = (await reader!.checkpoint()) as Line[];
    await reader!.cancel();
    expect(lines[0]!.checkpoint.buckets.map((b: Line) => b.bucket).sort()).toEqual([
      'global[]',
      'lists["l1"]',
      'user["u1"]',
    ]);
    expect(opsByBucket(lines).get('global[]')).toHaveLength(1);
  });

  it('sends keepalives with the real seconds left on the token', async () => {
    const { url, storage } = await server({ keepaliveMs: 100 });
    seed(storage);
    const { reader } = await openStream(url, await testToken('u1', { expiresInSeconds: 600 }));
    const lines = (await reader!.until((line) => 'checkpoint_complete' in line)) as Line[];
    const keepalives: number[] = lines
      .filter((line) => 'token_expires_in' in line)
      .map((line) => line.token_expires_in);
    while (keepalives.length < 3) {
      const line = (await reader!.next()) as Line;
      if ('token_expires_in' in line) keepalives.push(line.token_expires_in);
    }
    await reader!.cancel();
    for (const value of keepalives) {
      expect(value).toBeGreaterThanOrEqual(590);
      expect(value).toBeLessThanOrEqual(600);
    }
  });

  it('ends the stream with token_expires_in: 0 when the token expires', async () => {
    const { url, storage, http } = await server({ keepaliveMs: 250 });
    seed(storage);
    const { reader } = await openStream(url, await testToken('u1', { expiresInSeconds: 2 }));
    const lines = (await reader!.until((line) => line.token_expires_in === 0, 6000)) as Line[];
    const keepalives = lines.filter((line) => 'token_expires_in' in line).map((line) => line.token_expires_in);
    // Real values count down; 0 only once, at the end.
    expect(keepalives.filter((value) => value === 0)).toEqual([0]);
    expect(keepalives.slice(0, -1).every((value) => value >= 1 && value <= 2)).toBe(true);
    expect(await reader!.quietFor(500)).toBe(true);
    expect(reader!.ended).toBe(true);
    expect(http.connectedClients).toBe(0);
    expect(storage.subscriberCount).toBe(0);
  });

  it('stops all work and unsubscribes when the client disconnects', async () => {
    const { url, storage, http, metrics } = await server();
    seed(storage);
    const controller = new AbortController();
    const { reader } = await openStream(url, await testToken('u1'), {}, { signal: controller.signal });
    await reader!.checkpoint();
    expect(storage.subscriberCount).toBe(1);
    expect(http.connectedClients).toBe(1);
    controller.abort();
    for (let i = 0; i < 100 && storage.subscriberCount > 0; i++)
      await new Promise((resolve) => setTimeout(resolve, 10));
    expect(storage.subscriberCount).toBe(0);
    expect(http.connectedClients).toBe(0);
    expect((await metrics.connectedClients.get()).values[0]!.value).toBe(0);
  });

  it('rejects a client granted more buckets than max_buckets_per_client', async () => {
    const { url, storage } = await server({ api: { maxBucketsPerClient: 2 } });
    seed(storage);
    const { response } = await openStream(url, await testToken('u1'));
    expect(response.status).toBe(400);
    expect(((await response.json()) as Line).error.code).toBe('FERRY_S4007');
    expect(storage.subscriberCount).toBe(0);
  });

  it('fans one update out to many clients with one shared storage read', async () => {
    const { url, storage } = await server();
    seed(storage);
    const clients = 50;
    const readers = await Promise.all(
      Array.from({ length: clients }, async (_, i) => (await openStream(url, await testToken(`fan${i}`))).reader!),
    );
    await Promise.all(readers.map((reader) => reader.checkpoint()));
    const before = { ...storage.stats };
    storage.put('global[]', { object_type: 'items', object_id: 'hot', data: { id: 'hot', v: 1 } });
    const cp = storage.commit();
    const results = await Promise.all(readers.map((reader) => reader.checkpoint()));
    await Promise.all(readers.map((reader) => reader.cancel()));
    for (const lines of results) {
      expect((lines[0] as Line).checkpoint_diff.last_op_id).toBe(String(cp));
      expect(
        opsByBucket(lines as Line[])
          .get('global[]')!
          .map((op) => op.object_id),
      ).toEqual(['hot']);
    }
    expect(storage.stats.readBucketOps - before.readBucketOps).toBe(1);
    expect(storage.stats.getCheckpointState - before.getCheckpointState).toBe(0);
    expect(storage.stats.getParameterRows - before.getParameterRows).toBe(0);
  });

  it('streams rows placed by the compiled rules, with membership rows indexed by the rules', async () => {
    const { url, storage } = await server();
    const rules = await testRules();
    replicateRow(storage, rules, 'items', { id: 'i1', name: 'shared' });
    replicateRow(storage, rules, 'profiles', { id: 'u7', name: 'Zed' });
    expect(replicateRow(storage, rules, 'todos', { id: 't1', list_id: 'lx', title: 'Buy milk' })).toEqual([
      'lists["lx"]',
    ]);
    const { lookups } = rules.evaluateParameterRow(
      { schema: 'public', name: 'memberships' },
      { id: 'm1', user_id: 'u7', list_id: 'lx' },
    );
    expect(lookups.map((l) => l.lookup)).toEqual([membershipLookup('u7')]);
    storage.setParameterRows(lookups[0]!.lookup, [lookups[0]!.params]);
    storage.commit();

    const { reader } = await openStream(url, await testToken('u7'));
    const lines = (await reader!.checkpoint()) as Line[];
    await reader!.cancel();
    const ops = opsByBucket(lines);
    expect([...ops.keys()].sort()).toEqual(['global[]', 'lists["lx"]', 'user["u7"]']);
    expect(JSON.parse(ops.get('lists["lx"]')![0]!.data!)).toEqual({ id: 't1', list_id: 'lx', title: 'Buy milk' });
  });
});
