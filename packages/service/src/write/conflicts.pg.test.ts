/**
 * Field-level merge, conflict records, policies, outside writes and
 * validation hooks, against a real Postgres.
 */
import { encodeHlc, type WriteTransactionResult } from '@ferry/protocol';
import { sql } from '@ferry/test-utils';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WriteHooks } from './hooks.js';
import { ALICE, BOB, createWriteTestDatabase, openTestWriteApi, taskId, tx, WS_SHARED } from './testing.js';
import type { WriteApi } from './write-api.js';

const RULES = `tables:
  tasks:
    operations: [insert, update, delete]
    columns: [title, done, position, note, edits]
    immutable: [workspace_id]
    where: "workspace_id IN (SELECT workspace_id FROM workspace_members WHERE user_id = request.user_id())"
    conflicts:
      scope: workspace_id
      columns:
        edits: { merge: add }
        position: server_wins
        note: client_wins
  kinds:
    operations: [insert, update, delete]
    columns: '*'
    conflicts: off
  bookings:
    operations: [insert, update, delete]
    columns: [room, slot, who]
    conflicts: { scope: room }
`;

const EXTRA_SCHEMA = `
CREATE TABLE bookings (id text PRIMARY KEY, room text NOT NULL, slot text NOT NULL, who text);
`;

const hooks: WriteHooks = {
  merge: {
    add: ({ base, current, incoming }) => Number(current) + Number(incoming) - Number(base ?? 0),
  },
  validate: {
    async bookings({ op, row, tx: db, reject, violation }) {
      if (op.kind === 'delete' || row === null) return;
      if (row['slot'] === 'closed') reject('the room is closed then', { retryable: false });
      if (row['slot'] === 'later') reject('try again later', { retryable: true });
      if (row['who'] === 'boom') throw new Error('hook exploded');
      await db.query('SELECT pg_advisory_xact_lock(hashtext($1))', [row['room']]);
      const { rows } = await db.query<{ id: string }>(
        'SELECT id FROM bookings WHERE room = $1 AND slot = $2 AND id <> $3 ORDER BY id',
        [row['room'], row['slot'], op.id],
      );
      for (const other of rows) {
        const pair = [op.id, other.id].sort();
        violation({
          key: `overlap:${pair.join(':')}`,
          code: 'double_booking',
          message: `${row['room']} is booked twice at ${row['slot']}`,
          rows: [{ table: 'bookings', id: other.id }],
        });
      }
    },
  },
};

let url: string;
let api: WriteApi;
let clock = Date.now();
let n = 0;

beforeAll(async () => {
  url = await createWriteTestDatabase();
  await sql(url, EXTRA_SCHEMA);
  api = await openTestWriteApi(url, { rulesText: RULES, hooks, now: () => clock, maxClockSkewMs: 60_000 });
});
afterAll(async () => {
  await api?.close();
});

const stamp = (wallMs: number, node: string, counter = 0) => encodeHlc({ wallMs, counter, node });

async function task(id: string): Promise<Record<string, unknown>> {
  const { rows } = await sql(url, 'SELECT * FROM tasks WHERE id = $1', [id]);
  return rows[0];
}

async function conflictsOf(rowId: string): Promise<Record<string, unknown>[]> {
  const { rows } = await sql(url, 'SELECT * FROM ferry_conflicts WHERE row_id = $1 ORDER BY created_at, loser_hlc', [
    rowId,
  ]);
  return rows;
}

/** A shared task with title 'seed', inserted by alice at `at`. */
async function seedTask(at: number): Promise<string> {
  const id = taskId(5000 + ++n);
  const answer = await api.apply(
    [
      tx([
        {
          op: 'PUT',
          type: 'tasks',
          id,
          data: { workspace_id: WS_SHARED, title: 'seed', note: 'n0', position: 1, edits: 10 },
          hlc: stamp(at, 'client-a'),
        },
      ]),
    ],
    ALICE,
  );
  expect(answer.transactions[0]!.status).toBe('applied');
  return id;
}

