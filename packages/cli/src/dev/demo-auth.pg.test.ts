import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FerryError } from '@ferry/protocol';
import { createTestDatabase } from '@ferry/test-utils';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { createDemoAuth } from './demo-auth.js';

const open: { server: Server; close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const item of open.splice(0)) {
    await new Promise((resolve) => item.server.close(resolve));
    await item.close();
  }
});

async function serve(databaseUrl: string, signed: [string, number][] = []) {
  const auth = createDemoAuth({
    databaseUrl,
    sign: async (user, seconds) => {
      signed.push([user, seconds]);
      return `token-for-${user}`;
    },
    endpoint: () => 'http://service.invalid',
    tokenSeconds: 600,
  });
  const server = createServer((req, res) => {
    auth(req, res).then(
      (handled) => {
        if (!handled) res.writeHead(418).end();
      },
      (error: unknown) => {
        const ferry = FerryError.is(error) ? error : new FerryError('FERRY_S9001', String(error));
        res.writeHead(ferry.status, { 'content-type': 'application/json' }).end(JSON.stringify(ferry.toJSON()));
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  open.push({ server, close: () => auth.close() });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function run(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query(sql);
  await client.end();
}

describe('the demo sign-in backend', () => {
  it('lists the members and signs tokens only for them, for the origin asked', async () => {
    const db = await createTestDatabase('demo_auth');
    await run(
      db,
      `CREATE TABLE workspace_members (workspace_id int, user_id text);
       INSERT INTO workspace_members VALUES (1, 'zoe'), (2, 'zoe'), (1, 'adam')`,
    );
    const signed: [string, number][] = [];
    const url = await serve(db, signed);
    expect(await (await fetch(`${url}/demo/users`)).json()).toEqual({
      users: [
        { id: 'adam', workspaces: 1 },
        { id: 'zoe', workspaces: 2 },
      ],
    });
    const before = Date.now();
    const response = await fetch(`${url}/demo/token`, { method: 'POST', body: '{"user":"zoe"}' });
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const body = (await response.json()) as { token: string; endpoint: string; expiresAt: string };
    expect(body.token).toBe('token-for-zoe');
    expect(body.endpoint).toBe(url); // the Host the request came to
    const expires = Date.parse(body.expiresAt);
    expect(expires).toBeGreaterThanOrEqual(before + 599_000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 600_000);
    expect(signed).toEqual([['zoe', 600]]);

    const unknown = await fetch(`${url}/demo/token`, { method: 'POST', body: '{"user":"eve"}' });
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: { code: string } }).error.code).toBe('FERRY_S4004');
    expect((await fetch(`${url}/demo/token`, { method: 'POST', body: '[]' })).status).toBe(400);
    expect((await fetch(`${url}/demo/users`, { method: 'POST' })).status).toBe(405);
    expect((await fetch(`${url}/other`)).status).toBe(418); // declined
    expect(signed).toHaveLength(1);
  });

  it('answers 404 with a hint when the project has no workspace_members', async () => {
    const url = await serve(await createTestDatabase('demo_auth_empty'));
    const response = await fetch(`${url}/demo/users`);
    expect(response.status).toBe(404);
    const { error } = (await response.json()) as { error: { code: string; message: string } };
    expect(error.code).toBe('FERRY_S4004');
    expect(error.message).toContain('workspace_members');
  });
});
