/**
 * The write API's apply engine: client transactions → Postgres, through the
 * write rules, exactly once per idempotency key.
 *
 * One request runs in ONE Postgres transaction. Client transactions are
 * grouped into rounds (consecutive transactions touching distinct rows); a
 * round reads every touched row per table in one `SELECT … FOR UPDATE`
 * (owner, `where`, and equality of the values sent for protected columns
 * come back as columns), validates every op in JavaScript, writes the net
 * effect with a few multi-row `unnest` statements and checks `where` on the
 * rows written in one more query. A round runs under a savepoint: when
 * Postgres refuses something, the round is rolled back and replayed one
 * client transaction at a time, one statement per op, to find the culprit.
 * Transactions rejected by validation are simply left out.
 *
 * Idempotency keys live in `<schema>.write_transactions` in the SOURCE
 * database, inserted at the start of the same Postgres transaction as the
 * writes (a concurrent request with the same key waits on the primary key
 * and then sees a duplicate), with the answer stored at the end.
 *
 * Conflict tracking (tables whose rule does not say `conflicts: off`): the
 * round's read also returns each row's field stamps (`<schema>.field_clocks`)
 * and whether each column still holds the value the writer saw (`old`);
 * {@link WriteApi.mergeTx} then decides every written field (field-merge.ts),
 * drops the values that lose, records them in `ferry_conflicts`, and the
 * round writes the new stamps with the rows. Writes made outside Ferry are
 * stamped by a trigger with Postgres' clock. Transactions touching a table
 * with a validation hook run one at a time, the hook after each op's write.
 */
import { randomUUID } from 'node:crypto';
import {
  FerryError,
  decodeHlc,
  encodeHlc,
  hlcNow,
  valueToJson,
  type ErrorCode,
  type Hlc,
  type SqliteValue,
  type WriteOpResult,
  type WriteResponse,
  type WriteTransactionResult,
} from '@ferry/protocol';
import pg from 'pg';
import { builtinTypes } from '../replication/type-mapping.js';
import { quoteIdent } from '../storage/sql.js';
import { boundStamp, decideField, type FieldStamp } from './field-merge.js';
import type { ValidationContext, ViolationInput, WriteHooks } from './hooks.js';
import type { ClientTransaction } from './write-request.js';
import type { WriteMetrics } from './write-metrics.js';
import { loadWriteSchema, type WriteColumn, type WriteTable } from './write-schema.js';
import type { WriteRules } from './write-rules.js';
import { toPostgresText, ValueConversionError } from './value-conversion.js';
import { claimText, renderWhere, whereParams } from './where-expression.js';

/** The verified caller of a write. */
export interface WriteClient {
  /** The token's `sub`. */
  userId: string;
  /** Every claim of the token (for `owner.claim` and `request.jwt() ->> 'claim'`). */
  claims: Record<string, unknown>;
}

/** What the engine logs: rejected ops at info (code, table, user; never values or tokens). */
export interface WriteLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface WriteApiOptions {
  /** Compiled write rules (`compileWriteRules`). */
  rules: WriteRules;
  /** SOURCE database connection string (ignored when `pool` is given). */
  connectionString?: string;
  /** A pool on the SOURCE database to use instead of creating one; it is not ended by {@link WriteApi.close}. */
  pool?: pg.Pool;
  /** Schema of the bookkeeping table `write_transactions` (default `ferry`, as `storage.schema`). */
  schema?: string;
  /** Pool size when the API creates its pool (default 4). */
  maxConnections?: number;
  /** Most ops in one batched round (default 5,000). */
  maxRoundOps?: number;
  logger?: WriteLogger;
  metrics?: WriteMetrics;
  /** Validation hooks and merge functions (see hooks.ts), already checked against the rules. */
  hooks?: WriteHooks | null;
  /** How far ahead of the service's clock a client stamp may count (default 60,000 ms). */
  maxClockSkewMs?: number;
  /** Schema of `ferry_conflicts` and `ferry_violations` (default `public`). */
  recordsSchema?: string;
  /** The service's clock (ms since the epoch); tests move it. */
  now?: () => number;
}

/** Default bound of a client stamp ahead of the service's clock. */
export const DEFAULT_MAX_CLOCK_SKEW_MS = 60_000;
/** Node of stamps the service gives ops that carry none. */
const SERVICE_NODE = '~service';

type OpKind = 'PUT' | 'PATCH' | 'DELETE';

interface PreparedOp {
  index: number;
  kind: OpKind;
  table: WriteTable;
  id: string;
  /** Converted values (Postgres input text), id excluded. */
  values: Map<string, string | null>;
  /** The values as sent, for conflict records and hooks. */
  raw: Readonly<Record<string, SqliteValue | boolean>>;
  /** The op's stamp (bounded by the service clock, `encodeHlc` text), and per-column stamps overriding it. */
  hlc: string;
  hlcs: Map<string, string>;
  /** `old` converted (Postgres input text) and as sent. */
  old: Map<string, string | null>;
  oldRaw: Readonly<Record<string, SqliteValue | boolean>>;
}

interface Rejection {
  index: number;
  code: ErrorCode;
  message: string;
}

interface PreparedTx {
  /** Position in the request. */
  position: number;
  source: ClientTransaction;
  ops: PreparedOp[];
  /** Rejected before touching the database. */
  rejection: Rejection | null;
  /** Writes a table that some `where` reads: runs in a round of its own. */
  writesWhereInput: boolean;
  /** Writes a table with a validation hook: runs alone, one op at a time. */
  hooked: boolean;
}

/** A row as the round's read found it. */
interface StoredRow {
  exists: boolean;
  owner: string | null;
  whereOk: boolean;
  /** For each compared column: the value compared (the first one the round sends) and whether it equals the stored one. */
  compared: Map<string, { text: string | null; equal: boolean }>;
  /** Tracked tables: the row's field stamps (null: none stored). */
  clocks: StoredClocks | null;
  /** Tracked tables: the `conflicts.scope` column as text. */
  scope: string | null;
  /** Tracked tables: per column, whether the stored value equals the first `old` the round sends for it. */
  oldEqual: Map<string, boolean>;
}

/** A row's `<schema>.field_clocks` entry. Column stamps default to the row's (its insert). */
interface StoredClocks {
  rowHlc: string | null;
  rowUser: string | null;
  /** Column → [stamp, user]. */
  clocks: Record<string, [string, string | null]>;
  deletedHlc: string | null;
  deletedUser: string | null;
}

/** A value kept in `ferry_conflicts`. */
interface ConflictRecord {
  id: string;
  opIndex: number;
  table: WriteTable;
  rowId: string;
  column: string;
  scope: string | null;
  winnerValue: string | null;
  loserValue: string | null;
  baseValue: string | null;
  winnerHlc: string | null;
  loserHlc: string | null;
  winnerUser: string | null;
  loserUser: string | null;
  policy: string;
}

/** What merging a valid transaction adds to it: the stamps to store and the conflicts to record. */
interface MergeOutput {
  clocks: Map<string, { table: WriteTable; id: string; state: StoredClocks }>;
  conflicts: ConflictRecord[];
}

type Effect =
  | { kind: 'insert'; opIndex: number; table: WriteTable; id: string; values: Map<string, string | null> }
  | { kind: 'update'; opIndex: number; table: WriteTable; id: string; values: Map<string, string | null> }
  | { kind: 'delete'; opIndex: number; table: WriteTable; id: string };

interface ValidTx {
  tx: PreparedTx;
  effects: Effect[];
  /** Set by {@link WriteApi.mergeTx} for transactions touching tracked tables. */
  merge?: MergeOutput;
  /** Violation ids raised per op (hooked transactions). */
  violations?: Map<number, string[]>;
}

/** A row's state while validating: as read, then as the round's accepted transactions left it. */
interface Working {
  exists: boolean;
  /** Still the stored row (possibly updated since), not deleted or re-inserted in this round. */
  fromStore: boolean;
  stored: StoredRow | undefined;
  /** Values set or confirmed in this round. */
  known: Map<string, string | null>;
}

/** Net effect of a round on one row. */
type NetRow =
  | { kind: 'keep' | 'absent' | 'delete' }
  | { kind: 'insert' | 'replace' | 'update'; values: Map<string, string | null> };

const ROW_SEP = '\u0000';
const rowKey = (table: WriteTable, id: string) => table.rule.name + ROW_SEP + id;

/** SQLSTATEs worth answering `retry`: serialization, deadlock, lock/statement timeouts, shutdown, resources. */
function isTransient(code: string): boolean {
  return (
    code.startsWith('40') ||
    code.startsWith('08') ||
    code.startsWith('53') ||
    code === '55P03' ||
    code === '57014' ||
    code.startsWith('57P') ||
    code === '58000' ||
    code === '58030'
  );
}

function sqlState(error: unknown): string | null {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : null;
}

/**
 * An error that leaves the connection unusable: the server is going away
 * (08xxx, 57Pxx) or the driver lost the socket (an error without SQLSTATE
 * that is not a programming error of ours).
 */
function isConnectionError(error: unknown): boolean {
  const code = sqlState(error);
  if (code !== null) return code.startsWith('08') || code.startsWith('57P');
  if (error instanceof ConnectionLost) return true;
  return (
    error instanceof Error &&
    !(
      error instanceof TypeError ||
      error instanceof RangeError ||
      error instanceof ReferenceError ||
      error instanceof SyntaxError
    ) &&
    (error as { name?: string }).name !== 'FerryError' &&
    (error as { name?: string }).name !== 'AssertionError'
  );
}

/** Thrown out of a round to end the whole request with `retry` from some transaction on. */
class ConnectionLost extends Error {}

export class WriteApi {
  readonly rules: WriteRules;
  /** Writable tables by client name, bound to the live schema. */
  readonly tables: ReadonlyMap<string, WriteTable>;
  private readonly pool: pg.Pool;
  private readonly ownsPool: boolean;
  private readonly bookkeeping: string;
  private readonly maxRoundOps: number;
  private readonly whereTables: ReadonlySet<string>;
  /** Tables on the search path at start-up, to tell "not writable" (S6001) from "no such table" (S6007). */
  private readonly existingTables: ReadonlySet<string>;
  private readonly logger: WriteLogger | undefined;
  private readonly metrics: WriteMetrics | undefined;
  private readonly hooks: WriteHooks | null;
  private readonly maxClockSkewMs: number;
  private readonly now: () => number;
  private readonly fieldClocks: string;
  private readonly conflictsTable: string;
  private readonly violationsTable: string;
  /** The service's own clock, for ops that carry no stamp. */
  private serviceClock: Hlc | null = null;

