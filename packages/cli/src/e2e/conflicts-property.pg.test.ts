/**
 * Property test of field-level merge (issue 6), end to end: 3–5 real Ferry
 * clients (every other one compacting its upload queue, so its ops carry
 * per-column stamps and old values) make random concurrent field edits
 * while randomly going offline and online (so uploads arrive in random
 * order) and the service restarts.
 * Afterwards:
 * - every client holds exactly Postgres' rows;
 * - every field holds the value of its highest-clock edit (all clients use
 *   the machine's clock, so an edit made after seeing another always has a
 *   higher stamp: the highest stamp is the last word);
 * - every edit that was overwritten without its writer's successor having
 *   seen it (a concurrent overwrite), or that lost on arrival, is in
 *   `ferry_conflicts` with its value and stamp.
 */
import { createServer } from 'node:net';
import { column, ferryConnector, Schema, Table, type FerryDatabase } from '@ferry/client';
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  Cleanup,
  describeStatus,
  openClient,
  pgQuery,
  sleep,
  startService,
  startServiceFixture,
  waitFor,
  type ServiceFixture,
  type TestClient,
} from './stack.js';

const SOURCE = `CREATE TABLE cells (id text PRIMARY KEY, a text, b text, c text);`;
const RULES = `
bucket_definitions:
  everything:
    data:
      - SELECT * FROM cells
      - SELECT * FROM ferry_conflicts
`;
const WRITE_RULES = `
tables:
  cells:
    operations: [insert, update, delete]
    columns: [a, b, c]
`;
const FIELDS = ['a', 'b', 'c'] as const;
const ROWS = 2;
const MAX_CLIENTS = 5;
const RUNS = Number(process.env['FERRY_PROPERTY_RUNS'] ?? 10);

const schema = new Schema({ cells: new Table({ a: column.text, b: column.text, c: column.text }) });

type Step =
  | { kind: 'edit'; client: number; row: number; field: (typeof FIELDS)[number] }
  | { kind: 'toggle'; client: number }
  | { kind: 'settle' }
  | { kind: 'restart' };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('edit' as const),
      client: fc.nat(MAX_CLIENTS - 1),
      row: fc.nat(ROWS - 1),
      field: fc.constantFrom(...FIELDS),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('toggle' as const), client: fc.nat(MAX_CLIENTS - 1) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'settle' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'restart' as const }) },
);

interface Edit {
  client: number;
  rowId: string;
  field: string;
  value: string;
  /** The value the client showed before the edit. */
  base: string | null;
  hlc: string;
}

const cleanup = new Cleanup();
let fx: ServiceFixture;
let port: number;
const clients: { client: TestClient; online: boolean }[] = [];

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port: p } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return p;
}

beforeAll(async () => {
  port = await freePort();
  fx = await startServiceFixture(cleanup, {
    database: 'ferry_e2e_conflicts_property',
    source: SOURCE,
    rules: RULES,
    writeRules: WRITE_RULES,
    port,
  });
  for (let i = 0; i < MAX_CLIENTS; i++) {
    const user = `user-${i}`;
    const client = await openClient({
      cleanup,
      dir: fx.dir,
      schema,
      name: `prop-${i}`,
      endpoint: () => fx.service.url,
      token: () => fx.keys.token(user),
      connect: false,
      // Odd clients compact their queue: several edits of a row go up as one op with per-column stamps.
      connector: ferryConnector({
        endpoint: `http://127.0.0.1:${port}`,
        fetchToken: () => fx.keys.token(user),
        compact: i % 2 === 1,
      }),
    });
    clients.push({ client, online: false });
  }
});

afterAll(() => cleanup.run());

async function restartService(): Promise<void> {
  await fx.service.stop();
  fx.service = await startService({
    databaseUrl: fx.url,
    rules: RULES,
    writeRules: WRITE_RULES,
    keys: fx.keys,
    port,
  });
}

async function drained(db: FerryDatabase): Promise<boolean> {
  const rows = await db.getAll<{ n: number }>(
    'SELECT (SELECT count(*) FROM ferry_crud) + (SELECT count(*) FROM ferry_overlay) AS n',
  );
  return Number(rows[0]!.n) === 0;
}

/** Waits until a client has uploaded everything and seen it back; on timeout shows what it kept. */
async function waitDrained(index: number, timeoutMs: number): Promise<void> {
  const db = clients[index]!.client.db;
  let kept = '';
  await waitFor(
    async () => {
      kept = JSON.stringify([
        await db.getAll('SELECT id, tx_id, op, row_id, data, hlc FROM ferry_crud'),
        await db.getAll('SELECT * FROM ferry_overlay'),
      ]);
      return drained(db);
    },
    { timeoutMs, message: () => `client ${index} kept ${kept}; ${describeStatus(db)}` },
  );
}

async function setOnline(index: number, online: boolean): Promise<void> {
  const entry = clients[index]!;
  if (entry.online === online) return;
  if (online) await entry.client.connect();
  else await entry.client.db.disconnect();
  entry.online = online;
}

async function rowsOf(db: FerryDatabase, ids: string[]): Promise<unknown[]> {
  return db.getAll(`SELECT id, a, b, c FROM cells WHERE id IN (${ids.map(() => '?').join(', ')}) ORDER BY id`, ids);
}

let runNo = 0;

