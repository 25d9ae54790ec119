import type { SqliteValue } from '@ferry/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compactCrud } from './queue-compaction.js';
import type { CrudEntry, CrudOp } from './upload-queue.js';

// ── the model server (write API semantics, see @ferry/protocol write.ts) ──────

type Row = Record<string, SqliteValue>;
type Server = Map<string, Row>;

const TABLES = ['tasks', 'notes'] as const;
const IDS = ['1', '2', '3'] as const;
/** The client schema's columns: a full PUT (what the triggers write) carries exactly these. */
const SCHEMA_COLUMNS = ['a', 'b', 'c'] as const;
/** Columns ops may name: the schema's plus one the schema no longer has (a schema change). */
const OP_COLUMNS = [...SCHEMA_COLUMNS, 'old'] as const;
/** Columns only the server has: no op ever names them, only inserts reset them. */
const SERVER_ONLY_COLUMNS = ['x', 'y'] as const;
const ALL_COLUMNS = [...OP_COLUMNS, ...SERVER_ONLY_COLUMNS];
/** What an INSERT gives a column it does not name (DEFAULT or NULL). */
const DEFAULTS: Row = { a: null, b: 'default-b', c: null, old: 0, x: 'default-x', y: null };

function key(table: string, id: string): string {
  return `${table}/${id}`;
}

/** Applies one op as the write API does. */
function apply(server: Server, entry: CrudEntry): void {
  const k = key(entry.table, entry.id);
  const row = server.get(k);
  const data = entry.opData ?? {};
  switch (entry.op) {
    case 'PUT':
      server.set(k, row === undefined ? { ...DEFAULTS, ...data } : { ...row, ...data });
      break;
    case 'PATCH':
      if (row !== undefined) server.set(k, { ...row, ...data });
      break;
    case 'DELETE':
      server.delete(k);
      break;
  }
}

function run(start: Server, entries: readonly CrudEntry[]): Server {
  const server = new Map([...start].map(([k, row]) => [k, { ...row }]));
  for (const entry of entries) apply(server, entry);
  return server;
}

// ── generators ───────────────────────────────────────────────────────────────

const valueArb: fc.Arbitrary<SqliteValue> = fc.oneof(
  fc.integer({ min: 0, max: 3 }),
  fc.constantFrom('p', 'q', '1'),
  fc.constant(null),
  fc.constant(2n ** 60n),
);

const rowArb: fc.Arbitrary<Row> = fc
  .array(valueArb, { minLength: ALL_COLUMNS.length, maxLength: ALL_COLUMNS.length })
  .map((values) => Object.fromEntries(ALL_COLUMNS.map((c, i) => [c, values[i]!])));

const startArb: fc.Arbitrary<Server> = fc
  .array(fc.tuple(fc.constantFrom(...TABLES), fc.constantFrom(...IDS), rowArb), { maxLength: 6 })
  .map((rows) => new Map(rows.map(([t, id, row]) => [key(t, id), row])));

function dataArb(columns: readonly string[]): fc.Arbitrary<Row> {
  return fc
    .tuple(fc.subarray([...columns]), fc.array(valueArb, { minLength: columns.length, maxLength: columns.length }))
    .map(([cols, values]) => Object.fromEntries(cols.map((c, i) => [c, values[i]!])));
}

/** A full-schema row (PUT as the triggers write it). */
const fullDataArb: fc.Arbitrary<Row> = fc
  .array(valueArb, { minLength: SCHEMA_COLUMNS.length, maxLength: SCHEMA_COLUMNS.length })
  .map((values) => Object.fromEntries(SCHEMA_COLUMNS.map((c, i) => [c, values[i]!])));

interface RawOp {
  op: CrudOp;
  table: string;
  id: string;
  data?: Row;
  /** PATCH: the previous values it recorded (some or all of its columns, or none: queued before the upgrade). */
  old?: Row;
  newTransaction: boolean;
  wallMs: number;
}

const rawOpArb: fc.Arbitrary<RawOp> = fc
  .record({
    op: fc.constantFrom<CrudOp>('PUT', 'PATCH', 'DELETE'),
    table: fc.constantFrom(...TABLES),
    id: fc.constantFrom(...IDS),
    fullPut: fc.boolean(),
    full: fullDataArb,
    partial: dataArb(OP_COLUMNS),
    oldColumns: fc.subarray([...OP_COLUMNS]),
    oldValues: fc.array(valueArb, { minLength: OP_COLUMNS.length, maxLength: OP_COLUMNS.length }),
    newTransaction: fc.boolean(),
    wallMs: fc.integer({ min: 0, max: 50 }),
  })
  .map(({ op, table, id, fullPut, full, partial, oldColumns, oldValues, newTransaction, wallMs }): RawOp => {
    const base = { op, table, id, newTransaction, wallMs };
    if (op === 'DELETE') return base;
    if (op === 'PUT') return { ...base, data: fullPut ? full : partial };
    const old = Object.fromEntries(
      OP_COLUMNS.map((c, i) => [c, oldValues[i]!] as const).filter(([c]) => c in partial && oldColumns.includes(c)),
    );
    return { ...base, data: partial, ...(Object.keys(old).length === 0 ? {} : { old }) };
  });