function patch(id: string, data: Record<string, unknown>, old: Record<string, unknown>, hlc: string) {
  return { op: 'PATCH' as const, type: 'tasks', id, data: data as never, old: old as never, hlc };
}

/** Applies one PATCH as `client` and expects it applied. */
async function edit(client: typeof ALICE, ...args: Parameters<typeof patch>) {
  return applied((await api.apply([tx([patch(...args)])], client)).transactions[0]);
}

function applied(result: WriteTransactionResult | undefined) {
  expect(result?.status).toBe('applied');
  return result!;
}

describe('field-level merge by clock', () => {
  it('an offline edit uploaded late loses to a later online edit, and is kept as a conflict', async () => {
    const t0 = clock - 10_000;
    const id = await seedTask(t0);
    // B edits online at t0+5s; A edited offline at t0+1s, uploads after.
    await edit(BOB, id, { title: 'B' }, { title: 'seed' }, stamp(t0 + 5000, 'client-b'));
    const late = await edit(ALICE, id, { title: 'A' }, { title: 'seed' }, stamp(t0 + 1000, 'client-a'));
    expect((await task(id))['title']).toBe('B');
    const [conflict, ...more] = await conflictsOf(id);
    expect(more).toEqual([]);
    expect(conflict).toMatchObject({
      table_name: 'tasks',
      column_name: 'title',
      scope: WS_SHARED,
      winner_value: '"B"',
      loser_value: '"A"',
      base_value: '"seed"',
      winner_hlc: stamp(t0 + 5000, 'client-b'),
      loser_hlc: stamp(t0 + 1000, 'client-a'),
      winner_user_id: 'bob',
      loser_user_id: 'alice',
      winner_client_id: 'client-b',
      loser_client_id: 'client-a',
      policy: 'lww',
    });
    expect(late.ops[0]).toEqual({ status: 'applied', conflicts: [conflict!['id']] });
  });

  it('the higher clock wins whatever the arrival order; the overwritten value is recorded', async () => {
    const t0 = clock - 10_000;
    const id = await seedTask(t0);
    await edit(ALICE, id, { title: 'A' }, { title: 'seed' }, stamp(t0 + 1000, 'client-a'));
    await edit(BOB, id, { title: 'B' }, { title: 'seed' }, stamp(t0 + 5000, 'client-b'));
    expect((await task(id))['title']).toBe('B');
    expect(await conflictsOf(id)).toMatchObject([
      { column_name: 'title', winner_value: '"B"', loser_value: '"A"', loser_user_id: 'alice', winner_user_id: 'bob' },
    ]);
  });

  it('equal wall times are ordered by counter, then node, deterministically', async () => {
    const t0 = clock - 10_000;
    const id = await seedTask(t0);
    await edit(BOB, id, { title: 'Z' }, { title: 'seed' }, stamp(t0 + 2000, 'client-z'));
    await edit(ALICE, id, { title: 'A' }, { title: 'seed' }, stamp(t0 + 2000, 'client-a'));
    expect((await task(id))['title']).toBe('Z');
  });

  it('edits of different fields of one row both survive, with no conflict', async () => {
    const t0 = clock - 10_000;
    const id = await seedTask(t0);
    await edit(BOB, id, { title: 'B' }, { title: 'seed' }, stamp(t0 + 5000, 'client-b'));
    await edit(ALICE, id, { done: 1 }, { done: 0 }, stamp(t0 + 1000, 'client-a'));
    expect(await task(id)).toMatchObject({ title: 'B', done: true });
    expect(await conflictsOf(id)).toEqual([]);
  });

  it('an edit made after seeing the current value applies even with a lower clock, and stamps keep growing', async () => {
    const t0 = clock - 10_000;
    const id = await seedTask(t0);
    await edit(BOB, id, { title: 'B' }, { title: 'seed' }, stamp(t0 + 5000, 'client-b'));
    // A's clock is behind, but A saw 'B'.
    await edit(ALICE, id, { title: 'A2' }, { title: 'B' }, stamp(t0 + 1000, 'client-a'));
    expect((await task(id))['title']).toBe('A2');
    expect(await conflictsOf(id)).toEqual([]);
    const { rows } = await sql(url, `SELECT clocks FROM ferry.field_clocks WHERE row_id = $1`, [id]);
    const [title] = rows[0].clocks.title as [string, string];
    expect(title > stamp(t0 + 5000, 'client-b')).toBe(true);
    // A concurrent edit stamped between the two now loses: the field's stamp moved past B's.
    await edit(BOB, id, { title: 'C' }, { title: 'seed' }, stamp(t0 + 5000, 'client-c'));
    expect((await task(id))['title']).toBe('A2');
  });

  it("a client whose clock is an hour fast wins only within the service's bound", async () => {
    const t0 = clock;
    const id = await seedTask(t0 - 1000);
    // F's clock is one hour ahead: its stamp counts as now + 60 s.
    applied(
      (
        await api.apply(
          [tx([patch(id, { title: 'fast' }, { title: 'seed' }, stamp(t0 + 3_600_000, 'client-f'))])],
          ALICE,
        )
      ).transactions[0],
    );
    // Within the bound, a concurrent honest edit still loses to it...
    await edit(BOB, id, { title: 'early' }, { title: 'seed' }, stamp(t0 + 30_000, 'client-b'));
    expect((await task(id))['title']).toBe('fast');
    // ...but a concurrent edit made two minutes later wins (without the bound F would win for an hour).
    clock = t0 + 120_000;
    await edit(BOB, id, { title: 'later' }, { title: 'seed' }, stamp(t0 + 120_000, 'client-b'));
    expect((await task(id))['title']).toBe('later');
    const lost = await conflictsOf(id);
    expect(lost.map((c) => c['loser_value'])).toEqual(['"early"', '"fast"']);
    expect(lost[1]!['loser_hlc']).toBe(stamp(t0 + 60_000, 'client-f'));
  });

  it('an edit of a row deleted meanwhile is kept as a conflict with the delete', async () => {
    const t0 = clock - 10_000;
    const id = await seedTask(t0);
    applied(
      (await api.apply([tx([{ op: 'DELETE', type: 'tasks', id, hlc: stamp(t0 + 5000, 'client-b') }])], BOB))
        .transactions[0],
    );
    await edit(ALICE, id, { title: 'A' }, { title: 'seed' }, stamp(t0 + 1000, 'client-a'));
    expect(await task(id)).toBeUndefined();
    expect(await conflictsOf(id)).toMatchObject([
      { column_name: 'title', policy: 'deleted', winner_value: null, loser_value: '"A"', winner_user_id: 'bob' },
    ]);
  });

  it('delete tombstones are kept for the retention, then forgotten', async () => {
    const t0 = clock - 10_000;
    const id = await seedTask(t0);
    applied(
      (await api.apply([tx([{ op: 'DELETE', type: 'tasks', id, hlc: stamp(t0 + 1000, 'client-b') }])], BOB))
        .transactions[0],
    );
    const tombstone = `SELECT count(*)::int AS n FROM ferry.field_clocks WHERE row_id = $1 AND deleted_hlc IS NOT NULL`;
    expect(await api.pruneTombstones(1)).toBe(0);
    expect((await sql(url, tombstone, [id])).rows[0].n).toBe(1);
    const saved = clock;
    clock += 2 * 3_600_000;
    try {
      expect(await api.pruneTombstones(1)).toBeGreaterThanOrEqual(1);
    } finally {
      clock = saved;
    }
    expect((await sql(url, tombstone, [id])).rows[0].n).toBe(0);
  });

  it('a resent transaction records its conflict once', async () => {
    const t0 = clock - 10_000;
    const id = await seedTask(t0);
    await edit(BOB, id, { title: 'B' }, { title: 'seed' }, stamp(t0 + 5000, 'client-b'));
    const same = tx([patch(id, { title: 'A' }, { title: 'seed' }, stamp(t0 + 1000, 'client-a'))]);
    const first = applied((await api.apply([same], ALICE)).transactions[0]);
    const again = applied((await api.apply([same], ALICE)).transactions[0]);
    expect(again.duplicate).toBe(true);
    expect(again.ops).toEqual(first.ops);
    expect(await conflictsOf(id)).toHaveLength(1);
  });

  it("concurrent requests on one row see each other's stamps (no stale read after waiting for the lock)", async () => {
    // Both requests start while another transaction holds the row, so their statements begin before
    // either commits; whichever goes second must still see the first one's stamps.
    for (let round = 0; round < 6; round++) {
      const t0 = clock - 10_000;
      const id = await seedTask(t0);
      const holder = new pg.Client({ connectionString: url });
      await holder.connect();
      try {
        await holder.query('BEGIN');
        await holder.query('SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE', [id]);
        const late = api.apply([tx([patch(id, { title: 'B' }, { title: 'seed' }, stamp(t0 + 5000, 'client-b'))])], BOB);
        const early = api.apply(
          [tx([patch(id, { title: 'A' }, { title: 'seed' }, stamp(t0 + 1000, 'client-a'))])],
          ALICE,
        );
        await new Promise((r) => setTimeout(r, 50));
        await holder.query('COMMIT');
        await Promise.all([late, early]);
      } finally {
        await holder.end();
      }
      expect((await task(id))['title']).toBe('B');
      expect((await conflictsOf(id)).map((c) => c['loser_value'])).toEqual(['"A"']);
    }
  });

  it('ops without a stamp are stamped by the service clock at arrival', async () => {
    const id = await seedTask(clock - 10_000);
    applied(
      (await api.apply([tx([{ op: 'PATCH', type: 'tasks', id, data: { title: 'powersync' } }])], BOB)).transactions[0],
    );
    expect((await task(id))['title']).toBe('powersync');
  });

  it('rejects a malformed stamp', async () => {
    const id = await seedTask(clock - 10_000);
    const answer = await api.apply([tx([patch(id, { title: 'x' }, { title: 'seed' }, 'not-a-stamp')])], BOB);
    expect(answer.transactions[0]!.ops[0]).toMatchObject({ status: 'rejected', code: 'FERRY_S6009' });
  });
});