  private constructor(
    options: WriteApiOptions,
    pool: pg.Pool,
    tables: Map<string, WriteTable>,
    existingTables: ReadonlySet<string>,
  ) {
    this.existingTables = existingTables;
    this.rules = options.rules;
    this.tables = tables;
    this.pool = pool;
    this.ownsPool = options.pool === undefined;
    this.bookkeeping = `${quoteIdent(options.schema ?? 'ferry')}.write_transactions`;
    this.maxRoundOps = options.maxRoundOps ?? 5000;
    this.logger = options.logger;
    this.metrics = options.metrics;
    this.hooks = options.hooks ?? null;
    this.maxClockSkewMs = options.maxClockSkewMs ?? DEFAULT_MAX_CLOCK_SKEW_MS;
    this.now = options.now ?? Date.now;
    this.fieldClocks = `${quoteIdent(options.schema ?? 'ferry')}.field_clocks`;
    const records = quoteIdent(options.recordsSchema ?? 'public');
    this.conflictsTable = `${records}.ferry_conflicts`;
    this.violationsTable = `${records}.ferry_violations`;
    const whereTables = new Set<string>();
    for (const table of tables.values()) for (const name of table.rule.where?.tables ?? []) whereTables.add(name);
    this.whereTables = whereTables;
  }

  /**
   * Binds the rules to the live schema (FERRY_S1202 on a mismatch) and
   * creates the bookkeeping table if needed. The returned API is ready.
   */
  static async open(options: WriteApiOptions): Promise<WriteApi> {
    const ownsPool = options.pool === undefined;
    const pool =
      options.pool ??
      new pg.Pool({
        connectionString: options.connectionString,
        max: options.maxConnections ?? 4,
        application_name: 'ferry-write',
      });
    if (ownsPool) pool.on('error', () => {}); // surfaced by the failing query instead
    try {
      const client = await pool.connect();
      try {
        await ensureBookkeeping(client, options.schema ?? 'ferry');
        // Before binding the rules: they may name ferry_conflicts (resolving is a delete).
        await ensureConflictTables(client, options.schema ?? 'ferry', options.recordsSchema ?? 'public');
        const tables = await loadWriteSchema(client, options.rules);
        await installOutsideWriteTriggers(client, options.schema ?? 'ferry', tables, options.logger);
        const visible = await client.query<{ name: string }>(
          `SELECT c.relname AS name FROM pg_catalog.pg_class c
           WHERE c.relkind IN ('r', 'p', 'v', 'f') AND pg_catalog.pg_table_is_visible(c.oid)`,
        );
        return new WriteApi(options, pool, tables, new Set(visible.rows.map((r) => r.name)));
      } finally {
        client.release();
      }
    } catch (error) {
      if (ownsPool) await pool.end().catch(() => {});
      throw error;
    }
  }

  /**
   * Forgets idempotency keys of transactions applied more than `olderThanHours`
   * ago; returns how many. A resend of such a transaction would apply again,
   * so keep this well beyond how long a client may stay offline with an
   * unanswered upload.
   */
  async pruneIdempotencyKeys(olderThanHours: number): Promise<number> {
    const result = await this.pool.query(
      `DELETE FROM ${this.bookkeeping} WHERE applied_at < now() - make_interval(hours => $1::int)`,
      [Math.max(0, Math.floor(olderThanHours))],
    );
    return result.rowCount ?? 0;
  }

  /**
   * Forgets delete tombstones older than `olderThanHours`: a client edit of
   * such a row arriving later (offline that long) no longer becomes a
   * `deleted` conflict; it is dropped like an edit of a row that never
   * existed. Returns how many went.
   */
  async pruneTombstones(olderThanHours: number): Promise<number> {
    const cutoff = encodeHlc({
      wallMs: Math.max(0, this.now() - Math.max(0, Math.floor(olderThanHours)) * 3_600_000),
      counter: 0,
      node: '',
    });
    const result = await this.pool.query(
      `DELETE FROM ${this.fieldClocks} WHERE row_hlc IS NULL AND clocks = '{}' AND deleted_hlc < $1`,
      [cutoff],
    );
    return result.rowCount ?? 0;
  }

  /** Ends the pool (unless it was passed in). */
  async close(): Promise<void> {
    if (this.ownsPool) await this.pool.end().catch(() => {});
  }

  /**
   * Applies client transactions for a verified client and answers per
   * transaction and op (see `WriteResponse`). Never throws for anything a
   * client sent; transient database trouble answers `retry`.
   */
  async apply(transactions: readonly ClientTransaction[], client: WriteClient): Promise<WriteResponse> {
    const prepared = transactions.map((tx, position) => this.prepare(tx, position, client));
    const results: (WriteTransactionResult | undefined)[] = prepared.map(() => undefined);
    /** Position of a transaction whose key appeared earlier in the request → that earlier position. */
    const repeats = new Map<number, number>();
    const firstByKey = new Map<string, number>();
    for (const tx of prepared) {
      const key = tx.source.key;
      if (key === null) continue;
      const first = firstByKey.get(key);
      if (first === undefined) firstByKey.set(key, tx.position);
      else repeats.set(tx.position, first);
    }

    let conn: pg.PoolClient | null = null;
    let broken = false;
    const duplicates = new Set<number>();
    try {
      conn = await this.pool.connect();
      // `ferry.applying` hides Ferry's own writes from the outside-write trigger.
      await conn.query(`BEGIN; SELECT set_config('ferry.applying', 'on', true)`);
      // Claim the keys (sorted, so two requests never wait on each other in a cycle).
      const keys = [...firstByKey.keys()].sort();
      if (keys.length > 0) {
        const { rows: claimed } = await conn.query<{ key: string }>(
          `INSERT INTO ${this.bookkeeping} (user_id, key)
           SELECT $1, k FROM unnest($2::text[]) AS k ORDER BY k
           ON CONFLICT DO NOTHING RETURNING key`,
          [client.userId, keys],
        );
        const fresh = new Set(claimed.map((r) => r.key));
        const taken = keys.filter((k) => !fresh.has(k));
        if (taken.length > 0) {
          const { rows } = await conn.query<{ key: string; result: StoredResult | null }>(
            `SELECT key, result FROM ${this.bookkeeping} WHERE user_id = $1 AND key = ANY($2::text[])`,
            [client.userId, taken],
          );
          const stored = new Map(rows.map((r) => [r.key, r.result]));
          for (const key of taken) {
            const position = firstByKey.get(key)!;
            results[position] = fromStored(prepared[position]!, stored.get(key) ?? null);
            duplicates.add(position);
          }
        }
      }
      for (const tx of prepared) {
        if (tx.rejection !== null && results[tx.position] === undefined) {
          results[tx.position] = rejected(tx, tx.rejection);
        }
      }
      const todo = prepared.filter((tx) => results[tx.position] === undefined && !repeats.has(tx.position));
      await this.runRounds(conn, todo, client, results);

      // Store the answers under their keys; a `retry` frees its key.
      const store: { keys: string[]; results: string[] } = { keys: [], results: [] };
      const release: string[] = [];
      for (const [key, position] of firstByKey) {
        if (duplicates.has(position)) continue;
        const result = results[position]!;
        if (result.status === 'retry') release.push(key);
        else {
          store.keys.push(key);
          store.results.push(JSON.stringify({ status: result.status, ops: result.ops } satisfies StoredResult));
        }
      }
      if (store.keys.length > 0) {
        await conn.query(
          `UPDATE ${this.bookkeeping} AS w SET result = r.result::jsonb, applied_at = now()
             FROM unnest($2::text[], $3::text[]) AS r(key, result)
            WHERE w.user_id = $1 AND w.key = r.key`,
          [client.userId, store.keys, store.results],
        );
      }
      if (release.length > 0) {
        await conn.query(`DELETE FROM ${this.bookkeeping} WHERE user_id = $1 AND key = ANY($2::text[])`, [
          client.userId,
          release,
        ]);
      }
      await conn.query('COMMIT');
    } catch (error) {
      broken = true;
      if (!isConnectionError(error) && !isTransient(sqlState(error) ?? '')) throw error;
      this.logger?.warn({ err: error, userId: client.userId }, 'write request failed transiently; answering retry');
      for (const tx of prepared) {
        if (!duplicates.has(tx.position)) results[tx.position] = retryResult(tx, 'the database is unavailable or busy');
      }
    } finally {
      if (conn !== null) {
        if (broken) {
          await conn.query('ROLLBACK').catch(() => {});
          conn.release(true);
        } else conn.release();
      }
    }

    for (const [position, first] of repeats) {
      const earlier = results[first]!;
      results[position] =
        earlier.status === 'retry'
          ? { ...earlier, id: prepared[position]!.source.id }
          : { ...earlier, id: prepared[position]!.source.id, duplicate: true };
    }
    const answer = results.map((result) => result!);
    this.record(prepared, answer, duplicates, repeats, client);
    return { transactions: answer };
  }

  // ── preparation (no database) ────────────────────────────────────────────