/** Queue entries as the queue holds them: increasing clientId, transactions, HLCs (not necessarily increasing). */
function toEntries(ops: readonly RawOp[]): CrudEntry[] {
  let transactionId = 0;
  return ops.map((raw, index) => {
    const clientId = index + 1;
    if (index === 0 || raw.newTransaction) transactionId = clientId;
    const hlc = `${raw.wallMs.toString(16).padStart(12, '0')}${index.toString(16).padStart(8, '0')}client`;
    const entry: CrudEntry = { clientId, op: raw.op, table: raw.table, id: raw.id, transactionId, hlc };
    return {
      ...entry,
      ...(raw.data === undefined ? {} : { opData: raw.data }),
      ...(raw.old === undefined ? {} : { previousValues: raw.old }),
    };
  });
}

const queueArb = fc.array(rawOpArb, { maxLength: 30 }).map(toEntries);

/** As the real queue holds them: stamps increase with the queue position. */
const increasingQueueArb = queueArb.map((entries) =>
  entries.map((e, index) => ({ ...e, hlc: `${index.toString(16).padStart(20, '0')}client` })),
);

/** What the compacted ops must carry for one column of a row. */
interface ColumnExpectation {
  /** The highest stamp of the edits of the column that count. */
  stamp: string;
  /** The stamp of the last of those edits. */
  lastStamp: string;
  /** Its previous value: recorded by the first PATCH of it; none after an insert (or when not recorded). */
  old: { value: SqliteValue } | undefined;
}

/**
 * The reference for one row's raw ops, column by column: a DELETE starts
 * over, a PATCH of a row a DELETE removed does nothing, a PUT (an insert)
 * leaves its columns without a previous value.
 */
function columnModel(rowOps: readonly CrudEntry[]): Map<string, ColumnExpectation> {
  const columns = new Map<string, ColumnExpectation>();
  let absent = false;
  for (const e of rowOps) {
    if (e.op === 'DELETE') {
      columns.clear();
      absent = true;
      continue;
    }
    if (e.op === 'PATCH' && absent) continue;
    absent = false;
    for (const column of Object.keys(e.opData ?? {})) {
      const before = columns.get(column);
      const recorded =
        e.previousValues !== undefined && Object.hasOwn(e.previousValues, column)
          ? { value: e.previousValues[column]! }
          : undefined;
      columns.set(column, {
        stamp: before === undefined || e.hlc > before.stamp ? e.hlc : before.stamp,
        lastStamp: e.hlc,
        old: e.op === 'PUT' ? undefined : before !== undefined ? before.old : recorded,
      });
    }
  }
  return columns;
}

/** The same states, for `expect`: Maps compare by entries, key order of rows ignored. */
function sorted(server: Server): [string, Row][] {
  return [...server].sort(([a], [b]) => (a < b ? -1 : 1));
}

function rowsInOrder(entries: readonly CrudEntry[]): string[] {
  const seen: string[] = [];
  for (const e of entries) if (!seen.includes(key(e.table, e.id))) seen.push(key(e.table, e.id));
  return seen;
}

// ── properties ───────────────────────────────────────────────────────────────

