/**
 * The one mapping from Postgres values to SQLite values (see docs/types.md).
 * Both the snapshot copy and the WAL stream read values in Postgres' text
 * output format and convert them here, so a row looks the same whichever way
 * it arrived.
 *
 * Connections that produce these texts must use `DateStyle=ISO`,
 * `IntervalStyle=postgres` and `bytea_output=hex` (see
 * {@link SOURCE_SESSION_OPTIONS}); the session time zone may be anything:
 * timestamptz values are normalized to UTC here.
 */
import { valueToJson, type SqliteValue } from '@ferry/protocol';
import { parsePgArray, type PgArray } from './pg-array.js';

/** Session settings our source connections (normal and replication) start with. */
export const SOURCE_SESSION_OPTIONS =
  '-c DateStyle=ISO -c IntervalStyle=postgres -c bytea_output=hex -c extra_float_digits=3';

/** Type OIDs of the built-in types the mapping treats specially. */
export const PG_TYPE = {
  bool: 16,
  bytea: 17,
  char: 18,
  name: 19,
  int8: 20,
  int2: 21,
  int4: 23,
  text: 25,
  oid: 26,
  json: 114,
  float4: 700,
  float8: 701,
  bpchar: 1042,
  varchar: 1043,
  date: 1082,
  time: 1083,
  timestamp: 1114,
  timestamptz: 1184,
  interval: 1186,
  timetz: 1266,
  numeric: 1700,
  uuid: 2950,
  jsonb: 3802,
} as const;

/** Built-in array types → their element type. Others are resolved through {@link TypeRegistry.load}. */
const BUILTIN_ARRAYS: ReadonlyMap<number, number> = new Map([
  [1000, 16],
  [1001, 17],
  [1002, 18],
  [1003, 19],
  [1016, 20],
  [1005, 21],
  [1007, 23],
  [1009, 25],
  [1028, 26],
  [199, 114],
  [143, 142],
  [1021, 700],
  [1022, 701],
  [791, 790],
  [1014, 1042],
  [1015, 1043],
  [1182, 1082],
  [1183, 1083],
  [1115, 1114],
  [1185, 1184],
  [1187, 1186],
  [1270, 1266],
  [1231, 1700],
  [2951, 2950],
  [3807, 3802],
  [1561, 1560],
  [1563, 1562],
  [1041, 869],
  [651, 650],
  [1040, 829],
]);

/** Converts one non-NULL text value. */
export type ValueMapper = (text: string) => SqliteValue;

const identity: ValueMapper = (text) => text;

const mapInt: ValueMapper = (text) => Number(text);

const mapInt8: ValueMapper = (text) => {
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : BigInt(text);
};

/** NaN and ±Infinity have no JSON or reliable SQLite form: they become NULL. */
const mapFloat: ValueMapper = (text) => {
  const n = Number(text);
  return Number.isFinite(n) ? n : null;
};

const mapBool: ValueMapper = (text) => (text === 't' || text === 'true' ? 1 : 0);

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

