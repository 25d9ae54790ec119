import {
  FerryError,
  rowToJson,
  type WriteErrorBody,
  type WriteResponse,
  type WriteTransactionResult,
} from '@ferry/protocol';
import type { FerryConnector, FerryCredentials, UploadDataOptions } from './connector.js';
import type { FerryDatabase } from './ferry-database.js';
import type { RejectedOp } from './rejections.js';
import { compactCrud } from './queue-compaction.js';
import type { CrudBatch, CrudEntry } from './upload-queue.js';

export interface FerryWriteConnectorOptions {
  /** Base URL of the Ferry service: sync stream, write checkpoints and (unless `writeUrl`) `POST /write`. */
  endpoint: string;
  /**
   * The JWT of the signed-in user, or null when nobody is signed in. Called
   * when no token is cached: at first use and after the service rejected
   * the cached one (401) or it expired.
   */
  fetchToken(): Promise<string | null>;
  /** Where uploads go, when not `<endpoint>/write` (e.g. a backend mounting Ferry's write handler). */
  writeUrl?: string;
  /** The fetch implementation (default `globalThis.fetch`). */
  fetch?: typeof fetch;
  /** Ops per request (default 1000); transactions are never split, so a larger one goes alone. */
  batchSize?: number;
  /**
   * Compact each batch before sending (see `compactCrud`): several edits of
   * one row go up as one op, with the same end state on the server. The
   * batch is then sent as ONE transaction (all of it applies, or all of it
   * is rejected), keyed by the range of queued ops it covers; a retry after
   * a lost answer resends exactly that range. Off by default, because it
   * gives up per-transaction atomicity and rejection.
   */
  compact?: boolean;
}

/** One local transaction as sent: its idempotency key and its ops. */
interface OutgoingTransaction {
  id: string;
  entries: CrudEntry[];
}

type PostAnswer =
  | { kind: 'answered'; response: WriteResponse }
  /** 400 or 413: the request as a whole was refused; a smaller one may pass. */
  | { kind: 'refused'; status: number; code: string; message: string };

const DEFAULT_BATCH_SIZE = 1000;

/**
 * A ready-made connector for Ferry's write API (`POST /write`, see
 * `@ferry/protocol` `write.ts`). `uploadData` sends the queue in batches
 * of whole local transactions, each with the idempotency key
 * `<client id>:<transaction id>` (so a retried request never applies a
 * transaction twice), and settles every transaction from the answer:
 *
 * - `applied` (also `duplicate`): completed, the ops move to the overlay;
 * - `rejected`: recorded in `ferry_rejections` with the server's code and
 *   message, the rows revert to server state;
 * - `retry`: the transactions before it are settled, then it throws a
 *   retryable `FERRY_C1009` (the sync loop backs off and tries again).
 *
 * A 413 or 400 answer halves the batch until the culprit is one
 * transaction, which is then recorded as rejected with the server's code
 * (its data kept in `ferry_rejections`, nothing lost). 401 drops the cached
 * token and throws; network errors and other answers throw, and the sync
 * loop retries with backoff. Loops until the queue is empty.
 */
export class FerryWriteConnector implements FerryConnector {
  readonly endpoint: string;
  private readonly options: FerryWriteConnectorOptions;
  private token: string | null = null;
  /** Compact mode: the queued ops of the last batch sent but not settled (resent as the same range). */
  private unsettled: { first: number; count: number } | null = null;

  constructor(options: FerryWriteConnectorOptions) {
    this.options = options;
    this.endpoint = options.endpoint.replace(/\/+$/, '');
  }

  /** The service endpoint and the cached token (fetched when none is cached); null when signed out. */
  async fetchCredentials(): Promise<FerryCredentials | null> {
    this.token ??= await this.options.fetchToken();
    if (this.token === null) return null;
    return { endpoint: this.endpoint, token: this.token };
  }

  invalidateCredentials(): void {
    this.token = null;
  }

  async uploadData(db: FerryDatabase, options: UploadDataOptions = {}): Promise<void> {
    const clientId = await db.clientId();
    const batchSize = Math.max(1, Math.floor(this.options.batchSize ?? DEFAULT_BATCH_SIZE));
    for (;;) {
      if (options.signal?.aborted === true) return;
      if (this.options.compact === true) {
        if (!(await this.sendCompacted(db, clientId, batchSize, options.signal))) return;
        continue;
      }
      const batch = await db.getCrudBatch(batchSize, { wholeTransactions: true });
      if (batch === null) return;
      await this.sendBatch(batch, groupTransactions(clientId, batch.crud), clientId, options.signal);
    }
  }

