/**
 * SQLite value semantics for sync rules expressions: comparison, truthiness,
 * casts and JSON access. Rules run in the service but their results must match
 * what the same expression means in SQLite, where clients read the data.
 */
import type { SqliteValue } from '@ferry/protocol';

const MAX_INT64 = 9223372036854775807n;
const MIN_INT64 = -9223372036854775808n;

export function isNumeric(value: SqliteValue): value is number | bigint {
  return typeof value === 'number' || typeof value === 'bigint';
}

/** Normalizes an integer result: a safe integer becomes `number`, a larger one stays `bigint`. */
export function normalizeInteger(value: bigint): number | bigint {
  if (value > MAX_INT64) value = MAX_INT64;
  else if (value < MIN_INT64) value = MIN_INT64;
  return value >= -9007199254740991n && value <= 9007199254740991n ? Number(value) : value;
}

/** Compares two numbers exactly, even when one is a bigint beyond 2^53. */
function compareNumeric(a: number | bigint, b: number | bigint): number {
  if (typeof a === 'number' && typeof b === 'number') return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'bigint' && typeof b === 'bigint') return a < b ? -1 : a > b ? 1 : 0;
  const n = (typeof a === 'number' ? a : b) as number;
  const big = (typeof a === 'bigint' ? a : b) as bigint;
  let cmp: number;
  if (Number.isNaN(n)) cmp = -1;
  else if (n === Infinity) cmp = 1;
  else if (n === -Infinity) cmp = -1;
  else {
    const whole = BigInt(Math.trunc(n));
    cmp = whole < big ? -1 : whole > big ? 1 : n - Math.trunc(n) > 0 ? 1 : n - Math.trunc(n) < 0 ? -1 : 0;
  }
  // cmp compares n to big; flip when n was the right operand.
  return typeof a === 'number' ? cmp : -cmp;
}

/**
 * SQLite ordering of two non-null values: numbers (integer and real, compared
 * numerically) sort before text; text compares by code unit.
 * Returns null when either side is NULL (the comparison is unknown).
 */
export function compareValues(a: SqliteValue, b: SqliteValue): number | null {
  if (a === null || b === null) return null;
  const an = isNumeric(a);
  const bn = isNumeric(b);
  if (an && bn) return compareNumeric(a, b);
  if (an) return -1;
  if (bn) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** `a = b` with SQLite semantics: NULL if either is NULL, else 1 or 0. */
export function valuesEqual(a: SqliteValue, b: SqliteValue): boolean {
  if (a === null || b === null) return false;
  if (typeof a === typeof b) return a === b;
  return compareValues(a, b) === 0;
}

/** Whether a value counts as true in a WHERE clause (NULL and 0 do not). */
export function isTruthy(value: SqliteValue): boolean {
  switch (typeof value) {
    case 'number':
      return value !== 0 && !Number.isNaN(value);
    case 'bigint':
      return value !== 0n;
    case 'string':
      return castToReal(value) !== 0;
    default:
      return false;
  }
}

/** A boolean as SQLite stores it. */
export function bool(value: boolean): 1 | 0 {
  return value ? 1 : 0;
}

/** SQLite's text form of a value (CAST(x AS TEXT)). */
export function castToText(value: SqliteValue): string | null {
  switch (typeof value) {
    case 'string':
      return value;
    case 'bigint':
      return value.toString();
    case 'number':
      return numberToText(value);
    default:
      return null;
  }
}

function numberToText(value: number): string {
  if (Number.isInteger(value) && Math.abs(value) < 1e21) return String(value);
  if (Number.isNaN(value)) return '';
  if (!Number.isFinite(value)) return value > 0 ? 'Inf' : '-Inf';
  return String(value);
}

const INTEGER_PREFIX = /^\s*([+-]?\d+)/;
const REAL_PREFIX = /^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)/;

/** CAST(x AS INTEGER): the longest integer prefix of text, truncation of reals. */
export function castToInteger(value: SqliteValue): number | bigint | null {
  switch (typeof value) {
    case 'number':
      if (Number.isNaN(value)) return 0;
      if (Number.isSafeInteger(value)) return value;
      if (!Number.isFinite(value)) return value > 0 ? MAX_INT64 : MIN_INT64;
      return normalizeInteger(BigInt(Math.trunc(value)));
    case 'bigint':
      return normalizeInteger(value);
    case 'string': {
      const match = INTEGER_PREFIX.exec(value);
      if (match === null || match[1] === undefined) return 0;
      return normalizeInteger(BigInt(match[1]));
    }
    default:
      return null;
  }
}

/** CAST(x AS REAL). */
export function castToReal(value: SqliteValue): number | null {
  switch (typeof value) {
    case 'number':
      return value;
    case 'bigint':
      return Number(value);
    case 'string': {
      const match = REAL_PREFIX.exec(value);
      return match === null || match[1] === undefined ? 0 : Number(match[1]);
    }
    default:
      return null;
  }
}

/** CAST(x AS NUMERIC): integers stay exact, integral reals become integers. */
export function castToNumeric(value: SqliteValue): number | bigint | null {
  switch (typeof value) {
    case 'number':
      return value;
    case 'bigint':
      return normalizeInteger(value);
    case 'string': {
      const match = REAL_PREFIX.exec(value);
      if (match === null || match[1] === undefined) return 0;
      const text = match[1];
      if (/^[+-]?\d+$/.test(text)) return normalizeInteger(BigInt(text));
      const real = Number(text);
      return Number.isSafeInteger(real) ? real : real;
    }
    default:
      return null;
  }
}