const TIMESTAMPTZ = /^(\d{4,})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?([+-])(\d\d)(?::(\d\d))?(?::(\d\d))?$/;
const TIMESTAMP = /^(\d{4,}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?$/;

/** `2024-05-01 09:30:00.5-03` (any session zone) → `2024-05-01T12:30:00.500000Z`. Infinity and BC dates stay as text. */
export const mapTimestamptz: ValueMapper = (text) => {
  const m = TIMESTAMPTZ.exec(text);
  if (!m) return text;
  const sign = m[8] === '-' ? -1 : 1;
  const offsetSeconds = sign * (Number(m[9]) * 3600 + Number(m[10] ?? 0) * 60 + Number(m[11] ?? 0));
  const local = new Date(0);
  local.setUTCFullYear(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  local.setUTCHours(Number(m[4]), Number(m[5]), Number(m[6]), 0);
  const utc = new Date(local.getTime() - offsetSeconds * 1000);
  const fraction = (m[7] ?? '').padEnd(6, '0');
  return (
    `${pad(utc.getUTCFullYear(), 4)}-${pad(utc.getUTCMonth() + 1, 2)}-${pad(utc.getUTCDate(), 2)}` +
    `T${pad(utc.getUTCHours(), 2)}:${pad(utc.getUTCMinutes(), 2)}:${pad(utc.getUTCSeconds(), 2)}.${fraction}Z`
  );
};

/** `2024-05-01 09:30:00.5` → `2024-05-01T09:30:00.500000`. */
export const mapTimestamp: ValueMapper = (text) => {
  const m = TIMESTAMP.exec(text);
  if (!m) return text;
  return `${m[1]}T${m[2]}.${(m[3] ?? '').padEnd(6, '0')}`;
};

/** bytea in hex (`\x0a0b`) or escape format → base64. */
export const mapBytea: ValueMapper = (text) => {
  if (text.startsWith('\\x')) return Buffer.from(text.slice(2), 'hex').toString('base64');
  const bytes: number[] = [];
  for (let i = 0; i < text.length;) {
    const c = text.charCodeAt(i);
    if (c === 0x5c && text[i + 1] === '\\') {
      bytes.push(0x5c);
      i += 2;
    } else if (c === 0x5c && /^[0-7]{3}$/.test(text.slice(i + 1, i + 4))) {
      bytes.push(parseInt(text.slice(i + 1, i + 4), 8));
      i += 4;
    } else {
      bytes.push(c & 0xff);
      i += 1;
    }
  }
  return Buffer.from(bytes).toString('base64');
};

const SCALAR_MAPPERS: ReadonlyMap<number, ValueMapper> = new Map([
  [PG_TYPE.bool, mapBool],
  [PG_TYPE.bytea, mapBytea],
  [PG_TYPE.int2, mapInt],
  [PG_TYPE.int4, mapInt],
  [PG_TYPE.oid, mapInt],
  [PG_TYPE.int8, mapInt8],
  [PG_TYPE.float4, mapFloat],
  [PG_TYPE.float8, mapFloat],
  [PG_TYPE.timestamptz, mapTimestamptz],
  [PG_TYPE.timestamp, mapTimestamp],
]);

/** What the registry knows about a type. */
export type PgTypeInfo =
  | { oid: number; kind: 'scalar' }
  | { oid: number; kind: 'array'; elementOid: number; delimiter: string }
  | { oid: number; kind: 'domain'; baseOid: number };

/** Runs a catalog query; rows have text values (or numbers). */
export type CatalogQuery = (text: string, values: unknown[]) => Promise<Record<string, unknown>[]>;

/**
 * Knows how to map every type OID it has seen. Built-in types are known up
 * front; others (domains, arrays of enums, extension types) are looked up in
 * `pg_type` with {@link load}. Unknown types map to their text, as
 * "everything else" does.
 */
export class TypeRegistry {
  private readonly infos = new Map<number, PgTypeInfo>();
  private readonly mappers = new Map<number, ValueMapper>();

  constructor() {
    for (const [arrayOid, elementOid] of BUILTIN_ARRAYS) {
      this.infos.set(arrayOid, { oid: arrayOid, kind: 'array', elementOid, delimiter: ',' });
    }
  }

  /** Types among `oids` the registry has not resolved yet (worth a {@link load}). */
  missing(oids: Iterable<number>): number[] {
    return [...new Set(oids)].filter((oid) => !SCALAR_MAPPERS.has(oid) && !this.infos.has(oid));
  }

  add(info: PgTypeInfo): void {
    this.infos.set(info.oid, info);
    this.mappers.clear();
  }

  /** Looks up the given types (and their element and base types) in `pg_type`. */
  async load(query: CatalogQuery, oids: Iterable<number>): Promise<void> {
    let todo = this.missing(oids);
    const seen = new Set<number>();
    while (todo.length > 0) {
      for (const oid of todo) seen.add(oid);
      const rows = await query(
        `SELECT oid::int8 AS oid, typtype, typelem::int8 AS typelem, typbasetype::int8 AS typbasetype, typdelim, typcategory
           FROM pg_catalog.pg_type WHERE oid = ANY($1::int8[]::oid[])`,
        [todo.map(String)],
      );
      const next: number[] = [];
      for (const row of rows) {
        const oid = Number(row['oid']);
        const elem = Number(row['typelem']);
        const base = Number(row['typbasetype']);
        if (row['typtype'] === 'd' && base !== 0) {
          this.add({ oid, kind: 'domain', baseOid: base });
          next.push(base);
        } else if (row['typcategory'] === 'A' && elem !== 0) {
          this.add({ oid, kind: 'array', elementOid: elem, delimiter: String(row['typdelim'] ?? ',') });
          next.push(elem);
        } else {
          this.add({ oid, kind: 'scalar' });
        }
      }
      for (const oid of todo) if (!this.infos.has(oid)) this.add({ oid, kind: 'scalar' });
      todo = this.missing(next).filter((oid) => !seen.has(oid));
    }
  }

  /** The mapper for non-NULL values of a type. */
  mapperFor(oid: number): ValueMapper {
    let mapper = this.mappers.get(oid);
    if (!mapper) {
      mapper = this.build(oid, 0);
      this.mappers.set(oid, mapper);
    }
    return mapper;
  }

  /** Maps one value; NULL stays NULL. */
  map(oid: number, text: string | null): SqliteValue {
    return text === null ? null : this.mapperFor(oid)(text);
  }

  private build(oid: number, depth: number): ValueMapper {
    if (depth > 8) return identity;
    const scalar = SCALAR_MAPPERS.get(oid);
    if (scalar) return scalar;
    const info = this.infos.get(oid);
    if (info?.kind === 'domain') return this.build(info.baseOid, depth + 1);
    if (info?.kind === 'array') {
      const element = this.elementJson(info.elementOid, depth + 1);
      const delimiter = info.delimiter;
      return (text) => arrayToJson(parsePgArray(text, delimiter), element);
    }
    return identity;
  }

  /** JSON text of one array element of type `oid`. json/jsonb elements are embedded as JSON, not as strings. */
  private elementJson(oid: number, depth: number): (text: string) => string {
    let base = oid;
    for (let info = this.infos.get(base); info?.kind === 'domain' && depth < 8; info = this.infos.get(base), depth++) {
      base = info.baseOid;
    }
    if (base === PG_TYPE.json || base === PG_TYPE.jsonb) return (text) => text;
    const mapper = this.build(base, depth);
    const info = this.infos.get(base);
    if (info?.kind === 'array') return (text) => mapper(text) as string;
    return (text) => valueToJson(mapper(text));
  }
}

function arrayToJson(array: PgArray, element: (text: string) => string): string {
  let out = '[';
  for (let i = 0; i < array.length; i++) {
    if (i > 0) out += ',';
    const v = array[i]!;
    out += v === null ? 'null' : typeof v === 'string' ? element(v) : arrayToJson(v, element);
  }
  return out + ']';
}

/** A registry with only the built-in types, shared by code that has no catalog access. */
export const builtinTypes = new TypeRegistry();
