/**
 * The write path end to end (issue 4): real Ferry clients on SQLite files
 * writing through their upload queue and Ferry's write connector into the
 * real service's write API, Postgres, replication and back to every client.
 * Faults are injected in the network only (a fetch wrapper that fails or
 * drops `/write` answers); no Ferry component is replaced.
 */
import { column, ferryConnector, Schema, Table, type FerryDatabase } from '@ferry/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Cleanup,
  openClient,
  pgQuery,
  startServiceFixture,
  waitFor,
  waitForRows,
  type ServiceFixture,
  type TestClient,
} from './stack.js';

const SOURCE = `
  CREATE TABLE lists (id text PRIMARY KEY, name text NOT NULL);
  CREATE TABLE list_members (id text PRIMARY KEY, list_id text NOT NULL, user_id text NOT NULL);
  CREATE TABLE todos (
    id text PRIMARY KEY,
    list_id text NOT NULL REFERENCES lists (id),
    title text NOT NULL,
    done boolean NOT NULL DEFAULT false,
    n int8,
    flagged boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
  );
  CREATE TABLE notes (id text PRIMARY KEY, owner_id text NOT NULL, body text);
  -- Every applied insert or update of a todo, to prove exactly-once.
  CREATE TABLE applies (n bigserial PRIMARY KEY, todo_id text NOT NULL, title text);
  CREATE FUNCTION count_apply() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO applies (todo_id, title) VALUES (NEW.id, NEW.title); RETURN NEW; END $$;
  CREATE TRIGGER todos_applies AFTER INSERT OR UPDATE ON todos FOR EACH ROW EXECUTE FUNCTION count_apply();

  INSERT INTO lists VALUES ('shared', 'Shared list'), ('private', 'Bob only');
  INSERT INTO list_members VALUES ('m1', 'shared', 'alice'), ('m2', 'shared', 'bob'), ('m3', 'private', 'bob');
  INSERT INTO todos (id, list_id, title) VALUES ('t1', 'shared', 'first'), ('t2', 'shared', 'second'),
    ('t3', 'shared', 'third'), ('p1', 'private', 'bob private');
  INSERT INTO notes VALUES ('note-bob', 'bob', 'bob''s note');
`;

const RULES = `
bucket_definitions:
  by_list:
    parameters: SELECT list_id FROM list_members WHERE user_id = request.user_id()
    data:
      - SELECT id, name FROM lists WHERE id = bucket.list_id
      - SELECT id, list_id, title, done, n, flagged FROM todos WHERE list_id = bucket.list_id
  mine:
    parameters: SELECT request.user_id() AS user_id
    data:
      - SELECT * FROM notes WHERE owner_id = bucket.user_id
`;

const WRITE_RULES = `
tables:
  todos:
    operations: [insert, update, delete]
    columns: [list_id, title, done, n]
    immutable: [list_id]
    where: "list_id IN (SELECT list_id FROM list_members WHERE user_id = request.user_id())"
  notes:
    operations: [insert, update, delete]
    columns: [body]
    owner: { column: owner_id }
`;

const schema = new Schema({
  lists: new Table({ name: column.text }),
  todos: new Table({
    list_id: column.text,
    title: column.text,
    done: column.integer,
    n: column.integer,
    flagged: column.integer,
  }),
  notes: new Table({ owner_id: column.text, body: column.text }),
});

const cleanup = new Cleanup();
let fx: ServiceFixture;

beforeAll(async () => {
  fx = await startServiceFixture(cleanup, {
    database: 'ferry_e2e_write_path',
    source: SOURCE,
    rules: RULES,
    writeRules: WRITE_RULES,
  });
});

afterAll(() => cleanup.run());

