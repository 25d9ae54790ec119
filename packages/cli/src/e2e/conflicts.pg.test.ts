/**
 * Conflicts end to end (issue 6): real Ferry clients on SQLite files, the
 * real service (write API with field clocks and a validation hook module),
 * Postgres and replication. Nothing is replaced; "offline" is a client
 * that is disconnected.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
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
  CREATE TABLE boards (id text PRIMARY KEY, name text NOT NULL);
  CREATE TABLE members (id text PRIMARY KEY, board_id text NOT NULL, user_id text NOT NULL);
  CREATE TABLE cards (
    id text PRIMARY KEY,
    board_id text NOT NULL REFERENCES boards (id),
    title text NOT NULL,
    status text NOT NULL DEFAULT 'todo',
    note text
  );
  CREATE TABLE bookings (id text PRIMARY KEY, board_id text NOT NULL, room text NOT NULL, slot text NOT NULL, who text);
  INSERT INTO boards VALUES ('b1', 'Shared board');
  INSERT INTO members VALUES ('m1', 'b1', 'alice'), ('m2', 'b1', 'bob');
  INSERT INTO cards (id, board_id, title, note) VALUES ('c1', 'b1', 'Plan the offsite', 'seed'),
    ('c2', 'b1', 'Book the venue', 'seed'), ('c3', 'b1', 'Order food', 'seed');
`;

const RULES = `
bucket_definitions:
  by_board:
    parameters: SELECT board_id FROM members WHERE user_id = request.user_id()
    data:
      - SELECT * FROM cards WHERE board_id = bucket.board_id
      - SELECT * FROM bookings WHERE board_id = bucket.board_id
      - SELECT * FROM ferry_conflicts WHERE scope = bucket.board_id
      - SELECT * FROM ferry_violations WHERE scope = bucket.board_id
`;

const WRITE_RULES = `
tables:
  cards:
    operations: [insert, update, delete]
    columns: [board_id, title, status, note]
    where: "board_id IN (SELECT board_id FROM members WHERE user_id = request.user_id())"
    conflicts: { scope: board_id }
  bookings:
    operations: [insert, update, delete]
    columns: [board_id, room, slot, who]
    where: "board_id IN (SELECT board_id FROM members WHERE user_id = request.user_id())"
    conflicts: { scope: board_id }
  ferry_conflicts:
    operations: [delete]
    where: "scope IN (SELECT board_id FROM members WHERE user_id = request.user_id())"
`;

/** The validation hooks module, written as a user would (TypeScript). */
const HOOKS = `
import type { WriteHooks } from '@ferry/service';

const hooks: WriteHooks = {
  validate: {
    async bookings({ op, row, tx, violation }) {
      if (op.kind === 'delete' || row === null) return;
      if (row.who === 'boom') throw new Error('the booking system is down');
      const room: string = String(row.room);
      const slot: string = String(row.slot);
      await tx.query('SELECT pg_advisory_xact_lock(hashtext($1 || $2))', [room, slot]);
      const { rows } = await tx.query<{ id: string }>(
        'SELECT id FROM bookings WHERE room = $1 AND slot = $2 AND id <> $3',
        [room, slot, op.id],
      );
      for (const other of rows) {
        const pair = [op.id, other.id].sort();
        violation({
          key: 'double-booking:' + pair.join(':'),
          code: 'double_booking',
          message: room + ' is booked twice at ' + slot,
          rows: [{ table: 'bookings', id: other.id }],
        });
      }
    },
  },
};
export default hooks;
`;

const schema = new Schema({
  cards: new Table({ board_id: column.text, title: column.text, status: column.text, note: column.text }),
  bookings: new Table({ board_id: column.text, room: column.text, slot: column.text, who: column.text }),
});

const cleanup = new Cleanup();
let fx: ServiceFixture;

beforeAll(async () => {
  fx = await startServiceFixture(cleanup, {
    database: 'ferry_e2e_conflicts',
    source: SOURCE,
    rules: RULES,
    writeRules: WRITE_RULES,
    writeRulesExtra: async (dir) => {
      const file = path.join(dir, 'write-hooks.ts');
      await writeFile(file, HOOKS);
      return { hooks: file, max_clock_skew_ms: 2000 };
    },
  });
});

afterAll(() => cleanup.run());

async function device(user: string, name: string, options: { clockOffsetMs?: number } = {}): Promise<TestClient> {
  const offset = options.clockOffsetMs ?? 0;
  const client = await openClient({
    cleanup,
    dir: fx.dir,
    schema,
    name,
    endpoint: () => fx.service.url,
    token: () => fx.keys.token(user),
    connect: false,
    connector: ferryConnector({ endpoint: fx.service.url, fetchToken: () => fx.keys.token(user) }),
    ...(offset === 0 ? {} : { now: () => Date.now() + offset }),
  });
  await client.connect();
  await client.db.waitForFirstSync();
  return client;
}

