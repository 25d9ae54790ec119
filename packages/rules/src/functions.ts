/**
 * The scalar functions sync rules may call, with SQLite semantics. Each takes
 * already-evaluated arguments; NULL handling follows SQLite unless noted.
 */
import type { SqliteValue } from '@ferry/protocol';
import {
  castToInteger,
  castToReal,
  castToText,
  isNumeric,
  isTruthy,
  jsonNavigate,
  jsonParse,
  jsonToSqlite,
  normalizeInteger,
  parseJsonPath,
  sqliteTypeOf,
} from './sqlite-values.js';

export interface SqlFunction {
  minArgs: number;
  maxArgs: number;
  /** Arguments that must be constant (e.g. date modifiers); by index. */
  constantArgs?: readonly number[];
  call(args: readonly SqliteValue[]): SqliteValue;
}

const textEncoder = new TextEncoder();

function text1(fn: (s: string) => SqliteValue): SqlFunction {
  return {
    minArgs: 1,
    maxArgs: 1,
    call: (args) => {
      const s = castToText(args[0] ?? null);
      return s === null ? null : fn(s);
    },
  };
}

function substr(args: readonly SqliteValue[]): SqliteValue {
  const s = castToText(args[0] ?? null);
  const startValue = args[1] ?? null;
  if (s === null || startValue === null) return null;
  const chars = Array.from(s);
  let start = Number(castToInteger(startValue));
  const lengthValue = args.length > 2 ? (args[2] ?? null) : undefined;
  if (lengthValue === null) return null;
  let length = lengthValue === undefined ? chars.length + 1 : Number(castToInteger(lengthValue));
  // SQLite: 1-based; a negative start counts from the end; a negative length takes characters before start.
  if (start < 0) start = chars.length + start + 1;
  if (start === 0) {
    start = 1;
    length = length > 0 ? length - 1 : length;
  }
  let from = start - 1;
  let to = from + length;
  if (length < 0) {
    to = from;
    from = Math.max(0, from + length);
  }
  return chars.slice(Math.max(0, from), Math.max(0, to)).join('');
}

function jsonValue(value: SqliteValue): unknown {
  return typeof value === 'string' ? jsonParse(value) : value;
}

