/**
 * The write API's wire format: `POST /write` with a {@link WriteRequest},
 * answered `200` with a {@link WriteResponse} (per transaction, per op).
 * Request-level problems answer 400 (malformed), 401 (token) or 413 (too
 * large) with an error body `{ error: { code, message } }`.
 *
 * Two request shapes are accepted:
 * - Ferry's: `{ client_id, transactions: [{ id, ops: [...] }] }`. `id` is the
 *   transaction's idempotency key: a transaction whose key was already
 *   applied (for this user) is acknowledged again, not applied twice.
 * - PowerSync's CRUD entries: `{ client_id?, batch: [{ op, type, id, opData
 *   | data, tx_id? }] }` (what `CrudEntry.toJSON()` gives). Consecutive
 *   entries with one `tx_id` form a transaction whose key is
 *   `<client_id>:<tx_id>` when both are present; entries without `tx_id`
 *   form one transaction, applied without an idempotency key.
 *
 * Values are in SQLite form (as the client stores them); the service
 * converts each to its column's Postgres type.
 */
import { z } from 'zod';

export const WRITE_OPS = ['PUT', 'PATCH', 'DELETE'] as const;
export type WriteOpKind = (typeof WRITE_OPS)[number];

/** A JSON value as an op's column value (SQLite form: text, number, null; int8 beyond 2^53 as a JSON integer). */
const columnValue = z.union([z.string(), z.number(), z.bigint(), z.boolean(), z.null()]);

/** One op: PUT upserts every given column, PATCH updates the given columns of an existing row, DELETE deletes. */
export const WriteOpSchema = z.object({
  op: z.enum(WRITE_OPS),
  /** Table name. */
  type: z.string().min(1).max(256),
  /** The row's `id`. */
  id: z.string().min(1).max(1024),
  /** Column values (PUT, PATCH); absent for DELETE. */
  data: z.record(z.string(), columnValue).optional(),
  /** Hybrid logical clock stamp of the op (`encodeHlc` text): orders concurrent writes of a field. */
  hlc: z.string().max(512).optional(),
  /**
   * Per-column stamps overriding `hlc` (a compacted op carries, for each
   * column, the stamp of the edit that last set it).
   */
  hlcs: z.record(z.string(), z.string().max(512)).optional(),
  /**
   * The values the writer saw before this op, for the columns it changes
   * (PATCH; PowerSync's `previousValues`). A column whose stored value still
   * equals its `old` value was written with knowledge of the current value:
   * no conflict. Without `old`, the clocks alone decide.
   */
  old: z.record(z.string(), columnValue).optional(),
});
export type WriteOp = z.infer<typeof WriteOpSchema>;

export const WriteTransactionSchema = z.object({
  /** Idempotency key, unique per user (Ferry's client sends `<client id>:<local transaction id>`). */
  id: z.string().min(1).max(512),
  ops: z.array(WriteOpSchema).min(1),
});
export type WriteTransaction = z.infer<typeof WriteTransactionSchema>;

/** Ferry's request shape. */
export const WriteRequestSchema = z.object({
  client_id: z.string().min(1).max(256),
  transactions: z.array(WriteTransactionSchema).min(1),
});
export type WriteRequest = z.infer<typeof WriteRequestSchema>;

/** One PowerSync CRUD entry (`CrudEntry.toJSON()` or the `op/type/id/opData` shape). */
export const PowerSyncCrudEntrySchema = z.looseObject({
  op: z.enum(WRITE_OPS),
  type: z.string().min(1).max(256),
  id: z.string().min(1).max(1024),
  opData: z.record(z.string(), columnValue).nullish(),
  data: z.record(z.string(), columnValue).nullish(),
  tx_id: z.number().int().nullish(),
  transactionId: z.number().int().nullish(),
  /** Previous values (PowerSync `trackPreviousValues`): used as the op's `old`. */
  old: z.record(z.string(), columnValue).nullish(),
  previousValues: z.record(z.string(), columnValue).nullish(),
});
export type PowerSyncCrudEntry = z.infer<typeof PowerSyncCrudEntrySchema>;

/** PowerSync's request shape. */
export const PowerSyncWriteRequestSchema = z.object({
  client_id: z.string().min(1).max(256).optional(),
  batch: z.array(PowerSyncCrudEntrySchema).min(1),
});
export type PowerSyncWriteRequest = z.infer<typeof PowerSyncWriteRequestSchema>;

/** Why an op was not applied. `retryable`: the same op may succeed later (send it again); otherwise it never will. */
export interface WriteRejection {
  status: 'rejected';
  retryable: boolean;
  /** A `FERRY_S6xxx` code (see docs/errors.md). */
  code: string;
  message: string;
}

/**
 * An applied op. `conflicts`: ids of `ferry_conflicts` records this op
 * created (a value it overwrote or lost, kept there); `violations`: ids of
 * `ferry_violations` records a validation hook raised for it.
 */
export interface WriteApplied {
  status: 'applied';
  conflicts?: string[];
  violations?: string[];
}

export type WriteOpResult = WriteApplied | WriteRejection;

/**
 * The answer for one transaction, in request order:
 * - `applied`: every op applied (or, with `duplicate`, applied by an earlier request with this key);
 * - `rejected`: nothing applied; at least one op has a non-retryable rejection, the others `FERRY_S6006`;
 * - `retry`: nothing applied, for a transient reason; send it again later. Once one transaction
 *   answers `retry`, every later one of the batch does too (order is kept).
 */
export interface WriteTransactionResult {
  id: string;
  status: 'applied' | 'rejected' | 'retry';
  duplicate?: boolean;
  /** One entry per op, in order. */
  ops: WriteOpResult[];
}

export interface WriteResponse {
  transactions: WriteTransactionResult[];
}

/** Error body of a request-level failure (400, 401, 413, 5xx). */
export interface WriteErrorBody {
  error: { code: string; message: string };
}