  private prepare(source: ClientTransaction, position: number, client: WriteClient): PreparedTx {
    const ops: PreparedOp[] = [];
    let rejection: Rejection | null = null;
    let writesWhereInput = false;
    let hooked = false;
    const nowMs = this.now();
    for (let index = 0; index < source.ops.length && rejection === null; index++) {
      const op = source.ops[index]!;
      const reject = (code: ErrorCode, message: string) => (rejection = { index, code, message });
      const table = this.tables.get(op.type);
      if (table === undefined) {
        if (this.existingTables.has(op.type)) {
          reject('FERRY_S6001', `table ${quoteName(op.type)} is not writable: the write rules do not list it`);
        } else {
          reject('FERRY_S6007', `there is no writable table ${quoteName(op.type)}`);
        }
        break;
      }
      if (this.whereTables.has(table.qualifiedName)) writesWhereInput = true;
      if (this.hooks?.validate?.[table.rule.name] !== undefined) hooked = true;
      const allowed = table.rule.operations;
      if (op.op === 'DELETE' && !allowed.has('delete'))
        reject('FERRY_S6001', `delete is not allowed on ${table.rule.name}`);
      else if (op.op === 'PATCH' && !allowed.has('update'))
        reject('FERRY_S6001', `update is not allowed on ${table.rule.name}`);
      else if (op.op === 'PUT' && !allowed.has('insert') && !allowed.has('update'))
        reject('FERRY_S6001', `insert and update are not allowed on ${table.rule.name}`);
      if (rejection !== null) break;
      if (table.rule.owner !== null && ownerValue(table, client) === null) {
        reject('FERRY_S6004', `the token has no claim ${table.rule.owner.claim} to own rows of ${table.rule.name}`);
        break;
      }
      const values = new Map<string, string | null>();
      const data = op.data ?? {};
      if (op.op === 'DELETE' && Object.keys(data).length > 0) {
        reject('FERRY_S6009', 'a DELETE carries no data');
        break;
      }
      for (const [name, value] of Object.entries(data)) {
        if (name === 'id') {
          if (value !== null && String(value) !== op.id) reject('FERRY_S6009', 'data.id differs from the op id');
          continue;
        }
        const column = table.columns.get(name);
        if (column === undefined) {
          reject('FERRY_S6007', `column ${quoteName(name)} of ${table.rule.name} does not exist`);
          break;
        }
        try {
          values.set(name, toPostgresText(column.kind, value));
        } catch (error) {
          if (!(error instanceof ValueConversionError)) throw error;
          reject('FERRY_S6005', `column ${name}: ${error.message}`);
          break;
        }
      }
      if (rejection !== null) break;
      const old = new Map<string, string | null>();
      for (const [name, value] of Object.entries(op.old ?? {})) {
        const column = table.columns.get(name);
        if (column === undefined || !values.has(name)) continue; // only the columns the op writes matter
        try {
          old.set(name, toPostgresText(column.kind, value));
        } catch (error) {
          if (!(error instanceof ValueConversionError)) throw error;
          reject('FERRY_S6009', `old value of column ${name}: ${error.message}`);
          break;
        }
      }
      if (rejection !== null) break;
      let hlc: string;
      const hlcs = new Map<string, string>();
      try {
        hlc = encodeHlc(
          op.hlc === undefined ? this.serviceStamp(nowMs) : boundStamp(decodeHlc(op.hlc), nowMs, this.maxClockSkewMs),
        );
        for (const [name, text] of Object.entries(op.hlcs ?? {})) {
          hlcs.set(name, encodeHlc(boundStamp(decodeHlc(text), nowMs, this.maxClockSkewMs)));
        }
      } catch (error) {
        if (!(error instanceof RangeError)) throw error;
        reject('FERRY_S6009', `bad HLC stamp: ${error.message}`);
        break;
      }
      ops.push({
        index,
        kind: op.op,
        table,
        id: op.id,
        values,
        raw: data,
        hlc,
        hlcs,
        old,
        oldRaw: op.old ?? {},
      });
    }
    return { position, source, ops, rejection, writesWhereInput, hooked };
  }

  /** A fresh stamp of the service's clock (for ops without one). */
  private serviceStamp(nowMs: number): Hlc {
    this.serviceClock = hlcNow(this.serviceClock, nowMs, SERVICE_NODE);
    return this.serviceClock;
  }

  // ── rounds ───────────────────────────────────────────────────────────────

  private async runRounds(
    conn: pg.PoolClient,
    txs: PreparedTx[],
    client: WriteClient,
    results: (WriteTransactionResult | undefined)[],
  ): Promise<void> {
    let i = 0;
    while (i < txs.length) {
      const round: PreparedTx[] = [];
      const touched = new Set<string>();
      let ops = 0;
      while (i < txs.length) {
        const tx = txs[i]!;
        // Rows of tables without `where` may be touched again within a round: validation follows
        // their state in JavaScript. A `where` is only checked on the round's final rows, and field
        // stamps are read once per round, so rows of such tables start a new round when touched again.
        const keys = tx.ops
          .filter((op) => op.table.rule.where !== null || isTracked(op.table))
          .map((op) => rowKey(op.table, op.id));
        const overlaps = keys.some((k) => touched.has(k));
        const alone = tx.writesWhereInput || tx.hooked;
        if (round.length > 0 && (overlaps || alone || ops + tx.ops.length > this.maxRoundOps)) break;
        round.push(tx);
        for (const k of keys) touched.add(k);
        ops += tx.ops.length;
        i++;
        if (alone) break;
      }
      const stoppedAt = await this.batchRound(conn, round, client, results);
      if (stoppedAt !== null) {
        const message = 'an earlier transaction of this request must be retried first';
        for (const tx of txs.slice(txs.indexOf(stoppedAt) + 1)) {
          results[tx.position] = retryResult(tx, message);
        }
        return;
      }
    }
  }

  /** Applies a round; returns the transaction that answered `retry` (later ones must too), or null. */
  private async batchRound(
    conn: pg.PoolClient,
    round: PreparedTx[],
    client: WriteClient,
    results: (WriteTransactionResult | undefined)[],
  ): Promise<PreparedTx | null> {
    let pending = round;
    // Validation hooks run after each op's write: one statement per op.
    if (round.length === 1 && round[0]!.hooked) return this.oneByOne(conn, round, client, results);
    for (;;) {
      await conn.query('SAVEPOINT ferry_round');
      try {
        const stored = await this.readRows(conn, pending, client);
        const valid: ValidTx[] = [];
        const state = new Map<string, Working>();
        for (const tx of pending) {
          const outcome = this.validate(tx, stored, client, state);
          if ('index' in outcome) {
            results[tx.position] = rejected(tx, outcome);
            continue;
          }
          try {
            await this.mergeTx(conn, outcome, stored, client);
          } catch (error) {
            if (!(error instanceof HookFailure)) throw error;
            results[tx.position] = this.hookFailed(tx, error, client);
            continue;
          }
          valid.push(outcome);
        }
        await this.writeNet(conn, valid, stored);
        await this.writeMergeOutput(conn, valid);
        const violations = await this.checkWhere(conn, valid, client);
        if (violations.size > 0) {
          await conn.query('ROLLBACK TO SAVEPOINT ferry_round');
          await conn.query('RELEASE SAVEPOINT ferry_round');
          for (const v of valid) {
            const culprit = v.effects.findLast((e) => violations.has(rowKey(e.table, e.id)));
            if (culprit !== undefined) results[v.tx.position] = rejected(v.tx, whereRejection(culprit));
          }
          pending = valid.filter((v) => results[v.tx.position] === undefined).map((v) => v.tx);
          if (pending.length === 0) return null;
          continue;
        }
        await conn.query('RELEASE SAVEPOINT ferry_round');
        for (const v of valid) results[v.tx.position] = appliedResult(v);
        return null;
      } catch (error) {
        if (isConnectionError(error)) throw new ConnectionLost('connection lost', { cause: error });
        if (sqlState(error) === null) throw error;
        await this.rollbackTo(conn, 'ferry_round');
      }
      // Postgres refused something: replay one transaction at a time to find it.
      return this.oneByOne(conn, pending, client, results);
    }
  }

  /** Applies transactions one at a time; returns the one that answered `retry` (later ones must too), or null. */
  private async oneByOne(
    conn: pg.PoolClient,
    txs: PreparedTx[],
    client: WriteClient,
    results: (WriteTransactionResult | undefined)[],
  ): Promise<PreparedTx | null> {
    for (const tx of txs) {
      const outcome = await this.sequentialTx(conn, tx, client);
      if (outcome === 'retry') {
        results[tx.position] = retryResult(
          tx,
          'the database asked to retry (lock timeout, deadlock or serialization failure)',
        );
        return tx;
      }
      results[tx.position] = outcome;
    }
    return null;
  }

  private async rollbackTo(conn: pg.PoolClient, savepoint: string): Promise<void> {
    try {
      await conn.query(`ROLLBACK TO SAVEPOINT ${savepoint}`);
      await conn.query(`RELEASE SAVEPOINT ${savepoint}`);
    } catch (error) {
      throw new ConnectionLost('cannot roll back', { cause: error });
    }
  }

  /** One client transaction, one statement per op, under a savepoint. */
  private async sequentialTx(
    conn: pg.PoolClient,
    tx: PreparedTx,
    client: WriteClient,
  ): Promise<WriteTransactionResult | 'retry'> {
    await conn.query('SAVEPOINT ferry_tx');
    let currentOp = -1;
    try {
      const stored = await this.readRows(conn, [tx], client);
      const outcome = this.validate(tx, stored, client);
      if ('index' in outcome) {
        await conn.query('RELEASE SAVEPOINT ferry_tx');
        return rejected(tx, outcome);
      }
      await this.mergeTx(conn, outcome, stored, client);
      const opsByIndex = new Map(tx.ops.map((op) => [op.index, op]));
      for (const effect of outcome.effects) {
        currentOp = effect.opIndex;
        await this.writeEffect(conn, effect);
        const hook = this.hooks?.validate?.[effect.table.rule.name];
        if (hook !== undefined) {
          const raised = await this.runHook(conn, hook, effect, opsByIndex.get(effect.opIndex)!, tx, client);
          outcome.violations ??= new Map();
          outcome.violations.set(effect.opIndex, [...(outcome.violations.get(effect.opIndex) ?? []), ...raised]);
        }
      }
      currentOp = -1;
      await this.writeMergeOutput(conn, [outcome]);
      const violations = await this.checkWhere(conn, [outcome], client);
      if (violations.size > 0) {
        await this.rollbackTo(conn, 'ferry_tx');
        const culprit = outcome.effects.findLast((e) => violations.has(rowKey(e.table, e.id)))!;
        return rejected(tx, whereRejection(culprit));
      }
      await conn.query('RELEASE SAVEPOINT ferry_tx');
      return appliedResult(outcome);
    } catch (error) {
      if (error instanceof HookRejection || error instanceof HookFailure) {
        await this.rollbackTo(conn, 'ferry_tx');
        if (error instanceof HookFailure) return this.hookFailed(tx, error, client);
        return rejected(
          tx,
          { index: currentOp >= 0 ? currentOp : 0, code: 'FERRY_S6010', message: error.message },
          error.retryable,
        );
      }
      if (isConnectionError(error)) throw new ConnectionLost('connection lost', { cause: error });
      const code = sqlState(error);
      if (code === null) throw error;
      await this.rollbackTo(conn, 'ferry_tx');
      if (isTransient(code)) return 'retry';
      const index = currentOp >= 0 ? currentOp : await this.findReadCulprit(conn, tx, client);
      if (index === 'retry') return 'retry';
      return rejected(tx, { index, code: 'FERRY_S6005', message: (error as Error).message });
    }
  }

