/**
 * Turns tuples of one source relation (from the WAL or from the snapshot
 * copy, both in text format) into the raw rows, replica identity keys and
 * SQLite rows bucket storage works with. The same mapper serves both paths,
 * so a row gets the same key and values whichever way it arrived.
 */
import { valuesToJson, type SqliteRow, type SqliteValue } from '@ferry/protocol';
import { createHash } from 'node:crypto';
import type { CompleteRawRow, RawRow } from '../storage/row-state.js';
import type { TypeRegistry, ValueMapper } from './type-mapping.js';

export interface MappedColumn {
  name: string;
  typeOid: number;
  /** Part of the replica identity (all columns under REPLICA IDENTITY FULL). */
  isKey: boolean;
}

/** Keys longer than this are stored as a hash (index entries have a size limit). */
const MAX_PLAIN_KEY_LENGTH = 512;

/**
 * Types whose mapping to a key value is one-to-one: distinct values that
 * Postgres considers distinct always give distinct keys. (Not floats or
 * numerics: NaN and ±Infinity all become NULL.)
 * bool, name, int8, int2, int4, text, oid, bpchar, varchar, uuid.
 */
const INJECTIVE_KEY_TYPES = new Set([16, 19, 20, 21, 23, 25, 26, 1042, 1043, 2950]);

export type TupleLike = readonly (string | null | undefined | Uint8Array)[];

export class RelationMapper {
  readonly columns: readonly MappedColumn[];
  /**
   * No two rows of the relation can have the same key: the identity is a
   * primary key or unique index (not FULL) and every key column's type maps
   * one-to-one (see {@link INJECTIVE_KEY_TYPES}).
   */
  readonly uniqueKeys: boolean;
  private readonly mappers: ValueMapper[];
  private readonly keyIndexes: number[];

  /** `replicaIdentity`: pg_class.relreplident (`d`, `i`, `f`, `n`); unknown means keys may repeat. */
  constructor(columns: readonly MappedColumn[], types: TypeRegistry, replicaIdentity?: string) {
    this.columns = columns;
    this.mappers = columns.map((c) => types.mapperFor(c.typeOid));
    this.keyIndexes = columns.flatMap((c, i) => (c.isKey ? [i] : []));
    this.uniqueKeys =
      (replicaIdentity === 'd' || replicaIdentity === 'i') &&
      this.keyIndexes.length > 0 &&
      this.keyIndexes.every((i) => INJECTIVE_KEY_TYPES.has(columns[i]!.typeOid));
  }

  /** True if the relation has replica identity columns. */
  get hasKey(): boolean {
    return this.keyIndexes.length > 0;
  }

  /** The replica identity key of a tuple: its identity column values, mapped, as JSON text. */
  keyOf(tuple: TupleLike): string {
    const values: SqliteValue[] = [];
    for (const i of this.keyIndexes) {
      const v = tuple[i];
      values.push(typeof v === 'string' ? this.mappers[i]!(v) : null);
    }
    const json = valuesToJson(values);
    return json.length <= MAX_PLAIN_KEY_LENGTH ? json : 'sha256:' + createHash('sha256').update(json).digest('hex');
  }

  /** The raw row of a tuple by column name; `undefined` for unchanged TOAST values. */
  rawRow(tuple: TupleLike): RawRow {
    const row: RawRow = {};
    const n = this.columns.length;
    for (let i = 0; i < n; i++) {
      const v = tuple[i];
      row[this.columns[i]!.name] = v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : v;
    }
    return row;
  }

  /** SQLite values of a complete raw row, in column order. Columns missing from `row` are NULL. */
  readonly toSqlite = (row: CompleteRawRow): SqliteRow => {
    const out: SqliteRow = {};
    const n = this.columns.length;
    for (let i = 0; i < n; i++) {
      const name = this.columns[i]!.name;
      const v = row[name];
      out[name] = v == null ? null : this.mappers[i]!(v);
    }
    return out;
  };
}