describe('policies', () => {
  it('server_wins keeps the stored value of a concurrent write and records the other', async () => {
    const t0 = clock - 10_000;
    const id = await seedTask(t0);
    await edit(BOB, id, { position: 2 }, { position: 1 }, stamp(t0 + 1000, 'client-b'));
    await edit(ALICE, id, { position: 3 }, { position: 1 }, stamp(t0 + 5000, 'client-a'));
    expect(Number((await task(id))['position'])).toBe(2);
    expect(await conflictsOf(id)).toMatchObject([{ column_name: 'position', policy: 'server_wins', loser_value: '3' }]);
    // Not concurrent (A saw 2): applies.
    await edit(ALICE, id, { position: 4 }, { position: 2 }, stamp(t0 + 6000, 'client-a'));
    expect(Number((await task(id))['position'])).toBe(4);
  });

  it('client_wins takes the arriving value and records the overwritten one', async () => {
    const t0 = clock - 10_000;
    const id = await seedTask(t0);
    await edit(BOB, id, { note: 'b' }, { note: 'n0' }, stamp(t0 + 5000, 'client-b'));
    await edit(ALICE, id, { note: 'a' }, { note: 'n0' }, stamp(t0 + 1000, 'client-a'));
    expect((await task(id))['note']).toBe('a');
    expect(await conflictsOf(id)).toMatchObject([
      { column_name: 'note', policy: 'client_wins', winner_value: '"a"', loser_value: '"b"', loser_user_id: 'bob' },
    ]);
  });

  it('a merge function (add) combines concurrent counter increments', async () => {
    const t0 = clock - 10_000;
    const id = await seedTask(t0);
    await edit(BOB, id, { edits: 13 }, { edits: 10 }, stamp(t0 + 1000, 'client-b'));
    await edit(ALICE, id, { edits: 15 }, { edits: 10 }, stamp(t0 + 5000, 'client-a'));
    expect((await task(id))['edits']).toBe(18);
    expect(await conflictsOf(id)).toEqual([]);
  });

  it('conflicts: off keeps arrival order and stores no stamps', async () => {
    await api.apply(
      [tx([{ op: 'PUT', type: 'kinds', id: 'k-off', data: { code: 'a' }, hlc: stamp(clock, 'x') }])],
      ALICE,
    );
    await api.apply(
      [
        tx(
          [patch('k-off', { code: 'b' }, { code: 'z' }, stamp(clock - 9000, 'y'))].map((o) => ({
            ...o,
            type: 'kinds',
          })),
        ),
      ],
      BOB,
    );
    const { rows } = await sql(url, `SELECT code FROM kinds WHERE id = 'k-off'`);
    expect(rows[0].code).toBe('b');
    const clocks = await sql(
      url,
      `SELECT count(*)::int AS n FROM ferry.field_clocks WHERE table_name = 'public.kinds'`,
    );
    expect(clocks.rows[0].n).toBe(0);
  });
});

