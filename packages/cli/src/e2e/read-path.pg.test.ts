/**
 * The read path end to end: Postgres → replication → bucket storage →
 * /sync/stream → the Ferry client's SQLite, with sync rules filtering per
 * user. Real service, real HTTP, real SQLite; one database for the file.
 */
import { column, Schema, Table } from '@ferry/client';
import type { FerryService } from '@ferry/service';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Cleanup,
  openClient,
  pgQuery,
  startServiceFixture,
  type TestClient,
  type TestKeys,
  waitFor,
  waitForRows,
} from './stack.js';

const RULES = `
bucket_definitions:
  own_notes:
    parameters: SELECT request.user_id() AS owner_id
    data:
      - SELECT * FROM notes WHERE owner_id = bucket.owner_id
  list_items:
    parameters: SELECT list_id FROM memberships WHERE user_id = request.user_id()
    data:
      - SELECT id, list_id, title FROM items WHERE list_id = bucket.list_id
`;

const SOURCE = `
  CREATE TABLE notes (id text PRIMARY KEY, owner_id text NOT NULL, title text, n integer);
  CREATE TABLE items (id text PRIMARY KEY, list_id text NOT NULL, title text);
  CREATE TABLE memberships (id text PRIMARY KEY, user_id text NOT NULL, list_id text NOT NULL);
  INSERT INTO notes VALUES ('a1', 'alice', 'alice first', 1), ('a2', 'alice', 'alice second', 2), ('b1', 'bob', 'bob first', 1);
  INSERT INTO items VALUES ('i1', 'L1', 'item one'), ('i2', 'L1', 'item two'), ('j1', 'L2', 'other list');
  INSERT INTO memberships VALUES ('m1', 'alice', 'L1');
`;

const notesTable = new Table({ owner_id: column.text, title: column.text, n: column.integer });
const itemsTable = new Table({ list_id: column.text, title: column.text });
const schema = new Schema({ notes: notesTable, items: itemsTable });

const NOTES = 'SELECT id, owner_id, title, n FROM notes ORDER BY id';
const ITEMS = 'SELECT id, list_id, title FROM items ORDER BY id';

let url: string;
let dir: string;
let keys: TestKeys;
let service: FerryService;
let alice: TestClient;
let bob: TestClient;
const cleanup = new Cleanup();

/** The rows Postgres grants a user through the rules, in the client's shape. */
async function serverRows(user: string): Promise<{ notes: unknown[]; items: unknown[] }> {
  const notes = await pgQuery(
    url,
    `SELECT id, owner_id, title, n FROM notes WHERE owner_id = $1 ORDER BY id COLLATE "C"`,
    [user],
  );
  const items = await pgQuery(
    url,
    `SELECT id, list_id, title FROM items WHERE list_id IN (SELECT list_id FROM memberships WHERE user_id = $1) ORDER BY id COLLATE "C"`,
    [user],
  );
  return { notes, items };
}

async function expectInSync(client: TestClient, user: string): Promise<void> {
  const expected = await serverRows(user);
  await waitForRows(client.db, NOTES, expected.notes);
  await waitForRows(client.db, ITEMS, expected.items);
}

beforeAll(async () => {
  const fixture = await startServiceFixture(cleanup, { database: 'ferry_e2e_read', source: SOURCE, rules: RULES });
  url = fixture.url;
  service = fixture.service;
  dir = fixture.dir;
  keys = fixture.keys;
  const open = (user: string) =>
    openClient({ cleanup, dir, schema, name: user, endpoint: () => service.url, token: () => keys.token(user) });
  alice = await open('alice');
  bob = await open('bob');
  await alice.db.waitForFirstSync();
  await bob.db.waitForFirstSync();
});

afterAll(() => cleanup.run());

