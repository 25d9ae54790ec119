/**
 * A real Ferry service for browser tests: its own database on the run's
 * Postgres, the source schema and rows, sync and write rules, an inline
 * JWKS with a fresh Ed25519 key, and tokens signed with it. Nothing is
 * mocked. `stop()` stops the service and drops the database's inactive
 * replication slots (slots are cluster-wide; files share one Postgres).
 */
import { FerryService, parseConfig } from '@ferry/service';
import { createTestDatabase } from '@ferry/test-utils';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import pg from 'pg';

const AUDIENCE = 'ferry-web-test';

export interface SyncServiceFixture {
  /** The service's base URL (the endpoint clients connect to). */
  url: string;
  databaseUrl: string;
  service: FerryService;
  /** A token for `userId`, valid for an hour. */
  token(userId: string): Promise<string>;
  /** Runs SQL on the source database. */
  query<R = Record<string, unknown>>(text: string, params?: unknown[]): Promise<R[]>;
  stop(): Promise<void>;
}

async function query<R>(url: string, text: string, params: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text, params)).rows as R[];
  } finally {
    await client.end();
  }
}

export async function startSyncService(options: {
  database: string;
  source: string;
  rules: string;
  writeRules?: string;
}): Promise<SyncServiceFixture> {
  const databaseUrl = await createTestDatabase(options.database);
  await query(databaseUrl, options.source);
  const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
  const kid = 'web-test';
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'EdDSA', use: 'sig' };
  const dbName = decodeURIComponent(new URL(databaseUrl).pathname.slice(1));
  const raw = {
    replication: {
      connection: databaseUrl,
      slot_name: `ferry_${dbName.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`.slice(0, 63),
    },
    sync_rules: { content: options.rules },
    ...(options.writeRules === undefined ? {} : { write_rules: { content: options.writeRules } }),
    client_auth: { audience: [AUDIENCE], jwks: { keys: [publicJwk] } },
    api: { host: '127.0.0.1', port: 0 },
    log_level: process.env['FERRY_DEBUG'] ? 'debug' : 'warn',
  };
  const service = await FerryService.start(parseConfig(JSON.stringify(raw), 'ferry.web-test.yaml'), {
    processMetrics: false,
  });
  try {
    await service.waitUntilReady({ timeoutMs: 30_000 });
  } catch (error) {
    await service.stop();
    throw error;
  }
  return {
    url: service.url,
    databaseUrl,
    service,
    token: async (userId) => {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({})
        .setProtectedHeader({ alg: 'EdDSA', kid })
        .setSubject(userId)
        .setAudience(AUDIENCE)
        .setIssuedAt(now)
        .setExpirationTime(now + 3600)
        .sign(privateKey);
    },
    query: (text, params) => query(databaseUrl, text, params),
    stop: async () => {
      await service.stop();
      await query(
        databaseUrl,
        `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
          WHERE database = current_database() AND NOT active`,
      );
    },
  };
}
