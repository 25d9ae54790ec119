/**
 * Compaction in the running service: after many updates of the same rows,
 * `compact()` shrinks the op log (superseded ops become MOVE, dead prefixes
 * CLEAR) without changing any bucket checksum — so a client that was already
 * connected keeps syncing without a re-download, and a new client downloads
 * fewer ops and ends with the same rows.
 */
import { column, Schema, Table } from '@ferry/client';
import type { FerryService } from '@ferry/service';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../embedded-postgres.js';
import {
  Cleanup,
  openClient,
  pgQuery,
  startServiceFixture,
  type TestClient,
  type TestKeys,
  waitForRows,
} from './stack.js';

const RULES = `
bucket_definitions:
  everything:
    data:
      - SELECT id, title, version FROM items
`;

const schema = new Schema({ items: new Table({ title: column.text, version: column.integer }) });
const ITEMS = 'SELECT id, title, version FROM items ORDER BY id';

let url: string;
let keys: TestKeys;
let service: FerryService;
let dir: string;
let early: TestClient;
const cleanup = new Cleanup();

const serverItems = () => pgQuery(url, `SELECT id, title, version FROM items ORDER BY id COLLATE "C"`);
const opCounts = async () =>
  (
    await pgQuery<{ op: number; n: string }>(
      url,
      `SELECT op, count(*)::text AS n FROM ferry.ops GROUP BY op ORDER BY op`,
    )
  ).reduce<Record<number, number>>((acc, r) => ({ ...acc, [r.op]: Number(r.n) }), {});
const bucketState = () =>
  pgQuery(url, `SELECT bucket, checksum::text, count::text FROM ferry.bucket_state ORDER BY bucket`);

beforeAll(async () => {
  const fixture = await startServiceFixture(cleanup, {
    database: 'ferry_e2e_compact',
    source: `CREATE TABLE items (id text PRIMARY KEY, title text NOT NULL, version int NOT NULL);
      INSERT INTO items SELECT 'i' || g, 'item ' || g, 0 FROM generate_series(1, 20) g;`,
    rules: RULES,
    port: await freePort(),
  });
  url = fixture.url;
  service = fixture.service;
  dir = fixture.dir;
  keys = fixture.keys;
  early = await openClient({ cleanup, dir, schema, endpoint: () => service.url, token: () => keys.token('u1') });
  await early.db.waitForFirstSync();
});

afterAll(() => cleanup.run());

describe('compaction', () => {
  it('shrinks the log, keeps checksums, and every client converges', async () => {
    for (let v = 1; v <= 10; v++)
      await pgQuery(url, `UPDATE items SET version = $1::int, title = 'v' || $1::text`, [v]);
    await waitForRows(early.db, ITEMS, await serverItems());
    const checksumsBefore = await bucketState();
    const before = await opCounts();
    expect(before[1]).toBe(20 * 11); // every version of every row is a PUT

    await service.compact();

    const after = await opCounts();
    const live = (after[1] ?? 0) + (after[2] ?? 0);
    expect(live).toBe(20); // one current PUT per row survives
    expect((after[3] ?? 0) + (after[4] ?? 0)).toBeGreaterThan(0); // the rest became MOVE/CLEAR
    // Checksums are untouched; the op count (which only drives progress) now counts the compacted log.
    const stateAfter = await bucketState();
    expect(stateAfter.map((b) => [b.bucket, b.checksum])).toEqual(checksumsBefore.map((b) => [b.bucket, b.checksum]));
    expect(Number(stateAfter[0]!.count)).toBe(Object.values(after).reduce((a, b) => a + b, 0));

    // The connected client keeps syncing on the same stream (no checksum failure, no re-download).
    const streams = early.traffic.streams.length;
    await pgQuery(url, `UPDATE items SET title = 'after compaction' WHERE id = 'i1'`);
    await waitForRows(early.db, ITEMS, await serverItems());
    expect(early.traffic.streams.length).toBe(streams);
    expect(early.db.currentStatus.downloadError ?? null).toBeNull();

    // A new client downloads the compacted log and ends with the same rows.
    const late = await openClient({ cleanup, dir, schema, endpoint: () => service.url, token: () => keys.token('u2') });
    await late.db.waitForFirstSync();
    await waitForRows(late.db, ITEMS, await serverItems());
    expect(late.traffic.dataOpsSince(0)).toBeLessThan(20 * 11);
  });
});
