import { createTestDatabase } from '@ferry/test-utils';
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { int2Array, int4Array, int8Array, textArray } from './pg-binary-array.js';

let client: pg.Client;

beforeAll(async () => {
  client = new pg.Client({ connectionString: await createTestDatabase() });
  await client.connect();
});

afterAll(async () => {
  await client.end();
});

// Postgres text cannot hold NUL; unpaired surrogates become U+FFFD in UTF-8 on both paths.
const pgText = fc.string({ unit: 'binary', maxLength: 60 }).map((s) => s.replaceAll('\u0000', ''));

describe('binary array parameters in Postgres', () => {
  it('round-trips text[] exactly as the text-format parameter does', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.option(pgText, { nil: null }), { maxLength: 20 }), async (values) => {
        const { rows } = await client.query<{ bin: (string | null)[]; txt: (string | null)[] }>(
          'SELECT $1::text[] AS bin, $2::text[] AS txt',
          [textArray(values), values],
        );
        expect(rows[0]!.bin).toEqual(rows[0]!.txt);
        expect(rows[0]!.bin).toEqual(values.map((v) => (v === null ? null : Buffer.from(v).toString())));
      }),
      { numRuns: 100 },
    );
  });

  it('feeds unnest with rows of several typed columns', async () => {
    const { rows } = await client.query<{ t: string | null; a: string; b: number; c: number }>(
      `SELECT * FROM unnest($1::text[], $2::int8[], $3::int4[], $4::int2[]) AS u(t, a, b, c)`,
      [
        textArray(['x', null, '{"q":"\\\\"}']),
        int8Array([1n, -(2 ** 40), 2 ** 53 - 1]),
        int4Array([1, -2, 2 ** 31 - 1]),
        int2Array([1, 2, -(2 ** 15)]),
      ],
    );
    expect(rows).toEqual([
      { t: 'x', a: '1', b: 1, c: 1 },
      { t: null, a: String(-(2 ** 40)), b: -2, c: 2 },
      { t: '{"q":"\\\\"}', a: String(2 ** 53 - 1), b: 2 ** 31 - 1, c: -(2 ** 15) },
    ]);
  });

  it('accepts empty arrays', async () => {
    const { rows } = await client.query('SELECT count(*)::int AS n FROM unnest($1::text[], $2::int8[]) AS u(a, b)', [
      textArray([]),
      int8Array([]),
    ]);
    expect(rows[0]).toEqual({ n: 0 });
  });

  it('is rejected when the element type does not match the statement', async () => {
    await expect(client.query('SELECT $1::int4[] AS v', [int8Array([1])])).rejects.toThrow(/element type 20/);
  });
});
