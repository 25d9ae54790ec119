/**
 * The Postgres → SQLite value mapping end to end, for every common type:
 * a row copied by the initial snapshot and a row streamed from the WAL
 * (inserted in another session time zone) must both arrive in the Ferry
 * client's typed table exactly as docs/types.md and the replication spec
 * say. The databases' default zone is America/Sao_Paulo on purpose.
 */
import { column, Schema, Table } from '@ferry/client';
import type { FerryService } from '@ferry/service';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cleanup, openClient, pgQuery, startServiceFixture, type TestClient, waitForRows } from './stack.js';

const RULES = `
bucket_definitions:
  everything:
    data:
      - SELECT * FROM typed
`;

const SOURCE = `
  CREATE TABLE typed (
    id text PRIMARY KEY,
    i2 int2, i4 int4, i8 int8, i8_min int8, i8_max int8, i8_small int8,
    num numeric, num_tiny numeric, f8 float8, f4 real,
    b_true boolean, b_false boolean,
    txt text, vc varchar(40), u uuid,
    tstz timestamptz, tstz_local timestamptz, ts timestamp, d date, tm time, iv interval,
    j json, jb jsonb,
    ai int4[], at text[],
    bin bytea,
    null_text text, null_int int8
  );
`;

const TEXT = 'héllo wörld 🚢 "quoted" \\ back ñ 中文 \n newline';

const INSERT = `
  INSERT INTO typed VALUES (
    $1,
    -32768, 2147483647, 9007199254740993, -9223372036854775808, 9223372036854775807, 42,
    12345678901234567890.123456789, 0.00000000000000000001, 3.141592653589793, 1.5,
    true, false,
    $2, 'varchar value', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    '2024-05-01 09:30:00.5-03', '2024-01-15 08:00:00', '2024-05-01 09:30:00.123456', '2024-02-29', '13:45:07', '1 day 02:03:04',
    '{"a": [1, 2, {"b": null}], "big": 12345678901234567890}', '{"z": 1, "a": "x", "big": 12345678901234567890}',
    '{1,NULL,3}', ARRAY['a', NULL, 'with "quotes"', 'comma,here', 'back\\slash', '', 'NULL'],
    '\\x00ff10',
    NULL, NULL
  )`;

const typedTable = new Table({
  i2: column.integer,
  i4: column.integer,
  i8: column.integer,
  i8_min: column.integer,
  i8_max: column.integer,
  i8_small: column.integer,
  num: column.text,
  num_tiny: column.text,
  f8: column.real,
  f4: column.real,
  b_true: column.integer,
  b_false: column.integer,
  txt: column.text,
  vc: column.text,
  u: column.text,
  tstz: column.text,
  tstz_local: column.text,
  ts: column.text,
  d: column.text,
  tm: column.text,
  iv: column.text,
  j: column.text,
  jb: column.text,
  ai: column.text,
  at: column.text,
  bin: column.text,
  null_text: column.text,
  null_int: column.integer,
});
const schema = new Schema({ typed: typedTable });

let url: string;
let service: FerryService;
let client: TestClient;
const cleanup = new Cleanup();

/** Inserts a row through a session in `timeZone` (timestamptz literals without offset are read in that zone). */
async function insertRow(id: string, timeZone: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(`SET TIME ZONE '${timeZone}'`);
    await c.query(INSERT, [id, TEXT]);
  } finally {
    await c.end();
  }
}

beforeAll(async () => {
  const fixture = await startServiceFixture(cleanup, {
    database: 'ferry_e2e_types',
    source: SOURCE,
    rules: RULES,
    beforeService: async (databaseUrl) => {
      url = databaseUrl; // insertRow needs it before the fixture returns
      // Copied by the initial snapshot; '2024-01-15 08:00:00' read in Tokyo (+09) = 23:00 UTC the day before.
      await insertRow('snapshot', 'Asia/Tokyo');
    },
  });
  url = fixture.url;
  service = fixture.service;
  const dir = fixture.dir;
  const keys = fixture.keys;
  client = await openClient({ cleanup, dir, schema, endpoint: () => service.url, token: () => keys.token('u1') });
  await client.db.waitForFirstSync();
  // Streamed from the WAL, inserted in the same zone so both rows must map identically.
  await insertRow('streamed', 'Asia/Tokyo');
  await waitForRows(client.db, 'SELECT id FROM typed ORDER BY id', [{ id: 'snapshot' }, { id: 'streamed' }]);
});

afterAll(() => cleanup.run());

/** What Postgres itself prints for json/jsonb: the client must hold exactly this text. */
async function postgresText(columnName: string): Promise<string> {
  const rows = await pgQuery<{ v: string }>(url, `SELECT ${columnName}::text AS v FROM typed WHERE id = 'snapshot'`);
  return rows[0]!.v;
}