async function drained(db: FerryDatabase): Promise<boolean> {
  const rows = await db.getAll<{ n: number }>(
    'SELECT (SELECT count(*) FROM ferry_crud) + (SELECT count(*) FROM ferry_overlay) AS n',
  );
  return Number(rows[0]!.n) === 0;
}

async function pgTitle(id: string): Promise<string> {
  const rows = await pgQuery<{ title: string }>(fx.url, 'SELECT title FROM cards WHERE id = $1', [id]);
  return rows[0]!.title;
}

describe('concurrent edits of one record', () => {
  it("B's later edit survives A's late upload; A's value is a conflict on both clients; resolving syncs", async () => {
    const a = await device('alice', 'late-a');
    const b = await device('bob', 'late-b');
    await a.db.disconnect();
    await a.db.execute(`UPDATE cards SET title = 'Plan the offsite (A, offline)' WHERE id = 'c1'`);
    await new Promise((r) => setTimeout(r, 5));
    await b.db.execute(`UPDATE cards SET title = 'Plan the offsite in May (B)' WHERE id = 'c1'`);
    await waitFor(async () => (await pgTitle('c1')) === 'Plan the offsite in May (B)', { message: "B's edit" });

    await a.connect();
    await waitFor(() => drained(a.db), { message: 'A uploaded' });
    const both = [a, b];
    for (const client of both) {
      await waitForRows(client.db, `SELECT title FROM cards WHERE id = 'c1'`, [
        { title: 'Plan the offsite in May (B)' },
      ]);
    }
    expect(await pgTitle('c1')).toBe('Plan the offsite in May (B)');
    for (const client of both) {
      await waitFor(async () => (await client.db.getConflicts({ table: 'cards', rowId: 'c1' })).length === 1, {
        message: 'the conflict reaches the client',
      });
      const [conflict] = await client.db.getConflicts({ table: 'cards', rowId: 'c1' });
      expect(conflict).toMatchObject({
        column: 'title',
        winnerValue: 'Plan the offsite in May (B)',
        loserValue: 'Plan the offsite (A, offline)',
        baseValue: 'Plan the offsite',
        winnerUserId: 'bob',
        loserUserId: 'alice',
        policy: 'lww',
      });
      expect(conflict!.loserHlc < conflict!.winnerHlc).toBe(true);
    }

    // A takes the lost value back: an ordinary write that syncs, and the conflict goes everywhere.
    const [conflict] = await a.db.getConflicts({ table: 'cards', rowId: 'c1' });
    await a.db.resolveConflict(conflict!.id, { keep: 'lost' });
    for (const client of both) {
      await waitForRows(client.db, `SELECT title FROM cards WHERE id = 'c1'`, [
        { title: 'Plan the offsite (A, offline)' },
      ]);
      await waitFor(async () => (await client.db.getConflicts({ rowId: 'c1' })).length === 0, {
        message: 'the resolved conflict leaves every client',
      });
    }
    expect(await pgTitle('c1')).toBe('Plan the offsite (A, offline)');
    expect(await pgQuery(fx.url, `SELECT id FROM ferry_conflicts WHERE row_id = 'c1'`)).toEqual([]);
  });

  it('edits to different fields of one row both survive, without a conflict', async () => {
    const a = await device('alice', 'fields-a');
    const b = await device('bob', 'fields-b');
    await a.db.disconnect();
    await a.db.execute(`UPDATE cards SET status = 'doing' WHERE id = 'c2'`);
    await b.db.execute(`UPDATE cards SET note = 'deposit paid' WHERE id = 'c2'`);
    await waitFor(
      async () => (await pgQuery(fx.url, `SELECT note FROM cards WHERE id = 'c2'`))[0]!['note'] === 'deposit paid',
    );
    await a.connect();
    for (const client of [a, b]) {
      await waitForRows(client.db, `SELECT status, note FROM cards WHERE id = 'c2'`, [
        { status: 'doing', note: 'deposit paid' },
      ]);
    }
    expect(await pgQuery(fx.url, `SELECT status, note FROM cards WHERE id = 'c2'`)).toEqual([
      { status: 'doing', note: 'deposit paid' },
    ]);
    expect(await pgQuery(fx.url, `SELECT id FROM ferry_conflicts WHERE row_id = 'c2'`)).toEqual([]);
  });

  it('a client whose clock is an hour fast does not win forever', async () => {
    const fast = await device('alice', 'fast', { clockOffsetMs: 3_600_000 });
    const honest = await device('bob', 'honest');
    // The honest device goes offline before the fast one's edit: its later edit is concurrent.
    await honest.db.disconnect();
    await fast.db.execute(`UPDATE cards SET title = 'from the future' WHERE id = 'c3'`);
    await waitFor(async () => (await pgTitle('c3')) === 'from the future', { message: "the fast client's edit" });
    // The service counts that stamp as at most 2 s (this file's max_clock_skew_ms) ahead of its clock.
    // An edit made after that bound wins, although the fast client's own stamp is an hour ahead.
    await new Promise((r) => setTimeout(r, 2500));
    await honest.db.execute(`UPDATE cards SET title = 'Order food for 12' WHERE id = 'c3'`);
    await honest.connect();
    await waitFor(() => drained(honest.db), { message: 'the honest device uploaded' });
    expect(await pgTitle('c3')).toBe('Order food for 12');
    for (const client of [fast, honest]) {
      await waitForRows(client.db, `SELECT title FROM cards WHERE id = 'c3'`, [{ title: 'Order food for 12' }]);
    }
    const [conflict] = await pgQuery<Record<string, string>>(
      fx.url,
      `SELECT loser_value, winner_value, loser_user_id, loser_hlc FROM ferry_conflicts WHERE row_id = 'c3'`,
    );
    expect(conflict).toMatchObject({
      loser_value: '"from the future"',
      winner_value: '"Order food for 12"',
      loser_user_id: 'alice',
    });
    // The recorded stamp is the bounded one, not the client's hour-ahead clock.
    const wallMs = parseInt(conflict!['loser_hlc']!.slice(0, 12), 16);
    expect(wallMs).toBeLessThan(Date.now() + 60_000);
  });
});

