import type { SqliteValue } from '@ferry/protocol';
import type { CrudEntry } from './upload-queue.js';

/**
 * Upload-queue compaction: several queued edits of one row become at most
 * two ops, such that uploading the compacted list leaves the server in
 * exactly the state the raw list would, whatever the server held before.
 *
 * ## Server semantics this relies on (see `@ferry/protocol` write.ts)
 *
 * A row is identified by (table, id) and is either absent or present.
 * - `PUT(d)`: present → the columns of `d` are updated, the others keep
 *   their values; absent → inserted with `d`, every other column gets its
 *   default (DEFAULT / NULL).
 * - `PATCH(d)`: present → the columns of `d` are updated; absent → nothing.
 * - `DELETE`: the row is absent afterwards.
 *
 * ## Normal forms
 *
 * Every sequence of ops on one row has the same effect as one of these
 * (`a ⊕ b` = `a` with `b`'s columns written over it; `D` = defaults):
 *
 * | form                 | absent → | present `r` → |
 * |----------------------|----------|---------------|
 * | (nothing)            | absent   | `r`           |
 * | `PATCH(p)`           | absent   | `r ⊕ p`       |
 * | `PUT(a)`             | `D ⊕ a`  | `r ⊕ a`       |
 * | `DELETE`             | absent   | absent        |
 * | `DELETE, PUT(a)`     | `D ⊕ a`  | `D ⊕ a`       |
 * | `PATCH(p), PUT(a)`   | `D ⊕ a`  | `r ⊕ p ⊕ a`   |
 *
 * (in the last form `p` is non-empty and shares no column with `a`; when
 * it would be empty the form is just `PUT(a)`). Appending one op to a form
 * gives a form again (the transition table, checked by the property test):
 *
 * | form \ next op       | `PUT(b)`                  | `PATCH(b)`         | `DELETE` |
 * |----------------------|---------------------------|--------------------|----------|
 * | (nothing)            | `PUT(b)`                  | `PATCH(b)`         | `DELETE` |
 * | `PATCH(p)`           | `PATCH(p∖b), PUT(b)`      | `PATCH(p ⊕ b)`     | `DELETE` |
 * | `PUT(a)`             | `PUT(a ⊕ b)`              | `PUT(a ⊕ b)`       | `DELETE` |
 * | `DELETE`             | `DELETE, PUT(b)`          | `DELETE`           | `DELETE` |
 * | `DELETE, PUT(a)`     | `DELETE, PUT(a ⊕ b)`      | `DELETE, PUT(a⊕b)` | `DELETE` |
 * | `PATCH(p), PUT(a)`   | `PATCH(p∖b), PUT(a ⊕ b)`  | same as `PUT(b)`   | `DELETE` |
 *
 * (`p∖b` = `p` without `b`'s columns.) What does NOT collapse:
 * `DELETE, PUT` is not a `PUT`, because the server row may have columns
 * beyond the PUT's, which a fresh insert resets to their defaults; and
 * `PATCH(a), PUT(b)` is a `PUT(b)` only when `a`'s columns are all in `b`
 * (always the case for the client's own triggers, whose PUT carries every
 * schema column, but not across a schema change).
 *
 * ## Order and bookkeeping
 *
 * Rows keep the relative order of their first raw op, and a row's (one or
 * two) compacted ops are adjacent. Ops of different rows commute in the
 * model above; a server with constraints across rows (foreign keys, unique
 * columns) may see a different intermediate order, which is one more
 * reason compaction is opt-in.
 *
 * Each compacted op takes the `clientId` and `transactionId` of the LAST
 * raw op it absorbs, and the highest `hlc` among them. The compacted list's
 * `clientId`s are therefore not increasing: completing it must remove every
 * queued op up to the highest `clientId` in it, which covers exactly the
 * raw ops it replaces (when the raw list was a prefix of the queue).
 *
 * ## Per-column stamps and previous values (field-level merge)
 *
 * - `hlcs`: each column of a compacted op keeps the highest stamp of the
 *   raw edits of it that the op carries (queue stamps increase, so that is
 *   the edit that set it last); edits a DELETE wiped, or PATCHes of a row a
 *   DELETE removed, do not count. `hlcs` lists every column and is left out
 *   when all of them have the op's `hlc`.
 * - `previousValues`: each column keeps the old value recorded by the
 *   FIRST raw PATCH of the run that changed it (what the server had before
 *   the run, as far as this client knew). A column written by an insert
 *   (a raw PUT) in the run has none, nor has one whose first PATCH
 *   recorded none. A DELETE starts over.
 *
 * ## Why it is opt-in
 *
 * Compaction merges transactions: a compacted op can carry edits from
 * several local transactions, and one local transaction's ops can end up
 * in different compacted ops, so a compacted upload is no longer applied
 * per local transaction (atomicity, per-transaction idempotency keys and
 * per-transaction rejection are lost for the merged ops). Apps that rely
 * on those properties upload the raw queue.
 *
 * The equivalence is about the write semantics above, with this client
 * the only writer of those rows. Two things outside that model can differ:
 * - field-level merge by HLC: each column keeps its own stamp (`hlcs`) and
 *   its first old value, but the server compares only the run's end state:
 *   an intermediate value that the raw queue would have written (and
 *   possibly lost to a concurrent edit, recording a conflict) never reaches
 *   it;
 * - write rules that reject an op (immutable column, forbidden column):
 *   the raw queue rejects that op alone, the compacted one rejects the
 *   merged op, i.e. the other edits it absorbed too.
 */