describe('compactCrud (properties)', () => {
  it('gives the server exactly the state the raw queue gives, from any starting state', () => {
    fc.assert(
      fc.property(startArb, queueArb, (start, raw) => {
        expect(sorted(run(start, compactCrud(raw)))).toEqual(sorted(run(start, raw)));
      }),
      { numRuns: 3000 },
    );
  });

  it('never grows the queue, keeps at most 2 adjacent ops per row, in first-op order', () => {
    fc.assert(
      fc.property(queueArb, (raw) => {
        const compacted = compactCrud(raw);
        expect(compacted.length).toBeLessThanOrEqual(raw.length);
        const perRow = new Map<string, number>();
        for (const e of compacted) perRow.set(key(e.table, e.id), (perRow.get(key(e.table, e.id)) ?? 0) + 1);
        for (const count of perRow.values()) expect(count).toBeLessThanOrEqual(2);
        // A row's ops are adjacent: as many row switches as rows.
        const switches = compacted.filter(
          (e, i) => i === 0 || key(e.table, e.id) !== key(compacted[i - 1]!.table, compacted[i - 1]!.id),
        ).length;
        expect(switches).toBe(perRow.size);
        expect(rowsInOrder(compacted)).toEqual(rowsInOrder(raw));
        // Two ops on a row are always DELETE+PUT or PATCH+PUT.
        const pairs = compacted
          .slice(1)
          .map((b, i) => [compacted[i]!, b] as const)
          .filter(([a, b]) => key(a.table, a.id) === key(b.table, b.id))
          .map(([a, b]) => `${a.op}+${b.op}`);
        for (const pair of pairs) expect(['DELETE+PUT', 'PATCH+PUT']).toContain(pair);
      }),
      { numRuns: 1000 },
    );
  });

  it('is idempotent: compacting twice equals compacting once', () => {
    fc.assert(
      fc.property(queueArb, (raw) => {
        const once = compactCrud(raw);
        expect(compactCrud(once)).toEqual(once);
      }),
      { numRuns: 1000 },
    );
  });

  it('keeps the bookkeeping: clientId/transactionId of an absorbed raw op, highest clientId and hlc per row', () => {
    fc.assert(
      fc.property(queueArb, (raw) => {
        const compacted = compactCrud(raw);
        const byClientId = new Map(raw.map((e) => [e.clientId, e]));
        for (const e of compacted) {
          const source = byClientId.get(e.clientId);
          expect(source).toBeDefined();
          expect(key(source!.table, source!.id)).toBe(key(e.table, e.id));
          expect(e.transactionId).toBe(source!.transactionId);
          expect(e.hlc >= source!.hlc).toBe(true);
        }
        // Completing up to the highest clientId covers every raw op.
        const maxId = (list: readonly CrudEntry[]) => Math.max(0, ...list.map((e) => e.clientId));
        expect(maxId(compacted)).toBe(maxId(raw));
        // Per row: the last compacted op carries the row's last raw op, and the row's highest hlc survives.
        for (const row of rowsInOrder(raw)) {
          const rawOps = raw.filter((e) => key(e.table, e.id) === row);
          const ops = compacted.filter((e) => key(e.table, e.id) === row);
          expect(ops.at(-1)!.clientId).toBe(rawOps.at(-1)!.clientId);
          const maxHlc = (list: readonly CrudEntry[]) => list.map((e) => e.hlc).reduce((a, b) => (a >= b ? a : b));
          expect(maxHlc(ops)).toBe(maxHlc(rawOps));
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('keeps, per column, the highest stamp (hlcs) and the earliest previous value', () => {
    fc.assert(
      fc.property(queueArb, (raw) => {
        const compacted = compactCrud(raw);
        for (const row of rowsInOrder(raw)) {
          const model = columnModel(raw.filter((e) => key(e.table, e.id) === row));
          for (const op of compacted.filter((e) => key(e.table, e.id) === row)) {
            const columns = Object.keys(op.opData ?? {}).map((column) => [column, model.get(column)!] as const);
            // hlcs names every column, and is there only when some column's stamp differs from the op's.
            const stamps = columns.map(([column, expected]) => [column, expected.stamp] as const);
            const hlcs = stamps.every(([, stamp]) => stamp === op.hlc) ? undefined : Object.fromEntries(stamps);
            expect(op.hlcs).toEqual(hlcs);
            // previousValues has exactly the columns with a previous value (none: left out).
            const old = columns.flatMap(([column, expected]) =>
              expected.old === undefined ? [] : [[column, expected.old.value] as const],
            );
            expect(op.previousValues).toEqual(old.length === 0 ? undefined : Object.fromEntries(old));
          }
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('with stamps increasing along the queue, a column carries the stamp of the edit that set it last', () => {
    fc.assert(
      fc.property(increasingQueueArb, (raw) => {
        const compacted = compactCrud(raw);
        for (const op of compacted) {
          const model = columnModel(raw.filter((e) => key(e.table, e.id) === key(op.table, op.id)));
          for (const column of Object.keys(op.opData ?? {})) {
            expect(op.hlcs?.[column] ?? op.hlc).toBe(model.get(column)!.lastStamp);
          }
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('does not modify its input', () => {
    fc.assert(
      fc.property(queueArb, (raw) => {
        const copy = structuredClone(raw);
        compactCrud(raw);
        expect(raw).toEqual(copy);
      }),
      { numRuns: 200 },
    );
  });

  it('the model catches a wrong rule (DELETE then PUT collapsed into a PUT)', () => {
    // Guards the test itself: a compaction that forgets the reset of a fresh insert must fail.
    const naive = (entries: readonly CrudEntry[]): CrudEntry[] =>
      compactCrud(entries).filter(
        (e, i, all) =>
          !(
            e.op === 'DELETE' &&
            all[i + 1]?.op === 'PUT' &&
            key(all[i + 1]!.table, all[i + 1]!.id) === key(e.table, e.id)
          ),
      );
    const result = fc.check(
      fc.property(startArb, queueArb, (start, raw) => {
        expect(sorted(run(start, naive(raw)))).toEqual(sorted(run(start, raw)));
      }),
      { numRuns: 3000 },
    );
    expect(result.failed).toBe(true);
  });
});

// ── examples: one per rule ───────────────────────────────────────────────────

let nextClientId = 1;
function op(kind: CrudOp, id: string, data?: Row, table = 'tasks', old?: Row): CrudEntry {
  const clientId = nextClientId++;
  const entry: CrudEntry = {
    clientId,
    op: kind,
    table,
    id,
    transactionId: clientId,
    hlc: `${clientId.toString(16).padStart(20, '0')}c`,
  };
  return {
    ...entry,
    ...(data === undefined ? {} : { opData: data }),
    ...(old === undefined ? {} : { previousValues: old }),
  };
}
const put = (id: string, data: Row, table?: string) => op('PUT', id, data, table);
const patch = (id: string, data: Row, table?: string, old?: Row) => op('PATCH', id, data, table, old);
const del = (id: string, table?: string) => op('DELETE', id, undefined, table);

/** The compacted ops without bookkeeping. */
function shape(entries: readonly CrudEntry[]): string[] {
  return entries.map((e) => `${e.op} ${e.table}/${e.id}${e.opData ? ' ' + JSON.stringify(e.opData) : ''}`);
}

describe('compactCrud (rules)', () => {
  it('leaves an empty queue and single ops alone', () => {
    expect(compactCrud([])).toEqual([]);
    const single = [put('1', { a: 1 }), patch('2', { b: 2 }), del('3')];
    expect(compactCrud(single)).toEqual(single);
  });

  it('PUT + PUT = one PUT with the later values', () => {
    expect(shape(compactCrud([put('1', { a: 1, b: 1 }), put('1', { b: 2, c: 2 })]))).toEqual([
      'PUT tasks/1 {"a":1,"b":2,"c":2}',
    ]);
  });

  it('PUT + PATCH = one PUT (the row exists after the PUT)', () => {
    expect(shape(compactCrud([put('1', { a: 1, b: 1 }), patch('1', { b: 2 })]))).toEqual(['PUT tasks/1 {"a":1,"b":2}']);
  });

  it('PUT + DELETE = DELETE (an insert then delete may still delete an existing server row)', () => {
    expect(shape(compactCrud([put('1', { a: 1 }), del('1')]))).toEqual(['DELETE tasks/1']);
  });

  it('PATCH + PATCH = one PATCH', () => {
    expect(shape(compactCrud([patch('1', { a: 1 }), patch('1', { a: 2, b: 2 })]))).toEqual([
      'PATCH tasks/1 {"a":2,"b":2}',
    ]);
  });

  it('PATCH a + PUT b = PUT b when a ⊆ b', () => {
    expect(shape(compactCrud([patch('1', { a: 1 }), put('1', { a: 2, b: 2 })]))).toEqual(['PUT tasks/1 {"a":2,"b":2}']);
  });

  it('PATCH a + PUT b keeps the PATCH of the columns b does not set', () => {
    expect(shape(compactCrud([patch('1', { a: 1, old: 1 }), put('1', { a: 2, b: 2 })]))).toEqual([
      'PATCH tasks/1 {"old":1}',
      'PUT tasks/1 {"a":2,"b":2}',
    ]);
  });

  it('PATCH + DELETE = DELETE', () => {
    expect(shape(compactCrud([patch('1', { a: 1 }), del('1')]))).toEqual(['DELETE tasks/1']);
  });

  it('DELETE + PUT stays DELETE + PUT (a fresh insert resets the other columns)', () => {
    expect(shape(compactCrud([del('1'), put('1', { a: 1 })]))).toEqual(['DELETE tasks/1', 'PUT tasks/1 {"a":1}']);
  });

  it('DELETE + PATCH = DELETE (the PATCH finds no row)', () => {
    expect(shape(compactCrud([del('1'), patch('1', { a: 1 })]))).toEqual(['DELETE tasks/1']);
  });

  it('DELETE + DELETE = DELETE', () => {
    expect(shape(compactCrud([del('1'), del('1')]))).toEqual(['DELETE tasks/1']);
  });

  it('DELETE + PUT + PATCH/PUT merge into the PUT; a later DELETE wipes everything', () => {
    const ops = [del('1'), put('1', { a: 1, b: 1 }), patch('1', { b: 2 }), put('1', { c: 3 })];
    expect(shape(compactCrud(ops))).toEqual(['DELETE tasks/1', 'PUT tasks/1 {"a":1,"b":2,"c":3}']);
    expect(shape(compactCrud([...ops, del('1')]))).toEqual(['DELETE tasks/1']);
  });

  it('PATCH + PUT + later writes trim the PATCH, and drop it once fully overwritten', () => {
    const ops = [patch('1', { a: 1, old: 1 }), put('1', { a: 2 }), patch('1', { b: 3 })];
    expect(shape(compactCrud(ops))).toEqual(['PATCH tasks/1 {"old":1}', 'PUT tasks/1 {"a":2,"b":3}']);
    expect(shape(compactCrud([...ops, patch('1', { old: 4 })]))).toEqual(['PUT tasks/1 {"a":2,"b":3,"old":4}']);
  });

  it('compacts interleaved rows separately, ordered by each row’s first op; same id in two tables are two rows', () => {
    const ops = [
      put('1', { a: 1 }),
      put('2', { a: 2 }),
      patch('1', { b: 1 }),
      put('1', { a: 9 }, 'notes'),
      del('2'),
      patch('3', { c: 3 }),
      patch('1', { c: 1 }),
    ];
    expect(shape(compactCrud(ops))).toEqual([
      'PUT tasks/1 {"a":1,"b":1,"c":1}',
      'DELETE tasks/2',
      'PUT notes/1 {"a":9}',
      'PATCH tasks/3 {"c":3}',
    ]);
  });

  it('takes clientId and transactionId of the last absorbed op and the highest hlc', () => {
    const first = { ...put('1', { a: 1 }), transactionId: 100, hlc: '0000000000090000000c' };
    const second = { ...patch('1', { a: 2 }), transactionId: 200, hlc: '0000000000010000000c' };
    const [compacted] = compactCrud([first, second]);
    expect(compacted).toEqual({
      clientId: second.clientId,
      op: 'PUT',
      table: 'tasks',
      id: '1',
      transactionId: 200,
      hlc: first.hlc,
      opData: { a: 2 },
    });
  });

  it('stamps each column with the edit that set it last (hlcs) and omits hlcs when all share the op stamp', () => {
    const insert = put('1', { a: 1, b: 1 });
    const edit = patch('1', { b: 2 }, undefined, { b: 1 });
    const [compacted] = compactCrud([insert, edit]);
    expect(compacted).toMatchObject({ op: 'PUT', hlc: edit.hlc, hlcs: { a: insert.hlc, b: edit.hlc } });
    // The insert set both columns: no previous values.
    expect(compacted!.previousValues).toBeUndefined();
    expect(compactCrud([patch('1', { a: 1 }), patch('1', { a: 2 })])[0]!.hlcs).toBeUndefined();
  });

  it('keeps the previous value of the first PATCH of each column', () => {
    const first = patch('1', { a: 1 }, undefined, { a: 'a0' });
    const second = patch('1', { a: 2, b: 2 }, undefined, { a: 1, b: 'b0' });
    expect(compactCrud([first, second])).toEqual([
      {
        clientId: second.clientId,
        op: 'PATCH',
        table: 'tasks',
        id: '1',
        transactionId: second.transactionId,
        hlc: second.hlc,
        opData: { a: 2, b: 2 },
        previousValues: { a: 'a0', b: 'b0' },
      },
    ]);
  });

  it('a column moving from the PATCH into a later PUT keeps its first previous value; an insert drops it', () => {
    const ops = [
      patch('1', { x: 1 }, undefined, { x: 'x0' }),
      put('1', { a: 1 }),
      patch('1', { x: 2 }, undefined, { x: 1 }),
    ];
    const [only] = compactCrud(ops);
    expect(only).toMatchObject({ op: 'PUT', opData: { a: 1, x: 2 }, previousValues: { x: 'x0' } });
    const replaced = compactCrud([...ops.slice(0, 2), put('1', { x: 3 })]);
    expect(replaced).toHaveLength(1);
    expect(replaced[0]!.previousValues).toBeUndefined();
  });

  it('keeps bigint values exact', () => {
    const big = 2n ** 62n + 1n;
    expect(compactCrud([put('1', { a: 1 }), patch('1', { a: big })])[0]!.opData).toEqual({ a: big });
  });
});
