import { sql } from '@ferry/test-utils';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SOURCE_SESSION_OPTIONS, TypeRegistry } from '../replication/type-mapping.js';
import {
  ALICE,
  BOB,
  createWriteTestDatabase,
  openTestWriteApi,
  taskId,
  tx,
  WS_ALICE,
  WS_BOB,
  WS_SHARED,
} from './testing.js';
import type { WriteApi } from './write-api.js';
import { WriteRulesError } from './write-rules.js';

let url: string;
let api: WriteApi;
let n = 0;

beforeAll(async () => {
  url = await createWriteTestDatabase();
  api = await openTestWriteApi(url);
});
afterAll(async () => {
  await api?.close();
});

const nextTask = () => taskId(++n);

async function row(table: string, id: string): Promise<Record<string, unknown> | undefined> {
  const { rows } = await sql(url, `SELECT * FROM ${table} WHERE id::text = $1`, [id]);
  return rows[0];
}

async function logCount(id: string): Promise<number> {
  const { rows } = await sql(url, 'SELECT count(*)::int AS n FROM apply_log WHERE row_id = $1', [id]);
  return rows[0].n as number;
}

describe('applying ops', () => {
  it('PUT inserts, PUT again upserts the given columns, PATCH updates only given columns, DELETE deletes', async () => {
    const id = nextTask();
    const insert = await api.apply(
      [tx([{ op: 'PUT', type: 'tasks', id, data: { workspace_id: WS_ALICE, title: 'a', note: 'keep' } }])],
      ALICE,
    );
    expect(insert.transactions[0]).toMatchObject({ status: 'applied', ops: [{ status: 'applied' }] });
    expect(await row('tasks', id)).toMatchObject({ title: 'a', note: 'keep', done: false, created_by: 'alice' });

    await api.apply([tx([{ op: 'PUT', type: 'tasks', id, data: { workspace_id: WS_ALICE, title: 'b' } }])], ALICE);
    expect(await row('tasks', id)).toMatchObject({ title: 'b', note: 'keep' });

    await api.apply([tx([{ op: 'PATCH', type: 'tasks', id, data: { done: 1 } }])], ALICE);
    expect(await row('tasks', id)).toMatchObject({ title: 'b', note: 'keep', done: true });

    const del = await api.apply([tx([{ op: 'DELETE', type: 'tasks', id }])], ALICE);
    expect(del.transactions[0]!.status).toBe('applied');
    expect(await row('tasks', id)).toBeUndefined();
  });

  it('PATCH and DELETE of a missing row are applied without effect', async () => {
    const id = nextTask();
    const result = await api.apply(
      [tx([{ op: 'PATCH', type: 'tasks', id, data: { title: 'x' } }]), tx([{ op: 'DELETE', type: 'tasks', id }])],
      ALICE,
    );
    expect(result.transactions.map((t) => t.status)).toEqual(['applied', 'applied']);
    expect(await row('tasks', id)).toBeUndefined();
  });

  it('applies several ops on one row within a transaction and across transactions in order', async () => {
    const id = nextTask();
    const result = await api.apply(
      [
        tx([
          { op: 'PUT', type: 'tasks', id, data: { workspace_id: WS_ALICE, title: 'one' } },
          { op: 'PATCH', type: 'tasks', id, data: { position: 5 } },
        ]),
        tx([{ op: 'PATCH', type: 'tasks', id, data: { title: 'two' } }]),
        tx([{ op: 'DELETE', type: 'tasks', id }]),
        tx([{ op: 'PUT', type: 'tasks', id, data: { workspace_id: WS_ALICE, title: 'three' } }]),
      ],
      ALICE,
    );
    expect(result.transactions.map((t) => t.status)).toEqual(['applied', 'applied', 'applied', 'applied']);
    expect(await row('tasks', id)).toMatchObject({ title: 'three', position: '0' });
  });

  it('follows one row through many transactions of a request, leaving out a rejected one', async () => {
    const strict = await openTestWriteApi(url, {
      rulesText: `tables:\n  kinds:\n    operations: [insert, update, delete]\n    columns: [code, flag]\n    immutable: [ref]\n`,
    });
    const [r1, r2] = ['a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12'];
    try {
      const result = await strict.apply(
        [
          tx([{ op: 'PUT', type: 'kinds', id: 'multi', data: { ref: r1, code: 'a' } }]),
          tx([{ op: 'PATCH', type: 'kinds', id: 'multi', data: { code: 'b' } }]),
          tx([
            { op: 'PATCH', type: 'kinds', id: 'multi', data: { code: 'c' } },
            { op: 'PATCH', type: 'kinds', id: 'multi', data: { ref: r2 } },
          ]),
          tx([{ op: 'PATCH', type: 'kinds', id: 'multi', data: { ref: r1, flag: 1 } }]),
        ],
        ALICE,
      );
      expect(result.transactions.map((t) => t.status)).toEqual(['applied', 'applied', 'rejected', 'applied']);
      expect(result.transactions[2]!.ops[1]).toMatchObject({ code: 'FERRY_S6003' });
      expect(await row('kinds', 'multi')).toMatchObject({ ref: r1, code: 'b', flag: true });

      const replaced = await strict.apply(
        [
          tx([{ op: 'PATCH', type: 'kinds', id: 'multi', data: { code: 'e' } }]),
          tx([{ op: 'DELETE', type: 'kinds', id: 'multi' }]),
          tx([{ op: 'PUT', type: 'kinds', id: 'multi', data: { code: 'd' } }]),
        ],
        ALICE,
      );
      expect(replaced.transactions.map((t) => t.status)).toEqual(['applied', 'applied', 'applied']);
      expect(await row('kinds', 'multi')).toMatchObject({ ref: null, code: 'd', flag: null });
    } finally {
      await strict.close();
    }
  });

  it('converts SQLite values back to each column type (round trip equals)', async () => {
    const values = {
      flag: 1,
      big: 9007199254740993n,
      amount: '12345678901234567890.000000000000000001',
      doc: '{"a": [1, 2], "b": {"c": null}}',
      raw: '{"z":1,  "a":2}',
      tags: '["x","y \\"q\\"",null,"{braces}"]',
      nums: '[1,null,3]',
      blob: Buffer.from([0xde, 0xad, 0xbe, 0xef, 0, 10]).toString('base64'),
      at: '2024-05-01T12:30:00.123456Z',
      day: '2024-02-29',
      ref: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
      code: 'abc',
    };
    const result = await api.apply([tx([{ op: 'PUT', type: 'kinds', id: 'types-1', data: values }])], ALICE);
    expect(result.transactions[0]!.status).toBe('applied');

    // Read back the way replication does (text output → type mapping).
    const client = new pg.Client({ connectionString: url, options: SOURCE_SESSION_OPTIONS });
    await client.connect();
    try {
      const columns = Object.keys(values);
      const { rows, fields } = await client.query({
        text: `SELECT ${columns.map((c) => `${c}::text AS ${c}`).join(', ')}, ${columns.join(', ')} FROM kinds WHERE id = 'types-1'`,
        rowMode: 'array',
      });
      const { rows: types } = await client.query(
        `SELECT attname, atttypid::int AS oid FROM pg_attribute WHERE attrelid = 'kinds'::regclass AND attnum > 0`,
      );
      const oids = new Map(types.map((t) => [t.attname as string, t.oid as number]));
      const registry = new TypeRegistry();
      const back: Record<string, unknown> = {};
      columns.forEach((c, i) => (back[c] = registry.map(oids.get(c)!, rows[0][i] as string)));
      expect(fields.length).toBe(columns.length * 2);
      expect(back).toEqual(values);
    } finally {
      await client.end();
    }

    // false / 0, a safe int8, a numeric sent as a number, an int8 sent as text.
    await api.apply(
      [
        tx([
          {
            op: 'PATCH',
            type: 'kinds',
            id: 'types-1',
            data: { flag: false, big: '-9223372036854775808', amount: 2.5 },
          },
        ]),
      ],
      ALICE,
    );
    const { rows } = await sql(url, `SELECT flag, big::text, amount::text FROM kinds WHERE id = 'types-1'`);
    expect(rows[0]).toEqual({ flag: false, big: '-9223372036854775808', amount: '2.5' });
  });

  it('rejects a value Postgres refuses with FERRY_S6005 and its message, not retryable', async () => {
    const result = await api.apply(
      [
        tx([{ op: 'PUT', type: 'kinds', id: 'bad-uuid', data: { ref: 'not-a-uuid' } }]),
        tx([{ op: 'PUT', type: 'kinds', id: 'too-long', data: { code: 'abcd' } }]),
        tx([{ op: 'PUT', type: 'tasks', id: nextTask(), data: { workspace_id: WS_ALICE, title: 'forbidden' } }]),
        tx([{ op: 'PUT', type: 'tasks', id: nextTask(), data: { workspace_id: WS_ALICE } }]),
        tx([{ op: 'PUT', type: 'kinds', id: 'bad-bytea', data: { blob: '%%%' } }]),
        tx([{ op: 'PUT', type: 'kinds', id: 'fine' }]),
      ],
      ALICE,
    );
    const [uuid, tooLong, check, notNull, bytea, fine] = result.transactions;
    expect(uuid!.ops[0]).toMatchObject({ code: 'FERRY_S6005', retryable: false });
    expect((uuid!.ops[0] as { message: string }).message).toContain('invalid input syntax for type uuid');
    expect((tooLong!.ops[0] as { message: string }).message).toContain('too long');
    expect((check!.ops[0] as { message: string }).message).toContain('check constraint');
    expect((notNull!.ops[0] as { message: string }).message).toContain('null value in column "title"');
    expect(bytea!.ops[0]).toMatchObject({ code: 'FERRY_S6005' });
    expect(fine!.status).toBe('applied');
    expect(await row('kinds', 'bad-uuid')).toBeUndefined();
    expect(await row('kinds', 'fine')).toBeDefined();
  });

  it('answers a foreign key violation in the middle of a batch and applies the others', async () => {
    const [a, b, c] = [nextTask(), nextTask(), nextTask()];
    const result = await api.apply(
      [
        tx([{ op: 'PUT', type: 'tasks', id: a, data: { workspace_id: WS_ALICE, title: 'a' } }]),
        tx([
          { op: 'PUT', type: 'kinds', id: 'fk-neighbour' },
          {
            op: 'PUT',
            type: 'tasks',
            id: b,
            data: { workspace_id: '99999999-9999-4999-8999-999999999999', title: 'b' },
          },
        ]),
        tx([{ op: 'PUT', type: 'tasks', id: c, data: { workspace_id: WS_ALICE, title: 'c' } }]),
      ],
      ALICE,
    );
    // Workspace 9999… does not exist: the where (membership) fails first, or the FK: either way rejected.
    expect(result.transactions.map((t) => t.status)).toEqual(['applied', 'rejected', 'applied']);
    expect(result.transactions[1]!.ops[0]).toMatchObject({ code: 'FERRY_S6006' });
    expect(await row('kinds', 'fk-neighbour')).toBeUndefined();
    expect(await row('tasks', a)).toBeDefined();
    expect(await row('tasks', c)).toBeDefined();
  });

  it('answers a constraint violation found only by Postgres with S6005 (fallback replays one transaction at a time)', async () => {
    const kindsOnly = await openTestWriteApi(url, {
      rulesText: `tables:\n  tasks:\n    operations: [insert, update, delete]\n    columns: '*'\n`,
    });
    try {
      const [a, b] = [nextTask(), nextTask()];
      const result = await kindsOnly.apply(
        [
          tx([{ op: 'PUT', type: 'tasks', id: a, data: { workspace_id: WS_ALICE, title: 'a' } }]),
          tx([
            { op: 'PUT', type: 'kinds', id: 'fk-2' },
            {
              op: 'PUT',
              type: 'tasks',
              id: b,
              data: { workspace_id: '99999999-9999-4999-8999-999999999999', title: 'b' },
            },
          ]),
        ],
        ALICE,
      );
      // kinds exists but is not in these rules: S6001 before Postgres is asked.
      expect(result.transactions[1]!.ops[0]).toMatchObject({ code: 'FERRY_S6001' });
      const fk = await kindsOnly.apply(
        [
          tx([
            {
              op: 'PUT',
              type: 'tasks',
              id: b,
              data: { workspace_id: '99999999-9999-4999-8999-999999999999', title: 'b' },
            },
          ]),
          tx([{ op: 'PATCH', type: 'tasks', id: a, data: { title: 'a2' } }]),
        ],
        ALICE,
      );
      expect(fk.transactions[0]!.ops[0]).toMatchObject({ code: 'FERRY_S6005', retryable: false });
      expect((fk.transactions[0]!.ops[0] as { message: string }).message).toContain('foreign key');
      expect(fk.transactions[1]!.status).toBe('applied');
      expect(await row('tasks', a)).toMatchObject({ title: 'a2' });
    } finally {
      await kindsOnly.close();
    }
  });
});