  /**
   * Compact mode: sends one batch, compacted, as one transaction keyed by
   * the queue ids it covers, and settles it. Returns false when the queue is
   * empty.
   */
  private async sendCompacted(
    db: FerryDatabase,
    clientId: string,
    batchSize: number,
    signal: AbortSignal | undefined,
  ): Promise<boolean> {
    let batch = await db.getCrudBatch(this.unsettled?.count ?? batchSize, { wholeTransactions: true });
    if (batch !== null && this.unsettled !== null && batch.crud[0]!.clientId !== this.unsettled.first) {
      // The queue was settled some other way meanwhile: the remembered range is gone.
      this.unsettled = null;
      batch = await db.getCrudBatch(batchSize, { wholeTransactions: true });
    }
    if (batch === null) {
      this.unsettled = null;
      return false;
    }
    const raw = batch.crud;
    const first = raw[0]!;
    const last = raw.at(-1)!;
    this.unsettled = { first: first.clientId, count: raw.length };
    const compacted = compactCrud(raw);
    const sending: OutgoingTransaction = { id: `${clientId}:c${first.clientId}-${last.clientId}`, entries: compacted };
    const answer = await this.post(clientId, [sending], signal);
    const result = answer.kind === 'answered' ? answer.response.transactions?.[0] : undefined;
    if (answer.kind === 'answered' && (result === undefined || result.status === 'retry')) {
      throw new FerryError('FERRY_C1009', `the write API asked to retry the compacted batch ${sending.id}`);
    }
    let rejected: RejectedOp[] = [];
    if (answer.kind === 'refused' && first.transactionId !== last.transactionId) {
      // 400 / 413: try a smaller range (whole transactions), down to one transaction.
      this.unsettled = { first: first.clientId, count: Math.max(1, Math.floor(raw.length / 2)) };
      return true;
    }
    if (answer.kind === 'refused') {
      rejected = raw.map((op) => ({ op, code: answer.code, message: answer.message }));
    } else if (result!.status === 'rejected') {
      // Each queued op gets the answer of the compacted op that carries its row.
      const byRow = new Map<string, { code: string; message: string }>();
      for (const [i, op] of compacted.entries()) {
        const opAnswer = result!.ops?.[i];
        if (opAnswer?.status === 'rejected' && opAnswer.code !== 'FERRY_S6006') {
          byRow.set(JSON.stringify([op.table, op.id]), { code: opAnswer.code, message: opAnswer.message });
        }
      }
      rejected = raw.map((op) => ({
        op,
        ...(byRow.get(JSON.stringify([op.table, op.id])) ?? {
          code: 'FERRY_S6006',
          message: 'another op of the compacted batch was rejected',
        }),
      }));
    }
    await batch.complete({ through: last, rejected });
    this.unsettled = null;
    return true;
  }

  /** Sends a prefix of the batch's transactions (halving it on 400/413) and settles what was answered. */
  private async sendBatch(
    batch: CrudBatch,
    transactions: readonly OutgoingTransaction[],
    clientId: string,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    let count = transactions.length;
    for (;;) {
      const sending = transactions.slice(0, count);
      const answer = await this.post(clientId, sending, signal);
      if (answer.kind === 'answered') return settle(batch, sending, answer.response);
      if (count > 1) {
        count = Math.ceil(count / 2);
        continue;
      }
      // One transaction the service refuses whatever the batch: rejected, with its data kept.
      const only = sending[0]!;
      await batch.complete({
        through: only.entries.at(-1)!,
        rejected: only.entries.map((op) => ({ op, code: answer.code, message: answer.message })),
      });
      return;
    }
  }

  private async post(
    clientId: string,
    transactions: readonly OutgoingTransaction[],
    signal: AbortSignal | undefined,
  ): Promise<PostAnswer> {
    const credentials = await this.fetchCredentials();
    if (credentials === null) throw new FerryError('FERRY_C1001', 'fetchToken() returned no token: not signed in');
    const doFetch = this.options.fetch ?? globalThis.fetch;
    const response = await doFetch(this.options.writeUrl ?? `${this.endpoint}/write`, {
      method: 'POST',
      headers: {
        authorization: `Token ${credentials.token}`,
        'content-type': 'application/json',
        accept: 'application/json',
      },
      body: requestBody(clientId, transactions),
      ...(signal === undefined ? {} : { signal }),
    });
    const text = await response.text();
    if (response.status === 200) {
      try {
        return { kind: 'answered', response: JSON.parse(text) as WriteResponse };
      } catch (cause) {
        throw new FerryError('FERRY_C1009', 'the write API answered 200 with a body that is not JSON', { cause });
      }
    }
    const error = errorBody(text);
    if (response.status === 401) {
      this.invalidateCredentials();
      throw new FerryError('FERRY_C1002', `the write API rejected the credentials (401): ${error?.message ?? text}`, {
        details: { status: 401, code: error?.code },
      });
    }
    if (response.status === 400 || response.status === 413) {
      return {
        kind: 'refused',
        status: response.status,
        code: error?.code ?? (response.status === 413 ? 'FERRY_S4002' : 'FERRY_S4001'),
        message: error?.message ?? `HTTP ${response.status}`,
      };
    }
    throw new FerryError('FERRY_C1009', `the write API answered HTTP ${response.status}`, {
      details: { status: response.status, code: error?.code, body: text.slice(0, 500) },
    });
  }
}