export function compactCrud(entries: readonly CrudEntry[]): CrudEntry[] {
  const rows = new Map<string, RowForm>();
  for (const entry of entries) {
    const key = rowKey(entry);
    const form = rows.get(key);
    if (form === undefined) rows.set(key, startForm(entry));
    else rows.set(key, appendOp(form, entry));
  }
  const result: CrudEntry[] = [];
  for (const form of rows.values()) {
    if (form.before !== null) result.push(toEntry(form.before));
    result.push(toEntry(form.last));
  }
  return result;
}

/** One compacted op while it is being built. */
interface Pending {
  readonly op: CrudEntry['op'];
  readonly table: string;
  readonly id: string;
  /** PUT / PATCH: the merged columns; DELETE: null. */
  readonly data: Record<string, SqliteValue> | null;
  /** Per column of `data`: the highest stamp of the edits merged into it. */
  readonly stamps: ReadonlyMap<string, string>;
  /**
   * Per column of `data`: its value before the run's first edit of it, or
   * undefined when there is none (set by an insert, or not recorded).
   */
  readonly old: ReadonlyMap<string, SqliteValue | undefined>;
  /** The last raw op absorbed (its clientId and transactionId are kept). */
  readonly lastRaw: CrudEntry;
  readonly hlc: string;
}

/**
 * A row's normal form: `last` alone (PATCH, PUT or DELETE), or `before`
 * then `last` where `before` is a DELETE or a PATCH and `last` is a PUT.
 */
interface RowForm {
  readonly before: Pending | null;
  readonly last: Pending;
}

const NONE: ReadonlyMap<string, never> = new Map<string, never>();

function rowKey(entry: CrudEntry): string {
  // Table names are identifiers (no NUL), so the key is unambiguous.
  return `${entry.table}\u0000${entry.id}`;
}

function maxHlc(a: string, b: string): string {
  // encodeHlc text sorts as the clock does (fixed-width hex, then node).
  return a >= b ? a : b;
}

function dataOf(entry: CrudEntry): Record<string, SqliteValue> {
  return entry.opData === undefined ? {} : { ...entry.opData };
}

/** The stamp `entry` gives `column`. */
function stampOf(entry: CrudEntry, column: string): string {
  return entry.hlcs?.[column] ?? entry.hlc;
}

/** Whether `entry` carries a previous value for `column`. */
function hasOld(entry: CrudEntry, column: string): boolean {
  return entry.previousValues !== undefined && Object.hasOwn(entry.previousValues, column);
}

/** A PUT's column without a previous value was set by an insert: whatever came before it does not count. */
function insertedBy(entry: CrudEntry, column: string): boolean {
  return entry.op === 'PUT' && !hasOld(entry, column);
}

/** `pending`'s stamps and old values with `entry`'s columns merged in (`entry` comes later). */
function mergeColumns(pending: Pick<Pending, 'stamps' | 'old'>, entry: CrudEntry): Pick<Pending, 'stamps' | 'old'> {
  const stamps = new Map<string, string>(pending.stamps);
  const old = new Map<string, SqliteValue | undefined>(pending.old);
  for (const column of Object.keys(entry.opData ?? {})) {
    const before = stamps.get(column);
    const stamp = stampOf(entry, column);
    stamps.set(column, before === undefined ? stamp : maxHlc(before, stamp));
    // The first edit of a column decides its previous value; an insert resets it to none.
    if (insertedBy(entry, column)) old.set(column, undefined);
    else if (!old.has(column)) old.set(column, hasOld(entry, column) ? entry.previousValues![column] : undefined);
  }
  return { stamps, old };
}

function fresh(entry: CrudEntry): Pending {
  const base = { op: entry.op, table: entry.table, id: entry.id, lastRaw: entry, hlc: entry.hlc };
  if (entry.op === 'DELETE') return { ...base, data: null, stamps: NONE, old: NONE };
  return { ...base, data: dataOf(entry), ...mergeColumns({ stamps: NONE, old: NONE }, entry) };
}