  /** The op whose row read fails (a value or id Postgres cannot take). */
  private async findReadCulprit(conn: pg.PoolClient, tx: PreparedTx, client: WriteClient): Promise<number | 'retry'> {
    for (const op of tx.ops) {
      await conn.query('SAVEPOINT ferry_op');
      try {
        await this.readRows(conn, [{ ...tx, ops: [op] }], client);
        await conn.query('RELEASE SAVEPOINT ferry_op');
      } catch (error) {
        if (isConnectionError(error)) throw new ConnectionLost('connection lost', { cause: error });
        await this.rollbackTo(conn, 'ferry_op');
        if (isTransient(sqlState(error) ?? '')) return 'retry';
        return op.index;
      }
    }
    return tx.ops[0]?.index ?? 0;
  }

  // ── reading and validating ───────────────────────────────────────────────

  /**
   * Locks and reads every row the transactions touch, one query per table.
   * For tracked tables the same query returns the row's scope and, per
   * column, whether the stored value equals the first `old` the round sends
   * for it; a second statement reads the rows' field stamps.
   */
  private async readRows(conn: pg.PoolClient, txs: PreparedTx[], client: WriteClient): Promise<Map<string, StoredRow>> {
    interface Wanted {
      ids: string[];
      /** Protected columns: the first value sent per row. */
      values: Map<string, Map<string, string | null>>;
      /** Tracked: the first `old` sent per row and column. */
      olds: Map<string, Map<string, string | null>>;
      /** Tracked: rows patched (their tombstones matter when they are gone). */
      patched: Set<string>;
    }
    const byTable = new Map<WriteTable, Wanted>();
    for (const tx of txs) {
      for (const op of tx.ops) {
        let entry = byTable.get(op.table);
        if (entry === undefined) {
          byTable.set(op.table, (entry = { ids: [], values: new Map(), olds: new Map(), patched: new Set() }));
        }
        let row = entry.values.get(op.id);
        if (row === undefined) {
          entry.ids.push(op.id);
          entry.values.set(op.id, (row = new Map()));
          entry.olds.set(op.id, new Map());
        }
        const tracked = isTracked(op.table);
        for (const [name, text] of op.values) {
          if (isProtected(op.table, name) && !row.has(name)) row.set(name, text);
        }
        if (tracked) {
          const olds = entry.olds.get(op.id)!;
          for (const [name, text] of op.old) if (!olds.has(name)) olds.set(name, text);
          if (op.kind === 'PATCH') entry.patched.add(op.id);
        }
      }
    }
    const out = new Map<string, StoredRow>();
    for (const [table, { ids, values, olds, patched }] of byTable) {
      const tracked = isTracked(table);
      const compared = [...new Set([...values.values()].flatMap((row) => [...row.keys()]))];
      const oldColumns = tracked ? [...new Set([...olds.values()].flatMap((row) => [...row.keys()]))] : [];
      const params: unknown[] = [
        ids,
        ...compared.map((name) => ids.map((id) => values.get(id)!.get(name) ?? null)),
        ...oldColumns.map((name) => ids.map((id) => olds.get(id)!.get(name) ?? null)),
      ];
      const relation = quoteIdent(table.rule.table);
      const unnest = `unnest(${params.map((_, i) => `$${i + 1}::text[]`).join(', ')}) AS __ferry_v(__ferry_k${compared
        .map((_, i) => `, __ferry_c${i}`)
        .join('')}${oldColumns.map((_, i) => `, __ferry_o${i}`).join('')})`;
      const owner = table.rule.owner ? `${relation}.${quoteIdent(table.rule.owner.column)}::text` : 'NULL::text';
      let where = 'true';
      if (table.rule.where !== null) {
        where = renderWhere(table.rule.where, params.length + 1);
        params.push(...whereParams(table.rule.where, client.userId, client.claims));
      }
      const equals = (name: string, sent: string) => storedEquals(relation, table.columns.get(name)!, sent);
      const select = [
        `__ferry_v.__ferry_k AS k`,
        `${owner} AS owner`,
        `${where} AS w`,
        ...compared.map((name, i) => `${equals(name, `__ferry_v.__ferry_c${i}`)} AS e${i}`),
      ];
      if (tracked) {
        select.push(
          table.rule.conflicts.scope === null
            ? 'NULL::text AS sc'
            : `${relation}.${quoteIdent(table.rule.conflicts.scope)}::text AS sc`,
          ...oldColumns.map((name, i) => `${equals(name, `__ferry_v.__ferry_o${i}`)} AS o${i}`),
        );
      }
      const { rows } = await conn.query<Record<string, unknown>>({
        text: `SELECT ${select.join(', ')}
                 FROM ${unnest} JOIN ${table.sql} ON ${relation}.id = __ferry_v.__ferry_k::${table.id.cast}
                ORDER BY ${relation}.id FOR UPDATE OF ${relation}`,
        values: params,
      });
      for (const row of rows) {
        const id = row['k'] as string;
        const sentValues = values.get(id)!;
        const sentOlds = olds.get(id)!;
        out.set(rowKey(table, id), {
          exists: true,
          owner: (row['owner'] as string | null) ?? null,
          whereOk: row['w'] === true,
          compared: new Map(
            compared
              .map((name, i) => [name, { text: sentValues.get(name) ?? null, equal: row[`e${i}`] === true }] as const)
              .filter(([name]) => sentValues.has(name)),
          ),
          clocks: null,
          scope: (row['sc'] as string | null | undefined) ?? null,
          oldEqual: new Map(
            oldColumns
              .filter((name) => sentOlds.has(name))
              .map((name) => [name, row[`o${oldColumns.indexOf(name)}`] === true]),
          ),
        });
      }
      // Field stamps of the rows found, and tombstones of patched rows that are gone. Read by a
      // statement of their own, AFTER the rows are locked: every writer of a row's stamps holds
      // the row's lock, so this snapshot has the latest ones (the locking query's snapshot may
      // predate a writer that committed while it waited).
      const found = rows.map((row) => row['k'] as string);
      const wanted = tracked ? [...found, ...[...patched].filter((id) => !out.has(rowKey(table, id)))] : [];
      if (wanted.length > 0) {
        const { rows: stamps } = await conn.query<{
          k: string;
          row_hlc: string | null;
          row_user: string | null;
          clocks: StoredClocks['clocks'];
          deleted_hlc: string | null;
          deleted_user: string | null;
        }>(
          `SELECT __ferry_v.k, fc.row_hlc, fc.row_user, fc.clocks, fc.deleted_hlc, fc.deleted_user
             FROM unnest($2::text[]) AS __ferry_v(k)
             JOIN ${this.fieldClocks} fc ON fc.table_name = $1 AND fc.row_id = __ferry_v.k::${table.id.cast}::text`,
          [table.qualifiedName, wanted],
        );
        for (const t of stamps) {
          const clocks: StoredClocks = {
            rowHlc: t.row_hlc,
            rowUser: t.row_user,
            clocks: t.clocks,
            deletedHlc: t.deleted_hlc,
            deletedUser: t.deleted_user,
          };
          const key = rowKey(table, t.k);
          const existing = out.get(key);
          if (existing !== undefined) existing.clocks = clocks;
          else if (t.deleted_hlc !== null) {
            out.set(key, {
              exists: false,
              owner: null,
              whereOk: false,
              compared: new Map(),
              clocks,
              scope: null,
              oldEqual: new Map(),
            });
          }
        }
      }
    }
    return out;
  }

  /** Validates a transaction against the rows as read; returns its effects in op order, or its rejection. */
  /**
   * Validates a transaction against the rows as read, as left by the round's
   * earlier accepted transactions (`round`, updated when this one is valid).
   * Returns its effects in op order, or its rejection.
   */
  private validate(
    tx: PreparedTx,
    stored: Map<string, StoredRow>,
    client: WriteClient,
    round: Map<string, Working> = new Map(),
  ): ValidTx | Rejection {
    const working = new Map<string, Working>();
    const effects: Effect[] = [];
    for (const op of tx.ops) {
      const key = rowKey(op.table, op.id);
      let row = working.get(key);
      if (row === undefined) {
        const earlier = round.get(key);
        const found = stored.get(key);
        row =
          earlier !== undefined
            ? { ...earlier, known: new Map(earlier.known) }
            : { exists: found?.exists === true, fromStore: found?.exists === true, stored: found, known: new Map() };
        working.set(key, row);
      }
      const rule = op.table.rule;
      const checkRow = (): Rejection | null => {
        if (!row!.fromStore || row!.stored === undefined) return null; // inserted by this transaction: checked after writing
        if (rule.owner !== null && row!.stored.owner !== ownerValue(op.table, client)) {
          return { index: op.index, code: 'FERRY_S6004', message: `the ${rule.name} row belongs to another user` };
        }
        if (!row!.stored.whereOk) {
          return {
            index: op.index,
            code: 'FERRY_S6004',
            message: `the ${rule.name} row does not match the write rules' where`,
          };
        }
        return null;
      };
      const updateValues = (): Map<string, string | null> | Rejection => {
        const kept = new Map<string, string | null>();
        for (const [name, text] of op.values) {
          if (rule.owner?.column === name) continue; // cannot change; forced
          if (op.table.writable.has(name)) {
            kept.set(name, text);
            continue;
          }
          let same: boolean;
          if (row!.known.has(name)) same = row!.known.get(name) === text;
          else if (row!.fromStore) {
            const compared = row!.stored?.compared.get(name);
            same = compared !== undefined && compared.equal && compared.text === text;
          } else same = text === null; // inserted by this transaction without it: its default
          if (!same) {
            return op.table.immutable.has(name)
              ? { index: op.index, code: 'FERRY_S6003', message: `column ${name} of ${rule.name} is immutable` }
              : { index: op.index, code: 'FERRY_S6002', message: `column ${name} of ${rule.name} is not writable` };
          }
          row!.known.set(name, text);
        }
        return kept;
      };

      if (op.kind === 'DELETE') {
        if (!row.exists) continue;
        const problem = checkRow();
        if (problem) return problem;
        effects.push({ kind: 'delete', opIndex: op.index, table: op.table, id: op.id });
        row.exists = false;
        row.fromStore = false;
        row.known = new Map();
        continue;
      }
      if (op.kind === 'PUT' && !row.exists) {
        if (!rule.operations.has('insert')) {
          return { index: op.index, code: 'FERRY_S6001', message: `insert is not allowed on ${rule.name}` };
        }
        const values = new Map<string, string | null>();
        for (const [name, text] of op.values) {
          if (rule.owner?.column === name) continue;
          if (op.table.writable.has(name) || op.table.immutable.has(name)) values.set(name, text);
          else if (text !== null) {
            return { index: op.index, code: 'FERRY_S6002', message: `column ${name} of ${rule.name} is not writable` };
          }
        }
        if (rule.owner !== null) values.set(rule.owner.column, ownerValue(op.table, client));
        effects.push({ kind: 'insert', opIndex: op.index, table: op.table, id: op.id, values });
        row.exists = true;
        row.fromStore = false;
        row.known = new Map(values);
        continue;
      }
      if (!row.exists) continue; // PATCH of a missing row: applied, no effect
      if (op.kind === 'PUT' && !rule.operations.has('update')) {
        return {
          index: op.index,
          code: 'FERRY_S6001',
          message: `update is not allowed on ${rule.name} (the row exists)`,
        };
      }
      const problem = checkRow();
      if (problem) return problem;
      const values = updateValues();
      if (!(values instanceof Map)) return values;
      for (const [name, text] of values) row.known.set(name, text);
      if (values.size > 0) effects.push({ kind: 'update', opIndex: op.index, table: op.table, id: op.id, values });
    }
    for (const [key, row] of working) round.set(key, row);
    return { tx, effects };
  }

