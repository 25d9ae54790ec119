import { broadcastTabChannel, type FerryDatabase, type TabMessage } from '@ferry/client';
import { FerryError, type SyncLine } from '@ferry/protocol';
import { describe, expect, it } from 'vitest';
import { eventually, FakeBuckets, type FakeStream } from './test-support/fake-sync-service.js';
import { InProcessLocks } from './test-support/in-process-locks.js';
import { tabsOnOneFile } from './test-support/tabs.js';
import { drainAll, ScriptedConnector } from './test-support/upload-connector.js';

const fast = { retryDelay: { initialMs: 5, maxMs: 20 } };

/** Sends a complete checkpoint and waits until `db` (any tab) shows it applied. */
async function syncTo(
  db: FerryDatabase,
  server: FakeBuckets,
  stream: FakeStream,
  lines: readonly SyncLine[],
): Promise<void> {
  const before = db.currentStatus.lastSyncedAt?.getTime() ?? null;
  for (const line of lines) stream.send(line);
  stream.send(server.complete());
  await eventually(
    () => (db.currentStatus.lastSyncedAt?.getTime() ?? null) !== before && !db.currentStatus.downloading,
  );
}

/** The rows of a watch, as they are reported. */
function watchTitles(db: FerryDatabase): string[][] {
  const seen: string[][] = [];
  db.watch<{ title: string }>('SELECT title FROM todos ORDER BY id', [], {
    onResult: (rows) => seen.push(rows.map((r) => r.title)),
  });
  return seen;
}

describe('multi-tab: one tab syncs for all', () => {
  it('opens one stream for two connected tabs; the follower sees what the leader applies', async () => {
    await using tabs = tabsOnOneFile();
    const a = await tabs.open();
    const b = await tabs.open();
    const server = new FakeBuckets();
    const g = server.bucket('g[]');
    g.put('todos', 't1', { title: 'one' });

    await a.db.connect(new ScriptedConnector(), fast);
    const stream = await tabs.service.nextStream();
    await b.db.connect(new ScriptedConnector(), fast);
    const seen = watchTitles(b.db);
    await eventually(() => seen.length === 1);
    expect(seen).toEqual([[]]);

    await syncTo(a.db, server, stream, [server.checkpoint(), g.data()]);
    await eventually(() => seen.length === 2);
    expect(seen[1]).toEqual(['one']);

    // A second checkpoint, and still only the one stream.
    g.put('todos', 't2', { title: 'two' });
    await syncTo(a.db, server, stream, [server.diff(['g[]']), g.data()]);
    await eventually(() => seen.length === 3);
    expect(seen[2]).toEqual(['one', 'two']);
    expect(tabs.service.requests).toHaveLength(1);
    expect(a.db.isSyncLeader).toBe(true);
    expect(b.db.isSyncLeader).toBe(false);
    expect(tabs.locks.isHeld(`ferry:${tabs.name}:sync`)).toBe(true);
  });

  it("a follower's write is uploaded by the leader's connector; the follower's pending count goes to 0", async () => {
    await using tabs = tabsOnOneFile();
    const a = await tabs.open();
    const b = await tabs.open();
    const leaderConnector = new ScriptedConnector();
    const followerConnector = new ScriptedConnector();
    await a.db.connect(leaderConnector, fast);
    await tabs.service.nextStream();
    await b.db.connect(followerConnector, fast);

    const pending: number[] = [];
    b.db.registerListener({ statusChanged: (s) => pending.push(s.pendingCount) });
    await b.db.execute(`INSERT INTO todos (id, title) VALUES ('x', 'from b')`);
    expect(b.db.currentStatus.pendingCount).toBe(1);
    await eventually(() => leaderConnector.calls >= 1);
    await eventually(() => b.db.currentStatus.pendingCount === 0 && a.db.currentStatus.pendingCount === 0);
    expect(pending).toContain(1);
    expect(pending.at(-1)).toBe(0);
    expect(followerConnector.calls).toBe(0);
    // The leader asked for a write checkpoint for the uploaded op, with the shared client id.
    await eventually(() => tabs.service.writeCheckpointRequests.length === 1);
    expect(tabs.service.writeCheckpointRequests[0]!.clientId).toBe(await b.db.clientId());
    expect(await b.db.getAll(`SELECT id, title FROM todos`)).toEqual([{ id: 'x', title: 'from b' }]);
  });

  it('a rejection settled by the leader reaches the follower (watch on ferry_rejections)', async () => {
    await using tabs = tabsOnOneFile();
    const a = await tabs.open();
    const b = await tabs.open();
    const connector = new ScriptedConnector(async (db) => {
      const batch = await db.getCrudBatch();
      if (batch === null) return;
      await batch.complete({ rejected: batch.crud.map((op) => ({ op, code: 'FERRY_S6001', message: 'not yours' })) });
    });
    await a.db.connect(connector, fast);
    await tabs.service.nextStream();
    const rejections: number[] = [];
    b.db.watch<{ n: number }>('SELECT count(*) AS n FROM ferry_rejections', [], {
      onResult: (rows) => rejections.push(rows[0]!.n),
    });
    await b.db.execute(`INSERT INTO todos (id, title) VALUES ('x', 'forbidden')`);
    await eventually(() => rejections.at(-1) === 1);
    // The rejected row is reverted (no ghost row) and the follower's queue is empty.
    expect(await b.db.getAll(`SELECT id FROM todos`)).toEqual([]);
    await eventually(() => b.db.currentStatus.pendingCount === 0);
    expect((await b.db.getRejections())[0]).toMatchObject({ code: 'FERRY_S6001', message: 'not yours' });
  });
});

