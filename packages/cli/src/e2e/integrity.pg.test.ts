/**
 * Integrity: a client whose local bucket disagrees with the service's
 * checksum re-downloads that bucket by itself and ends with exactly the
 * server's rows. The local database is corrupted from outside, through a
 * second SQLite connection to the client's file, as a bad disk or a buggy
 * app would.
 */
import { column, Schema, Table } from '@ferry/client';
import type { FerryService } from '@ferry/service';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cleanup, openClient, pgQuery, startServiceFixture, type TestClient, waitFor, waitForRows } from './stack.js';

const RULES = `
bucket_definitions:
  shared:
    data:
      - SELECT id, title, n FROM things
  mine:
    parameters: SELECT request.user_id() AS owner
    data:
      - SELECT id, owner, body FROM notes WHERE owner = bucket.owner
`;

const SOURCE = `
  CREATE TABLE things (id text PRIMARY KEY, title text NOT NULL, n int NOT NULL);
  CREATE TABLE notes (id text PRIMARY KEY, owner text NOT NULL, body text);
  INSERT INTO things SELECT 't' || lpad(g::text, 3, '0'), 'thing ' || g, g FROM generate_series(1, 40) g;
  INSERT INTO notes VALUES ('n1', 'u1', 'my note'), ('n2', 'u1', 'my other note'), ('x1', 'u2', 'not mine');
`;

const schema = new Schema({
  things: new Table({ title: column.text, n: column.integer }),
  notes: new Table({ owner: column.text, body: column.text }),
});

const THINGS = 'SELECT id, title, n FROM things ORDER BY id';
const NOTES = 'SELECT id, owner, body FROM notes ORDER BY id';

let url: string;
let service: FerryService;
let client: TestClient;
const cleanup = new Cleanup();

async function serverThings(): Promise<unknown[]> {
  return pgQuery(url, `SELECT id, title, n FROM things ORDER BY id COLLATE "C"`);
}

/**
 * Runs statements on a second connection to the client's SQLite file, with
 * the upload-queue triggers off: this is damage, not local writes (which
 * would be queued and, pending, rightly stay on top of downloaded data).
 */
function tamper(statements: string[]): void {
  const raw = new Database(client.path);
  try {
    raw.pragma('busy_timeout = 5000');
    raw.transaction(() => {
      raw.prepare(`INSERT OR REPLACE INTO ferry_kv (key, value) VALUES ('crud_suppressed', '1')`).run();
      for (const statement of statements) raw.prepare(statement).run();
      raw.prepare(`DELETE FROM ferry_kv WHERE key = 'crud_suppressed'`).run();
    })();
  } finally {
    raw.close();
  }
}

/** The stream requests opened from index `from` on, with what each asked for per bucket. */
function afterPositions(from: number): { bucket: string; after: string }[][] {
  return client.traffic.streams
    .slice(from)
    .map((s) => (s.request.buckets ?? []).map((b) => ({ bucket: b.name, after: b.after })));
}

beforeAll(async () => {
  const fixture = await startServiceFixture(cleanup, { database: 'ferry_e2e_integrity', source: SOURCE, rules: RULES });
  url = fixture.url;
  service = fixture.service;
  const dir = fixture.dir;
  const keys = fixture.keys;
  client = await openClient({ cleanup, dir, schema, endpoint: () => service.url, token: () => keys.token('u1') });
  await client.db.waitForFirstSync();
  await waitForRows(client.db, THINGS, await serverThings());
});

afterAll(() => cleanup.run());