describe('write rules', () => {
  it('rejects operations and tables the rules do not allow (S6001) and unknown tables (S6007)', async () => {
    await sql(url, `INSERT INTO locked VALUES ('l1', 'v')`);
    const result = await api.apply(
      [
        tx([{ op: 'PUT', type: 'locked', id: 'l2', data: { v: 'x' } }]),
        tx([{ op: 'PATCH', type: 'locked', id: 'l1', data: { v: 'x' } }]),
        tx([{ op: 'PUT', type: 'apply_log', id: '1', data: {} }]),
        tx([{ op: 'PUT', type: 'no_such_table', id: '1', data: {} }]),
        tx([{ op: 'DELETE', type: 'locked', id: 'l1' }]),
      ],
      ALICE,
    );
    expect(result.transactions.map((t) => (t.ops[0] as { code?: string }).code ?? t.status)).toEqual([
      'FERRY_S6001',
      'FERRY_S6001',
      'FERRY_S6001',
      'FERRY_S6007',
      'applied',
    ]);
  });

  it('rejects an update when only insert is allowed (S6001)', async () => {
    const insertOnly = await openTestWriteApi(url, {
      rulesText: `tables:\n  kinds:\n    operations: [insert]\n    columns: [flag]\n`,
    });
    try {
      const first = await insertOnly.apply([tx([{ op: 'PUT', type: 'kinds', id: 'ins-1', data: { flag: 1 } }])], ALICE);
      expect(first.transactions[0]!.status).toBe('applied');
      const again = await insertOnly.apply([tx([{ op: 'PUT', type: 'kinds', id: 'ins-1', data: { flag: 0 } }])], ALICE);
      expect(again.transactions[0]!.ops[0]).toMatchObject({ code: 'FERRY_S6001' });
      const patch = await insertOnly.apply(
        [tx([{ op: 'PATCH', type: 'kinds', id: 'ins-1', data: { flag: 0 } }])],
        ALICE,
      );
      expect(patch.transactions[0]!.ops[0]).toMatchObject({ code: 'FERRY_S6001' });
      expect(await row('kinds', 'ins-1')).toMatchObject({ flag: true });
    } finally {
      await insertOnly.close();
    }
  });

  it('rejects non-writable (S6002) and immutable (S6003) changes, ignores unchanged values', async () => {
    const id = nextTask();
    await api.apply([tx([{ op: 'PUT', type: 'tasks', id, data: { workspace_id: WS_SHARED, title: 't' } }])], ALICE);
    const result = await api.apply(
      [
        tx([{ op: 'PATCH', type: 'tasks', id, data: { edits: 5 } }]),
        tx([{ op: 'PATCH', type: 'tasks', id, data: { workspace_id: WS_ALICE } }]),
        // A full row carrying unchanged protected columns is fine.
        tx([
          {
            op: 'PUT',
            type: 'tasks',
            id,
            data: { workspace_id: WS_SHARED, edits: 0, title: 't2', created_by: 'alice' },
          },
        ]),
        tx([{ op: 'PATCH', type: 'tasks', id, data: { workspace_id: WS_SHARED.toUpperCase() } }]),
      ],
      ALICE,
    );
    expect(result.transactions.map((t) => (t.ops[0] as { code?: string }).code ?? t.status)).toEqual([
      'FERRY_S6002',
      'FERRY_S6003',
      'applied',
      'applied',
    ]);
    expect(await row('tasks', id)).toMatchObject({ workspace_id: WS_SHARED, edits: 0, title: 't2' });
    // On insert, a non-writable column must be absent or null.
    const insert = await api.apply(
      [tx([{ op: 'PUT', type: 'tasks', id: nextTask(), data: { workspace_id: WS_ALICE, title: 'x', edits: 3 } }])],
      ALICE,
    );
    expect(insert.transactions[0]!.ops[0]).toMatchObject({ code: 'FERRY_S6002' });
  });

  it("rejects another user's row by owner (S6004) and forces the owner on insert", async () => {
    const bobs = nextTask();
    await api.apply(
      [tx([{ op: 'PUT', type: 'tasks', id: bobs, data: { workspace_id: WS_SHARED, title: 'bob' } }])],
      BOB,
    );
    const result = await api.apply(
      [
        tx([{ op: 'PATCH', type: 'tasks', id: bobs, data: { title: 'mine now' } }]),
        tx([{ op: 'DELETE', type: 'tasks', id: bobs }]),
        tx([
          { op: 'PUT', type: 'tasks', id: bobs, data: { workspace_id: WS_SHARED, title: 'x', created_by: 'alice' } },
        ]),
      ],
      ALICE,
    );
    expect(result.transactions.map((t) => (t.ops[0] as { code?: string }).code)).toEqual([
      'FERRY_S6004',
      'FERRY_S6004',
      'FERRY_S6004',
    ]);
    expect(await row('tasks', bobs)).toMatchObject({ title: 'bob', created_by: 'bob' });

    const forged = nextTask();
    const insert = await api.apply(
      [tx([{ op: 'PUT', type: 'tasks', id: forged, data: { workspace_id: WS_ALICE, title: 'f', created_by: 'bob' } }])],
      ALICE,
    );
    expect(insert.transactions[0]!.status).toBe('applied');
    expect(await row('tasks', forged)).toMatchObject({ created_by: 'alice' });
  });

  it('checks where on the stored row and on the row after the write (S6004)', async () => {
    const inBobs = nextTask();
    await api.apply([tx([{ op: 'PUT', type: 'tasks', id: inBobs, data: { workspace_id: WS_BOB, title: 'b' } }])], BOB);
    await sql(url, `UPDATE tasks SET created_by = 'alice' WHERE id = $1`, [inBobs]); // owner matches; where does not
    const before = await api.apply(
      [
        tx([{ op: 'PATCH', type: 'tasks', id: inBobs, data: { title: 'x' } }]),
        tx([{ op: 'DELETE', type: 'tasks', id: inBobs }]),
      ],
      ALICE,
    );
    expect(before.transactions.map((t) => (t.ops[0] as { code?: string }).code)).toEqual([
      'FERRY_S6004',
      'FERRY_S6004',
    ]);

    const after = await api.apply(
      [
        tx([{ op: 'PUT', type: 'tasks', id: nextTask(), data: { workspace_id: WS_BOB, title: 'sneaky' } }]),
        tx([{ op: 'PUT', type: 'tasks', id: nextTask(), data: { workspace_id: WS_ALICE, title: 'fine' } }]),
      ],
      ALICE,
    );
    expect(after.transactions[0]!.ops[0]).toMatchObject({ code: 'FERRY_S6004', retryable: false });
    expect(after.transactions[1]!.status).toBe('applied');
    const { rows } = await sql(url, `SELECT count(*)::int AS n FROM tasks WHERE title = 'sneaky'`);
    expect(rows[0].n).toBe(0);
  });

  it('sees membership changes of earlier transactions in the same request', async () => {
    const membersRules = `tables:
  workspace_members:
    operations: [insert, delete]
    columns: [workspace_id, user_id]
  tasks:
    operations: [insert]
    columns: [title, workspace_id]
    where: "workspace_id IN (SELECT workspace_id FROM workspace_members WHERE user_id = request.user_id())"
`;
    const membersApi = await openTestWriteApi(url, { rulesText: membersRules });
    try {
      const [early, late] = [nextTask(), nextTask()];
      const member = '44444444-4444-4444-8444-444444444444';
      const result = await membersApi.apply(
        [
          tx([{ op: 'PUT', type: 'tasks', id: early, data: { workspace_id: WS_BOB, title: 'too early' } }]),
          tx([{ op: 'PUT', type: 'workspace_members', id: member, data: { workspace_id: WS_BOB, user_id: 'carol' } }]),
          tx([{ op: 'PUT', type: 'tasks', id: late, data: { workspace_id: WS_BOB, title: 'after joining' } }]),
        ],
        { userId: 'carol', claims: { sub: 'carol' } },
      );
      expect(result.transactions.map((t) => t.status)).toEqual(['rejected', 'applied', 'applied']);
    } finally {
      await membersApi.close();
    }
  });

  it('rejects identifiers carrying SQL with S6007 and never runs them', async () => {
    const result = await api.apply(
      [
        tx([{ op: 'PUT', type: 'tasks"; DROP TABLE locked; --', id: '1', data: {} }]),
        tx([{ op: 'PUT', type: 'kinds', id: 'inj', data: { 'flag" = true; DROP TABLE locked; --': 1 } }]),
      ],
      ALICE,
    );
    expect(result.transactions.map((t) => (t.ops[0] as { code?: string }).code)).toEqual([
      'FERRY_S6007',
      'FERRY_S6007',
    ]);
    const { rows } = await sql(url, `SELECT to_regclass('public.locked') IS NOT NULL AS exists`);
    expect(rows[0].exists).toBe(true);
  });

  it('applies nothing of a transaction with one bad op; the others answer S6006', async () => {
    const id = nextTask();
    const result = await api.apply(
      [
        tx([
          { op: 'PUT', type: 'tasks', id, data: { workspace_id: WS_ALICE, title: 'first' } },
          { op: 'PUT', type: 'kinds', id: 'atomic' },
          { op: 'PATCH', type: 'tasks', id, data: { edits: 9 } },
        ]),
      ],
      ALICE,
    );
    expect(result.transactions[0]).toMatchObject({
      status: 'rejected',
      ops: [
        { status: 'rejected', code: 'FERRY_S6006', retryable: false },
        { status: 'rejected', code: 'FERRY_S6006' },
        { status: 'rejected', code: 'FERRY_S6002' },
      ],
    });
    expect(await row('tasks', id)).toBeUndefined();
    expect(await row('kinds', 'atomic')).toBeUndefined();
  });
});

