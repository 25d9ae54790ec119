import { rowToJson, type SqliteRow } from '@ferry/protocol';
import { compileSyncRules } from '@ferry/rules';
import { createTestDatabase, sql } from '@ferry/test-utils';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresBucketStorage } from '../storage/postgres-bucket-storage.js';
import { Replicator } from './replicator.js';
import { dropSlot } from './source-schema.js';

const COLUMNS = `
  i2 int2, i4 int4, i8 int8, i8big int8, f4 float4, f8 float8, fnan float8, num numeric, b bool,
  t text, vc varchar(10), ch char(3), u uuid, m mood, ts timestamp, tstz timestamptz, tstz2 timestamptz,
  d date, tm time, tmtz timetz, iv interval, j json, jb jsonb, ia int4[], ta text[], ba bytea,
  ma mood[], dom posint, tstza timestamptz[], i8a int8[]`;

const VALUES = `
  -5, 123456, 42, 9223372036854775807, 1.5, 0.1, 'NaN', 12345678901234567890.000000000000000001, true,
  'he said "hi" \\ ok', 'abc', 'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'happy', '2024-05-01 09:30:00',
  '2024-05-01 09:30:00.123456-03', '2024-12-31 23:30:00+09', '2024-05-01', '13:14:15', '13:14:15+02', '1 day 2 hours',
  '{"a": [1, 2]}', '{"b": null, "a": [1, 2]}', ARRAY[1, NULL, 3], ARRAY['x', 'y "q"', NULL, 'NULL', 'a,b'],
  '\\xdeadbeef'::bytea, ARRAY['happy', 'sad']::mood[], 7, ARRAY['2024-05-01 09:30:00-03'::timestamptz, NULL],
  ARRAY[9007199254740993, 1]::int8[]`;

const expected = (id: string): SqliteRow => ({
  id,
  i2: -5,
  i4: 123456,
  i8: 42,
  i8big: 9223372036854775807n,
  f4: 1.5,
  f8: 0.1,
  fnan: null,
  num: '12345678901234567890.000000000000000001',
  b: 1,
  t: 'he said "hi" \\ ok',
  vc: 'abc',
  ch: 'ab ',
  u: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  m: 'happy',
  ts: '2024-05-01T09:30:00.000000',
  tstz: '2024-05-01T12:30:00.123456Z',
  tstz2: '2024-12-31T14:30:00.000000Z',
  d: '2024-05-01',
  tm: '13:14:15',
  tmtz: '13:14:15+02',
  iv: '1 day 02:00:00',
  j: '{"a": [1, 2]}',
  jb: '{"a": [1, 2], "b": null}',
  ia: '[1,null,3]',
  ta: '["x","y \\"q\\"",null,"NULL","a,b"]',
  ba: Buffer.from([0xde, 0xad, 0xbe, 0xef]).toString('base64'),
  ma: '["happy","sad"]',
  dom: 7,
  tstza: '["2024-05-01T12:30:00.000000Z",null]',
  i8a: '[9007199254740993,1]',
});

let url: string;
let storage: PostgresBucketStorage;
let replicator: Replicator;
const slotName = `ferry_types_${process.pid}`;

beforeAll(async () => {
  url = await createTestDatabase();
  await sql(
    url,
    `CREATE TYPE mood AS ENUM ('happy', 'sad');
     CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);
     CREATE TABLE typed (id text PRIMARY KEY, ${COLUMNS});
     INSERT INTO typed VALUES ('copy', ${VALUES});`,
  );
  const rules = await compileSyncRules(`bucket_definitions:\n  all:\n    data:\n      - SELECT * FROM typed\n`);
  storage = new PostgresBucketStorage({ connectionString: url });
  await storage.migrate();
  replicator = new Replicator({
    sourceConnectionString: url,
    storage,
    rules,
    slotName,
    publicationName: 'ferry_types',
  });
  void replicator.run();
});

afterAll(async () => {
  await replicator.stop();
  await storage.close();
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await dropSlot(client, slotName).finally(() => client.end());
});

async function putData(id: string): Promise<string | undefined> {
  const cp = await storage.getLatestCheckpoint();
  if (cp === null) return undefined;
  const ops = await storage.readBucketOps('all[]', 0n, cp, 100);
  return ops.filter((o) => o.op === 'PUT' && o.object_id === id).at(-1)?.data ?? undefined;
}

async function waitForPut(id: string): Promise<string> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const data = await putData(id);
    if (data !== undefined) return data;
    if (Date.now() > deadline) throw new Error(`no PUT for ${id}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('Postgres → SQLite type mapping', () => {
  it('runs in a non-UTC session time zone', async () => {
    expect((await sql(url, 'SHOW timezone')).rows[0].TimeZone).toBe('America/Sao_Paulo');
  });

  it('maps every type the same way in the snapshot copy and in the WAL stream', async () => {
    const copied = await waitForPut('copy');
    expect(copied).toBe(rowToJson(expected('copy')));
    // Same values, now through the WAL; written in yet another session zone.
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(`SET TIME ZONE 'Asia/Tokyo'`);
      await client.query(`INSERT INTO typed VALUES ('wal', ${VALUES})`);
    } finally {
      await client.end();
    }
    const streamed = await waitForPut('wal');
    expect(streamed).toBe(rowToJson(expected('wal')));
    // int8 beyond 2^53 stays a bare, exact JSON integer.
    expect(streamed).toContain('"i8big":9223372036854775807');
  });

  it('keeps NULLs as NULLs', async () => {
    await sql(url, `INSERT INTO typed (id) VALUES ('nulls')`);
    const data = JSON.parse(await waitForPut('nulls')) as Record<string, unknown>;
    expect(Object.entries(data).filter(([k, v]) => k !== 'id' && v !== null)).toEqual([]);
    expect(Object.keys(data).length).toBe(Object.keys(expected('x')).length);
  });
});
