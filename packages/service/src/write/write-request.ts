/**
 * Parses a `POST /write` body (Ferry's or PowerSync's shape, see
 * `@ferry/protocol` write.ts) into client transactions. Integers beyond 2^53
 * stay exact (`parseJsonExact`).
 */
import {
  FerryError,
  parseJsonExact,
  PowerSyncWriteRequestSchema,
  WriteRequestSchema,
  type PowerSyncCrudEntry,
  type WriteOp,
} from '@ferry/protocol';
import type { z } from 'zod';

/** One client transaction, in either request shape. */
export interface ClientTransaction {
  /** The answer's `id`: the idempotency key, or a stand-in for transactions without one. */
  id: string;
  /** Idempotency key (unique per user), or null: applied without exactly-once protection. */
  key: string | null;
  ops: WriteOp[];
}

/** Parses and validates a request body. Throws FERRY_S4001 when it is not JSON or not either shape. */
export function parseWriteRequest(body: Buffer | string): ClientTransaction[] {
  let json: unknown;
  try {
    json = parseJsonExact(typeof body === 'string' ? body : body.toString('utf8'));
  } catch (cause) {
    throw new FerryError('FERRY_S4001', `request body is not valid JSON: ${(cause as Error).message}`, { cause });
  }
  if (typeof json === 'object' && json !== null && 'batch' in json) {
    const parsed = PowerSyncWriteRequestSchema.safeParse(json);
    if (!parsed.success) throw malformed(parsed.error);
    return fromPowerSyncBatch(parsed.data.batch, parsed.data.client_id ?? null);
  }
  const parsed = WriteRequestSchema.safeParse(json);
  if (!parsed.success) throw malformed(parsed.error);
  return parsed.data.transactions.map((tx) => ({ id: tx.id, key: tx.id, ops: tx.ops }));
}

/** Consecutive entries with one `tx_id` form a transaction; entries without one form one keyless transaction. */
function fromPowerSyncBatch(batch: PowerSyncCrudEntry[], clientId: string | null): ClientTransaction[] {
  const out: ClientTransaction[] = [];
  let current: { txId: number | null; tx: ClientTransaction } | null = null;
  batch.forEach((entry, index) => {
    const txId = entry.tx_id ?? entry.transactionId ?? null;
    if (current === null || current.txId !== txId) {
      const key = txId !== null && clientId !== null ? `${clientId}:${txId}` : null;
      current = { txId, tx: { id: key ?? (txId !== null ? String(txId) : `batch:${index}`), key, ops: [] } };
      out.push(current.tx);
    }
    const data = entry.opData ?? entry.data ?? undefined;
    const old = entry.old ?? entry.previousValues ?? undefined;
    current.tx.ops.push({
      op: entry.op,
      type: entry.type,
      id: entry.id,
      ...(data ? { data } : {}),
      ...(old ? { old } : {}),
    });
  });
  return out;
}

function malformed(error: z.ZodError): FerryError {
  const issues = error.issues.map((issue) => ({ path: issue.path.map(String).join('.'), message: issue.message }));
  const first = issues[0]!;
  return new FerryError(
    'FERRY_S4001',
    `invalid write request: ${first.path === '' ? '' : `${first.path}: `}${first.message}`,
    { details: { issues } },
  );
}
