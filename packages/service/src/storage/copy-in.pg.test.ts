import { createTestDatabase } from '@ferry/test-utils';
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyIn } from './copy-in.js';
import { BinaryCopyBuilder } from './pg-binary-copy.js';

let client: pg.Client;

beforeAll(async () => {
  client = new pg.Client({ connectionString: await createTestDatabase() });
  await client.connect();
  await client.query('CREATE TABLE t (s text, big int8, i int4, small int2)');
});

afterAll(async () => {
  await client.end();
});

const COPY = 'COPY t (s, big, i, small) FROM STDIN (FORMAT binary)';

describe('binary COPY FROM STDIN', () => {
  it('stores every value exactly, NULLs and non-ASCII text included', async () => {
    const pgText = fc.string({ unit: 'binary', maxLength: 80 }).map((s) => s.replaceAll('\u0000', ''));
    const row = fc.tuple(
      fc.option(pgText, { nil: null }),
      fc.option(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), { nil: null }),
      fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
      fc.integer({ min: -(2 ** 15), max: 2 ** 15 - 1 }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(row, { maxLength: 30 }), async (rows) => {
        await client.query('TRUNCATE t');
        // A tiny initial buffer exercises growth.
        const copy = new BinaryCopyBuilder(8);
        for (const [s, big, i, small] of rows) {
          copy.row(4).text(s);
          if (big === null) copy.nullValue();
          else copy.int8(big);
          copy.int4(i).int2(small);
        }
        expect(await copyIn(client, COPY, copy.finish())).toBe(rows.length);
        const { rows: stored } = await client.query<{ s: string | null; big: string | null; i: number; small: number }>(
          'SELECT s, big, i, small FROM t ORDER BY ctid',
        );
        expect(stored).toEqual(
          rows.map(([s, big, i, small]) => ({
            s: s === null ? null : Buffer.from(s).toString(),
            big: big === null ? null : big.toString(),
            i,
            small,
          })),
        );
      }),
      { numRuns: 60 },
    );
  });

  it('writes int8 from safe-integer numbers', async () => {
    await client.query('TRUNCATE t');
    const values = [0, -1, 2 ** 32 + 7, -(2 ** 40) - 3, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER];
    const copy = new BinaryCopyBuilder();
    for (const v of values) copy.row(4).text('x').int8(v).int4(0).int2(0);
    await copyIn(client, COPY, copy.finish());
    const { rows } = await client.query<{ big: string }>('SELECT big FROM t ORDER BY ctid');
    expect(rows.map((r) => r.big)).toEqual(values.map(String));
  });

  it('rejects on a server error and leaves the connection usable', async () => {
    await client.query('CREATE TABLE u (id int4 PRIMARY KEY)');
    const copy = new BinaryCopyBuilder();
    copy.row(1).int4(1).row(1).int4(1);
    await expect(copyIn(client, 'COPY u (id) FROM STDIN (FORMAT binary)', copy.finish())).rejects.toMatchObject({
      code: '23505',
    });
    await expect(copyIn(client, 'COPY missing (id) FROM STDIN (FORMAT binary)', copy.finish())).rejects.toMatchObject({
      code: '42P01',
    });
    const { rows } = await client.query('SELECT count(*)::int AS n FROM u');
    expect(rows[0]).toEqual({ n: 0 });
  });
});