/** Network faults on `/write` only: fail every request, or drop the answer of the next one after the server handled it. */
class WriteFaults {
  failing = false;
  dropNextAnswer = false;
  requests = 0;
  readonly fetch: typeof fetch = async (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    if (!new URL(url).pathname.endsWith('/write')) return globalThis.fetch(input, init);
    this.requests++;
    if (this.failing) throw new TypeError('fetch failed (injected: network down)');
    const response = await globalThis.fetch(input, init);
    if (this.dropNextAnswer) {
      this.dropNextAnswer = false;
      await response.arrayBuffer();
      throw new TypeError('fetch failed (injected: answer lost after the server committed)');
    }
    return response;
  };
}

async function writer(
  user: string,
  name: string,
  options: { compact?: boolean } = {},
): Promise<TestClient & { faults: WriteFaults }> {
  const faults = new WriteFaults();
  const client = await openClient({
    cleanup,
    dir: fx.dir,
    schema,
    name,
    endpoint: () => fx.service.url,
    token: () => fx.keys.token(user),
    connect: false,
    connector: ferryConnector({
      endpoint: fx.service.url,
      fetchToken: () => fx.keys.token(user),
      fetch: faults.fetch,
      ...(options.compact === undefined ? {} : { compact: options.compact }),
    }),
  });
  return Object.assign(client, { faults });
}

async function queueDrained(db: FerryDatabase): Promise<boolean> {
  const rows = await db.getAll<{ n: number }>(
    'SELECT (SELECT count(*) FROM ferry_crud) + (SELECT count(*) FROM ferry_overlay) AS n',
  );
  return Number(rows[0]!.n) === 0;
}

