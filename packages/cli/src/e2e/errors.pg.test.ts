/**
 * Clear errors at the edges: a bad sync rules file and a bad config key fail
 * start-up naming file:line:column (in process and through `ferry start`);
 * bad, expired and wrong-audience tokens get HTTP 401 with their code from
 * the running service; the Ferry client shows the 401 in its status and
 * keeps retrying with fresh credentials until they are good.
 */
import { column, Schema, Table, type SyncStatus } from '@ferry/client';
import { FerryError } from '@ferry/protocol';
import { FerryService, parseConfig } from '@ferry/service';
import { generateKeyPair, importJWK, SignJWT } from 'jose';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Cleanup,
  openClient,
  rawServiceConfig,
  runCli,
  serviceConfig,
  startServiceFixture,
  TEST_AUDIENCE,
  type TestKeys,
  waitFor,
  waitForRows,
} from './stack.js';

const RULES = `
bucket_definitions:
  mine:
    parameters: SELECT request.user_id() AS owner
    data:
      - SELECT id, owner, title FROM todos WHERE owner = bucket.owner
`;

const SOURCE = `
  CREATE TABLE todos (id text PRIMARY KEY, owner text NOT NULL, title text);
  INSERT INTO todos VALUES ('t1', 'u1', 'one'), ('t2', 'u2', 'two');
`;

// Line 5 holds the bad query; its SELECT starts at column 9.
const UNSUPPORTED_RULES = `bucket_definitions:
  global:
    data:
      - SELECT id, title FROM todos
      - SELECT id, title FROM todos ORDER BY title
`;
const SYNTAX_ERROR_RULES = `bucket_definitions:
  global:
    data:
      - SELECT id, title FROM todos
      - SELECT id, title FROM todos WHERE (title = 'x'
`;

let url: string;
let dir: string;
let keys: TestKeys;
let service: FerryService;
const cleanup = new Cleanup();

beforeAll(async () => {
  const fixture = await startServiceFixture(cleanup, { database: 'ferry_e2e_errors', source: SOURCE, rules: RULES });
  url = fixture.url;
  service = fixture.service;
  dir = fixture.dir;
  keys = fixture.keys;
});

afterAll(() => cleanup.run());

async function startError(config: Parameters<typeof FerryService.start>[0]): Promise<FerryError> {
  const outcome = await FerryService.start(config, { processMetrics: false }).then(
    async (started) => {
      await started.stop();
      return null;
    },
    (error: unknown) => error,
  );
  expect(FerryError.is(outcome), `start-up should fail with a FerryError, got ${String(outcome)}`).toBe(true);
  return outcome as FerryError;
}