describe('idempotency', () => {
  it('applies a transaction once; the same batch again answers duplicate with the stored result', async () => {
    const id = nextTask();
    const batch = [
      tx([{ op: 'PUT', type: 'tasks', id, data: { workspace_id: WS_ALICE, title: 'once' } }]),
      tx([{ op: 'PATCH', type: 'tasks', id, data: { edits: 1 } }]),
    ];
    const first = await api.apply(batch, ALICE);
    expect(first.transactions.map((t) => [t.status, t.duplicate])).toEqual([
      ['applied', undefined],
      ['rejected', undefined],
    ]);
    const second = await api.apply(batch, ALICE);
    expect(second.transactions.map((t) => [t.status, t.duplicate])).toEqual([
      ['applied', true],
      ['rejected', true],
    ]);
    expect(second.transactions[1]!.ops).toEqual(first.transactions[1]!.ops);
    expect(await logCount(id)).toBe(1);
    // Keys are per user: bob's transaction with the same key is his own.
    const bobs = await api.apply([{ ...batch[0]!, ops: [{ op: 'DELETE', type: 'tasks', id: nextTask() }] }], BOB);
    expect(bobs.transactions[0]!.duplicate).toBeUndefined();
  });

  it('forgets keys past their retention, and only those', async () => {
    const old = [tx([{ op: 'PUT', type: 'tasks', id: nextTask(), data: { workspace_id: WS_ALICE, title: 'old' } }])];
    const recent = [tx([{ op: 'PUT', type: 'tasks', id: nextTask(), data: { workspace_id: WS_ALICE, title: 'new' } }])];
    await api.apply(old, ALICE);
    await api.apply(recent, ALICE);
    await sql(url, `UPDATE ferry.write_transactions SET applied_at = now() - interval '49 hours' WHERE key = $1`, [
      old[0]!.key,
    ]);
    expect(await api.pruneIdempotencyKeys(48)).toBe(1);
    expect((await api.apply(recent, ALICE)).transactions[0]!.duplicate).toBe(true);
    // The forgotten one is applied again: that is what retention means.
    expect((await api.apply(old, ALICE)).transactions[0]!.duplicate).toBeUndefined();
  });

  it('applies two concurrent identical requests once', async () => {
    const ids = [nextTask(), nextTask(), nextTask()];
    const batch = ids.map((id) =>
      tx([{ op: 'PUT', type: 'tasks', id, data: { workspace_id: WS_ALICE, title: 'race' } }]),
    );
    const [a, b] = await Promise.all([api.apply(batch, ALICE), api.apply(batch, ALICE)]);
    const duplicates = [...a.transactions, ...b.transactions].filter((t) => t.duplicate === true).length;
    expect(duplicates).toBe(3);
    expect([...a.transactions, ...b.transactions].every((t) => t.status === 'applied')).toBe(true);
    for (const id of ids) expect(await logCount(id)).toBe(1);
  });

  it('a repeated key inside one request applies once', async () => {
    const id = nextTask();
    const same = tx([{ op: 'PUT', type: 'tasks', id, data: { workspace_id: WS_ALICE, title: 'twice' } }]);
    const result = await api.apply([same, same], ALICE);
    expect(result.transactions.map((t) => [t.status, t.duplicate])).toEqual([
      ['applied', undefined],
      ['applied', true],
    ]);
    expect(await logCount(id)).toBe(1);
  });
});