  // ── validation hooks ─────────────────────────────────────────────────────

  /**
   * Runs a table's validation hook after one op's write, then re-evaluates
   * the violations this hook raised before that involve the op's row: those
   * it does not raise again are cleared, those it raises are stored.
   * Returns the ids of the violations raised. Throws {@link HookRejection}
   * when the hook rejects, {@link HookFailure} when it throws, and a
   * database error unchanged when the database failed under it (so that
   * transient trouble still answers `retry`).
   */
  private async runHook(
    conn: pg.PoolClient,
    hook: NonNullable<WriteHooks['validate']>[string],
    effect: Effect,
    op: PreparedOp,
    tx: PreparedTx,
    client: WriteClient,
  ): Promise<string[]> {
    const table = effect.table;
    const relation = quoteIdent(table.rule.table);
    let row: Record<string, unknown> | null = null;
    if (effect.kind !== 'delete') {
      const { rows } = await conn.query(`SELECT * FROM ${table.sql} AS ${relation} WHERE id = $1::${table.id.cast}`, [
        effect.id,
      ]);
      row = rows[0] ?? null;
    }
    const raised: ViolationInput[] = [];
    let dbError: unknown = null;
    const data: Record<string, SqliteValue> = {};
    if (effect.kind !== 'delete') for (const name of effect.values.keys()) data[name] = sqliteForm(op.raw[name]);
    const context: ValidationContext = {
      op: { kind: effect.kind, table: table.rule.name, id: effect.id, data },
      row,
      tx: {
        query: async (sql, params) => {
          try {
            const result = await conn.query(sql, params === undefined ? [] : [...params]);
            return { rows: result.rows, rowCount: result.rowCount ?? 0 };
          } catch (error) {
            dbError ??= error;
            throw error;
          }
        },
      },
      token: { userId: client.userId, claims: client.claims },
      transactionId: tx.source.id,
      reject(message: string, options?: { retryable?: boolean }): never {
        throw new HookRejection(String(message), options?.retryable === true);
      },
      violation(input: ViolationInput): void {
        if (typeof input?.key !== 'string' || input.key === '' || typeof input.message !== 'string') {
          throw new TypeError('violation() needs a non-empty key and a message');
        }
        raised.push(input);
      },
    };
    try {
      await hook(context);
    } catch (error) {
      if (error instanceof HookRejection) throw error;
      if (dbError !== null && (isConnectionError(dbError) || isTransient(sqlState(dbError) ?? ''))) throw dbError;
      throw new HookFailure(
        op.index,
        `the validation hook of ${table.rule.name} threw: ${(error as Error)?.message ?? String(error)}`,
        error,
      );
    }
    if (dbError !== null) {
      throw new HookFailure(
        op.index,
        `a query of the validation hook of ${table.rule.name} failed: ${(dbError as Error).message}`,
        dbError,
      );
    }

    const subject = `${table.rule.name}:${effect.id}`;
    const byId = new Map<string, ViolationInput>();
    for (const input of raised) byId.set(`${table.rule.name}:${input.key}`, input);
    const ids = [...byId.keys()];
    await conn.query(
      `DELETE FROM ${this.violationsTable}
        WHERE table_name = $1 AND row_keys && ARRAY[$2::text] AND NOT (id = ANY($3::text[]))`,
      [table.rule.name, subject, ids],
    );
    if (ids.length > 0) {
      const inputs = [...byId.values()];
      const scopeColumn = table.rule.conflicts.scope;
      const rowScope =
        scopeColumn !== null && row !== null && row[scopeColumn] != null ? String(row[scopeColumn]) : null;
      await conn.query(
        `INSERT INTO ${this.violationsTable} AS v (id, table_name, row_id, key, code, message, row_keys, scope, user_id)
         SELECT r.id, $1, $2, r.key, r.code, r.message, r.row_keys::text[], r.scope, $3
           FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
             AS r(id, key, code, message, row_keys, scope)
         ON CONFLICT (id) DO UPDATE SET row_id = EXCLUDED.row_id, code = EXCLUDED.code, message = EXCLUDED.message,
           row_keys = EXCLUDED.row_keys, scope = EXCLUDED.scope, user_id = EXCLUDED.user_id
         WHERE (v.row_id, v.code, v.message, v.row_keys, v.scope)
           IS DISTINCT FROM (EXCLUDED.row_id, EXCLUDED.code, EXCLUDED.message, EXCLUDED.row_keys, EXCLUDED.scope)`,
        [
          table.rule.name,
          effect.id,
          client.userId,
          ids,
          inputs.map((i) => i.key),
          inputs.map((i) => i.code ?? 'violation'),
          inputs.map((i) => i.message),
          inputs.map((i) =>
            pgTextArray(
              [subject, ...(i.rows ?? []).map((r) => `${r.table}:${r.id}`)].filter((k, n, all) => all.indexOf(k) === n),
            ),
          ),
          inputs.map((i) => (i.scope === undefined ? rowScope : i.scope)),
        ],
      );
    }
    return ids;
  }

  private hookFailed(tx: PreparedTx, error: HookFailure, client: WriteClient): WriteTransactionResult {
    this.logger?.warn(
      {
        err: error.cause ?? error,
        userId: client.userId,
        table: tx.ops.find((o) => o.index === error.opIndex)?.table.rule.name,
      },
      'a write hook failed; its transaction was rejected',
    );
    return rejected(tx, { index: Math.max(0, error.opIndex), code: 'FERRY_S6011', message: error.message });
  }

  // ── merging ──────────────────────────────────────────────────────────────

