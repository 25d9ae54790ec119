import { NdjsonDecoder } from '@ferry/protocol';
import { createTestDatabase, sql } from '@ferry/test-utils';
import { SignJWT } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../config/index.js';
import { FerryService } from '../service.js';

/** One parsed sync line, loosely typed for assertions: `{ <kind>: { …fields } }`. */
type StreamLine = Record<string, Record<string, unknown> & { write_checkpoint?: string | null; last_op_id?: string }>;

const SECRET = 'write-checkpoint-test-secret';
const RULES = `
bucket_definitions:
  mine:
    parameters: SELECT request.user_id() AS user_id
    data:
      - SELECT id, title FROM todos WHERE owner = bucket.user_id
`;

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => {});
});

let counter = 0;
async function startService(): Promise<{ service: FerryService; url: string; databaseUrl: string }> {
  const databaseUrl = await createTestDatabase();
  await sql(databaseUrl, `CREATE TABLE todos (id text PRIMARY KEY, owner text NOT NULL, title text)`);
  const slot = `ferry_wc_${process.pid}_${counter++}`;
  const config = parseConfig(
    JSON.stringify({
      replication: { connection: databaseUrl, slot_name: slot },
      sync_rules: { content: RULES },
      client_auth: { audience: ['ferry-test'], hs256_secret: SECRET },
      api: { host: '127.0.0.1', port: 0 },
      log_level: 'warn',
    }),
    'ferry.test.yaml',
  );
  const service = await FerryService.start(config, { processMetrics: false });
  cleanups.push(async () => {
    await service.stop();
    await sql(
      databaseUrl,
      `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '${slot}' AND NOT active`,
    );
  });
  await service.waitUntilReady({ timeoutMs: 30_000 });
  return { service, url: service.url, databaseUrl };
}

function token(sub: string): Promise<string> {
  return new SignJWT({ sub })
    .setProtectedHeader({ alg: 'HS256' })
    .setAudience('ferry-test')
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(SECRET));
}

async function requestWriteCheckpoint(url: string, sub: string, clientId: string): Promise<bigint> {
  const res = await fetch(`${url}/write-checkpoint2.json?client_id=${encodeURIComponent(clientId)}`, {
    headers: { authorization: `Bearer ${await token(sub)}` },
  });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { data: { write_checkpoint: string } };
  expect(body.data.write_checkpoint).toMatch(/^\d+$/);
  return BigInt(body.data.write_checkpoint);
}

/** An open sync stream collecting every line. */
interface Stream {
  lines: StreamLine[];
  /** Resolves with the first line (from `from` on) matching `match`. */
  waitFor(match: (line: StreamLine) => boolean, from?: number): Promise<StreamLine>;
  close(): void;
}