it('random concurrent field edits, upload orders, disconnects and restarts converge to the highest clock, losers kept', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 3, max: MAX_CLIENTS }),
      fc.array(fc.boolean(), { minLength: MAX_CLIENTS, maxLength: MAX_CLIENTS }),
      fc.array(stepArb, { minLength: 8, maxLength: 24 }),
      async (count, initiallyOnline, steps) => {
        const run = ++runNo;
        const ids = Array.from({ length: ROWS }, (_, r) => `run${run}-row${r}`);
        await pgQuery(
          fx.url,
          `INSERT INTO cells (id, a, b, c) SELECT id, 'seed', 'seed', 'seed' FROM unnest($1::text[]) AS id`,
          [ids],
        );
        // Everyone starts from the seeded rows, then takes its random connection state.
        for (let i = 0; i < count; i++) await setOnline(i, true);
        for (let i = 0; i < count; i++) {
          await waitFor(async () => (await rowsOf(clients[i]!.client.db, ids)).length === ROWS, {
            message: `client ${i} got the seeded rows`,
          });
        }
        for (let i = 0; i < count; i++) await setOnline(i, initiallyOnline[i]!);

        const edits: Edit[] = [];
        for (const [n, step] of steps.entries()) {
          if (step.kind === 'edit') {
            const index = step.client % count;
            const db = clients[index]!.client.db;
            const rowId = ids[step.row]!;
            const before = await db.get<Record<string, string | null>>(
              `SELECT ${step.field} AS v FROM cells WHERE id = ?`,
              [rowId],
            );
            const value = `r${run}s${n}c${index}`;
            await db.execute(`UPDATE cells SET ${step.field} = ? WHERE id = ?`, [value, rowId]);
            const hlc = await db.get<{ value: string }>(`SELECT value FROM ferry_kv WHERE key = 'hlc'`);
            edits.push({ client: index, rowId, field: step.field, value, base: before['v'] ?? null, hlc: hlc.value });
            await sleep(2); // distinct milliseconds: edits made later carry later clocks
          } else if (step.kind === 'toggle') {
            const index = step.client % count;
            await setOnline(index, !clients[index]!.online);
          } else if (step.kind === 'settle') {
            for (let i = 0; i < count; i++) {
              if (clients[i]!.online) await waitDrained(i, 20_000);
            }
            await sleep(50);
          } else {
            await restartService();
          }
        }

        // Everyone comes online and uploads; then all converge to Postgres.
        for (let i = 0; i < count; i++) await setOnline(i, true);
        for (let i = 0; i < count; i++) {
          await waitDrained(i, 30_000);
        }
        let expected: unknown[] = [];
        await waitFor(
          async () => {
            expected = await pgQuery(fx.url, `SELECT id, a, b, c FROM cells WHERE id = ANY($1) ORDER BY id`, [ids]);
            for (let i = 0; i < count; i++) {
              const rows = await rowsOf(clients[i]!.client.db, ids);
              if (JSON.stringify(rows) !== JSON.stringify(expected)) return false;
            }
            return true;
          },
          { timeoutMs: 30_000, message: () => `clients did not converge to ${JSON.stringify(expected)}` },
        );

        // Every field holds its highest-clock value.
        const pgRows = new Map((expected as Record<string, string>[]).map((row) => [row['id'], row]));
        for (const rowId of ids) {
          for (const field of FIELDS) {
            const mine = edits.filter((e) => e.rowId === rowId && e.field === field);
            const winner = mine.reduce<Edit | null>((best, e) => (best === null || e.hlc > best.hlc ? e : best), null);
            expect(pgRows.get(rowId)![field], `${rowId}.${field}`).toBe(winner?.value ?? 'seed');
          }
        }

        // Every overwritten concurrent value is in ferry_conflicts.
        const conflicts = await pgQuery<{
          row_id: string;
          column_name: string;
          loser_value: string;
          loser_hlc: string;
        }>(fx.url, `SELECT row_id, column_name, loser_value, loser_hlc FROM ferry_conflicts WHERE row_id = ANY($1)`, [
          ids,
        ]);
        if (process.env['FERRY_PROPERTY_DEBUG']) {
          console.log(
            JSON.stringify(
              {
                edits,
                conflicts,
                clocks: await pgQuery(fx.url, `SELECT * FROM ferry.field_clocks WHERE row_id = ANY($1)`, [ids]),
                rows: expected,
              },
              null,
              1,
            ),
          );
        }
        const recorded = new Set(conflicts.map((c) => `${c.row_id}|${c.column_name}|${c.loser_value}`));
        const seen = new Set(edits.map((e) => `${e.rowId}|${e.field}|${e.base}`));
        for (const e of edits) {
          const final = pgRows.get(e.rowId)![e.field] === e.value;
          const builtUpon = seen.has(`${e.rowId}|${e.field}|${e.value}`);
          if (final || builtUpon) continue;
          expect(
            recorded.has(`${e.rowId}|${e.field}|${JSON.stringify(e.value)}`),
            `lost value ${e.value} is recorded`,
          ).toBe(true);
        }
        // And nothing else is: each record is a real edit (or the seed) with its stamp.
        const byValue = new Map(edits.map((e) => [JSON.stringify(e.value), e]));
        for (const c of conflicts) {
          if (c.loser_value === '"seed"') continue;
          const edit = byValue.get(c.loser_value);
          expect(edit, `recorded ${c.loser_value} was written`).toBeDefined();
          expect(c.loser_hlc).toBe(edit!.hlc);
        }
      },
    ),
    {
      numRuns: RUNS,
      endOnFailure: true,
      ...(process.env['FERRY_PROPERTY_SEED'] ? { seed: Number(process.env['FERRY_PROPERTY_SEED']), path: '0' } : {}),
    },
  );
}, 600_000);
