import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sql } from '@ferry/test-utils';
import { jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMetrics } from '../metrics/metrics.js';
import { startTestServer, testToken, TEST_AUDIENCE, TEST_SECRET, type TestServer } from '../sync/testing.js';
import { createWriteTestDatabase, openTestWriteApi, WRITE_TEST_RULES } from './testing.js';
import type { WriteApi } from './write-api.js';
import { createWriteHandler, type WriteHandler } from './write-handler.js';
import { createWriteMetrics } from './write-metrics.js';
import { compileWriteRules } from './write-rules.js';

let url: string;
let api: WriteApi;
let server: TestServer;
const metrics = createMetrics({ processMetrics: false });

beforeAll(async () => {
  url = await createWriteTestDatabase();
  api = await openTestWriteApi(url, { metrics: createWriteMetrics(metrics.registry) });
  server = await startTestServer({ write: api, maxWriteBytes: 4096, metrics });
});
afterAll(async () => {
  await server?.close();
  await api?.close();
});

/** Either answer shape, for terse assertions. */
interface Answer {
  error: { code: string; message: string };
  transactions: { id: string; status: string; duplicate?: boolean }[];
}

async function post(base: string, body: string, headers: Record<string, string> = {}) {
  const response = await fetch(`${base}/write`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
  return { status: response.status, body: (await response.json()) as Answer };
}

const auth = async (sub = 'alice') => ({ authorization: `Token ${await testToken(sub)}` });

describe('POST /write on the service', () => {
  it('answers 400 / 401 / 413 with codes and keeps serving', async () => {
    const headers = await auth();
    const notJson = await post(server.url, '{"transactions": [', headers);
    expect([notJson.status, notJson.body.error.code]).toEqual([400, 'FERRY_S4001']);
    const wrongShape = await post(
      server.url,
      JSON.stringify({ client_id: 'c', transactions: [{ id: 'x', ops: [] }] }),
      headers,
    );
    expect([wrongShape.status, wrongShape.body.error.code]).toEqual([400, 'FERRY_S4001']);
    expect(wrongShape.body.error.message).toContain('transactions.0.ops');
    const badOp = await post(
      server.url,
      JSON.stringify({ client_id: 'c', transactions: [{ id: 'x', ops: [{ op: 'UPSERT', type: 't', id: '1' }] }] }),
      headers,
    );
    expect(badOp.status).toBe(400);

    const noToken = await post(server.url, '{}');
    expect([noToken.status, noToken.body.error.code]).toEqual([401, 'FERRY_S2001']);
    const badToken = await post(server.url, '{}', { authorization: 'Bearer abc.def.ghi' });
    expect([badToken.status, badToken.body.error.code]).toEqual([401, 'FERRY_S2002']);

    const huge = await post(
      server.url,
      JSON.stringify({ client_id: 'c', transactions: [], pad: 'x'.repeat(5000) }),
      headers,
    );
    expect([huge.status, huge.body.error.code]).toEqual([413, 'FERRY_S4002']);

    const good = await post(
      server.url,
      JSON.stringify({
        client_id: 'c1',
        transactions: [{ id: 'c1:1', ops: [{ op: 'PUT', type: 'kinds', id: 'http-1', data: { flag: 1 } }] }],
      }),
      headers,
    );
    expect(good.status).toBe(200);
    expect(good.body).toEqual({ transactions: [{ id: 'c1:1', status: 'applied', ops: [{ status: 'applied' }] }] });
  });

  it('keeps int8 beyond 2^53 exact from the request text to Postgres', async () => {
    const body = `{"client_id":"c1","transactions":[{"id":"c1:big","ops":[{"op":"PUT","type":"kinds","id":"big-1","data":{"big":9223372036854775807}}]}]}`;
    const response = await post(server.url, body, await auth());
    expect(response.body.transactions[0]!.status).toBe('applied');
    const { rows } = await sql(url, `SELECT big::text FROM kinds WHERE id = 'big-1'`);
    expect(rows[0].big).toBe('9223372036854775807');
  });

  it("accepts PowerSync's batch shape, keyed by client_id:tx_id", async () => {
    const body = JSON.stringify({
      client_id: 'ps-client',
      batch: [
        { op: 'PUT', type: 'kinds', id: 'ps-1', opData: { flag: 1 }, tx_id: 7 },
        { op: 'PATCH', type: 'kinds', id: 'ps-1', opData: { code: 'x' }, tx_id: 7 },
        { op: 'PUT', type: 'kinds', id: 'ps-2', data: { code: 'y' }, tx_id: 8 },
        { op: 'DELETE', type: 'kinds', id: 'ps-3' },
      ],
    });
    const first = await post(server.url, body, await auth());
    expect(first.body.transactions.map((t) => [t.id, t.status])).toEqual([
      ['ps-client:7', 'applied'],
      ['ps-client:8', 'applied'],
      ['batch:3', 'applied'],
    ]);
    const second = await post(server.url, body, await auth());
    expect(second.body.transactions.map((t) => t.duplicate ?? false)).toEqual([true, true, false]);
    const { rows } = await sql(url, `SELECT id, flag, code FROM kinds WHERE id LIKE 'ps-%' ORDER BY id`);
    expect(rows).toEqual([
      { id: 'ps-1', flag: true, code: 'x' },
      { id: 'ps-2', flag: null, code: 'y' },
    ]);
  });

  it('counts applied and rejected ops in /metrics', async () => {
    await post(
      server.url,
      JSON.stringify({ client_id: 'c1', transactions: [{ id: 'c1:m', ops: [{ op: 'PUT', type: 'nope', id: '1' }] }] }),
      await auth(),
    );
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(text).toMatch(/ferry_write_ops_applied_total [1-9]/);
    expect(text).toContain('ferry_write_ops_rejected_total{code="FERRY_S6007"} 1');
  });
});

describe('createWriteHandler (mounted by any Node backend)', () => {
  let handler: WriteHandler;
  let plain: Server;
  let base: string;

  beforeAll(async () => {
    const key = new TextEncoder().encode(TEST_SECRET);
    handler = createWriteHandler({
      api: { rules: await compileWriteRules(WRITE_TEST_RULES), connectionString: url },
      verify: async (token) => (await jwtVerify(token, key, { audience: TEST_AUDIENCE })).payload,
      corsOrigin: 'https://app.example.com',
    });
    await handler.ready();
    plain = createServer((req, res) => {
      if (req.url === '/api/upload') void handler(req, res);
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(plain.address() as AddressInfo).port}/api/upload`;
  });
  afterAll(async () => {
    await new Promise((resolve) => plain?.close(resolve));
    await handler?.close();
  });

  it('applies writes with a verify callback, answers errors with codes, CORS and 405', async () => {
    const ok = await fetch(base, {
      method: 'POST',
      headers: { authorization: `Bearer ${await testToken('alice')}` },
      body: JSON.stringify({
        client_id: 'x',
        transactions: [{ id: 'x:1', ops: [{ op: 'PUT', type: 'kinds', id: 'mounted' }] }],
      }),
    });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    expect(((await ok.json()) as { transactions: { status: string }[] }).transactions[0]!.status).toBe('applied');

    const bad = await fetch(base, { method: 'POST', headers: { authorization: 'Bearer nope' }, body: '{}' });
    expect(bad.status).toBe(401);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('FERRY_S2002');
    const get = await fetch(base);
    expect(get.status).toBe(405);
    const preflight = await fetch(base, { method: 'OPTIONS' });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-methods')).toContain('POST');
  });
});