  /**
   * Decides every field a valid transaction writes to a tracked table (see
   * field-merge.ts): drops the values that lose, computes merged ones,
   * records losing values, and works out each row's new field stamps.
   * Throws {@link HookFailure} when a merge function throws.
   */
  private async mergeTx(
    conn: pg.PoolClient,
    v: ValidTx,
    stored: Map<string, StoredRow>,
    client: WriteClient,
  ): Promise<void> {
    if (!v.tx.ops.some((op) => isTracked(op.table))) return;
    const output: MergeOutput = { clocks: new Map(), conflicts: [] };
    const effectByOp = new Map<number, Effect>();
    for (const effect of v.effects) effectByOp.set(effect.opIndex, effect);
    interface RowState {
      exists: boolean;
      /** The stored row, not deleted or re-inserted by this transaction. */
      fromStore: boolean;
      found: StoredRow | undefined;
      clocks: StoredClocks;
      /** Values this transaction set (Postgres input text). */
      set: Map<string, string | null>;
      /** Columns whose first `old` (the one the read compared) was used. */
      oldUsed: Set<string>;
    }
    const rows = new Map<string, RowState>();
    const kept: Effect[] = [];
    const user = client.userId;
    const token = { userId: client.userId, claims: client.claims };
    for (const op of v.tx.ops) {
      const effect = effectByOp.get(op.index);
      if (!isTracked(op.table)) {
        if (effect !== undefined) kept.push(effect);
        continue;
      }
      const key = rowKey(op.table, op.id);
      let row = rows.get(key);
      if (row === undefined) {
        const found = stored.get(key);
        const clocks = found?.clocks ?? {
          rowHlc: null,
          rowUser: null,
          clocks: {},
          deletedHlc: null,
          deletedUser: null,
        };
        row = {
          exists: found?.exists === true,
          fromStore: found?.exists === true,
          found,
          clocks: { ...clocks, clocks: { ...clocks.clocks } },
          set: new Map(),
          oldUsed: new Set(),
        };
        rows.set(key, row);
      }
      const stampOf = (name: string) => op.hlcs.get(name) ?? op.hlc;
      const scope = row.found?.scope ?? scopeOf(op);
      const record = (fields: Omit<ConflictRecord, 'id' | 'opIndex' | 'table' | 'rowId' | 'scope'>) =>
        output.conflicts.push({ id: randomUUID(), opIndex: op.index, table: op.table, rowId: op.id, scope, ...fields });
      if (effect === undefined) {
        // A PATCH of a row someone deleted: the edit is kept as a conflict with the delete.
        if (op.kind === 'PATCH' && !row.exists && row.clocks.deletedHlc !== null) {
          for (const name of op.values.keys()) {
            record({
              column: name,
              winnerValue: null,
              loserValue: rawJson(op.raw[name]),
              baseValue: name in op.oldRaw ? rawJson(op.oldRaw[name]) : null,
              winnerHlc: row.clocks.deletedHlc,
              loserHlc: stampOf(name),
              winnerUser: row.clocks.deletedUser,
              loserUser: user,
              policy: 'deleted',
            });
          }
        }
        continue;
      }
      // The row's stamps as this transaction leaves them are written (once per row) with the round.
      const stampsChanged = () => output.clocks.set(key, { table: op.table, id: op.id, state: row.clocks });
      if (effect.kind === 'delete') {
        row.clocks = { rowHlc: null, rowUser: null, clocks: {}, deletedHlc: op.hlc, deletedUser: user };
        stampsChanged();
        row.exists = false;
        row.fromStore = false;
        row.set = new Map();
        kept.push(effect);
        continue;
      }
      if (effect.kind === 'insert' || !row.fromStore) {
        if (effect.kind === 'insert') {
          row.clocks = { rowHlc: op.hlc, rowUser: user, clocks: {}, deletedHlc: null, deletedUser: null };
          row.set = new Map();
        }
        for (const name of effect.values.keys()) {
          const stamp = stampOf(name);
          if (effect.kind === 'update' || stamp !== op.hlc) row.clocks.clocks[name] = [stamp, user];
          row.set.set(name, effect.values.get(name) ?? null);
        }
        stampsChanged();
        row.exists = true;
        row.fromStore = false;
        kept.push(effect);
        continue;
      }
      // An update of the stored row: field by field. The stored value itself is read only when a
      // conflict or a merge needs it (the row is locked: nobody changes it meanwhile).
      const found = row.found!;
      const values = new Map<string, string | null>();
      for (const [name, text] of effect.values) {
        if (!op.table.writable.has(name) || op.table.rule.owner?.column === name) {
          values.set(name, text); // protected: validation made sure it is the stored value
          continue;
        }
        const column = op.table.columns.get(name)!;
        const setHere = row.set.has(name);
        const storedValue = async () =>
          setHere
            ? { text: row.set.get(name) ?? null, equal: row.set.get(name) === text }
            : this.readField(conn, op.table, op.id, column, text);
        let saw: boolean | undefined;
        if (op.old.has(name)) {
          const oldText = op.old.get(name) ?? null;
          if (!setHere && !row.oldUsed.has(name) && found.oldEqual.has(name)) {
            saw = found.oldEqual.get(name);
            row.oldUsed.add(name);
          } else if (setHere) saw = oldText === (row.set.get(name) ?? null);
          else saw = (await this.readField(conn, op.table, op.id, column, oldText)).equal;
        }
        const stamp = fieldStamp(row.clocks, name);
        const policy = op.table.rule.conflicts.columns.get(name) ?? op.table.rule.conflicts.policy;
        const incoming = stampOf(name);
        const outcome = decideField(policy, incoming, stamp, saw);
        const asJson = (current: string | null) =>
          current === null ? 'null' : valueToJson(builtinTypes.map(column.oid, current));
        if (outcome.kind === 'keep') {
          if (!outcome.record) continue;
          const current = await storedValue();
          if (current.equal) continue; // the same value: nothing lost
          record({
            column: name,
            winnerValue: asJson(current.text),
            loserValue: rawJson(op.raw[name]),
            baseValue: name in op.oldRaw ? rawJson(op.oldRaw[name]) : null,
            winnerHlc: stamp.hlc,
            loserHlc: incoming,
            winnerUser: stamp.user,
            loserUser: user,
            policy: policy.kind === 'merge' ? 'lww' : policy.kind,
          });
          continue;
        }
        let value = text;
        if (outcome.kind === 'merge') {
          const merge = this.hooks?.merge?.[outcome.name];
          if (merge === undefined) throw new HookFailure(op.index, `merge function "${outcome.name}" is not loaded`);
          const current = (await storedValue()).text;
          let merged: SqliteValue;
          try {
            merged = await merge({
              table: op.table.rule.name,
              id: op.id,
              column: name,
              base: name in op.oldRaw ? sqliteForm(op.oldRaw[name]) : undefined,
              current: current === null ? null : builtinTypes.map(column.oid, current),
              incoming: sqliteForm(op.raw[name]),
              token,
            });
            value = toPostgresText(column.kind, merged);
          } catch (error) {
            throw new HookFailure(
              op.index,
              `merge function "${outcome.name}" failed for ${op.table.rule.name}.${name}: ${(error as Error)?.message ?? String(error)}`,
              error,
            );
          }
        } else if (outcome.lost) {
          const current = await storedValue();
          if (!current.equal) {
            record({
              column: name,
              winnerValue: rawJson(op.raw[name]),
              loserValue: asJson(current.text),
              baseValue: null,
              winnerHlc: outcome.stamp,
              loserHlc: stamp.hlc,
              winnerUser: user,
              loserUser: stamp.user,
              policy: policy.kind,
            });
          }
        }
        values.set(name, value);
        row.set.set(name, value);
        if (stamp.hlc === null || outcome.stamp > stamp.hlc) row.clocks.clocks[name] = [outcome.stamp, user];
      }
      if (values.size > 0) {
        kept.push({ ...effect, values });
        stampsChanged(); // an update whose every field lost leaves the stamps as they were
      }
    }
    v.effects = kept;
    v.merge = output;
  }

  /**
   * One stored field of a locked row: its text and whether it equals
   * `compare` (Postgres input text) by the column type's equality.
   */
  private async readField(
    conn: pg.PoolClient,
    table: WriteTable,
    id: string,
    column: WriteColumn,
    compare: string | null,
  ): Promise<{ text: string | null; equal: boolean }> {
    const relation = quoteIdent(table.rule.table);
    const { rows } = await conn.query<{ v: string | null; e: boolean }>(
      `SELECT ${relation}.${column.sql}::text AS v, ${storedEquals(relation, column, '$2')} AS e FROM ${table.sql} AS ${relation} WHERE ${relation}.id = $1::${table.id.cast}`,
      [id, compare],
    );
    return { text: rows[0]?.v ?? null, equal: rows[0]?.e === true };
  }

  /** Writes the field stamps and conflict records of merged transactions. */
  private async writeMergeOutput(conn: pg.PoolClient, valid: readonly ValidTx[]): Promise<void> {
    const clocksByTable = new Map<WriteTable, { id: string; state: StoredClocks }[]>();
    const conflicts: ConflictRecord[] = [];
    for (const v of valid) {
      if (v.merge === undefined) continue;
      for (const entry of v.merge.clocks.values()) {
        let list = clocksByTable.get(entry.table);
        if (list === undefined) clocksByTable.set(entry.table, (list = []));
        list.push(entry);
      }
      conflicts.push(...v.merge.conflicts);
    }
    for (const [table, list] of clocksByTable) {
      await conn.query(
        `INSERT INTO ${this.fieldClocks} AS fc (table_name, row_id, row_hlc, row_user, clocks, deleted_hlc, deleted_user)
         SELECT $1, v.r::${table.id.cast}::text, v.h, v.u, v.c::jsonb, v.dh, v.du
           FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) AS v(r, h, u, c, dh, du)
         ON CONFLICT (table_name, row_id) DO UPDATE SET row_hlc = EXCLUDED.row_hlc, row_user = EXCLUDED.row_user,
           clocks = EXCLUDED.clocks, deleted_hlc = EXCLUDED.deleted_hlc, deleted_user = EXCLUDED.deleted_user`,
        [
          table.qualifiedName,
          list.map((e) => e.id),
          list.map((e) => e.state.rowHlc),
          list.map((e) => e.state.rowUser),
          list.map((e) => JSON.stringify(e.state.clocks)),
          list.map((e) => e.state.deletedHlc),
          list.map((e) => e.state.deletedUser),
        ],
      );
    }
    if (conflicts.length > 0) {
      const column = <K extends keyof ConflictRecord>(key: K) => conflicts.map((c) => c[key]);
      const clientOf = (hlc: string | null) => {
        if (hlc === null) return null;
        const node = decodeHlc(hlc).node;
        return node.startsWith('~') ? null : node;
      };
      await conn.query(
        `INSERT INTO ${this.conflictsTable} (id, table_name, row_id, column_name, scope, winner_value, loser_value,
           base_value, winner_hlc, loser_hlc, winner_user_id, loser_user_id, winner_client_id, loser_client_id, policy)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
           $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[])`,
        [
          column('id'),
          conflicts.map((c) => c.table.rule.name),
          column('rowId'),
          column('column'),
          column('scope'),
          column('winnerValue'),
          column('loserValue'),
          column('baseValue'),
          column('winnerHlc'),
          column('loserHlc'),
          column('winnerUser'),
          column('loserUser'),
          conflicts.map((c) => clientOf(c.winnerHlc)),
          conflicts.map((c) => clientOf(c.loserHlc)),
          column('policy'),
        ],
      );
    }
  }

  // ── writing ──────────────────────────────────────────────────────────────

  /** Writes the net effect of valid transactions (distinct rows) with multi-row statements. */
  private async writeNet(conn: pg.PoolClient, valid: ValidTx[], stored: Map<string, StoredRow>): Promise<void> {
    const net = new Map<string, { table: WriteTable; id: string; row: NetRow }>();
    for (const v of valid) {
      for (const effect of v.effects) {
        const key = rowKey(effect.table, effect.id);
        let entry = net.get(key);
        if (entry === undefined) {
          const existed = stored.get(key)?.exists === true;
          net.set(key, (entry = { table: effect.table, id: effect.id, row: { kind: existed ? 'keep' : 'absent' } }));
        }
        entry.row = fold(entry.row, effect);
      }
    }
    const tables: WriteTable[] = [];
    const phases = {
      predelete: new Map<WriteTable, string[]>(),
      insert: new Map<WriteTable, { id: string; values: Map<string, string | null> }[]>(),
      update: new Map<WriteTable, { id: string; values: Map<string, string | null> }[]>(),
      delete: new Map<WriteTable, string[]>(),
    };
    const push = <T>(map: Map<WriteTable, T[]>, table: WriteTable, item: T) => {
      if (!tables.includes(table)) tables.push(table);
      let list = map.get(table);
      if (list === undefined) map.set(table, (list = []));
      list.push(item);
    };
    for (const { table, id, row } of net.values()) {
      switch (row.kind) {
        case 'replace':
          push(phases.predelete, table, id);
          push(phases.insert, table, { id, values: row.values });
          break;
        case 'insert':
          push(phases.insert, table, { id, values: row.values });
          break;
        case 'update':
          if (row.values.size > 0) push(phases.update, table, { id, values: row.values });
          break;
        case 'delete':
          push(phases.delete, table, id);
          break;
        default:
          break;
      }
    }
    for (const table of tables) {
      const ids = phases.predelete.get(table);
      if (ids) await this.deleteRows(conn, table, ids);
    }
    for (const table of tables) {
      const rows = phases.insert.get(table);
      if (rows) for (const group of groupByColumns(rows)) await this.insertRows(conn, table, group);
    }
    for (const table of tables) {
      const rows = phases.update.get(table);
      if (rows) for (const group of groupByColumns(rows)) await this.updateRows(conn, table, group);
    }
    for (const table of tables) {
      const ids = phases.delete.get(table);
      if (ids) await this.deleteRows(conn, table, ids);
    }
  }