describe('a bad sync rules file', () => {
  it('fails start-up with FERRY_S1103 at file:line:column for an unsupported construct', async () => {
    const file = path.join(dir, 'unsupported-rules.yaml');
    await writeFile(file, UNSUPPORTED_RULES);
    const config = serviceConfig({ databaseUrl: url, rules: RULES, keys });
    const error = await startError({ ...config, syncRules: { path: file, content: null } });
    expect(error.code).toBe('FERRY_S1103');
    const match = new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:(\\d+):(\\d+)`).exec(error.message);
    expect(match, `message names file:line:column: ${error.message}`).not.toBeNull();
    expect(Number(match![1])).toBe(5);
    expect(Number(match![2])).toBeGreaterThanOrEqual(9);
    expect(error.message.toLowerCase()).toContain('order by');
  });

  it('fails start-up with FERRY_S1102 at file:line:column for a SQL syntax error', async () => {
    const file = path.join(dir, 'syntax-rules.yaml');
    await writeFile(file, SYNTAX_ERROR_RULES);
    const config = serviceConfig({ databaseUrl: url, rules: RULES, keys });
    const error = await startError({ ...config, syncRules: { path: file, content: null } });
    expect(error.code).toBe('FERRY_S1102');
    const match = /syntax-rules\.yaml:(\d+):(\d+)/.exec(error.message);
    expect(match, `message names file:line:column: ${error.message}`).not.toBeNull();
    expect(Number(match![1])).toBe(5);
    expect(Number(match![2])).toBeGreaterThanOrEqual(9);
  });

  it('makes `ferry start` exit 1 printing the location and the code', async () => {
    await writeFile(path.join(dir, 'sync-rules.yaml'), UNSUPPORTED_RULES);
    const configFile = path.join(dir, 'ferry.yaml');
    await writeFile(
      configFile,
      stringify(rawServiceConfig({ databaseUrl: url, rules: { path: 'sync-rules.yaml' }, keys })),
    );
    const cli = runCli(['start', '--config', configFile], { cleanup });
    const exit = await cli.exited;
    expect({ code: exit.code, output: cli.output() }).toMatchObject({ code: 1 });
    expect(cli.output()).toMatch(/sync-rules\.yaml:5:\d+/);
    expect(cli.output()).toContain('FERRY_S1103');
  });
});

describe('a bad config key', () => {
  const CONFIG = (connection: string) => `replication:
  connection: ${connection}
sync_rules:
  path: sync-rules.yaml
client_auth:
  audience: ferry-test
  hs256_secret: development-secret-development-secret
api:
  prot: 8080
`;

  it('fails parsing with FERRY_S1002 naming the key and its line', () => {
    let error: unknown;
    try {
      parseConfig(CONFIG(url), path.join(dir, 'ferry.yaml'));
    } catch (caught) {
      error = caught;
    }
    expect(FerryError.is(error)).toBe(true);
    const ferryError = error as FerryError;
    expect(ferryError.code).toBe('FERRY_S1002');
    expect(ferryError.message).toMatch(/ferry\.yaml:9:\d+/);
    expect(ferryError.message).toContain('api.prot');
    expect(ferryError.message).toContain('port'); // the hint
  });

  it('makes `ferry start` exit 1 printing the line and the code', async () => {
    const configFile = path.join(dir, 'bad-key.yaml');
    await writeFile(configFile, CONFIG(url));
    const cli = runCli(['start', '--config', configFile], { cleanup });
    const exit = await cli.exited;
    expect({ code: exit.code, output: cli.output() }).toMatchObject({ code: 1 });
    expect(cli.output()).toMatch(/bad-key\.yaml:9:\d+/);
    expect(cli.output()).toContain('api.prot');
    expect(cli.output()).toContain('FERRY_S1002');
  });
});

describe('tokens', () => {
  async function syncWith(
    authorization: string | null,
  ): Promise<{ status: number; code: string | undefined; body: string }> {
    const response = await fetch(`${service.url}/sync/stream`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(authorization === null ? {} : { authorization }),
      },
      body: JSON.stringify({ buckets: [], include_checksum: true, raw_data: true, client_id: 'errors-test' }),
    });
    if (response.status === 200) {
      await response.body?.cancel();
      return { status: 200, code: undefined, body: '' };
    }
    const body = await response.text();
    let code: string | undefined;
    try {
      code = (JSON.parse(body) as { error?: { code?: string } }).error?.code;
    } catch {
      code = undefined;
    }
    return { status: response.status, code, body };
  }

  async function signed(payload: Record<string, unknown>): Promise<string> {
    const key = await importJWK(keys.devKey.privateJwk, 'EdDSA');
    return new SignJWT(payload).setProtectedHeader({ alg: 'EdDSA', kid: keys.devKey.kid }).sign(key);
  }
  const now = () => Math.floor(Date.now() / 1000);

  it('accepts a good token (Token and Bearer)', async () => {
    const token = await keys.token('u1');
    expect((await syncWith(`Token ${token}`)).status).toBe(200);
    expect((await syncWith(`Bearer ${token}`)).status).toBe(200);
  });

  it('answers 401 FERRY_S2001 without a token', async () => {
    expect(await syncWith(null)).toMatchObject({ status: 401, code: 'FERRY_S2001' });
  });

  it('answers 401 FERRY_S2002 for a token that is not a JWT or whose signature is wrong', async () => {
    expect(await syncWith('Token not-a-jwt')).toMatchObject({ status: 401, code: 'FERRY_S2002' });
    const token = await keys.token('u1');
    const [header, payload, signature] = token.split('.');
    const forged = `${header}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload!, 'base64url').toString()), sub: 'u2' })).toString('base64url')}.${signature}`;
    expect(await syncWith(`Token ${forged}`)).toMatchObject({ status: 401, code: 'FERRY_S2002' });
    // Signed by another key that claims the trusted key's kid.
    const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
    const impostor = await new SignJWT({ sub: 'u1', aud: TEST_AUDIENCE, exp: now() + 600 })
      .setProtectedHeader({ alg: 'EdDSA', kid: keys.devKey.kid })
      .sign(privateKey);
    expect(await syncWith(`Token ${impostor}`)).toMatchObject({ status: 401, code: 'FERRY_S2002' });
  });

  it('answers 401 FERRY_S2003 for an expired token', async () => {
    const expired = await signed({ sub: 'u1', aud: TEST_AUDIENCE, iat: now() - 7200, exp: now() - 3600 });
    expect(await syncWith(`Token ${expired}`)).toMatchObject({ status: 401, code: 'FERRY_S2003' });
  });

  it('answers 401 FERRY_S2004 for a token for another audience', async () => {
    const other = await signed({ sub: 'u1', aud: 'someone-else', exp: now() + 600 });
    expect(await syncWith(`Token ${other}`)).toMatchObject({ status: 401, code: 'FERRY_S2004' });
  });
});

describe('the Ferry client on a 401', () => {
  it('shows the error in its status and keeps retrying with fresh credentials until they are good', async () => {
    const schema = new Schema({ todos: new Table({ owner: column.text, title: column.text }) });
    let good = false;
    const expired = async () => {
      const key = await importJWK(keys.devKey.privateJwk, 'EdDSA');
      const t = Math.floor(Date.now() / 1000);
      return new SignJWT({ sub: 'u1', aud: TEST_AUDIENCE, iat: t - 7200, exp: t - 3600 })
        .setProtectedHeader({ alg: 'EdDSA', kid: keys.devKey.kid })
        .sign(key);
    };
    const client = await openClient({
      cleanup,
      dir,
      schema,
      endpoint: () => service.url,
      token: () => (good ? keys.token('u1') : expired()),
      connect: false,
    });
    const statuses: SyncStatus[] = [];
    client.db.registerListener({ statusChanged: (status) => statuses.push(status) });
    await client.connect();

    const withError = await waitFor(() => client.db.currentStatus.downloadError, {
      message: 'the 401 never showed in currentStatus.downloadError',
    });
    expect(FerryError.is(withError) ? withError.code : undefined).toBe('FERRY_C1002');
    expect(JSON.stringify((withError as FerryError).details ?? {})).toContain('FERRY_S2003');
    expect(client.db.currentStatus.dataFlowStatus.downloadError).toBe(withError);
    expect(client.db.currentStatus.hasSynced).toBe(false);

    // It retries, asking for credentials each time.
    await waitFor(() => client.credentialRequests() >= 3, { message: 'the client stopped retrying' });
    expect(client.traffic.streams.filter((s) => s.status === 401).length).toBeGreaterThanOrEqual(2);

    good = true;
    await client.db.waitForFirstSync({ signal: AbortSignal.timeout(20_000) });
    await waitForRows(client.db, 'SELECT id, owner, title FROM todos ORDER BY id', [
      { id: 't1', owner: 'u1', title: 'one' },
    ]);
    await waitFor(() => client.db.currentStatus.downloadError === undefined, {
      message: 'the error was never cleared',
    });
    expect(statuses.some((s) => s.downloadError !== undefined)).toBe(true);
  });
});