describe('writes made outside Ferry', () => {
  it('are stamped with the database clock and ordered against concurrent client writes', async () => {
    const t0 = Date.now() - 60_000;
    const id = await seedTask(t0);
    // The backend renames the task now (Postgres clock ≈ Date.now()).
    await sql(url, `UPDATE tasks SET title = 'backend' WHERE id = $1`, [id]);
    const { rows } = await sql(url, `SELECT clocks FROM ferry.field_clocks WHERE row_id = $1`, [id]);
    expect(Object.keys(rows[0].clocks)).toEqual(['title']);
    // A client edit made before that (offline) loses...
    await edit(ALICE, id, { title: 'older' }, { title: 'seed' }, stamp(t0 + 1000, 'client-a'));
    expect((await task(id))['title']).toBe('backend');
    // ...one made after it (without having seen it) wins.
    clock = Date.now() + 5000;
    await edit(BOB, id, { title: 'newer' }, { title: 'seed' }, stamp(clock, 'client-b'));
    expect((await task(id))['title']).toBe('newer');
    expect((await conflictsOf(id)).map((c) => [c['loser_value'], c['winner_user_id'], c['loser_user_id']])).toEqual([
      ['"older"', null, 'alice'],
      ['"backend"', 'bob', null],
    ]);
  });
});