describe.each(['snapshot', 'streamed'])('the %s row', (id) => {
  const row = async (sql: string) => (await client.db.getAll(`SELECT ${sql} FROM typed WHERE id = ?`, [id]))[0]!;

  it('maps int2/int4/int8 to integers, int8 beyond 2^53 exactly', async () => {
    expect(await row('i2, i4, i8_small')).toEqual({ i2: -32768, i4: 2147483647, i8_small: 42 });
    expect(
      await row(
        `CAST(i8 AS TEXT) AS i8, CAST(i8_min AS TEXT) AS i8_min, CAST(i8_max AS TEXT) AS i8_max,
         typeof(i8) AS t8, typeof(i8_min) AS tmin, typeof(i2) AS t2`,
      ),
    ).toEqual({
      i8: '9007199254740993',
      i8_min: '-9223372036854775808',
      i8_max: '9223372036854775807',
      t8: 'integer',
      tmin: 'integer',
      t2: 'integer',
    });
  });

  it('maps numeric to its exact text', async () => {
    expect(await row('num, num_tiny, typeof(num) AS t')).toEqual({
      num: '12345678901234567890.123456789',
      num_tiny: '0.00000000000000000001',
      t: 'text',
    });
  });

  it('maps float8/real to REAL and booleans to 1/0', async () => {
    expect(await row('f8, f4, typeof(f8) AS tf, b_true, b_false, typeof(b_true) AS tb')).toEqual({
      f8: 3.141592653589793,
      f4: 1.5,
      tf: 'real',
      b_true: 1,
      b_false: 0,
      tb: 'integer',
    });
  });

  it('maps text, varchar and uuid to text, unicode intact', async () => {
    expect(await row('txt, vc, u')).toEqual({
      txt: TEXT,
      vc: 'varchar value',
      u: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    });
  });

  it('maps timestamptz to ISO-8601 UTC whatever the session zone, timestamp/date/time/interval to text', async () => {
    const r = await row('tstz, tstz_local, ts, d, tm, iv');
    expect(r).toEqual({
      tstz: '2024-05-01T12:30:00.500000Z',
      tstz_local: '2024-01-14T23:00:00.000000Z',
      ts: '2024-05-01T09:30:00.123456',
      d: '2024-02-29',
      tm: '13:45:07',
      iv: '1 day 02:03:04',
    });
    // The same instant as Postgres holds.
    const [epoch] = await pgQuery<{ ms: string }>(
      url,
      `SELECT (extract(epoch FROM tstz) * 1000)::bigint::text AS ms FROM typed WHERE id = $1`,
      [id],
    );
    expect(Date.parse(String(r['tstz']))).toBe(Number(epoch!.ms));
  });

  it('maps json and jsonb to the JSON text Postgres prints (big numbers intact)', async () => {
    const r = await row('j, jb');
    expect(r['j']).toBe(await postgresText('j'));
    expect(r['jb']).toBe(await postgresText('jb'));
    expect(String(r['jb'])).toContain('12345678901234567890');
  });

  it('maps int4[] and text[] (NULLs, quotes, commas, backslashes) to JSON array text', async () => {
    const r = await row('ai, at');
    expect(JSON.parse(String(r['ai']))).toEqual([1, null, 3]);
    expect(JSON.parse(String(r['at']))).toEqual(['a', null, 'with "quotes"', 'comma,here', 'back\\slash', '', 'NULL']);
  });

  it('maps bytea to base64 and NULL to NULL', async () => {
    expect(await row('bin, null_text, null_int, typeof(null_text) AS tn')).toEqual({
      bin: Buffer.from([0x00, 0xff, 0x10]).toString('base64'),
      null_text: null,
      null_int: null,
      tn: 'null',
    });
  });

  it('keeps int8 as a bare JSON integer in the kept row data', async () => {
    const [kept] = await client.db.getAll<{ data: string }>(
      `SELECT data FROM ferry_oplog WHERE row_type = 'typed' AND row_id = ?`,
      [id],
    );
    expect(kept!.data).toContain('"i8":9007199254740993');
    expect(kept!.data).toContain('"i8_min":-9223372036854775808');
  });
});

describe('snapshot and stream', () => {
  it('map every column of a row identically', async () => {
    const all = await client.db.getAll<Record<string, unknown>>(
      `SELECT *, CAST(i8 AS TEXT) AS i8_text FROM typed ORDER BY id`,
    );
    expect(all).toHaveLength(2);
    const { id: _a, ...snapshot } = all[0]!;
    const { id: _b, ...streamed } = all[1]!;
    expect(streamed).toEqual(snapshot);
  });

  it('map an UPDATE (WAL) like an INSERT', async () => {
    await pgQuery(
      url,
      `UPDATE typed SET i8 = -9007199254740993, num = -0.5, ai = '{}', at = '{{"x",NULL},{"y","z"}}' WHERE id = 'streamed'`,
    );
    await waitForRows(client.db, `SELECT CAST(i8 AS TEXT) AS i8, num, ai, at FROM typed WHERE id = 'streamed'`, [
      { i8: '-9007199254740993', num: '-0.5', ai: '[]', at: '[["x",null],["y","z"]]' },
    ]);
    const [row] = await client.db.getAll<{ t: string }>(`SELECT typeof(i8) AS t FROM typed WHERE id = 'streamed'`);
    expect(row?.t).toBe('integer');
  });
});