/** `pending` with `entry` absorbed, as op `op` (a DELETE drops the columns, otherwise `entry`'s are merged in). */
function absorb(pending: Pending, entry: CrudEntry, op: CrudEntry['op']): Pending {
  const base = { op, table: pending.table, id: pending.id, lastRaw: entry, hlc: maxHlc(pending.hlc, entry.hlc) };
  if (op === 'DELETE') return { ...base, data: null, stamps: NONE, old: NONE };
  return { ...base, data: { ...pending.data, ...dataOf(entry) }, ...mergeColumns(pending, entry) };
}

function without(data: Record<string, SqliteValue>, remove: Record<string, SqliteValue>): Record<string, SqliteValue> {
  const result: Record<string, SqliteValue> = {};
  for (const [column, value] of Object.entries(data)) {
    if (!Object.hasOwn(remove, column)) result[column] = value;
  }
  return result;
}

function restricted<V>(map: ReadonlyMap<string, V>, data: Record<string, SqliteValue>): Map<string, V> {
  return new Map([...map].filter(([column]) => Object.hasOwn(data, column)));
}

function startForm(entry: CrudEntry): RowForm {
  return { before: null, last: fresh(entry) };
}

/** The transition table of the doc comment above. */
function appendOp(form: RowForm, entry: CrudEntry): RowForm {
  const { before, last } = form;
  if (entry.op === 'DELETE') {
    // Whatever came before, the row ends absent; a DELETE does that for any start state.
    const absorbed = before === null ? last : { ...last, hlc: maxHlc(before.hlc, last.hlc) };
    return { before: null, last: absorb(absorbed, entry, 'DELETE') };
  }
  if (last.op === 'DELETE') {
    // DELETE + PATCH: the row is absent, the PATCH does nothing. DELETE + PUT: a fresh insert.
    if (entry.op === 'PATCH') return { before: null, last: absorb(last, entry, 'DELETE') };
    return { before: last, last: fresh(entry) };
  }
  if (last.op === 'PUT') {
    // The row exists after a PUT, so a PUT or PATCH merely writes more columns.
    const merged = absorb(last, entry, 'PUT');
    if (before === null || before.op === 'DELETE') return { before, last: merged };
    return withTrimmedPatch(before, merged, entry);
  }
  // last is a PATCH (and before is null).
  if (entry.op === 'PATCH') return { before: null, last: absorb(last, entry, 'PATCH') };
  // PATCH(p) + PUT(b): the PATCH still matters for columns of p that b does not set.
  return withTrimmedPatch(last, fresh(entry), entry);
}

/**
 * `patch` then `put`, where `put` has absorbed `entry` (so it sets at least
 * `entry`'s columns): the PATCH loses those columns, and disappears into
 * the PUT when none remain (the PUT then also absorbs its clock). A column
 * moving over keeps the PATCH's earlier stamp (if higher) and, unless
 * `entry` inserted it, the PATCH's previous value, recorded first.
 */
function withTrimmedPatch(patch: Pending, put: Pending, entry: CrudEntry): RowForm {
  const data = dataOf(entry);
  const patchData = patch.data ?? {};
  const stamps = new Map<string, string>(put.stamps);
  const old = new Map<string, SqliteValue | undefined>(put.old);
  for (const column of Object.keys(patchData)) {
    if (!Object.hasOwn(data, column)) continue;
    stamps.set(column, maxHlc(stamps.get(column)!, patch.stamps.get(column)!));
    if (!insertedBy(entry, column)) old.set(column, patch.old.get(column));
  }
  const merged: Pending = { ...put, stamps, old };
  const rest = without(patchData, data);
  if (Object.keys(rest).length === 0) return { before: null, last: { ...merged, hlc: maxHlc(patch.hlc, put.hlc) } };
  return {
    before: { ...patch, data: rest, stamps: restricted(patch.stamps, rest), old: restricted(patch.old, rest) },
    last: merged,
  };
}

function toEntry(pending: Pending): CrudEntry {
  const entry: CrudEntry = {
    clientId: pending.lastRaw.clientId,
    op: pending.op,
    table: pending.table,
    id: pending.id,
    transactionId: pending.lastRaw.transactionId,
    hlc: pending.hlc,
  };
  if (pending.data === null) return entry;
  const columns = Object.keys(pending.data);
  const stamps = columns.map((column) => [column, pending.stamps.get(column)!] as const);
  const previous = columns.flatMap((column) => {
    const value = pending.old.get(column);
    return value === undefined ? [] : [[column, value] as const];
  });
  return {
    ...entry,
    opData: pending.data,
    ...(stamps.every(([, stamp]) => stamp === pending.hlc) ? {} : { hlcs: Object.fromEntries(stamps) }),
    ...(previous.length === 0 ? {} : { previousValues: Object.fromEntries(previous) }),
  };
}