describe('writes from Ferry clients through the write API', () => {
  it('offline writes on A reach Postgres and B after A reconnects', async () => {
    const a = await writer('alice', 'offline-a');
    const b = await writer('bob', 'offline-b');
    await b.connect();
    await a.connect();
    await a.db.waitForFirstSync();
    await a.db.disconnect();

    await a.db.writeTransaction(async (tx) => {
      await tx.execute(
        `INSERT INTO todos (id, list_id, title, done, n) VALUES ('a-new', 'shared', 'made offline', 0, 9007199254740993)`,
      );
      await tx.execute(`UPDATE todos SET title = 'renamed offline', done = 1 WHERE id = 't2'`);
    });
    await a.db.execute(`DELETE FROM todos WHERE id = 't3'`);
    expect(a.db.currentStatus.pendingCount).toBe(3); // PUT, PATCH, DELETE
    expect(await pgQuery(fx.url, `SELECT id FROM todos WHERE id = 'a-new'`)).toEqual([]);

    await a.connect();
    await waitFor(
      async () =>
        JSON.stringify(
          await pgQuery(
            fx.url,
            `SELECT id, title, done, n::text FROM todos WHERE id IN ('a-new', 't2', 't3') ORDER BY id`,
          ),
        ) ===
        JSON.stringify([
          { id: 'a-new', title: 'made offline', done: false, n: '9007199254740993' },
          { id: 't2', title: 'renamed offline', done: true, n: null },
        ]),
      { message: 'the offline writes did not reach Postgres' },
    );
    await waitForRows(
      b.db,
      `SELECT id, title, done, CAST(n AS TEXT) AS n FROM todos WHERE id IN ('a-new', 't2', 't3') ORDER BY id`,
      [
        { id: 'a-new', title: 'made offline', done: 0, n: '9007199254740993' },
        { id: 't2', title: 'renamed offline', done: 1, n: null },
      ],
    );
    await waitFor(() => queueDrained(a.db), { message: 'A kept ops in its queue or overlay' });
    expect(a.db.currentStatus.pendingCount).toBe(0);
  });

  it("keeps A's own write on screen while its upload fails and B's changes keep arriving", async () => {
    const a = await writer('alice', 'flicker-a');
    const b = await writer('bob', 'flicker-b');
    await a.connect();
    await b.connect();
    await a.db.waitForFirstSync();
    await b.db.waitForFirstSync();

    const emissions: { title: string; done: number }[][] = [];
    const stop = a.db.watch<{ title: string; done: number }>(`SELECT title, done FROM todos WHERE id = 't1'`, [], {
      onResult: (rows) => emissions.push(rows),
    });
    cleanup.add(stop);

    a.faults.failing = true;
    await a.db.execute(`UPDATE todos SET title = 'alice was here' WHERE id = 't1'`);
    const editedAt = emissions.length;
    await waitFor(() => a.db.currentStatus.lastUploadError !== undefined, {
      message: 'A never reported its failing upload',
    });

    // B changes another column of the same row, and another row; Postgres changes a third.
    await b.db.execute(`UPDATE todos SET done = 1 WHERE id = 't1'`);
    await b.db.execute(`INSERT INTO todos (id, list_id, title, done) VALUES ('b-row', 'shared', 'from bob', 0)`);
    await pgQuery(fx.url, `UPDATE todos SET title = 'server edit' WHERE id = 't2'`);

    // A sees all of it while its own upload is still failing...
    await waitForRows(a.db, `SELECT id, title, done FROM todos WHERE id IN ('t1', 't2', 'b-row') ORDER BY id`, [
      { id: 'b-row', title: 'from bob', done: 0 },
      { id: 't1', title: 'alice was here', done: 1 },
      { id: 't2', title: 'server edit', done: 1 },
    ]);
    expect(a.db.currentStatus.pendingCount).toBe(1);
    expect(a.faults.requests).toBeGreaterThan(0);

    // ...then the network comes back and everything converges.
    a.faults.failing = false;
    await waitFor(
      async () =>
        (await pgQuery<{ title: string; done: boolean }>(fx.url, `SELECT title, done FROM todos WHERE id = 't1'`))[0]
          ?.title === 'alice was here',
      { message: "A's write never reached Postgres" },
    );
    await waitFor(() => queueDrained(a.db), { message: 'A kept its op in the queue or overlay' });
    await waitForRows(b.db, `SELECT title, done FROM todos WHERE id = 't1'`, [{ title: 'alice was here', done: 1 }]);
    expect(a.db.currentStatus.lastUploadError).toBeUndefined();

    // Every result A's watcher saw after the edit shows the edit: it never reverted.
    const after = emissions.slice(editedAt);
    expect(after.length).toBeGreaterThan(1);
    for (const rows of after) expect(rows[0]?.title).toBe('alice was here');
  });

  it('retries an upload whose answer was lost without applying it twice', async () => {
    const a = await writer('alice', 'lost-answer');
    await a.connect();
    await a.db.waitForFirstSync();
    a.faults.dropNextAnswer = true;
    const requestsBefore = a.faults.requests;
    await a.db.execute(`INSERT INTO todos (id, list_id, title, done) VALUES ('once', 'shared', 'exactly once', 0)`);
    await waitFor(() => queueDrained(a.db), { message: 'the retried upload never completed' });
    expect(a.faults.requests - requestsBefore).toBeGreaterThanOrEqual(2);
    expect(await pgQuery(fx.url, `SELECT count(*)::int AS n FROM applies WHERE todo_id = 'once'`)).toEqual([{ n: 1 }]);
    expect(await a.db.getAll(`SELECT * FROM ferry_rejections`)).toEqual([]);
  });

  it('removes a rejected insert locally and keeps the reason readable and watchable', async () => {
    const a = await writer('alice', 'rejected');
    await a.connect();
    await a.db.waitForFirstSync();
    const seen: unknown[][] = [];
    const stop = a.db.watch(`SELECT row_type, row_id, code FROM ferry_rejections ORDER BY id`, [], {
      onResult: (rows) => seen.push(rows),
    });
    cleanup.add(stop);

    // lists are not writable at all; 'private' is a list alice is not a member of.
    await a.db.execute(`INSERT INTO lists (id, name) VALUES ('ghost-list', 'not allowed')`);
    await a.db.execute(
      `INSERT INTO todos (id, list_id, title, done) VALUES ('ghost-todo', 'private', 'not my list', 0)`,
    );
    await waitFor(() => seen.at(-1)?.length === 2, { message: () => `rejections seen: ${JSON.stringify(seen)}` });
    expect(seen.at(-1)).toEqual([
      { row_type: 'lists', row_id: 'ghost-list', code: 'FERRY_S6001' },
      { row_type: 'todos', row_id: 'ghost-todo', code: 'FERRY_S6004' },
    ]);
    expect(await a.db.getAll(`SELECT id FROM lists WHERE id = 'ghost-list'`)).toEqual([]);
    expect(await a.db.getAll(`SELECT id FROM todos WHERE id = 'ghost-todo'`)).toEqual([]);
    expect(await pgQuery(fx.url, `SELECT id FROM todos WHERE id = 'ghost-todo'`)).toEqual([]);
    const rejections = await a.db.getRejections();
    expect(rejections.map((r) => [r.table, r.rowId, r.code])).toEqual([
      ['lists', 'ghost-list', 'FERRY_S6001'],
      ['todos', 'ghost-todo', 'FERRY_S6004'],
    ]);
    expect(rejections[1]!.opData).toMatchObject({ title: 'not my list' });
    expect(a.db.currentStatus.pendingCount).toBe(0);
  });

  it("enforces the write rules: non-writable column reverted, forged owner corrected, other users' rows refused", async () => {
    const a = await writer('alice', 'rules');
    await a.connect();
    await a.db.waitForFirstSync();

    // flagged is synced but not writable: rejected, the row returns to the server's value.
    await a.db.execute(`UPDATE todos SET flagged = 1 WHERE id = 't1'`);
    await waitFor(async () => (await a.db.getRejections()).some((r) => r.rowId === 't1' && r.code === 'FERRY_S6002'));
    await waitForRows(a.db, `SELECT flagged FROM todos WHERE id = 't1'`, [{ flagged: 0 }]);

    // A forged owner on insert is replaced by the token's subject, and the client converges to it.
    await a.db.execute(`INSERT INTO notes (id, owner_id, body) VALUES ('note-forged', 'bob', 'mine really')`);
    await waitFor(
      async () =>
        (await pgQuery(fx.url, `SELECT owner_id FROM notes WHERE id = 'note-forged'`))[0]?.['owner_id'] === 'alice',
    );
    await waitForRows(a.db, `SELECT owner_id, body FROM notes WHERE id = 'note-forged'`, [
      { owner_id: 'alice', body: 'mine really' },
    ]);

    // Bob's note is not alice's to change, whatever her client claims.
    const token = await fx.keys.token('alice');
    const response = await fetch(`${fx.service.url}/write`, {
      method: 'POST',
      headers: { authorization: `Token ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        client_id: 'raw',
        transactions: [
          { id: 'raw:1', ops: [{ op: 'PATCH', type: 'notes', id: 'note-bob', data: { body: 'hacked' } }] },
        ],
      }),
    });
    expect(response.status).toBe(200);
    const answer = (await response.json()) as { transactions: { status: string; ops: { code?: string }[] }[] };
    expect(answer.transactions[0]!.status).toBe('rejected');
    expect(answer.transactions[0]!.ops[0]!.code).toBe('FERRY_S6004');
    expect(await pgQuery(fx.url, `SELECT body FROM notes WHERE id = 'note-bob'`)).toEqual([{ body: "bob's note" }]);
  });

  it('rejects table and column names that carry SQL, and the tables stay intact', async () => {
    const token = await fx.keys.token('alice');
    const post = async (ops: unknown[]) => {
      const response = await fetch(`${fx.service.url}/write`, {
        method: 'POST',
        headers: { authorization: `Token ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ client_id: 'raw', transactions: [{ id: `raw:${Math.random()}`, ops }] }),
      });
      expect(response.status).toBe(200);
      return ((await response.json()) as { transactions: { status: string; ops: { code?: string }[] }[] })
        .transactions[0]!;
    };
    const badTable = await post([{ op: 'PUT', type: 'todos"; DROP TABLE todos; --', id: 'x', data: { title: 'x' } }]);
    expect(badTable.status).toBe('rejected');
    expect(badTable.ops[0]!.code).toBe('FERRY_S6007');
    const badColumn = await post([
      { op: 'PATCH', type: 'todos', id: 't1', data: { 'title" = title; DELETE FROM todos; --': 'x' } },
    ]);
    expect(badColumn.status).toBe('rejected');
    expect(badColumn.ops[0]!.code).toBe('FERRY_S6007');
    const [{ n }] = await pgQuery<{ n: number }>(fx.url, `SELECT count(*)::int AS n FROM todos WHERE id = 't1'`);
    expect(n).toBe(1);
  });

  it('compacts uploads when asked: one write per row, the same end state, still exactly once', async () => {
    const a = await writer('alice', 'compact', { compact: true });
    await a.db.execute(`INSERT INTO todos (id, list_id, title, done) VALUES ('c1', 'shared', 'v0', 0)`);
    for (let v = 1; v <= 5; v++) await a.db.execute(`UPDATE todos SET title = ? WHERE id = 'c1'`, [`v${v}`]);
    await a.db.execute(`INSERT INTO todos (id, list_id, title, done) VALUES ('c2', 'shared', 'short-lived', 0)`);
    await a.db.execute(`DELETE FROM todos WHERE id = 'c2'`);
    expect(a.db.currentStatus.pendingCount).toBe(8);
    a.faults.dropNextAnswer = true;
    await a.connect();
    await waitFor(() => queueDrained(a.db), { message: 'the compacted upload never completed' });
    expect(a.faults.requests).toBeGreaterThanOrEqual(2); // the lost answer was retried
    expect(await pgQuery(fx.url, `SELECT id, title FROM todos WHERE id IN ('c1', 'c2')`)).toEqual([
      { id: 'c1', title: 'v5' },
    ]);
    // Eight queued ops became one insert of c1 (and a no-op delete of c2), applied once despite the retry.
    expect(
      await pgQuery(fx.url, `SELECT todo_id, count(*)::int AS n FROM applies WHERE todo_id IN ('c1', 'c2') GROUP BY 1`),
    ).toEqual([{ todo_id: 'c1', n: 1 }]);
    await waitForRows(a.db, `SELECT id, title FROM todos WHERE id IN ('c1', 'c2')`, [{ id: 'c1', title: 'v5' }]);
  });

  it('uploads 10,000 offline writes after reconnecting, none lost or duplicated', async () => {
    const a = await writer('alice', 'bulk-a');
    const b = await writer('bob', 'bulk-b');
    await b.connect();
    const COUNT = 10_000;
    for (let i = 0; i < COUNT; i += 100) {
      await a.db.writeTransaction(async (tx) => {
        for (let j = i; j < i + 100; j++) {
          await tx.execute(`INSERT INTO todos (id, list_id, title, done) VALUES (?, 'shared', ?, 0)`, [
            `bulk-${j}`,
            `bulk ${j}`,
          ]);
        }
      });
    }
    expect(a.db.currentStatus.pendingCount).toBe(COUNT);
    await a.connect();
    await waitFor(
      async () =>
        (await pgQuery<{ n: number }>(fx.url, `SELECT count(*)::int AS n FROM todos WHERE id LIKE 'bulk-%'`))[0]!.n ===
        COUNT,
      { timeoutMs: 120_000, message: 'not every offline write reached Postgres' },
    );
    await waitForRows(b.db, `SELECT count(*) AS n FROM todos WHERE id LIKE 'bulk-%'`, [{ n: COUNT }], {
      timeoutMs: 120_000,
    });
    await waitFor(() => queueDrained(a.db), { timeoutMs: 60_000, message: 'A kept ops queued' });
    expect(
      await pgQuery(
        fx.url,
        `SELECT count(*)::int AS applies, count(DISTINCT todo_id)::int AS rows FROM applies WHERE todo_id LIKE 'bulk-%'`,
      ),
    ).toEqual([{ applies: COUNT, rows: COUNT }]);
    expect(await a.db.getAll(`SELECT count(*) AS n FROM todos WHERE id LIKE 'bulk-%'`)).toEqual([{ n: COUNT }]);
  });
});