describe('read path', () => {
  it('completes a first sync with exactly the rows the rules grant each user', async () => {
    await expectInSync(alice, 'alice');
    await expectInSync(bob, 'bob');
    expect(await alice.db.getAll(NOTES)).toEqual([
      { id: 'a1', owner_id: 'alice', title: 'alice first', n: 1 },
      { id: 'a2', owner_id: 'alice', title: 'alice second', n: 2 },
    ]);
    expect(await bob.db.getAll(ITEMS)).toEqual([]);
  });

  it('carries INSERT, UPDATE, DELETE and TRUNCATE to the client', async () => {
    await pgQuery(url, `INSERT INTO notes VALUES ('a3', 'alice', 'inserted', 3)`);
    await waitForRows(alice.db, `SELECT title, n FROM notes WHERE id = 'a3'`, [{ title: 'inserted', n: 3 }]);

    await pgQuery(url, `UPDATE notes SET title = 'updated', n = 30 WHERE id = 'a3'`);
    await waitForRows(alice.db, `SELECT title, n FROM notes WHERE id = 'a3'`, [{ title: 'updated', n: 30 }]);

    await pgQuery(url, `DELETE FROM notes WHERE id = 'a3'`);
    await waitForRows(alice.db, `SELECT id FROM notes WHERE id = 'a3'`, []);
    await expectInSync(alice, 'alice');

    // TRUNCATE of items empties alice's list bucket; refill afterwards for the next tests.
    await pgQuery(url, `TRUNCATE items`);
    await waitForRows(alice.db, ITEMS, []);
    await waitForRows(alice.db, NOTES, (await serverRows('alice')).notes); // other tables untouched
    await pgQuery(
      url,
      `INSERT INTO items VALUES ('i1', 'L1', 'item one'), ('i2', 'L1', 'item two'), ('j1', 'L2', 'other list')`,
    );
    await expectInSync(alice, 'alice');
    expect(await alice.db.getAll(ITEMS)).toEqual([
      { id: 'i1', list_id: 'L1', title: 'item one' },
      { id: 'i2', list_id: 'L1', title: 'item two' },
    ]);
  });

  it('shows a multi-row transaction atomically: a watcher never sees half of it', async () => {
    await expectInSync(alice, 'alice');
    const WATCHED = `SELECT 'note' AS kind, id, title FROM notes UNION ALL SELECT 'item', id, title FROM items ORDER BY kind, id`;
    const before = await alice.db.getAll<{ kind: string; id: string; title: string }>(WATCHED);
    const emissions: { kind: string; id: string; title: string }[][] = [];
    const abort = new AbortController();
    alice.db.watch<{ kind: string; id: string; title: string }>(WATCHED, [], {
      onResult: (rows) => emissions.push(rows),
      onError: (error) => emissions.push([{ kind: 'error', id: String(error), title: '' }]),
      signal: abort.signal,
    });
    await waitFor(() => emissions.length > 0);

    const ROWS = 250;
    const client = await import('pg').then((m) => new m.default.Client({ connectionString: url }));
    await client.connect();
    try {
      await client.query('BEGIN');
      await client.query(
        `INSERT INTO notes SELECT 'tx' || lpad(g::text, 4, '0'), 'alice', 'tx row ' || g, g FROM generate_series(1, $1) g`,
        [ROWS],
      );
      await client.query(`UPDATE notes SET title = 'changed in tx' WHERE id = 'a1'`);
      await client.query(`DELETE FROM notes WHERE id = 'a2'`);
      await client.query(
        `INSERT INTO items SELECT 'tx-item' || g, 'L1', 'tx item ' || g FROM generate_series(1, 20) g`,
      );
      await client.query(`UPDATE items SET title = 'item one changed in tx' WHERE id = 'i1'`);
      await client.query('COMMIT');
    } finally {
      await client.end();
    }
    const after = await waitFor(
      async () => {
        const rows = await alice.db.getAll<{ kind: string; id: string; title: string }>(WATCHED);
        return rows.length === before.length + ROWS - 1 + 20 ? rows : undefined;
      },
      { message: 'the transaction never arrived' },
    );
    await waitFor(() => JSON.stringify(emissions.at(-1)) === JSON.stringify(after), {
      message: 'the watcher never emitted the final state',
    });
    abort.abort();

    const beforeText = JSON.stringify(before);
    const afterText = JSON.stringify(after);
    const halfStates = emissions.filter((rows) => {
      const text = JSON.stringify(rows);
      return text !== beforeText && text !== afterText;
    });
    expect(
      halfStates.map((rows) => rows.length),
      'emissions that were neither before nor after the transaction',
    ).toEqual([]);
    expect(after.find((r) => r.id === 'a1')?.title).toBe('changed in tx');
    expect(after.some((r) => r.id === 'a2')).toBe(false);
    await expectInSync(alice, 'alice');
  });

  it('moves a row whose owner changes from one user to the other', async () => {
    await pgQuery(url, `INSERT INTO notes VALUES ('moving', 'alice', 'changes hands', 7)`);
    await waitForRows(alice.db, `SELECT id FROM notes WHERE id = 'moving'`, [{ id: 'moving' }]);
    await waitForRows(bob.db, `SELECT id FROM notes WHERE id = 'moving'`, []);

    await pgQuery(url, `UPDATE notes SET owner_id = 'bob', title = 'now bob''s' WHERE id = 'moving'`);
    await waitForRows(bob.db, `SELECT id, owner_id, title, n FROM notes WHERE id = 'moving'`, [
      { id: 'moving', owner_id: 'bob', title: "now bob's", n: 7 },
    ]);
    await waitForRows(alice.db, `SELECT id FROM notes WHERE id = 'moving'`, []);
    await expectInSync(alice, 'alice');
    await expectInSync(bob, 'bob');
    // Gone from alice's kept data too, not only from her typed table.
    expect(
      await alice.db.getAll(`SELECT row_id FROM ferry_oplog WHERE row_id = 'moving' AND data IS NOT NULL`),
    ).toEqual([]);
  });

  it('grants a connected client a new bucket on a new membership, and takes it away, without reconnecting', async () => {
    await expectInSync(bob, 'bob');
    const connectionsBefore = bob.traffic.connections.length;
    expect(connectionsBefore).toBe(1);
    expect(await bob.db.getAll(ITEMS)).toEqual([]);

    await pgQuery(url, `INSERT INTO memberships VALUES ('m2', 'bob', 'L2')`);
    await waitForRows(bob.db, ITEMS, [{ id: 'j1', list_id: 'L2', title: 'other list' }]);
    // New rows in the newly granted bucket keep flowing.
    await pgQuery(url, `INSERT INTO items VALUES ('j2', 'L2', 'second in L2')`);
    await waitForRows(bob.db, ITEMS, [
      { id: 'j1', list_id: 'L2', title: 'other list' },
      { id: 'j2', list_id: 'L2', title: 'second in L2' },
    ]);

    await pgQuery(url, `DELETE FROM memberships WHERE id = 'm2'`);
    await waitForRows(bob.db, ITEMS, []);
    await expectInSync(bob, 'bob');

    expect(bob.traffic.streams.length, 'bob opened a new /sync/stream request').toBe(1);
    expect(bob.traffic.streams[0]!.ended).toBe(false);
    expect(bob.db.currentStatus.connected).toBe(true);
  });

  it('never shows one user the other user’s rows (full local tables)', async () => {
    await pgQuery(url, `INSERT INTO notes VALUES ('b2', 'bob', 'bob secret', 2), ('a9', 'alice', 'alice secret', 9)`);
    await expectInSync(alice, 'alice');
    await expectInSync(bob, 'bob');
    const aliceNotes = await alice.db.getAll<{ owner_id: string }>('SELECT * FROM notes');
    const bobNotes = await bob.db.getAll<{ owner_id: string }>('SELECT * FROM notes');
    expect(aliceNotes.length).toBeGreaterThan(0);
    expect(bobNotes.length).toBeGreaterThan(0);
    expect(aliceNotes.every((r) => r.owner_id === 'alice')).toBe(true);
    expect(bobNotes.every((r) => r.owner_id === 'bob')).toBe(true);
    // The kept row data (every synced row as sent) holds nothing foreign either.
    const aliceKept = await alice.db.getAll<{ data: string | null }>(
      `SELECT data FROM ferry_oplog WHERE row_type = 'notes'`,
    );
    expect(aliceKept.filter((r) => r.data !== null && r.data.includes('"bob"'))).toEqual([]);
    const bobItems = await bob.db.getAll('SELECT * FROM items');
    expect(bobItems).toEqual([]);
    const bobKeptItems = await bob.db.getAll(
      `SELECT row_id FROM ferry_oplog WHERE row_type = 'items' AND data IS NOT NULL`,
    );
    expect(bobKeptItems).toEqual([]);
  });

  it('keeps syncing after ADD COLUMN, with the new column in the kept row data and in a schema that declares it', async () => {
    await pgQuery(url, `ALTER TABLE notes ADD COLUMN priority integer`);
    await pgQuery(url, `UPDATE notes SET priority = 5 WHERE id = 'a1'`);
    await pgQuery(
      url,
      `INSERT INTO notes (id, owner_id, title, n, priority) VALUES ('after-alter', 'alice', 'after alter', 11, 8)`,
    );
    await waitForRows(alice.db, `SELECT id, title, n FROM notes WHERE id = 'after-alter'`, [
      { id: 'after-alter', title: 'after alter', n: 11 },
    ]);
    await expectInSync(alice, 'alice');
    await waitFor(
      async () => {
        const kept = await alice.db.getAll<{ row_id: string; data: string }>(
          `SELECT row_id, data FROM ferry_oplog WHERE row_type = 'notes' AND row_id IN ('a1', 'after-alter') ORDER BY row_id`,
        );
        return (
          kept.length === 2 && JSON.parse(kept[0]!.data).priority === 5 && JSON.parse(kept[1]!.data).priority === 8
        );
      },
      { message: 'the new column never reached the kept row data' },
    );

    // Reopen alice's database with a schema that declares the new column: it is filled from kept data, offline.
    await alice.db.close();
    const widened = new Schema({
      notes: new Table({ owner_id: column.text, title: column.text, n: column.integer, priority: column.integer }),
      items: itemsTable,
    });
    const reopened = await openClient({
      cleanup,
      dir,
      schema: widened,
      path: alice.path,
      endpoint: () => service.url,
      token: () => keys.token('alice'),
      connect: false,
    });
    expect(
      await reopened.db.getAll(
        `SELECT id, priority FROM notes WHERE id IN ('a1', 'after-alter', 'tx0001') ORDER BY id`,
      ),
    ).toEqual([
      { id: 'a1', priority: 5 },
      { id: 'after-alter', priority: 8 },
      { id: 'tx0001', priority: null },
    ]);

    // And it keeps syncing with the widened schema.
    await reopened.connect();
    await pgQuery(url, `UPDATE notes SET priority = 6 WHERE id = 'tx0001'`);
    await waitForRows(reopened.db, `SELECT priority FROM notes WHERE id = 'tx0001'`, [{ priority: 6 }]);
    expect(reopened.traffic.connections[0]!.request.buckets?.length).toBeGreaterThan(0);
  });
});