describe('validation hooks', () => {
  const booking = (id: string, slot: string, who: string, room = 'room-1') => ({
    op: 'PUT' as const,
    type: 'bookings',
    id,
    data: { room, slot, who },
    hlc: stamp(clock, 'client-x'),
  });

  async function violations(): Promise<Record<string, unknown>[]> {
    return (await sql(url, `SELECT * FROM ferry_violations ORDER BY id`)).rows;
  }

  it('a double booking is accepted, flagged on both rows, and cleared by the write that resolves it', async () => {
    applied((await api.apply([tx([booking('b1', '14:00', 'alice')])], ALICE)).transactions[0]);
    const second = applied((await api.apply([tx([booking('b2', '14:00', 'bob')])], BOB)).transactions[0]);
    const [flag, ...rest] = await violations();
    expect(rest).toEqual([]);
    expect(flag).toMatchObject({
      id: 'bookings:overlap:b1:b2',
      table_name: 'bookings',
      row_id: 'b2',
      code: 'double_booking',
      message: 'room-1 is booked twice at 14:00',
      row_keys: ['bookings:b2', 'bookings:b1'],
      scope: 'room-1',
      user_id: 'bob',
    });
    expect(second.ops[0]).toEqual({ status: 'applied', violations: ['bookings:overlap:b1:b2'] });
    const { rows } = await sql(url, `SELECT count(*)::int AS n FROM bookings WHERE slot = '14:00'`);
    expect(rows[0].n).toBe(2);

    // Re-writing one of them unchanged keeps the flag (raised again, same id).
    applied(
      (await api.apply([tx([{ op: 'PATCH', type: 'bookings', id: 'b1', data: { who: 'alice!' } }])], ALICE))
        .transactions[0],
    );
    expect((await violations()).map((v) => v['id'])).toEqual(['bookings:overlap:b1:b2']);
    // Alice moves hers to 15:00: the violation clears.
    applied(
      (await api.apply([tx([{ op: 'PATCH', type: 'bookings', id: 'b1', data: { slot: '15:00' } }])], ALICE))
        .transactions[0],
    );
    expect(await violations()).toEqual([]);
  });

  it('a rejecting hook rejects the whole transaction, retryable when it says so', async () => {
    const closed = await api.apply([tx([booking('c1', '09:00', 'a'), booking('c2', 'closed', 'a')])], ALICE);
    expect(closed.transactions[0]).toMatchObject({
      status: 'rejected',
      ops: [
        { status: 'rejected', code: 'FERRY_S6006', retryable: false },
        { status: 'rejected', code: 'FERRY_S6010', retryable: false, message: 'the room is closed then' },
      ],
    });
    const later = await api.apply([tx([booking('c3', 'later', 'a')])], ALICE);
    expect(later.transactions[0]!.ops[0]).toMatchObject({ code: 'FERRY_S6010', retryable: true });
    const { rows } = await sql(url, `SELECT id FROM bookings WHERE id IN ('c1', 'c2', 'c3')`);
    expect(rows).toEqual([]);
  });

  it('a throwing hook rejects only its transaction and leaves nothing of it committed', async () => {
    const id = await seedTask(clock - 1000);
    const answer = await api.apply(
      [
        tx([
          patch(id, { title: 'before boom' }, { title: 'seed' }, stamp(clock, 'client-a')),
          booking('d1', '10:00', 'x'),
        ]),
        tx([booking('d2', '11:00', 'x'), booking('d3', '11:00', 'boom')]),
        tx([booking('d4', '12:00', 'y')]),
      ],
      ALICE,
    );
    expect(answer.transactions.map((t) => t.status)).toEqual(['applied', 'rejected', 'applied']);
    expect(answer.transactions[1]!.ops[1]).toMatchObject({
      code: 'FERRY_S6011',
      retryable: false,
      message: 'the validation hook of bookings threw: hook exploded',
    });
    const { rows } = await sql(url, `SELECT id FROM bookings WHERE id LIKE 'd%' ORDER BY id`);
    expect(rows.map((r) => r.id)).toEqual(['d1', 'd4']);
    expect((await task(id))['title']).toBe('before boom');
  });
});

