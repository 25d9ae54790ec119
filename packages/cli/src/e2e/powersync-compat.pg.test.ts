/**
 * PowerSync compatibility: the official `@powersync/node` client (pinned
 * 1.1.0, HTTP streaming) completes a first sync against Ferry, holds exactly
 * the rows Ferry's own client holds for the same user, and after a
 * disconnect resumes with `after` positions, receiving only the new ops.
 * A tiny 127.0.0.1 proxy in front of the service records what the official
 * client sends and counts what it receives; it forwards bytes unchanged.
 */
import { column as ferryColumn, Schema as FerrySchema, Table as FerryTable } from '@ferry/client';
import { NdjsonDecoder } from '@ferry/protocol';
import type { FerryService } from '@ferry/service';
import { column, PowerSyncDatabase, Schema, SyncStreamConnectionMethod, Table } from '@powersync/node';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Cleanup,
  openClient,
  pgQuery,
  startServiceFixture,
  type TestClient,
  type TestKeys,
  waitFor,
  waitForRows,
} from './stack.js';

const RULES = `
bucket_definitions:
  shared:
    data:
      - SELECT id, title, big FROM announcements
  mine:
    parameters: SELECT request.user_id() AS owner
    data:
      - SELECT id, owner, title, n, score FROM todos WHERE owner = bucket.owner
`;

const SOURCE = `
  CREATE TABLE announcements (id text PRIMARY KEY, title text, big int8);
  CREATE TABLE todos (id text PRIMARY KEY, owner text NOT NULL, title text, n int, score float8);
  INSERT INTO announcements VALUES ('a1', 'welcome', 9007199254740993), ('a2', 'ünïcödé 🚢', -5);
  INSERT INTO todos SELECT 't' || lpad(g::text, 3, '0'), CASE WHEN g % 3 = 0 THEN 'u2' ELSE 'u1' END,
    'todo ' || g, g, g / 4.0 FROM generate_series(1, 60) g;
`;

const psSchema = new Schema({
  announcements: new Table({ title: column.text, big: column.integer }),
  todos: new Table({ owner: column.text, title: column.text, n: column.integer, score: column.real }),
});
const ferrySchema = new FerrySchema({
  announcements: new FerryTable({ title: ferryColumn.text, big: ferryColumn.integer }),
  todos: new FerryTable({
    owner: ferryColumn.text,
    title: ferryColumn.text,
    n: ferryColumn.integer,
    score: ferryColumn.real,
  }),
});

const QUERIES = {
  announcements: 'SELECT id, title, CAST(big AS TEXT) AS big FROM announcements ORDER BY id',
  todos: 'SELECT id, owner, title, n, score FROM todos ORDER BY id',
};

interface ProxiedStream {
  body: { buckets?: { name: string; after: string }[]; [key: string]: unknown };
  status: number;
  dataOps: number;
  checkpoints: number;
}