describe('multi-tab: hand-over', () => {
  it('closing the leader hands the sync to the waiting tab, which resumes from the stored positions', async () => {
    await using tabs = tabsOnOneFile();
    const a = await tabs.open();
    const b = await tabs.open();
    const server = new FakeBuckets();
    const g = server.bucket('g[]');
    g.put('todos', 't1', { title: 'one' });
    g.put('todos', 't2', { title: 'two' });

    await a.db.connect(new ScriptedConnector(), fast);
    const first = await tabs.service.nextStream();
    const bConnector = new ScriptedConnector();
    await b.db.connect(bConnector, fast);
    await syncTo(a.db, server, first, [server.checkpoint(), g.data()]);
    const seen = watchTitles(b.db);
    await eventually(() => seen.at(-1)?.length === 2);

    await a.close();
    await first.cancelled;
    const second = await tabs.service.nextStream();
    expect(second.request.body.buckets).toEqual([{ name: 'g[]', after: server.lastOpId }]);
    expect(second.request.body.client_id).toBe(first.request.body.client_id);
    expect(second.request.headers['authorization']).toBe(`Token token-${bConnector.tokens}`);
    expect(b.db.isSyncLeader).toBe(true);

    // The new leader keeps syncing and uploading.
    g.put('todos', 't3', { title: 'three' });
    await syncTo(b.db, server, second, [server.checkpoint(), g.data()]);
    await eventually(() => seen.at(-1)?.length === 3);
    expect(seen.at(-1)).toEqual(['one', 'two', 'three']);
    await b.db.execute(`INSERT INTO todos (id, title) VALUES ('x', 'after hand-over')`);
    await eventually(() => bConnector.calls >= 1 && b.db.currentStatus.pendingCount === 0);
    expect(tabs.service.requests).toHaveLength(2);
  });

  it('disconnect() in the leader hands over too; disconnect() in a follower leaves the line', async () => {
    await using tabs = tabsOnOneFile();
    const a = await tabs.open();
    const b = await tabs.open();
    const c = await tabs.open();
    const syncLock = `ferry:${tabs.name}:sync`;
    await a.db.connect(new ScriptedConnector(), fast);
    const first = await tabs.service.nextStream();
    await b.db.connect(new ScriptedConnector(), fast);
    await c.db.connect(new ScriptedConnector(), fast);
    await b.db.disconnect(); // b stops waiting

    await a.db.disconnect();
    await first.cancelled;
    const second = await tabs.service.nextStream();
    expect(c.db.isSyncLeader).toBe(true);
    expect(b.db.isSyncLeader).toBe(false);
    expect(a.db.isSyncLeader).toBe(false);

    await c.db.disconnect();
    await second.cancelled;
    // Nobody is in line: the lock is free and no third stream opens.
    expect(tabs.locks.isHeld(syncLock)).toBe(false);
    expect(tabs.service.requests).toHaveLength(2);
    expect(tabs.locks.grants.get(syncLock)).toBe(2);
  });
});

