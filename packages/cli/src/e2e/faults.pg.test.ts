/**
 * Liveness under faults:
 * - `kill -9` of a `ferry start` process: a new process (same port) takes
 *   over replication (advisory lock, slot) and a connected client gets the
 *   rows written meanwhile and afterwards;
 * - a Postgres restart (our own embedded instance, never the shared one):
 *   the service survives, replication resumes, the client gets new rows.
 */
import { column, Schema, Table } from '@ferry/client';
import type { FerryService } from '@ferry/service';
import { createTestDatabase } from '@ferry/test-utils';
import { rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, startEmbeddedPostgres } from '../embedded-postgres.js';
import {
  Cleanup,
  createTestKeys,
  dropInactiveSlots,
  openClient,
  pgQuery,
  rawServiceConfig,
  runCli,
  sleep,
  startService,
  tempDir,
  waitFor,
  waitForHealthy,
  waitForRows,
} from './stack.js';

const RULES = `
bucket_definitions:
  feed:
    data:
      - SELECT id, body FROM events
`;

const SOURCE = `
  CREATE TABLE events (id text PRIMARY KEY, body text NOT NULL);
  INSERT INTO events VALUES ('e1', 'first'), ('e2', 'second');
`;

const schema = new Schema({ events: new Table({ body: column.text }) });
const EVENTS = 'SELECT id, body FROM events ORDER BY id';

const cleanup = new Cleanup();
const databases: string[] = [];

afterAll(async () => {
  await cleanup.run();
  for (const url of databases) await dropInactiveSlots(url).catch(() => {});
});

async function serverEvents(url: string): Promise<unknown[]> {
  return pgQuery(url, `SELECT id, body FROM events ORDER BY id COLLATE "C"`);
}

describe('kill -9 of the service process', () => {
  it('a new process takes over on the same port and the connected client gets new rows', async () => {
    const url = await createTestDatabase('ferry_e2e_kill');
    databases.push(url);
    await pgQuery(url, SOURCE);
    const dir = await tempDir(cleanup);
    const keys = await createTestKeys(dir);
    const port = await freePort();
    const rulesFile = path.join(dir, 'sync-rules.yaml');
    await writeFile(rulesFile, RULES);
    const configFile = path.join(dir, 'ferry.yaml');
    await writeFile(
      configFile,
      stringify(
        rawServiceConfig({ databaseUrl: url, rules: { path: 'sync-rules.yaml' }, keys, port, logLevel: 'info' }),
      ),
    );
    const endpoint = `http://127.0.0.1:${port}`;

    const first = runCli(['start', '--config', configFile], { cleanup });
    await waitForHealthy(endpoint, first);
    const client = await openClient({ cleanup, dir, schema, endpoint: () => endpoint, token: () => keys.token('u1') });
    await client.db.waitForFirstSync({ signal: AbortSignal.timeout(30_000) });
    await waitForRows(client.db, EVENTS, await serverEvents(url));
    await pgQuery(url, `INSERT INTO events VALUES ('e3', 'before the kill')`);
    await waitForRows(client.db, EVENTS, await serverEvents(url));

    first.child.kill('SIGKILL');
    const exit = await first.exited;
    expect(exit.signal).toBe('SIGKILL');
    await waitFor(() => !client.db.currentStatus.connected, { message: 'the client never noticed the kill' });

    await pgQuery(url, `INSERT INTO events VALUES ('e4', 'while no service runs')`);
    const second = runCli(['start', '--config', configFile], { cleanup });
    await waitForHealthy(endpoint, second);
    await pgQuery(url, `INSERT INTO events VALUES ('e5', 'after the takeover')`);
    await pgQuery(url, `UPDATE events SET body = 'edited after the takeover' WHERE id = 'e1'`);
    await waitForRows(client.db, EVENTS, await serverEvents(url), { timeoutMs: 30_000 });
    expect(client.db.currentStatus.connected).toBe(true);

    // The new process holds the slot now; the killed one left nothing behind.
    const slots = await pgQuery<{ active: boolean }>(
      url,
      `SELECT active FROM pg_replication_slots WHERE database = current_database()`,
    );
    expect(slots).toEqual([{ active: true }]);
    // Only the changes travelled after the takeover (resumed, not re-downloaded).
    const resumed = client.traffic.connections.at(-1)!;
    expect(resumed.request.buckets?.every((b) => b.after !== '0')).toBe(true);
    expect(second.child.exitCode).toBeNull();
  });

  it('`ferry start` shuts down cleanly on SIGTERM: the service stops and the process exits 0', async () => {
    const url = databases[0]!;
    const dir = await tempDir(cleanup);
    const keys = await createTestKeys(dir);
    const port = await freePort();
    await writeFile(path.join(dir, 'sync-rules.yaml'), RULES);
    const configFile = path.join(dir, 'ferry.yaml');
    await writeFile(
      configFile,
      stringify(
        rawServiceConfig({ databaseUrl: url, rules: { path: 'sync-rules.yaml' }, keys, port, logLevel: 'info' }),
      ),
    );
    // (The previous test's process still replicates; this one waits for the lock, and must stop anyway.)
    const cli = runCli(['start', '--config', configFile], { cleanup });
    await waitForHealthy(`http://127.0.0.1:${port}`, cli);
    cli.child.kill('SIGTERM');
    const exit = await cli.exited;
    expect(cli.output(), 'the service logged its clean stop').toContain('ferry service stopped');
    expect({ code: exit.code, output: cli.output().slice(-2000) }).toMatchObject({ code: 0 });
  });
});