/** A {@link FerryWriteConnector}: uploads go to Ferry's write API at `<endpoint>/write`. */
export function ferryConnector(options: FerryWriteConnectorOptions): FerryWriteConnector {
  return new FerryWriteConnector(options);
}

/** Consecutive entries of one local transaction, keyed `<client id>:<transaction id>`. */
function groupTransactions(clientId: string, entries: readonly CrudEntry[]): OutgoingTransaction[] {
  const result: OutgoingTransaction[] = [];
  for (const entry of entries) {
    const last = result.at(-1);
    if (last !== undefined && last.entries[0]!.transactionId === entry.transactionId) last.entries.push(entry);
    else result.push({ id: `${clientId}:${entry.transactionId}`, entries: [entry] });
  }
  return result;
}

/**
 * The request as JSON text; int8 values beyond 2^53 are written as exact
 * JSON integers. Each op carries its stamp (`hlc`, and `hlcs` when
 * compaction gave its columns different ones) and the previous values of
 * the columns it changes (`old`, from `previousValues`) for the server's
 * field-level merge.
 */
function requestBody(clientId: string, transactions: readonly OutgoingTransaction[]): string {
  const ops = (tx: OutgoingTransaction): string =>
    tx.entries
      .map((e) => {
        let op = `{"op":${JSON.stringify(e.op)},"type":${JSON.stringify(e.table)},"id":${JSON.stringify(e.id)}`;
        if (e.opData !== undefined) op += `,"data":${rowToJson(e.opData)}`;
        if (e.hlc !== '') op += `,"hlc":${JSON.stringify(e.hlc)}`;
        if (e.hlcs !== undefined) op += `,"hlcs":${JSON.stringify(e.hlcs)}`;
        if (e.previousValues !== undefined) op += `,"old":${rowToJson(e.previousValues)}`;
        return op + '}';
      })
      .join(',');
  const txs = transactions.map((tx) => `{"id":${JSON.stringify(tx.id)},"ops":[${ops(tx)}]}`).join(',');
  return `{"client_id":${JSON.stringify(clientId)},"transactions":[${txs}]}`;
}

function errorBody(text: string): WriteErrorBody['error'] | null {
  try {
    const body = JSON.parse(text) as Partial<WriteErrorBody>;
    const error = body.error;
    return typeof error?.code === 'string' && typeof error.message === 'string' ? error : null;
  } catch {
    return null;
  }
}

/**
 * Settles the answered transactions in order: applied and rejected ones are
 * completed together; at the first `retry` (or a missing answer) the rest
 * stays queued and a retryable FERRY_C1009 is thrown.
 */
async function settle(batch: CrudBatch, sent: readonly OutgoingTransaction[], response: WriteResponse): Promise<void> {
  const results = Array.isArray(response.transactions) ? response.transactions : [];
  const rejected: RejectedOp[] = [];
  let through: CrudEntry | undefined;
  let stopped: { reason: string; result?: WriteTransactionResult } | null = null;
  for (const [index, tx] of sent.entries()) {
    const result = results[index];
    if (result === undefined || result.id !== tx.id) {
      stopped = { reason: `the write API gave no answer for transaction ${tx.id}` };
      break;
    }
    if (result.status === 'retry') {
      stopped = { reason: `the write API asked to retry transaction ${tx.id}`, result };
      break;
    }
    if (result.status === 'rejected') {
      for (const [i, op] of tx.entries.entries()) {
        const answer = result.ops?.[i];
        rejected.push(
          answer?.status === 'rejected'
            ? { op, code: answer.code, message: answer.message }
            : { op, code: 'FERRY_S6006', message: 'another op of the transaction was rejected' },
        );
      }
    } else if (result.status !== 'applied') {
      stopped = { reason: `the write API answered an unknown status for transaction ${tx.id}` };
      break;
    }
    through = tx.entries.at(-1)!;
  }
  if (through !== undefined) await batch.complete({ through, rejected });
  if (stopped !== null) {
    const reason = stopped.result?.ops.find((o) => o.status === 'rejected');
    throw new FerryError('FERRY_C1009', stopped.reason, {
      details: reason?.status === 'rejected' ? { code: reason.code, message: reason.message } : {},
    });
  }
}