describe('multi-tab: status in every tab', () => {
  it('followers mirror connected, downloading with progress and errors; waitForFirstSync resolves in them', async () => {
    await using tabs = tabsOnOneFile();
    const a = await tabs.open();
    const b = await tabs.open();
    const server = new FakeBuckets();
    const g = server.bucket('g[]');
    for (let i = 0; i < 5; i++) g.put('todos', `t${i}`, { title: `t${i}` });

    let firstSynced = false;
    const firstSync = b.db.waitForFirstSync().then(() => {
      firstSynced = true;
    });
    expect(b.db.currentStatus.connected).toBe(false);
    await a.db.connect(new ScriptedConnector(), fast);
    const stream = await tabs.service.nextStream();
    await eventually(() => b.db.currentStatus.connected);
    expect(b.db.isSyncLeader).toBe(false); // b never connected: it only shows the leader's status

    stream.send(server.checkpoint());
    stream.send(g.data());
    await eventually(() => b.db.currentStatus.downloadProgress?.downloadedOps === 5);
    expect(b.db.currentStatus.downloading).toBe(true);
    expect(b.db.currentStatus.downloadProgress).toEqual({ downloadedOps: 5, totalOps: 5 });
    expect(firstSynced).toBe(false);

    stream.send(server.complete());
    await firstSync;
    expect(b.db.currentStatus.hasSynced).toBe(true);
    expect(b.db.currentStatus.lastSyncedAt?.getTime()).toBe(a.db.currentStatus.lastSyncedAt?.getTime());
    expect(await b.db.get(`SELECT count(*) AS n FROM todos`)).toEqual({ n: 5 });
    await eventually(() => !b.db.currentStatus.downloading);

    // A failing reconnect shows its error (with its code) in the follower.
    tabs.service.respondNext({ kind: 'status', status: 503, body: 'down for maintenance' });
    stream.fail();
    await eventually(() => FerryError.is(b.db.currentStatus.downloadError));
    const error = b.db.currentStatus.downloadError;
    expect(FerryError.is(error) && error.code).toBe('FERRY_C1008');
    // ... and recovers: the leader connects again.
    const again = await tabs.service.nextStream();
    await syncTo(b.db, server, again, [server.checkpoint()]);
    expect(b.db.currentStatus.downloadError).toBeUndefined();
    expect(b.db.currentStatus.connected).toBe(true);
  });

  it('a newly opened tab asks for the status once and shows it; the leader going away shows as disconnected', async () => {
    await using tabs = tabsOnOneFile();
    const a = await tabs.open();
    await a.db.connect(new ScriptedConnector(), fast);
    await tabs.service.nextStream();
    await eventually(() => a.db.currentStatus.connected);

    const c = await tabs.open();
    await eventually(() => c.db.currentStatus.connected);
    expect(c.db.currentStatus.connecting).toBe(false);

    await a.db.disconnect();
    await eventually(() => !c.db.currentStatus.connected && !c.db.currentStatus.connecting);
  });

  it('unknown and other-version messages are ignored', async () => {
    await using tabs = tabsOnOneFile();
    const a = await tabs.open();
    const seen = watchTitles(a.db);
    await eventually(() => seen.length === 1);
    const raw = new BroadcastChannel(`ferry:${tabs.name}`);
    try {
      raw.postMessage({ v: 2, tab: 'future', kind: 'changed', tables: ['todos'], unknown: true });
      raw.postMessage({ v: 1, tab: 'x', kind: 'new-kind-from-a-later-version' });
      raw.postMessage({ v: 1, tab: 'x', kind: 'status', status: { connected: 'yes' } });
      raw.postMessage('garbage');
      raw.postMessage({ v: 1, tab: 'x', kind: 'status', status: { ...statusWire, connected: true } });
      await eventually(() => a.db.currentStatus.connected);
      expect(a.db.currentStatus.hasSynced).toBe(false);
    } finally {
      raw.close();
    }
  });
});

const statusWire = {
  connected: false,
  connecting: false,
  downloading: false,
  downloadProgress: null,
  uploading: false,
  lastSyncedAt: null,
  hasSynced: false,
  downloadError: null,
  uploadError: null,
};