const TRUE_WORDS = new Set(['t', 'true', 'y', 'yes', 'on', '1']);
const FALSE_WORDS = new Set(['f', 'false', 'n', 'no', 'off', '0']);

/** CAST(x AS BOOLEAN): 1, 0 or NULL, accepting Postgres' boolean words in text. */
export function castToBoolean(value: SqliteValue): 1 | 0 | null {
  if (value === null) return null;
  if (typeof value === 'string') {
    const word = value.trim().toLowerCase();
    if (TRUE_WORDS.has(word)) return 1;
    if (FALSE_WORDS.has(word)) return 0;
    return bool(isTruthy(value));
  }
  return bool(isTruthy(value));
}

/** `typeof(x)` as SQLite reports it. */
export function sqliteTypeOf(value: SqliteValue): 'null' | 'integer' | 'real' | 'text' {
  switch (typeof value) {
    case 'bigint':
      return 'integer';
    case 'number':
      return Number.isInteger(value) ? 'integer' : 'real';
    case 'string':
      return 'text';
    default:
      return 'null';
  }
}

// ── JSON ──────────────────────────────────────────────────────────────────

/** JSON text of a parsed JSON value; bigints as bare integers. */
export function jsonStringify(value: unknown): string {
  if (typeof value === 'bigint') return value.toString();
  if (value === undefined) return 'null';
  if (typeof value !== 'object' || value === null) return JSON.stringify(value);
  if (Array.isArray(value)) return '[' + value.map(jsonStringify).join(',') + ']';
  let out = '{';
  let first = true;
  for (const [key, item] of Object.entries(value)) {
    if (item === undefined) continue;
    if (!first) out += ',';
    first = false;
    out += JSON.stringify(key) + ':' + jsonStringify(item);
  }
  return out + '}';
}

const UNSAFE_INTEGER = /^-?\d{16,}$/;

/**
 * Parses JSON text. Integers beyond 2^53 keep every digit (as bigint) when
 * the runtime exposes the source text to revivers; otherwise they round.
 * Returns undefined for malformed JSON.
 */
export function jsonParse(text: string): unknown {
  try {
    return JSON.parse(text, reviveBigInts);
  } catch {
    return undefined;
  }
}

function reviveBigInts(this: unknown, _key: string, value: unknown, context?: { source?: string }): unknown {
  if (typeof value === 'number' && !Number.isSafeInteger(value) && Number.isInteger(value)) {
    const source = context?.source;
    if (source !== undefined && UNSAFE_INTEGER.test(source)) return BigInt(source);
  }
  return value;
}

/** A parsed JSON value as a SQLite value (`->>`): scalars as themselves, booleans 1/0, containers as JSON text. */
export function jsonToSqlite(value: unknown): SqliteValue {
  switch (typeof value) {
    case 'string':
    case 'bigint':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : null;
    case 'boolean':
      return value ? 1 : 0;
    case 'object':
      return value === null ? null : jsonStringify(value);
    default:
      return null;
  }
}

/** One step of a JSON path: an object key or an array index (negative counts from the end, as `#-1`). */
export type JsonPathStep = string | number;

/**
 * Parses the right operand of `->`/`->>` or a `json_extract` path:
 * `'$.a.b[0]'` is a path; any other text is a single object key; an integer is
 * an array index. Returns null for a malformed path.
 */
export function parseJsonPath(operand: SqliteValue, allowLabel: boolean): JsonPathStep[] | null {
  if (typeof operand === 'number' && Number.isInteger(operand)) return [operand];
  if (typeof operand === 'bigint') return [Number(operand)];
  if (typeof operand !== 'string') return null;
  if (!operand.startsWith('$')) return allowLabel ? [operand] : null;
  const steps: JsonPathStep[] = [];
  let i = 1;
  while (i < operand.length) {
    const c = operand[i];
    if (c === '.') {
      i++;
      if (operand[i] === '"') {
        const close = operand.indexOf('"', i + 1);
        if (close < 0) return null;
        steps.push(operand.slice(i + 1, close));
        i = close + 1;
      } else {
        let j = i;
        while (j < operand.length && operand[j] !== '.' && operand[j] !== '[') j++;
        if (j === i) return null;
        steps.push(operand.slice(i, j));
        i = j;
      }
    } else if (c === '[') {
      const close = operand.indexOf(']', i);
      if (close < 0) return null;
      const inner = operand.slice(i + 1, close).trim();
      const fromEnd = /^#-(\d+)$/.exec(inner);
      if (fromEnd?.[1] !== undefined) steps.push(-Number(fromEnd[1]));
      else if (/^\d+$/.test(inner)) steps.push(Number(inner));
      else return null;
      i = close + 1;
    } else {
      return null;
    }
  }
  return steps;
}

/** Follows a path into a parsed JSON value; undefined when absent. */
export function jsonNavigate(value: unknown, path: readonly JsonPathStep[]): unknown {
  let current = value;
  for (const step of path) {
    if (current === null || typeof current !== 'object') return undefined;
    if (typeof step === 'number') {
      if (!Array.isArray(current)) return undefined;
      current = current[step < 0 ? current.length + step : step];
    } else {
      if (Array.isArray(current)) return undefined;
      current = Object.hasOwn(current, step) ? (current as Record<string, unknown>)[step] : undefined;
    }
  }
  return current;
}