describe('a corrupted local bucket', () => {
  it('heals after losing rows and altering another: re-downloads only that bucket, ends equal to the server', async () => {
    const [shared] = await client.db.getAll<{ name: string }>(
      `SELECT name FROM ferry_buckets WHERE name LIKE 'shared%'`,
    );
    expect(shared, 'the shared bucket is held').toBeDefined();
    const streamsBefore = client.traffic.streams.length;
    const mineBefore = await client.db.getAll<{ name: string; last_op: number }>(
      `SELECT name, last_op FROM ferry_buckets WHERE name LIKE 'mine%'`,
    );
    expect(mineBefore).toHaveLength(1);

    tamper([
      // a lost row: gone from the kept data and the typed table
      `DELETE FROM ferry_oplog WHERE row_type = 'things' AND row_id = 't007'`,
      `DELETE FROM things WHERE id = 't007'`,
      // a garbled row: different data and checksum
      `UPDATE ferry_oplog SET data = '{"id":"t013","title":"CORRUPT","n":-1}', checksum = (checksum + 12345) & 4294967295
         WHERE row_type = 'things' AND row_id = 't013'`,
      `UPDATE things SET title = 'CORRUPT', n = -1 WHERE id = 't013'`,
      // a row the server never sent, in the bucket's kept data and the typed table
      `INSERT INTO ferry_oplog (bucket, op_id, row_type, row_id, subkey, data, checksum)
         SELECT id, 1, 'things', 'ghost', '', '{"id":"ghost","title":"not on the server","n":0}', 777
         FROM ferry_buckets WHERE name LIKE 'shared%'`,
      `INSERT INTO things (id, title, n) VALUES ('ghost', 'not on the server', 0)`,
    ]);
    expect(await client.db.getAll(`SELECT id FROM things WHERE id IN ('t007', 'ghost') ORDER BY id`)).toEqual([
      { id: 'ghost' },
    ]);
    expect(await client.db.getAll(`SELECT count(*) AS n FROM ferry_crud`), 'damage is not a local write').toEqual([
      { n: 0 },
    ]);

    // A new checkpoint makes the client validate its buckets.
    await pgQuery(url, `INSERT INTO things VALUES ('t041', 'thing 41', 41)`);
    await waitForRows(client.db, THINGS, await serverThings());
    await waitForRows(client.db, NOTES, [
      { id: 'n1', owner: 'u1', body: 'my note' },
      { id: 'n2', owner: 'u1', body: 'my other note' },
    ]);

    // It re-downloaded the shared bucket from scratch (after = 0) and resumed the other one where it was.
    const requests = afterPositions(streamsBefore);
    const redownload = requests.find((buckets) => buckets.some((b) => b.bucket === shared!.name && b.after === '0'));
    expect(redownload, `a request re-downloading ${shared!.name}; requests: ${JSON.stringify(requests)}`).toBeDefined();
    const mine = redownload!.find((b) => b.bucket === mineBefore[0]!.name);
    expect(mine?.after).not.toBe('0');
    expect(Number(mine?.after)).toBeGreaterThanOrEqual(Number(mineBefore[0]!.last_op));
    const redownloadIndex = client.traffic.streams.findIndex(
      (s, i) => i >= streamsBefore && (s.request.buckets ?? []).some((b) => b.name === shared!.name && b.after === '0'),
    );
    await waitFor(() => (client.traffic.streams[redownloadIndex]!.opsByBucket.get(shared!.name) ?? 0) >= 41);
    expect(client.traffic.streams[redownloadIndex]!.opsByBucket.get(mineBefore[0]!.name) ?? 0).toBe(0);

    // The mismatch was reported, then cleared by the applied checkpoint.
    await waitFor(() => client.db.currentStatus.downloadError === undefined && client.db.currentStatus.connected);
  });

  it('heals when only the stored bucket checksum is wrong', async () => {
    const streamsBefore = client.traffic.streams.length;
    tamper([`UPDATE ferry_buckets SET add_checksum = (add_checksum + 1) & 4294967295 WHERE name LIKE 'mine%'`]);
    await pgQuery(url, `INSERT INTO notes VALUES ('n3', 'u1', 'third note')`);
    await waitForRows(client.db, NOTES, [
      { id: 'n1', owner: 'u1', body: 'my note' },
      { id: 'n2', owner: 'u1', body: 'my other note' },
      { id: 'n3', owner: 'u1', body: 'third note' },
    ]);
    const requests = afterPositions(streamsBefore);
    expect(
      requests.some((buckets) => buckets.some((b) => b.bucket.startsWith('mine') && b.after === '0')),
      `a request re-downloading the mine bucket; requests: ${JSON.stringify(requests)}`,
    ).toBe(true);
    // Nothing else lost on the way.
    await waitForRows(client.db, THINGS, await serverThings());
    // And the healed bucket keeps validating on later checkpoints (no reconnect loop).
    const streamsAfterHeal = client.traffic.streams.length;
    await pgQuery(url, `UPDATE notes SET body = 'edited' WHERE id = 'n1'`);
    await waitForRows(client.db, `SELECT body FROM notes WHERE id = 'n1'`, [{ body: 'edited' }]);
    expect(client.traffic.streams.length).toBe(streamsAfterHeal);
  });
});