describe('multi-tab: local writes between tabs', () => {
  it("a follower's local write re-runs the leader's watch without any sync traffic", async () => {
    await using tabs = tabsOnOneFile();
    const a = await tabs.open();
    const b = await tabs.open();
    const seen = watchTitles(a.db);
    await eventually(() => seen.length === 1);
    const lists: number[] = [];
    a.db.watch<{ n: number }>('SELECT count(*) AS n FROM drafts', [], { onResult: (r) => lists.push(r[0]!.n) });

    await b.db.execute(`INSERT INTO todos (id, title) VALUES ('x', 'written in b')`);
    await eventually(() => seen.length === 2);
    expect(seen[1]).toEqual(['written in b']);
    await eventually(() => a.db.currentStatus.pendingCount === 1);

    // A local-only table too, and an update from the other direction.
    await b.db.execute(`INSERT INTO drafts (id, body) VALUES ('d', 'draft')`);
    await eventually(() => lists.at(-1) === 1);
    await a.db.execute(`UPDATE todos SET title = 'edited in a' WHERE id = 'x'`);
    const fromB = watchTitles(b.db);
    await eventually(() => fromB.at(-1)?.[0] === 'edited in a');
    expect(tabs.service.requests).toHaveLength(0);
    expect(tabs.service.writes).toHaveLength(0);
    expect(b.db.currentStatus.pendingCount).toBe(2);
  });

  it('concurrent writes from three tabs are serialized, not SQLITE_BUSY, and all queued once', async () => {
    await using tabs = tabsOnOneFile();
    const all = [await tabs.open(), await tabs.open(), await tabs.open()];
    await Promise.all(
      all.flatMap((tab, t) =>
        Array.from({ length: 20 }, (_, i) =>
          tab.db.writeTransaction(async (tx) => {
            await tx.execute(`INSERT INTO todos (id, title) VALUES (?, ?)`, [`${t}-${i}`, 'x']);
            await tx.execute(`UPDATE todos SET done = 1 WHERE id = ?`, [`${t}-${i}`]);
          }),
        ),
      ),
    );
    expect(await all[0]!.db.get(`SELECT count(*) AS n FROM todos`)).toEqual({ n: 60 });
    expect(await all[0]!.db.get(`SELECT count(*) AS n, count(DISTINCT tx_id) AS t FROM ferry_crud`)).toEqual({
      n: 120,
      t: 60,
    });
    for (const tab of all) await eventually(() => tab.db.currentStatus.pendingCount === 120);
  });

  it('disconnectAndClear in a follower empties every tab and the leader starts over', async () => {
    await using tabs = tabsOnOneFile();
    const a = await tabs.open();
    const b = await tabs.open();
    const server = new FakeBuckets();
    const g = server.bucket('g[]');
    g.put('todos', 't1', { title: 'one' });
    await a.db.connect(new ScriptedConnector(drainAll), fast);
    const first = await tabs.service.nextStream();
    await syncTo(a.db, server, first, [server.checkpoint(), g.data()]);
    const seen = watchTitles(a.db);
    await eventually(() => seen.at(-1)?.length === 1);
    const clientId = await a.db.clientId();

    await b.db.disconnectAndClear();
    await eventually(() => seen.at(-1)?.length === 0);
    await first.cancelled;
    const second = await tabs.service.nextStream();
    expect(second.request.body.buckets).toEqual([]);
    expect(second.request.body.client_id).not.toBe(clientId);
    expect(await a.db.clientId()).toBe(second.request.body.client_id);
    expect(a.db.currentStatus.hasSynced).toBe(false);
    await syncTo(a.db, server, second, [server.checkpoint(), g.data('0')]);
    await eventually(() => seen.at(-1)?.length === 1);
    await eventually(() => b.db.currentStatus.hasSynced);
  });
});

describe('in-process tab locks (test support)', () => {
  it('grants in request order, skips aborted waiters and releases on tab close', async () => {
    const locks = new InProcessLocks();
    const [one, two, three] = [locks.tab(), locks.tab(), locks.tab()];
    const order: string[] = [];
    const releaseOne = await one.acquire('l');
    const aborted = new AbortController();
    const twoWaits = two.acquire('l', aborted.signal).then(
      () => order.push('two'),
      () => order.push('two aborted'),
    );
    const threeWaits = three.acquire('l').then((release) => {
      order.push('three');
      return release;
    });
    aborted.abort();
    await twoWaits;
    releaseOne();
    releaseOne(); // idempotent
    const releaseThree = await threeWaits;
    expect(order).toEqual(['two aborted', 'three']);
    const oneAgain = one.acquire('l');
    three.close(); // the holder's tab goes away
    await oneAgain;
    expect(locks.isHeld('l')).toBe(true);
    releaseThree(); // a stale release does nothing
    expect(locks.isHeld('l')).toBe(true);
  });

  it('broadcastTabChannel delivers to other instances only', async () => {
    const name = `ferry:channel-${process.pid}`;
    const a = broadcastTabChannel(new BroadcastChannel(name));
    const b = broadcastTabChannel(new BroadcastChannel(name));
    const atA: unknown[] = [];
    const atB: unknown[] = [];
    a.subscribe((m) => atA.push(m));
    b.subscribe((m) => atB.push(m));
    const message: TabMessage = { v: 1, tab: 'a', kind: 'queue-changed' };
    a.post(message);
    await eventually(() => atB.length === 1);
    expect(atB).toEqual([message]);
    expect(atA).toEqual([]);
    a.close();
    b.close();
  });
});
