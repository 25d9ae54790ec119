import { FerryError } from '@ferry/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestServer, testToken, TEST_SECRET, type TestServer } from '../sync/testing.js';

let server: TestServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

async function start(options: Parameters<typeof startTestServer>[0] = {}): Promise<TestServer> {
  server = await startTestServer(options);
  server.storage.commit();
  return server;
}

async function post(url: string, body: string, headers: Record<string, string> = {}) {
  const response = await fetch(`${url}/sync/stream`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
  return {
    status: response.status,
    body: (await response.json()) as { error: { code: string; message: string; details?: unknown } },
  };
}

describe('http api', () => {
  it('answers 401 with a machine-readable code for bad tokens', async () => {
    const { url } = await start();
    const cases: [Record<string, string>, string][] = [
      [{}, 'FERRY_S2001'],
      [{ authorization: 'Token not-a-jwt' }, 'FERRY_S2002'],
      [{ authorization: `Token ${await testToken('u1', { expiresInSeconds: -60 })}` }, 'FERRY_S2003'],
      [{ authorization: `Bearer ${await testToken('u1', { audience: 'someone-else' })}` }, 'FERRY_S2004'],
      [{ authorization: `Token ${await testToken(null)}` }, 'FERRY_S2005'],
    ];
    for (const [headers, code] of cases) {
      const { status, body } = await post(url, '{}', headers);
      expect({ status, code: body.error.code }).toEqual({ status: 401, code });
      expect(body.error.message).not.toContain(TEST_SECRET);
    }
  });

  it('rejects malformed and invalid bodies with FERRY_S4001', async () => {
    const { url } = await start();
    const auth = { authorization: `Token ${await testToken('u1')}` };
    const malformed = await post(url, '{"buckets": [', auth);
    expect(malformed.status).toBe(400);
    expect(malformed.body.error.code).toBe('FERRY_S4001');
    const invalid = await post(url, JSON.stringify({ buckets: [{ name: 'a[]', after: 'x' }] }), auth);
    expect(invalid.status).toBe(400);
    expect(invalid.body.error.code).toBe('FERRY_S4001');
    expect(invalid.body.error.message).toContain('buckets.0.after');
    expect(invalid.body.error.details).toEqual({
      issues: [{ path: 'buckets.0.after', message: 'op id must be a decimal string' }],
    });
  });

  it('rejects oversized bodies with 413 FERRY_S4002', async () => {
    const { url } = await start({ maxRequestBytes: 1000 });
    const big = JSON.stringify({
      buckets: Array.from({ length: 100 }, (_, i) => ({ name: `bucket_${i}[]`, after: '0' })),
    });
    const { status, body } = await post(url, big, { authorization: `Token ${await testToken('u1')}` });
    expect(status).toBe(413);
    expect(body.error.code).toBe('FERRY_S4002');
  });

  it('answers unknown routes 404 and wrong methods 405', async () => {
    const { url } = await start();
    const notFound = await fetch(`${url}/nope`);
    expect(notFound.status).toBe(404);
    expect(((await notFound.json()) as { error: { code: string } }).error.code).toBe('FERRY_S4004');
    const wrongMethod = await fetch(`${url}/sync/stream`);
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get('allow')).toBe('POST');
    expect(((await wrongMethod.json()) as { error: { code: string } }).error.code).toBe('FERRY_S4005');
  });

  it('answers POST /write 404 with a hint when no write rules are configured, GET /write 405', async () => {
    const { url } = await start();
    const response = await fetch(`${url}/write`, {
      method: 'POST',
      headers: { authorization: `Token ${await testToken('u1')}` },
      body: '{}',
    });
    expect(response.status).toBe(404);
    const body = (await response.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('FERRY_S4004');
    expect(body.error.message).toContain('configure write_rules');
    expect((await fetch(`${url}/write`)).status).toBe(405);
  });

  it('answers CORS preflight and sets the allowed origin', async () => {
    const { url } = await start({ api: { corsOrigin: 'https://app.example.com' } });
    const preflight = await fetch(`${url}/sync/stream`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    expect(preflight.headers.get('access-control-allow-headers')).toBe('authorization, content-type, x-user-agent');
    expect(preflight.headers.get('access-control-allow-methods')).toContain('POST');
    const health = await fetch(`${url}/health`);
    expect(health.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
  });

  it('serves /health, /ready by the readiness callback, and /metrics', async () => {
    let ready = false;
    const { url } = await start({ readiness: () => ready });
    expect((await fetch(`${url}/health`)).status).toBe(200);
    const notReady = await fetch(`${url}/ready`);
    expect(notReady.status).toBe(503);
    expect(((await notReady.json()) as { error: { code: string } }).error.code).toBe('FERRY_S4006');
    ready = true;
    expect((await fetch(`${url}/ready`)).status).toBe(200);

    // A stream moves the counters.
    const controller = new AbortController();
    const response = await fetch(`${url}/sync/stream`, {
      method: 'POST',
      headers: { authorization: `Token ${await testToken('u1')}` },
      body: '{}',
      signal: controller.signal,
    });
    const reader = response.body!.getReader();
    let text = '';
    while (!text.includes('checkpoint_complete')) text += new TextDecoder().decode((await reader.read()).value);
    const metrics = await fetch(`${url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toContain('text/plain');
    const body = await metrics.text();
    controller.abort();
    expect(body).toMatch(/^ferry_connected_clients 1$/m);
    expect(body).toMatch(/^ferry_sync_lines_sent_total\{kind="checkpoint"\} 1$/m);
    expect(body).toMatch(/^ferry_checkpoints_sent_total 1$/m);
    expect(body).toMatch(/^ferry_bytes_sent_total [1-9]\d*$/m);
    expect(body).toContain('ferry_replication_lag_ms');
    expect(body).toContain('ferry_ops_stored_total');
    expect(body).toContain('ferry_snapshot_rows_copied_total');
  });
  it('hands unmatched requests to the fallback, which may answer, decline (404) or fail with a code', async () => {
    const seen: string[] = [];
    const { url, metrics } = await start({
      fallback: async (req, res) => {
        seen.push(`${req.method} ${req.url}`);
        if (req.url === '/app/page') {
          res.writeHead(200, { 'content-type': 'text/html' });
          res.end('<p>app</p>');
          return true;
        }
        if (req.url === '/app/fails') throw new FerryError('FERRY_S4001', 'bad app request');
        return false;
      },
    });
    const page = await fetch(`${url}/app/page`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html');
    expect(page.headers.get('access-control-allow-origin')).toBe('*');
    expect(await page.text()).toBe('<p>app</p>');

    const declined = await fetch(`${url}/app/other`, { method: 'POST', body: 'x' });
    expect(declined.status).toBe(404);
    expect(((await declined.json()) as { error: { code: string } }).error.code).toBe('FERRY_S4004');

    const failed = await fetch(`${url}/app/fails`);
    expect(failed.status).toBe(400);
    expect(((await failed.json()) as { error: { code: string; message: string } }).error).toMatchObject({
      code: 'FERRY_S4001',
      message: 'bad app request',
    });

    // Routes keep priority (even with a wrong method) and never reach the fallback.
    expect((await fetch(`${url}/health`)).status).toBe(200);
    expect((await fetch(`${url}/sync/stream`)).status).toBe(405);
    expect(seen).toEqual(['GET /app/page', 'POST /app/other', 'GET /app/fails']);

    // Served paths are counted under one label, never one per path.
    const text = (await metrics.registry.metrics())
      .split('\n')
      .filter((l) => l.startsWith('ferry_http_requests_total'));
    expect(text).toContain('ferry_http_requests_total{route="fallback",status="200"} 1');
    expect(text).toContain('ferry_http_requests_total{route="unknown",status="404"} 1');
    expect(text.some((l) => l.includes('/app/'))).toBe(false);
  });

  it('answers an unexpected fallback error 500 FERRY_S9001 without its message', async () => {
    const { url } = await start({
      fallback: async () => {
        throw new Error('secret internals');
      },
    });
    const response = await fetch(`${url}/anything`);
    expect(response.status).toBe(500);
    const body = (await response.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('FERRY_S9001');
    expect(JSON.stringify(body)).not.toContain('secret internals');
  });
});
