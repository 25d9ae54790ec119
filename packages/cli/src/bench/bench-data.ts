/**
 * The benchmark data set: users own lists, lists hold items (~200 B of JSON
 * per row as synced). The rules give each user one bucket per list they
 * own (a parameter query over `lists`), so a client holds many buckets of
 * one simple shape.
 */
import { column, Schema, Table } from '@ferry/client';
import type pg from 'pg';

export const LISTS_ITEMS_DDL = `
  CREATE TABLE lists (
    id text PRIMARY KEY,
    owner_id text NOT NULL,
    name text NOT NULL
  );
  CREATE TABLE items (
    id uuid PRIMARY KEY,
    list_id text NOT NULL,
    title text NOT NULL,
    body text NOT NULL,
    done boolean NOT NULL,
    n integer NOT NULL,
    created_at timestamptz NOT NULL
  );
`;

/** One bucket per list the user owns. */
export const USER_LISTS_RULES = `
bucket_definitions:
  user_lists:
    parameters: SELECT id AS list_id FROM lists WHERE owner_id = request.user_id()
    data:
      - SELECT * FROM items WHERE list_id = bucket.list_id
`;

/** One global bucket with every item. */
export const GLOBAL_RULES = `
bucket_definitions:
  everyone:
    data:
      - SELECT * FROM items
`;

/** The list ids of an owner: `<owner>-list-<k>`, k = 0 … lists-1. */
export function listId(owner: string, k: number): string {
  return `${owner}-list-${k}`;
}

/** Creates `lists` lists for `owner`. */
export async function insertLists(client: pg.ClientBase, owner: string, lists: number): Promise<void> {
  await client.query(
    `INSERT INTO lists (id, owner_id, name)
     SELECT $1 || '-list-' || k, $1, 'List ' || k FROM generate_series(0, $2::int - 1) AS k`,
    [owner, lists],
  );
}

/**
 * Inserts items `from` … `to` (inclusive) of `owner`, spread round-robin over
 * its `lists` lists. Ids are deterministic (uuid of md5(owner, g)).
 */
export async function insertItems(
  client: pg.ClientBase,
  owner: string,
  lists: number,
  from: number,
  to: number,
): Promise<void> {
  await client.query(
    `INSERT INTO items (id, list_id, title, body, done, n, created_at)
     SELECT md5($1 || ':' || g)::uuid,
            $1 || '-list-' || (g % $2::int),
            'Item ' || g || ' ' || substr(md5('t' || g), 1, 12),
            md5('b' || g) || substr(md5('c' || g), 1, 8),
            g % 3 = 0,
            g,
            timestamptz '2025-01-01 00:00:00+00' + g * interval '1 second'
     FROM generate_series($3::int, $4::int) AS g`,
    [owner, lists, from, to],
  );
}

/** The deterministic id of item `g` of `owner` (as Postgres computes it in {@link insertItems}). */
export async function itemId(client: pg.ClientBase, owner: string, g: number): Promise<string> {
  const { rows } = await client.query<{ id: string }>(`SELECT md5($1 || ':' || $2::int)::uuid::text AS id`, [owner, g]);
  return rows[0]!.id;
}

/** Average size in bytes of the op data the service stores for the rows (what clients receive). */
export async function averageOpBytes(client: pg.ClientBase): Promise<number> {
  const { rows } = await client.query<{ avg: string | null }>(
    `SELECT avg(octet_length(data))::float8 AS avg FROM (SELECT data FROM ferry.ops WHERE data IS NOT NULL LIMIT 2000) s`,
  );
  return Number(rows[0]?.avg ?? Number.NaN);
}

/** The Ferry client schema for `items`, with an index for list views. */
export function ferryItemsSchema(): Schema {
  return new Schema({
    items: new Table(
      {
        list_id: column.text,
        title: column.text,
        body: column.text,
        done: column.integer,
        n: column.integer,
        created_at: column.text,
      },
      { indexes: { by_list: ['list_id', 'title'] } },
    ),
  });
}