function toBase64(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

function toHex(bytes: Uint8Array): string {
  let out = '';
  for (const byte of bytes) out += byte.toString(16).padStart(2, '0');
  return out.toUpperCase();
}

/**
 * Parses a SQLite time value: ISO-8601 / `YYYY-MM-DD HH:MM:SS` text (UTC when
 * no offset), or a number of seconds when `unixepoch` is among the modifiers.
 * Returns milliseconds since the epoch, or null.
 */
function parseTime(value: SqliteValue, modifiers: readonly SqliteValue[]): number | null {
  if (value === null) return null;
  const asEpoch = modifiers.some((m) => typeof m === 'string' && m.toLowerCase() === 'unixepoch');
  if (isNumeric(value)) {
    const n = Number(value);
    return asEpoch ? n * 1000 : (n - 2440587.5) * 86400000; // a bare number is a Julian day number in SQLite
  }
  let text = value.trim();
  if (/^\d{4}-\d{2}-\d{2}$/.test(text)) text += 'T00:00:00Z';
  else {
    text = text.replace(' ', 'T');
    if (!/(Z|[+-]\d{2}(:?\d{2})?)$/i.test(text)) text += 'Z';
    // Postgres offsets like +02 need minutes for Date.parse.
    text = text.replace(/([+-]\d{2})$/, '$1:00');
  }
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? null : ms;
}

function hasSubsec(modifiers: readonly SqliteValue[]): boolean {
  return modifiers.some(
    (m) => typeof m === 'string' && (m.toLowerCase() === 'subsec' || m.toLowerCase() === 'subsecond'),
  );
}

const KNOWN_MODIFIERS = new Set(['unixepoch', 'subsec', 'subsecond', 'utc']);

export const FUNCTIONS: ReadonlyMap<string, SqlFunction> = new Map<string, SqlFunction>([
  ['upper', text1((s) => s.toUpperCase())],
  ['lower', text1((s) => s.toLowerCase())],
  [
    'length',
    {
      minArgs: 1,
      maxArgs: 1,
      call: ([v]) => {
        const s = castToText(v ?? null);
        return s === null ? null : Array.from(s).length;
      },
    },
  ],
  ['substring', { minArgs: 2, maxArgs: 3, call: substr }],
  ['substr', { minArgs: 2, maxArgs: 3, call: substr }],
  ['ifnull', { minArgs: 2, maxArgs: 2, call: ([a, b]) => (a === null || a === undefined ? (b ?? null) : a) }],
  [
    'concat',
    {
      minArgs: 1,
      maxArgs: 100,
      call: (args) => args.map((a) => castToText(a) ?? '').join(''),
    },
  ],
  [
    'json_extract',
    {
      minArgs: 2,
      maxArgs: 2,
      call: ([json, path]) => {
        const steps = parseJsonPath(path ?? null, false);
        if (steps === null || json === null || json === undefined) return null;
        return jsonToSqlite(jsonNavigate(jsonValue(json), steps));
      },
    },
  ],
  [
    'json_array_length',
    {
      minArgs: 1,
      maxArgs: 2,
      call: ([json, path]) => {
        if (json === null || json === undefined) return null;
        let value = jsonValue(json);
        if (path !== undefined) {
          const steps = parseJsonPath(path, false);
          if (steps === null) return null;
          value = jsonNavigate(value, steps);
        }
        if (value === undefined) return null;
        return Array.isArray(value) ? value.length : 0;
      },
    },
  ],
  [
    'hex',
    {
      minArgs: 1,
      maxArgs: 1,
      call: ([v]) => {
        const s = castToText(v ?? null);
        return s === null ? '' : toHex(textEncoder.encode(s));
      },
    },
  ],
  ['base64', text1((s) => toBase64(textEncoder.encode(s)))],
  [
    'unixepoch',
    {
      minArgs: 1,
      maxArgs: 3,
      constantArgs: [1, 2],
      call: ([time, ...modifiers]) => {
        const ms = parseTime(time ?? null, modifiers);
        if (ms === null) return null;
        return hasSubsec(modifiers) ? ms / 1000 : Math.floor(ms / 1000);
      },
    },
  ],
  [
    'datetime',
    {
      minArgs: 1,
      maxArgs: 3,
      constantArgs: [1, 2],
      call: ([time, ...modifiers]) => {
        const ms = parseTime(time ?? null, modifiers);
        if (ms === null) return null;
        const iso = new Date(ms).toISOString(); // 2024-01-02T03:04:05.678Z
        return hasSubsec(modifiers)
          ? `${iso.slice(0, 10)} ${iso.slice(11, 23)}`
          : `${iso.slice(0, 10)} ${iso.slice(11, 19)}`;
      },
    },
  ],
  [
    'abs',
    {
      minArgs: 1,
      maxArgs: 1,
      call: ([v]) => {
        if (v === null || v === undefined) return null;
        if (typeof v === 'bigint') return normalizeInteger(v < 0n ? -v : v);
        const n = typeof v === 'number' ? v : castToReal(v);
        return n === null ? null : Math.abs(n);
      },
    },
  ],
  [
    'round',
    {
      minArgs: 1,
      maxArgs: 2,
      call: ([v, digits]) => {
        if (v === null || v === undefined || digits === null) return null;
        const n = castToReal(v) ?? 0;
        const d = digits === undefined ? 0 : Math.max(0, Math.min(15, Number(castToInteger(digits))));
        const factor = 10 ** d;
        // SQLite rounds half away from zero.
        return (Math.sign(n) * Math.round(Math.abs(n) * factor)) / factor;
      },
    },
  ],
  ['typeof', { minArgs: 1, maxArgs: 1, call: ([v]) => sqliteTypeOf(v ?? null) }],
  [
    'iif',
    {
      minArgs: 3,
      maxArgs: 3,
      call: ([c, a, b]) => (isTruthy(c ?? null) ? (a ?? null) : (b ?? null)),
    },
  ],
]);

/** Validates constant modifiers of date functions; returns a message or null. */
export function checkModifier(name: string, value: SqliteValue): string | null {
  if (
    (name === 'unixepoch' || name === 'datetime') &&
    (typeof value !== 'string' || !KNOWN_MODIFIERS.has(value.toLowerCase()))
  ) {
    return `${name}() modifier ${JSON.stringify(value)} is not supported; use 'unixepoch' or 'subsec'`;
  }
  return null;
}

/** Postgres aggregate and window functions: named so the error can say why they are rejected. */
export const AGGREGATES = new Set([
  'count',
  'sum',
  'avg',
  'min',
  'max',
  'array_agg',
  'string_agg',
  'json_agg',
  'jsonb_agg',
  'bool_and',
  'bool_or',
  'every',
  'json_object_agg',
  'group_concat',
  'row_number',
  'rank',
  'dense_rank',
  'lag',
  'lead',
  'first_value',
  'last_value',
]);