describe('a service role that may not create tables', () => {
  it('fails with FERRY_S1204 naming what to grant, and starts once an administrator created them', async () => {
    const adminUrl = await createWriteTestDatabase();
    await sql(adminUrl, EXTRA_SCHEMA);
    const role = `ferry_limited_${process.pid}`;
    await sql(adminUrl, `CREATE ROLE ${role} LOGIN PASSWORD 'limited'`);
    await sql(adminUrl, `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${role}`);
    const limited = new URL(adminUrl);
    limited.username = role;
    limited.password = 'limited';
    const open = () => openTestWriteApi(limited.href, { rulesText: RULES, hooks });
    await expect(open()).rejects.toMatchObject({
      code: 'FERRY_S1204',
      message: expect.stringMatching(/cannot create schema "ferry".*Grant the service role CREATE/),
    });
    // An administrator creates Ferry's tables once (here: by opening the write API as the owner).
    const admin = await openTestWriteApi(adminUrl, { rulesText: RULES, hooks });
    await admin.close();
    await sql(
      adminUrl,
      `GRANT USAGE ON SCHEMA ferry TO ${role};
       GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ferry, public TO ${role};
       GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO ${role}`,
    );
    const api = await open();
    try {
      const id = taskId(9001);
      const answer = await api.apply(
        [tx([{ op: 'PUT', type: 'tasks', id, data: { workspace_id: WS_SHARED, title: 't' }, hlc: stamp(clock, 'c') }])],
        ALICE,
      );
      expect(answer.transactions[0]).toMatchObject({ status: 'applied' });
    } finally {
      await api.close();
    }
  });
});
