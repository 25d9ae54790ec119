/**
 * Test support for the stream API: real compiled sync rules, a test server
 * on 127.0.0.1 over MemoryBucketStorage, tokens, and an ndjson stream
 * reader. Not part of the service's runtime API.
 */
import { NdjsonDecoder, type SqliteRow } from '@ferry/protocol';
import { compileSyncRules, lookupString, type CompiledSyncRules } from '@ferry/rules';
import { SignJWT } from 'jose';
import { createAuthenticator } from '../auth/authenticator.js';
import type { ApiConfig } from '../config/types.js';
import { createHttpServer, type FerryHttpServer, type HttpServerDeps } from '../http/server.js';
import { createLogger } from '../metrics/logger.js';
import { createMetrics, type FerryMetrics } from '../metrics/metrics.js';
import { MemoryBucketStorage } from '../storage/memory-storage.js';

export const TEST_SECRET = 'ferry-test-secret-0123456789abcdef';
export const TEST_AUDIENCE = 'ferry';

/**
 * Buckets: `global[]` (priority 3), `user["<sub>"]` (priority 1) and
 * `lists["<list_id>"]` for each membership row of the user.
 */
export const TEST_RULES = `bucket_definitions:
  global:
    data:
      - SELECT * FROM items
  user:
    priority: 1
    parameters: SELECT request.user_id() AS id
    data:
      - SELECT * FROM profiles WHERE id = bucket.id
  lists:
    parameters: SELECT list_id FROM memberships WHERE user_id = request.user_id()
    data:
      - SELECT * FROM todos WHERE list_id = bucket.list_id
`;

let compiled: Promise<CompiledSyncRules> | null = null;

/** The compiled {@link TEST_RULES} (compiled once per test file). */
export function testRules(): Promise<CompiledSyncRules> {
  compiled ??= compileSyncRules(TEST_RULES, { file: 'test-rules.yaml' });
  return compiled;
}

/** The lookup under which user `userId`'s membership rows are stored (`lists`, parameter query 0). */
export function membershipLookup(userId: string): string {
  return lookupString('lists', 0, [userId]);
}

/**
 * Replicates one source row the way the replicator does: evaluates it with
 * the rules and stages a PUT in every bucket it belongs to. Returns the buckets.
 */
export function replicateRow(
  storage: MemoryBucketStorage,
  rules: CompiledSyncRules,
  table: string,
  row: SqliteRow,
): string[] {
  const { rows, errors } = rules.evaluateRow({ schema: 'public', name: table }, row);
  if (errors.length > 0) throw new Error(errors.map((e) => e.message).join('; '));
  for (const evaluated of rows)
    storage.put(evaluated.bucket, { object_type: evaluated.table, object_id: evaluated.id, data: evaluated.data });
  return rows.map((evaluated) => evaluated.bucket);
}

export async function testToken(
  sub: string | null,
  options: { expiresInSeconds?: number; audience?: string } = {},
): Promise<string> {
  const jwt = new SignJWT(sub === null ? {} : { sub })
    .setProtectedHeader({ alg: 'HS256' })
    .setAudience(options.audience ?? TEST_AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + (options.expiresInSeconds ?? 600));
  return jwt.sign(new TextEncoder().encode(TEST_SECRET));
}

export interface TestServer {
  storage: MemoryBucketStorage;
  metrics: FerryMetrics;
  http: FerryHttpServer;
  url: string;
  close(): Promise<void>;
}

export async function startTestServer(
  options: Partial<Omit<HttpServerDeps, 'api'>> & { api?: Partial<ApiConfig>; storage?: MemoryBucketStorage } = {},
): Promise<TestServer> {
  const storage = options.storage ?? new MemoryBucketStorage();
  const metrics = options.metrics ?? createMetrics({ processMetrics: false });
  const api: ApiConfig = {
    host: '127.0.0.1',
    port: 0,
    maxBucketsPerClient: 1000,
    keepaliveSeconds: 20,
    corsOrigin: '*',
    ...options.api,
  };
  const http = createHttpServer({
    rules: await testRules(),
    authenticator: createAuthenticator({
      audience: [TEST_AUDIENCE],
      jwksUri: null,
      jwks: null,
      hs256Secret: TEST_SECRET,
    }),
    logger: createLogger('silent'),
    ...options,
    storage,
    metrics,
    api,
  });
  const { url } = await http.listen();
  return { storage, metrics, http, url, close: () => http.close() };
}

/** Reads an ndjson response line by line. */
export class StreamReader {
  readonly lines: unknown[] = [];
  ended = false;
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  private readonly decoder = new NdjsonDecoder();
  private cursor = 0;

  constructor(response: Response) {
    this.reader = response.body!.getReader();
  }

  /** The next line, waiting up to `timeoutMs`. Throws if the stream ends first. */
  async next(timeoutMs = 5000): Promise<unknown> {
    const deadline = Date.now() + timeoutMs;
    while (this.cursor >= this.lines.length) {
      if (this.ended) throw new Error('stream ended');
      await this.pull(deadline - Date.now());
    }
    return this.lines[this.cursor++];
  }

  /** Lines up to and including the first one matching `predicate`. */
  async until(
    predicate: (line: Record<string, unknown>) => boolean,
    timeoutMs = 5000,
  ): Promise<Record<string, unknown>[]> {
    const out: Record<string, unknown>[] = [];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = (await this.next(Math.max(1, deadline - Date.now()))) as Record<string, unknown>;
      out.push(line);
      if (predicate(line)) return out;
    }
  }

  /** Lines up to the next `checkpoint_complete`, skipping keepalives. */
  async checkpoint(timeoutMs = 5000): Promise<Record<string, unknown>[]> {
    const lines = await this.until((line) => 'checkpoint_complete' in line, timeoutMs);
    return lines.filter((line) => !('token_expires_in' in line));
  }

  /** Resolves true if no line other than keepalives arrives within `ms`. */
  async quietFor(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (this.cursor < this.lines.length) {
        const line = this.lines[this.cursor++] as Record<string, unknown>;
        if (!('token_expires_in' in line)) return false;
        continue;
      }
      if (this.ended) return true;
      await this.pull(deadline - Date.now()).catch(() => undefined);
    }
    return true;
  }

  async cancel(): Promise<void> {
    await this.reader.cancel().catch(() => undefined);
  }

  private pending: ReturnType<ReadableStreamDefaultReader<Uint8Array>['read']> | null = null;

  private async pull(timeoutMs: number): Promise<void> {
    this.pending ??= this.reader.read();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>(
      (resolve) => (timer = setTimeout(() => resolve('timeout'), Math.max(1, timeoutMs))),
    );
    const result = await Promise.race([this.pending, timeout]);
    clearTimeout(timer);
    if (result === 'timeout') throw new Error('timed out waiting for a line');
    this.pending = null;
    if (result.done) {
      this.ended = true;
      const rest = this.decoder.end();
      if (rest !== '') this.lines.push(JSON.parse(rest));
      return;
    }
    this.decoder.push(result.value, (line) => this.lines.push(JSON.parse(line)));
  }
}

/** Opens a sync stream. */
export async function openStream(
  url: string,
  token: string | null,
  body: Record<string, unknown> = {},
  init: { signal?: AbortSignal } = {},
): Promise<{ response: Response; reader: StreamReader | null }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== null) headers.authorization = `Token ${token}`;
  const response = await fetch(`${url}/sync/stream`, { method: 'POST', headers, body: JSON.stringify(body), ...init });
  return { response, reader: response.ok ? new StreamReader(response) : null };
}