async function openStream(url: string, sub: string, clientId: string): Promise<Stream> {
  const controller = new AbortController();
  const res = await fetch(`${url}/sync/stream`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await token(sub)}`, 'content-type': 'application/json' },
    body: JSON.stringify({ buckets: [], client_id: clientId, include_checksum: true, raw_data: true }),
    signal: controller.signal,
  });
  expect(res.status).toBe(200);
  const lines: StreamLine[] = [];
  const decoder = new NdjsonDecoder();
  let notify = null as (() => void) | null;
  void (async () => {
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        decoder.push(chunk, (line) => lines.push(JSON.parse(line) as StreamLine));
        notify?.();
      }
    } catch {
      // aborted
    }
  })();
  const close = () => controller.abort();
  cleanups.push(async () => close());
  return {
    lines,
    close,
    async waitFor(match, from = 0) {
      const deadline = Date.now() + 20_000;
      for (;;) {
        const found = lines.slice(from).find(match);
        if (found) return found;
        if (Date.now() > deadline) throw new Error(`no matching line; got ${JSON.stringify(lines)}`);
        await new Promise<void>((resolve) => {
          notify = resolve;
          setTimeout(resolve, 100);
        });
      }
    },
  };
}

function writeCheckpointOf(line: StreamLine): bigint | null {
  const wc = line['checkpoint']?.write_checkpoint ?? line['checkpoint_diff']?.write_checkpoint;
  return wc == null ? null : BigInt(wc as string);
}

describe('GET /write-checkpoint2.json', () => {
  it('authenticates, validates client_id and answers the PowerSync shape with increasing ids', async () => {
    const { url } = await startService();
    const none = await fetch(`${url}/write-checkpoint2.json?client_id=a`);
    expect(none.status).toBe(401);
    expect(((await none.json()) as { error: { code: string } }).error.code).toBe('FERRY_S2001');
    const bad = await fetch(`${url}/write-checkpoint2.json?client_id=a`, { headers: { authorization: 'Bearer nope' } });
    expect(bad.status).toBe(401);

    const auth = { authorization: `Bearer ${await token('alice')}` };
    const missing = await fetch(`${url}/write-checkpoint2.json`, { headers: auth });
    expect(missing.status).toBe(400);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('FERRY_S4001');
    const long = await fetch(`${url}/write-checkpoint2.json?client_id=${'x'.repeat(257)}`, { headers: auth });
    expect(long.status).toBe(400);
    expect(((await long.json()) as { error: { code: string } }).error.code).toBe('FERRY_S4001');
    const post = await fetch(`${url}/write-checkpoint2.json?client_id=a`, { method: 'POST', headers: auth });
    expect(post.status).toBe(405);

    const first = await requestWriteCheckpoint(url, 'alice', 'c1');
    const second = await requestWriteCheckpoint(url, 'alice', 'x'.repeat(256));
    expect(second).toBeGreaterThan(first);
  });
});

describe('write checkpoints on the sync stream', () => {
  it('echoes a write checkpoint after replication passes a write made before it', async () => {
    const { url, databaseUrl } = await startService();
    const stream = await openStream(url, 'alice', 'client-a');
    await stream.waitFor((l) => 'checkpoint_complete' in l);
    await sql(databaseUrl, `INSERT INTO todos VALUES ('t1', 'alice', 'from upload')`);
    const wc = await requestWriteCheckpoint(url, 'alice', 'client-a');
    const line = await stream.waitFor((l) => (writeCheckpointOf(l) ?? -1n) >= wc);
    // The checkpoint echoing it includes the write (the row made before the request).
    const index = stream.lines.indexOf(line);
    const complete = await stream.waitFor((l) => 'checkpoint_complete' in l, index);
    const dataBefore = stream.lines
      .slice(0, stream.lines.indexOf(complete))
      .filter((l) => 'data' in l)
      .flatMap((l) => (l['data'].data as { object_id: string }[]).map((op) => op.object_id));
    expect(dataBefore).toContain('t1');
  });

  it('delivers a write checkpoint taken while the source is idle (empty diff + complete)', async () => {
    const { url } = await startService();
    const stream = await openStream(url, 'alice', 'client-a');
    await stream.waitFor((l) => 'checkpoint_complete' in l);
    const from = stream.lines.length;
    const wc = await requestWriteCheckpoint(url, 'alice', 'client-a');
    const line = await stream.waitFor((l) => (writeCheckpointOf(l) ?? -1n) >= wc, from);
    expect(line['checkpoint_diff']).toMatchObject({ updated_buckets: [], removed_buckets: [] });
    const index = stream.lines.indexOf(line);
    const complete = await stream.waitFor((l) => 'checkpoint_complete' in l, index);
    expect(complete['checkpoint_complete'].last_op_id).toBe(line['checkpoint_diff'].last_op_id);

    // A new stream of the same client starts with it on its first checkpoint.
    const again = await openStream(url, 'alice', 'client-a');
    const first = await again.waitFor((l) => 'checkpoint' in l);
    expect(writeCheckpointOf(first)).toBe(wc);
  });

  it("never shows one user's (or client's) write checkpoint to another", async () => {
    const { url } = await startService();
    const bob = await openStream(url, 'bob', 'client-a');
    const aliceOther = await openStream(url, 'alice', 'client-b');
    const alice = await openStream(url, 'alice', 'client-a');
    await bob.waitFor((l) => 'checkpoint_complete' in l);
    await aliceOther.waitFor((l) => 'checkpoint_complete' in l);
    await alice.waitFor((l) => 'checkpoint_complete' in l);
    const wc = await requestWriteCheckpoint(url, 'alice', 'client-a');
    await alice.waitFor((l) => (writeCheckpointOf(l) ?? -1n) >= wc);
    // Bob's own write checkpoint arrives after Alice's was published: by then Alice's would have shown.
    const bobWc = await requestWriteCheckpoint(url, 'bob', 'client-a');
    await bob.waitFor((l) => (writeCheckpointOf(l) ?? -1n) >= bobWc);
    expect(bob.lines.map(writeCheckpointOf).filter((w) => w !== null)).toEqual([bobWc]);
    expect(aliceOther.lines.map(writeCheckpointOf).filter((w) => w !== null)).toEqual([]);
  });
});