  private async writeEffect(conn: pg.PoolClient, effect: Effect): Promise<void> {
    if (effect.kind === 'delete') await this.deleteRows(conn, effect.table, [effect.id]);
    else if (effect.kind === 'insert')
      await this.insertRows(conn, effect.table, [{ id: effect.id, values: effect.values }]);
    else await this.updateRows(conn, effect.table, [{ id: effect.id, values: effect.values }]);
  }

  private async insertRows(
    conn: pg.PoolClient,
    table: WriteTable,
    rows: { id: string; values: Map<string, string | null> }[],
  ): Promise<void> {
    const { columns, params } = columnArrays(table, rows);
    const names = ['id', ...columns.map((c) => c.sql)].join(', ');
    const select = [
      `__ferry_v.__ferry_k::${table.id.cast}`,
      ...columns.map((c, i) => `__ferry_v.__ferry_c${i}::${c.cast}`),
    ].join(', ');
    await conn.query(`INSERT INTO ${table.sql} (${names}) SELECT ${select} FROM ${unnestOf(params.length)}`, params);
  }

  private async updateRows(
    conn: pg.PoolClient,
    table: WriteTable,
    rows: { id: string; values: Map<string, string | null> }[],
  ): Promise<void> {
    const { columns, params } = columnArrays(table, rows);
    const set = columns.map((c, i) => `${c.sql} = __ferry_v.__ferry_c${i}::${c.cast}`).join(', ');
    const relation = quoteIdent(table.rule.table);
    await conn.query(
      `UPDATE ${table.sql} SET ${set} FROM ${unnestOf(params.length)}
        WHERE ${relation}.id = __ferry_v.__ferry_k::${table.id.cast}`,
      params,
    );
  }

  private async deleteRows(conn: pg.PoolClient, table: WriteTable, ids: string[]): Promise<void> {
    await conn.query(`DELETE FROM ${table.sql} WHERE id = ANY($1::${table.id.cast}[])`, [ids]);
  }

  /** Rows written by these transactions that no longer satisfy their table's `where`. */
  private async checkWhere(conn: pg.PoolClient, valid: ValidTx[], client: WriteClient): Promise<Set<string>> {
    const byTable = new Map<WriteTable, Set<string>>();
    for (const v of valid) {
      for (const effect of v.effects) {
        if (effect.kind === 'delete' || effect.table.rule.where === null) continue;
        let ids = byTable.get(effect.table);
        if (ids === undefined) byTable.set(effect.table, (ids = new Set()));
        ids.add(effect.id);
      }
    }
    const violations = new Set<string>();
    for (const [table, ids] of byTable) {
      const where = table.rule.where!;
      const relation = quoteIdent(table.rule.table);
      const { rows } = await conn.query<{ k: string }>(
        `SELECT __ferry_v.__ferry_k AS k FROM unnest($1::text[]) AS __ferry_v(__ferry_k)
           JOIN ${table.sql} ON ${relation}.id = __ferry_v.__ferry_k::${table.id.cast}
          WHERE NOT ${renderWhere(where, 2)}`,
        [[...ids], ...whereParams(where, client.userId, client.claims)],
      );
      for (const row of rows) violations.add(rowKey(table, row.k));
    }
    return violations;
  }

  // ── metrics and logs ─────────────────────────────────────────────────────

  private record(
    prepared: PreparedTx[],
    results: WriteTransactionResult[],
    duplicates: Set<number>,
    repeats: Map<number, number>,
    client: WriteClient,
  ): void {
    for (const tx of prepared) {
      const result = results[tx.position]!;
      if (duplicates.has(tx.position) || (repeats.has(tx.position) && result.status !== 'retry')) {
        this.metrics?.transactions.inc({ status: 'duplicate' });
        continue;
      }
      this.metrics?.transactions.inc({ status: result.status });
      if (result.status === 'applied') {
        this.metrics?.opsApplied.inc(result.ops.length);
        continue;
      }
      result.ops.forEach((op, index) => {
        if (op.status !== 'rejected') return;
        this.metrics?.opsRejected.inc({ code: op.code });
        if (op.code !== 'FERRY_S6006' && (result.status === 'rejected' || index === 0)) {
          this.logger?.info(
            { code: op.code, table: tx.source.ops[index]?.type.slice(0, 64), userId: client.userId },
            result.status === 'retry' ? 'write transaction will be retried' : 'write op rejected',
          );
        }
      });
    }
  }
}

/** The answer stored under an idempotency key. */
interface StoredResult {
  status: 'applied' | 'rejected';
  ops: WriteOpResult[];
}

function fromStored(tx: PreparedTx, stored: StoredResult | null): WriteTransactionResult {
  if (stored === null) {
    return {
      id: tx.source.id,
      status: 'applied',
      duplicate: true,
      ops: tx.source.ops.map(() => ({ status: 'applied' })),
    };
  }
  return { id: tx.source.id, status: stored.status, duplicate: true, ops: stored.ops };
}

function appliedResult(v: ValidTx): WriteTransactionResult {
  const conflicts = new Map<number, string[]>();
  for (const c of v.merge?.conflicts ?? []) conflicts.set(c.opIndex, [...(conflicts.get(c.opIndex) ?? []), c.id]);
  return {
    id: v.tx.source.id,
    status: 'applied',
    ops: v.tx.source.ops.map((_, index) => {
      const result: WriteOpResult = { status: 'applied' };
      const c = conflicts.get(index);
      const raised = v.violations?.get(index);
      if (c !== undefined) result.conflicts = c;
      if (raised !== undefined && raised.length > 0) result.violations = raised;
      return result;
    }),
  };
}

/** A Postgres array literal of texts. */
function pgTextArray(items: readonly string[]): string {
  return `{${items.map((item) => `"${item.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`).join(',')}}`;
}

function rejected(tx: PreparedTx, rejection: Rejection, retryable = false): WriteTransactionResult {
  return {
    id: tx.source.id,
    status: 'rejected',
    ops: tx.source.ops.map((_, index) =>
      index === rejection.index
        ? { status: 'rejected', retryable, code: rejection.code, message: rejection.message }
        : {
            status: 'rejected',
            retryable,
            code: 'FERRY_S6006',
            message: `op ${rejection.index} of this transaction was rejected (${rejection.code}); nothing was applied`,
          },
    ),
  };
}

function retryResult(tx: PreparedTx, message: string): WriteTransactionResult {
  return {
    id: tx.source.id,
    status: 'retry',
    ops: tx.source.ops.map(() => ({ status: 'rejected', retryable: true, code: 'FERRY_S6008', message })),
  };
}

function whereRejection(effect: Effect): Rejection {
  return {
    index: effect.opIndex,
    code: 'FERRY_S6004',
    message: `the ${effect.table.rule.name} row would not match the write rules' where after this write`,
  };
}

/**
 * SQL: the stored value of `column` equals `sent` (Postgres input text), by
 * the type's equality, or as text for types without a usable `=`.
 */
function storedEquals(relation: string, column: WriteColumn, sent: string): string {
  const stored = `${relation}.${column.sql}`;
  return column.compareAsText
    ? `(${stored}::text IS NOT DISTINCT FROM ${sent}::${column.cast}::text)`
    : `(${stored} IS NOT DISTINCT FROM ${sent}::${column.cast})`;
}

/** A column whose sent value must be compared with the stored one (not freely writable). */
function isProtected(table: WriteTable, name: string): boolean {
  return !table.writable.has(name) && table.rule.owner?.column !== name;
}

function ownerValue(table: WriteTable, client: WriteClient): string | null {
  const owner = table.rule.owner;
  if (owner === null) return null;
  return owner.claim === 'sub' ? client.userId : claimText(client.claims[owner.claim]);
}

function quoteName(name: string): string {
  return JSON.stringify(name.length > 64 ? `${name.slice(0, 64)}…` : name);
}

function fold(row: NetRow, effect: Effect): NetRow {
  switch (effect.kind) {
    case 'insert':
      return { kind: row.kind === 'delete' ? 'replace' : 'insert', values: new Map(effect.values) };
    case 'update':
      if (row.kind === 'insert' || row.kind === 'replace' || row.kind === 'update') {
        const values = new Map(row.values);
        for (const [name, text] of effect.values) values.set(name, text);
        return { kind: row.kind, values };
      }
      return { kind: 'update', values: new Map(effect.values) };
    case 'delete':
      return row.kind === 'insert' ? { kind: 'absent' } : { kind: 'delete' };
  }
}

function groupByColumns<T extends { values: Map<string, string | null> }>(rows: T[]): T[][] {
  const groups = new Map<string, T[]>();
  for (const row of rows) {
    const signature = [...row.values.keys()].sort().join(ROW_SEP);
    let group = groups.get(signature);
    if (group === undefined) groups.set(signature, (group = []));
    // Keep one column order per group.
    group.push(group.length === 0 ? row : { ...row, values: reorder(row.values, group[0]!.values) });
  }
  return [...groups.values()];
}

function reorder(values: Map<string, string | null>, like: Map<string, string | null>): Map<string, string | null> {
  const out = new Map<string, string | null>();
  for (const name of like.keys()) out.set(name, values.get(name) ?? null);
  return out;
}

function unnestOf(count: number): string {
  const args = Array.from({ length: count }, (_, i) => `$${i + 1}::text[]`).join(', ');
  const names = ['__ferry_k', ...Array.from({ length: count - 1 }, (_, i) => `__ferry_c${i}`)].join(', ');
  return `unnest(${args}) AS __ferry_v(${names})`;
}

/**
 * Rows (all with the same columns) as one array parameter per column, ids
 * first: the input of {@link unnestOf}.
 */