describe('a Postgres restart', () => {
  it('does not crash the service; replication resumes and the client gets rows inserted after it', async () => {
    const dir = await tempDir(cleanup);
    // Directly under the temp dir: when tests run as root, Postgres runs as its own OS user and
    // cannot enter a 0700 directory made by mkdtemp.
    const dataDir = path.join(os.tmpdir(), `ferry-e2e-pg-${process.pid}-${Date.now()}`);
    cleanup.add(() => rm(dataDir, { recursive: true, force: true }));
    // persistent: true because restart() with persistent: false wipes the data directory (see the test below).
    const postgres = await startEmbeddedPostgres({ dataDir, persistent: true, unsafeFast: true });
    cleanup.add(() => postgres.stop());
    await postgres.createDatabase('faults');
    const url = postgres.url('faults');
    await pgQuery(url, SOURCE);
    const keys = await createTestKeys(dir);
    const service: FerryService = await startService({ databaseUrl: url, rules: RULES, keys });
    cleanup.add(() => service.stop());
    const errors: unknown[] = [];
    const onUnhandled = (error: unknown): void => {
      errors.push(error);
    };
    process.on('unhandledRejection', onUnhandled);
    process.on('uncaughtException', onUnhandled);
    cleanup.add(() => {
      process.off('unhandledRejection', onUnhandled);
      process.off('uncaughtException', onUnhandled);
    });

    const client = await openClient({
      cleanup,
      dir,
      schema,
      endpoint: () => service.url,
      token: () => keys.token('u1'),
    });
    await client.db.waitForFirstSync({ signal: AbortSignal.timeout(30_000) });
    await waitForRows(client.db, EVENTS, await serverEvents(url));

    await postgres.restart();
    await pgQuery(url, `INSERT INTO events VALUES ('p1', 'after the Postgres restart')`);
    await pgQuery(url, `DELETE FROM events WHERE id = 'e2'`);
    await waitForRows(client.db, EVENTS, await serverEvents(url), { timeoutMs: 40_000 });

    // Still serving: health and a fresh client's first sync.
    const health = await fetch(`${service.url}/health`);
    expect(health.status).toBe(200);
    const fresh = await openClient({
      cleanup,
      dir,
      schema,
      endpoint: () => service.url,
      token: () => keys.token('u2'),
    });
    await fresh.db.waitForFirstSync({ signal: AbortSignal.timeout(30_000) });
    await waitForRows(fresh.db, EVENTS, await serverEvents(url));
    await pgQuery(url, `INSERT INTO events VALUES ('p2', 'later still')`);
    await waitForRows(client.db, EVENTS, await serverEvents(url));
    expect(errors).toEqual([]);

    // Shutting down while Postgres is gone still completes (Ctrl-C must work when the database is down).
    await client.db.disconnect();
    await fresh.db.disconnect();
    await postgres.stop();
    const stopped = await Promise.race([
      service.stop().then(() => 'stopped'),
      sleep(20_000).then(() => 'still stopping'),
    ]);
    expect(stopped, 'FerryService.stop() with Postgres down').toBe('stopped');
  });

  it('restart() of an embedded Postgres keeps its data, as documented, also with persistent: false', async () => {
    const dataDir = path.join(os.tmpdir(), `ferry-e2e-pg-np-${process.pid}-${Date.now()}`);
    cleanup.add(() => rm(dataDir, { recursive: true, force: true }));
    const postgres = await startEmbeddedPostgres({ dataDir, persistent: false, unsafeFast: true });
    // stop() of a server that failed to restart may never resolve: do not let it hang the file.
    cleanup.add(() => Promise.race([postgres.stop(), sleep(5_000)]));
    await postgres.createDatabase('keep');
    await pgQuery(postgres.url('keep'), `CREATE TABLE kept (id int); INSERT INTO kept VALUES (1)`);
    const restarted = await postgres.restart().then(
      () => 'restarted',
      (error: unknown) => `restart failed: ${String(error)}`,
    );
    expect(restarted).toBe('restarted');
    expect(await pgQuery(postgres.url('keep'), `SELECT id FROM kept`)).toEqual([{ id: 1 }]);
  });
});