/** A pass-through HTTP proxy that records `/sync/stream` requests and counts ops in their answers. */
async function startProxy(target: () => string, cleanup: Cleanup): Promise<{ url: string; streams: ProxiedStream[] }> {
  const streams: ProxiedStream[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const upstreamUrl = new URL(req.url ?? '/', target());
      const record: ProxiedStream | null =
        req.method === 'POST' && upstreamUrl.pathname === '/sync/stream'
          ? { body: raw.length > 0 ? JSON.parse(raw.toString('utf8')) : {}, status: 0, dataOps: 0, checkpoints: 0 }
          : null;
      if (record) streams.push(record);
      const upstream = http.request(
        upstreamUrl,
        { method: req.method, headers: { ...req.headers, host: upstreamUrl.host } },
        (answer) => {
          if (record) record.status = answer.statusCode ?? 0;
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          const decoder = new NdjsonDecoder();
          answer.on('data', (chunk: Buffer) => {
            if (record) {
              decoder.push(chunk, (line) => {
                const message = JSON.parse(line) as Record<string, unknown>;
                if ('data' in message) record.dataOps += (message['data'] as { data: unknown[] }).data.length;
                if ('checkpoint' in message || 'checkpoint_diff' in message) record.checkpoints++;
              });
            }
            res.write(chunk);
          });
          answer.on('end', () => res.end());
          answer.on('error', () => res.destroy());
        },
      );
      upstream.on('error', () => res.destroy());
      res.on('close', () => upstream.destroy());
      upstream.end(raw);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanup.add(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, streams };
}

let url: string;
let dir: string;
let keys: TestKeys;
let service: FerryService;
let ferry: TestClient;
const cleanup = new Cleanup();

async function psRows(db: PowerSyncDatabase): Promise<{ announcements: unknown[]; todos: unknown[] }> {
  return {
    announcements: await db.getAll(QUERIES.announcements),
    todos: await db.getAll(QUERIES.todos),
  };
}

async function ferryRows(): Promise<{ announcements: unknown[]; todos: unknown[] }> {
  return {
    announcements: await ferry.db.getAll(QUERIES.announcements),
    todos: await ferry.db.getAll(QUERIES.todos),
  };
}

/** Waits until the official client holds what Ferry's client holds, and Ferry's client what Postgres grants. */
async function expectBothEqual(ps: PowerSyncDatabase): Promise<void> {
  const server = await pgQuery(
    url,
    `SELECT id, owner, title, n, score FROM todos WHERE owner = 'u1' ORDER BY id COLLATE "C"`,
  );
  await waitForRows(ferry.db, QUERIES.todos, server);
  const expected = await ferryRows();
  let last: unknown;
  await waitFor(
    async () => {
      last = await psRows(ps);
      return JSON.stringify(last) === JSON.stringify(expected);
    },
    {
      timeoutMs: 30_000,
      message: () =>
        `official client rows\n  ${JSON.stringify(last)}\nFerry client rows\n  ${JSON.stringify(expected)}`,
    },
  );
}

beforeAll(async () => {
  const fixture = await startServiceFixture(cleanup, { database: 'ferry_e2e_powersync', source: SOURCE, rules: RULES });
  url = fixture.url;
  service = fixture.service;
  dir = fixture.dir;
  keys = fixture.keys;
  ferry = await openClient({
    cleanup,
    dir,
    schema: ferrySchema,
    endpoint: () => service.url,
    token: () => keys.token('u1'),
  });
  await ferry.db.waitForFirstSync();
});

afterAll(() => cleanup.run());

describe('the official @powersync/node client', () => {
  it('completes a first sync equal to the Ferry client, then resumes with `after` on reconnect', async () => {
    const proxy = await startProxy(() => service.url, cleanup);
    const ps = new PowerSyncDatabase({ schema: psSchema, database: { dbFilename: 'powersync.db', dbLocation: dir } });
    cleanup.add(() => ps.close());
    const connector = {
      fetchCredentials: async () => ({ endpoint: proxy.url, token: await keys.token('u1') }),
      uploadData: async () => {},
    };
    await ps.connect(connector, { connectionMethod: SyncStreamConnectionMethod.HTTP });
    await ps.waitForFirstSync({ signal: AbortSignal.timeout(30_000) });
    await expectBothEqual(ps);
    const first = await psRows(ps);
    expect(first.announcements).toEqual([
      { id: 'a1', title: 'welcome', big: '9007199254740993' },
      { id: 'a2', title: 'ünïcödé 🚢', big: '-5' },
    ]);
    expect(first.todos).toHaveLength(40);
    expect(proxy.streams[0]!.status).toBe(200);
    expect(proxy.streams[0]!.body.buckets ?? []).toEqual([]);
    expect(proxy.streams[0]!.dataOps).toBe(42);

    // Live changes while connected.
    await pgQuery(url, `UPDATE todos SET title = 'edited live' WHERE id = 't001'`);
    await expectBothEqual(ps);

    // Disconnect, change Postgres, reconnect: it resumes from its positions.
    await ps.disconnect();
    const streamsBefore = proxy.streams.length;
    await pgQuery(
      url,
      `INSERT INTO todos VALUES ('t900', 'u1', 'while offline', 900, 0.5), ('t901', 'u2', 'not mine', 901, 1)`,
    );
    await pgQuery(url, `DELETE FROM todos WHERE id = 't002'`);
    await pgQuery(url, `UPDATE announcements SET title = 'welcome back' WHERE id = 'a1'`);
    await ps.connect(connector, { connectionMethod: SyncStreamConnectionMethod.HTTP });
    await expectBothEqual(ps);

    const resumed = proxy.streams.slice(streamsBefore).filter((s) => s.status === 200);
    expect(resumed.length).toBeGreaterThan(0);
    const positions = resumed[0]!.body.buckets ?? [];
    expect(positions.map((b) => b.name).sort()).toEqual(['mine["u1"]', 'shared[]']);
    for (const position of positions) {
      expect(position.after, `after for ${position.name}`).toMatch(/^[1-9][0-9]*$/);
    }
    // Only the new ops: t900 PUT, t002 REMOVE, a1 PUT.
    await waitFor(() => resumed.reduce((sum, s) => sum + s.dataOps, 0) >= 3);
    expect(resumed.reduce((sum, s) => sum + s.dataOps, 0)).toBe(3);

    expect(ps.currentStatus.connected).toBe(true);
    await ps.disconnect();
    await ps.close();
  });
});