function columnArrays(
  table: WriteTable,
  rows: readonly { id: string; values: Map<string, string | null> }[],
): { columns: WriteColumn[]; params: unknown[] } {
  const columns = [...rows[0]!.values.keys()].map((name) => table.columns.get(name)!);
  const params: unknown[] = [
    rows.map((r) => r.id),
    ...columns.map((c) => rows.map((r) => r.values.get(c.name) ?? null)),
  ];
  return { columns, params };
}

/** Creates `<schema>.write_transactions` if needed (concurrent start-ups are fine). */
export async function ensureBookkeeping(client: Pick<pg.ClientBase, 'query'>, schema: string): Promise<void> {
  const table = `${quoteIdent(schema)}.write_transactions`;
  for (const statement of [
    `CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`,
    `CREATE TABLE IF NOT EXISTS ${table} (
       user_id text NOT NULL,
       key text NOT NULL,
       result jsonb,
       applied_at timestamptz NOT NULL DEFAULT now(),
       PRIMARY KEY (user_id, key)
     )`,
  ]) {
    await runDdl(client, statement);
  }
}

/**
 * Runs one `CREATE … IF NOT EXISTS` / `CREATE OR REPLACE` statement. Two
 * processes creating an object at once is fine (one sees a duplicate). A
 * role without the privilege to create it is fine when the object already
 * exists (created by an administrator); otherwise FERRY_S1204 says what to
 * grant.
 */
async function runDdl(client: Pick<pg.ClientBase, 'query'>, statement: string): Promise<void> {
  try {
    await client.query(statement);
  } catch (error) {
    const code = sqlState(error) ?? '';
    if (['23505', '42P06', '42P07', 'XX000'].includes(code)) return;
    if (code !== '42501') throw error;
    const target =
      /^\s*CREATE\s+(?:OR\s+REPLACE\s+)?(SCHEMA|TABLE|INDEX|FUNCTION)\s+(?:IF\s+NOT\s+EXISTS\s+)?(\S+)/i.exec(
        statement,
      );
    const kind = target?.[1]?.toUpperCase();
    const name = (target?.[2] ?? '?').replace(/\(.*$/, '');
    const { rows } = await client.query<{ found: boolean }>(
      kind === 'SCHEMA'
        ? `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1) AS found`
        : kind === 'FUNCTION'
          ? `SELECT to_regproc($1) IS NOT NULL AS found`
          : `SELECT to_regclass($1) IS NOT NULL AS found`,
      [kind === 'SCHEMA' ? name.replace(/"/g, '') : name],
    );
    if (rows[0]?.found === true) return;
    throw new FerryError(
      'FERRY_S1204',
      `the write API cannot create ${kind?.toLowerCase() ?? 'object'} ${name}: ${(error as Error).message}. ` +
        'Grant the service role CREATE on that schema (or the database, for a schema), or create it beforehand ' +
        '(the statements are in docs/conflicts.md).',
      { cause: error },
    );
  }
}

/** Tables whose writes keep field stamps: every writable table unless its rule says `conflicts: off`. */
export function isTracked(table: WriteTable): boolean {
  return table.rule.conflicts.track && !RECORD_TABLES.has(table.rule.table);
}

const RECORD_TABLES = new Set(['ferry_conflicts', 'ferry_violations']);

/**
 * Creates `<schema>.field_clocks` (per-row field stamps, not replicated)
 * and the replicated record tables `<records>.ferry_conflicts` and
 * `<records>.ferry_violations` that sync rules can select.
 */
export async function ensureConflictTables(
  client: Pick<pg.ClientBase, 'query'>,
  schema: string,
  recordsSchema: string,
): Promise<void> {
  const s = quoteIdent(schema);
  const r = quoteIdent(recordsSchema);
  for (const statement of [
    `CREATE SCHEMA IF NOT EXISTS ${r}`,
    `CREATE TABLE IF NOT EXISTS ${s}.field_clocks (
       table_name text NOT NULL,
       row_id text NOT NULL,
       row_hlc text,
       row_user text,
       clocks jsonb NOT NULL DEFAULT '{}',
       deleted_hlc text,
       deleted_user text,
       PRIMARY KEY (table_name, row_id)
     )`,
    `CREATE TABLE IF NOT EXISTS ${r}.ferry_conflicts (
       id text PRIMARY KEY,
       table_name text NOT NULL,
       row_id text NOT NULL,
       column_name text NOT NULL,
       scope text,
       winner_value text,
       loser_value text,
       base_value text,
       winner_hlc text,
       loser_hlc text,
       winner_user_id text,
       loser_user_id text,
       winner_client_id text,
       loser_client_id text,
       policy text NOT NULL,
       created_at timestamptz NOT NULL DEFAULT now()
     )`,
    `CREATE TABLE IF NOT EXISTS ${r}.ferry_violations (
       id text PRIMARY KEY,
       table_name text NOT NULL,
       row_id text NOT NULL,
       key text NOT NULL,
       code text NOT NULL,
       message text NOT NULL,
       row_keys text[] NOT NULL,
       scope text,
       user_id text,
       created_at timestamptz NOT NULL DEFAULT now()
     )`,
    `CREATE INDEX IF NOT EXISTS ferry_violations_rows ON ${r}.ferry_violations USING gin (row_keys)`,
    `CREATE OR REPLACE FUNCTION ${s}.ferry_stamp_outside_write() RETURNS trigger LANGUAGE plpgsql AS $ferry$
     DECLARE
       stamp text := lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0') || '00000000~postgres';
       tname text := TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME;
       changed jsonb;
       n jsonb;
       o jsonb;
     BEGIN
       IF TG_OP = 'DELETE' THEN
         INSERT INTO ${s}.field_clocks AS fc (table_name, row_id, deleted_hlc) VALUES (tname, OLD.id::text, stamp)
         ON CONFLICT (table_name, row_id) DO UPDATE
           SET row_hlc = NULL, row_user = NULL, clocks = '{}', deleted_hlc = EXCLUDED.deleted_hlc, deleted_user = NULL;
       ELSIF TG_OP = 'INSERT' THEN
         INSERT INTO ${s}.field_clocks AS fc (table_name, row_id, row_hlc) VALUES (tname, NEW.id::text, stamp)
         ON CONFLICT (table_name, row_id) DO UPDATE
           SET row_hlc = EXCLUDED.row_hlc, row_user = NULL, clocks = '{}', deleted_hlc = NULL, deleted_user = NULL;
       ELSE
         n := to_jsonb(NEW);
         o := to_jsonb(OLD);
         SELECT jsonb_object_agg(e.key, jsonb_build_array(stamp, NULL)) INTO changed
           FROM jsonb_each(n) AS e WHERE e.value IS DISTINCT FROM o -> e.key;
         IF changed IS NOT NULL THEN
           INSERT INTO ${s}.field_clocks AS fc (table_name, row_id, clocks) VALUES (tname, NEW.id::text, changed)
           ON CONFLICT (table_name, row_id) DO UPDATE SET clocks = fc.clocks || EXCLUDED.clocks;
         END IF;
       END IF;
       RETURN NULL;
     END
     $ferry$`,
  ]) {
    await runDdl(client, statement);
  }
}

/**
 * Stamps writes that do not come through Ferry (a backend's SQL, a
 * migration): a trigger on every tracked table records the changed columns
 * with Postgres' clock, so a later concurrent client write is ordered
 * against them by time. Ferry's own writes set `ferry.applying` and are not
 * seen by it. Without the privilege to create triggers, a warning says so.
 */
async function installOutsideWriteTriggers(
  client: Pick<pg.ClientBase, 'query'>,
  schema: string,
  tables: ReadonlyMap<string, WriteTable>,
  logger: WriteLogger | undefined,
): Promise<void> {
  for (const table of tables.values()) {
    if (!isTracked(table)) {
      await client.query(`DROP TRIGGER IF EXISTS ferry_outside_write ON ${table.sql}`).catch(() => {});
      continue;
    }
    try {
      await client.query(
        `CREATE OR REPLACE TRIGGER ferry_outside_write AFTER INSERT OR UPDATE OR DELETE ON ${table.sql}
           FOR EACH ROW WHEN (current_setting('ferry.applying', true) IS DISTINCT FROM 'on')
           EXECUTE FUNCTION ${quoteIdent(schema)}.ferry_stamp_outside_write()`,
      );
    } catch (error) {
      if (['XX000', '23505'].includes(sqlState(error) ?? '')) continue; // created concurrently
      logger?.warn(
        { err: error, table: table.qualifiedName },
        'cannot create the trigger that stamps writes made outside Ferry; such writes will be ordered by the last Ferry stamp of each field',
      );
    }
  }
}

/** A merge function or validation hook threw: its transaction is rejected (FERRY_S6011). */
class HookFailure extends Error {
  readonly opIndex: number;
  constructor(opIndex: number, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.opIndex = opIndex;
  }
}

/** A validation hook called `reject()` (FERRY_S6010). */
class HookRejection extends Error {
  readonly retryable: boolean;
  constructor(message: string, retryable: boolean) {
    super(message);
    this.retryable = retryable;
  }
}

/** A value as a client sent it, in SQLite form (booleans as integers). */
function sqliteForm(value: SqliteValue | boolean | undefined): SqliteValue {
  if (value === undefined) return null;
  if (typeof value === 'boolean') return value ? 1 : 0;
  return value;
}

/** JSON text of a value as a client sent it (booleans as SQLite integers). */
function rawJson(value: SqliteValue | boolean | undefined): string {
  if (value === undefined) return 'null';
  if (typeof value === 'boolean') return value ? '1' : '0';
  return valueToJson(value);
}

/** The stamp and writer of one field: its own, or the row's (its insert). */
function fieldStamp(clocks: StoredClocks, name: string): FieldStamp {
  const own = clocks.clocks[name];
  if (own !== undefined) return { hlc: own[0], user: own[1] };
  return { hlc: clocks.rowHlc, user: clocks.rowHlc === null ? null : clocks.rowUser };
}

/** The scope of a row the op inserts (its `conflicts.scope` column as sent). */
function scopeOf(op: PreparedOp): string | null {
  const name = op.table.rule.conflicts.scope;
  if (name === null) return null;
  const value = op.values.get(name);
  return value === undefined ? null : value;
}