describe('transient failures', () => {
  it('answers retry for a locked row (lock_timeout) and for every later transaction; earlier ones apply', async () => {
    const [a, locked, c] = [nextTask(), nextTask(), nextTask()];
    await api.apply(
      [tx([{ op: 'PUT', type: 'tasks', id: locked, data: { workspace_id: WS_ALICE, title: 'l' } }])],
      ALICE,
    );
    const pool = new pg.Pool({ connectionString: url, options: '-c lock_timeout=200', max: 2 });
    const impatient = await openTestWriteApi(url, { pool });
    const holder = new pg.Client({ connectionString: url });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE', [locked]);
      const batch = [
        tx([{ op: 'PUT', type: 'tasks', id: a, data: { workspace_id: WS_ALICE, title: 'a' } }]),
        tx([{ op: 'PATCH', type: 'tasks', id: locked, data: { title: 'changed' } }]),
        tx([{ op: 'PUT', type: 'tasks', id: c, data: { workspace_id: WS_ALICE, title: 'c' } }]),
      ];
      const result = await impatient.apply(batch, ALICE);
      expect(result.transactions.map((t) => t.status)).toEqual(['applied', 'retry', 'retry']);
      expect(result.transactions[1]!.ops[0]).toMatchObject({ code: 'FERRY_S6008', retryable: true });
      expect(result.transactions[2]!.ops[0]).toMatchObject({ code: 'FERRY_S6008', retryable: true });
      expect(await row('tasks', a)).toBeDefined();
      expect(await row('tasks', c)).toBeUndefined();

      await holder.query('COMMIT');
      const again = await impatient.apply(batch, ALICE);
      expect(again.transactions.map((t) => [t.status, t.duplicate ?? false])).toEqual([
        ['applied', true],
        ['applied', false],
        ['applied', false],
      ]);
      expect(await row('tasks', locked)).toMatchObject({ title: 'changed' });
    } finally {
      await holder.end();
      await impatient.close();
      await pool.end();
    }
  });
});