describe('validation hooks and violations', () => {
  it('a double booking is accepted, flagged on both clients, and cleared by a resolving write', async () => {
    const a = await device('alice', 'book-a');
    const b = await device('bob', 'book-b');
    await a.db.disconnect();
    await b.db.disconnect();
    await a.db.execute(
      `INSERT INTO bookings (id, board_id, room, slot, who) VALUES ('bk-a', 'b1', 'Room 1', '14:00', 'alice')`,
    );
    await b.db.execute(
      `INSERT INTO bookings (id, board_id, room, slot, who) VALUES ('bk-b', 'b1', 'Room 1', '14:00', 'bob')`,
    );
    await a.connect();
    await b.connect();
    for (const client of [a, b]) {
      await waitForRows(client.db, `SELECT id FROM bookings WHERE slot = '14:00' ORDER BY id`, [
        { id: 'bk-a' },
        { id: 'bk-b' },
      ]);
      await waitFor(async () => (await client.db.getViolations({ table: 'bookings', rowId: 'bk-a' })).length === 1, {
        message: 'the violation reaches the client',
      });
      const flagged = await client.db.getViolations({ table: 'bookings', rowId: 'bk-b' });
      expect(flagged).toMatchObject([
        { id: 'bookings:double-booking:bk-a:bk-b', code: 'double_booking', message: 'Room 1 is booked twice at 14:00' },
      ]);
    }
    // Bob moves his booking: the violation clears everywhere.
    await b.db.execute(`UPDATE bookings SET slot = '15:00' WHERE id = 'bk-b'`);
    for (const client of [a, b]) {
      await waitFor(async () => (await client.db.getViolations({ table: 'bookings' })).length === 0, {
        message: 'the violation clears',
      });
    }
    expect(await pgQuery(fx.url, `SELECT id FROM ferry_violations`)).toEqual([]);
  });

  it('a throwing hook rejects its transaction and leaves nothing of it committed', async () => {
    const a = await device('alice', 'boom-a');
    await a.db.writeTransaction(async (tx) => {
      await tx.execute(`UPDATE cards SET note = 'part of a failed transaction' WHERE id = 'c2'`);
      await tx.execute(
        `INSERT INTO bookings (id, board_id, room, slot, who) VALUES ('bk-boom', 'b1', 'Room 2', '09:00', 'boom')`,
      );
    });
    await waitFor(async () => (await a.db.getRejections()).length === 2, { message: 'the transaction is rejected' });
    const rejections = await a.db.getRejections();
    expect(rejections.map((r) => r.code).sort()).toEqual(['FERRY_S6006', 'FERRY_S6011']);
    expect(rejections.find((r) => r.code === 'FERRY_S6011')!.message).toContain('the booking system is down');
    expect(await pgQuery(fx.url, `SELECT id FROM bookings WHERE id = 'bk-boom'`)).toEqual([]);
    expect(await pgQuery(fx.url, `SELECT note FROM cards WHERE id = 'c2'`)).toEqual([{ note: 'deposit paid' }]);
    await waitForRows(a.db, `SELECT count(*) AS n FROM bookings WHERE id = 'bk-boom'`, [{ n: 0 }]);
  });
});