describe('start-up checks against the live schema', () => {
  it('fails with FERRY_S1202 naming file and line for unknown tables and columns and tables without id', async () => {
    const error = await openTestWriteApi(url, {
      rulesText: `tables:
  nope:
    operations: [delete]
  kinds:
    operations: [insert]
    columns: [flag, nothing]
  apply_log:
    operations: [delete]
`,
    }).catch((e: unknown) => e);
    expect(WriteRulesError.isWriteRulesError(error)).toBe(true);
    const rulesError = error as WriteRulesError;
    expect(rulesError.code).toBe('FERRY_S1202');
    expect(rulesError.problems.map((p) => `${p.file}:${p.line}:${p.column}`)).toEqual([
      'write-rules.yaml:2:3',
      'write-rules.yaml:6:21',
      'write-rules.yaml:7:3',
    ]);
    expect(rulesError.message).toContain('table public.nope does not exist');
    expect(rulesError.message).toContain('column kinds.nothing does not exist');
    expect(rulesError.message).toContain('must have a column `id` as its primary key');
  });

  it('fails with FERRY_S1202 when a where names an unknown column', async () => {
    const error = await openTestWriteApi(url, {
      rulesText: `tables:\n  kinds:\n    operations: [delete]\n    where: "no_such_column = request.user_id()"\n`,
    }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'FERRY_S1202' });
    expect((error as Error).message).toMatch(
      /^write-rules\.yaml:4:12: where does not resolve: column "no_such_column"/,
    );
  });
});
