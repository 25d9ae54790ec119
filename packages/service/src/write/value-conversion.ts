/**
 * SQLite values (as clients store them, see docs/types.md) → Postgres input
 * text for a column's type: the inverse of the replication type mapping.
 * Every value reaches Postgres as a bind parameter in text form, cast to the
 * column's type; Postgres judges the text.
 */
import { parseJsonExact } from '@ferry/protocol';

/** How values of a type are converted. Domains convert as their base type. */
export type ValueKind =
  | { kind: 'bool' }
  | { kind: 'bytea' }
  | { kind: 'json' }
  | { kind: 'number' }
  | { kind: 'text' }
  | { kind: 'array'; element: ValueKind; delimiter: string };

/** A value the column's type cannot take; answered FERRY_S6005. */
export class ValueConversionError extends Error {}

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/** Converts one SQLite-form value to Postgres input text (null stays null). Throws {@link ValueConversionError}. */
export function toPostgresText(kind: ValueKind, value: unknown): string | null {
  if (value === null || value === undefined) return null;
  switch (kind.kind) {
    case 'bool':
      if (value === 1 || value === true || value === 1n) return 'true';
      if (value === 0 || value === false || value === 0n) return 'false';
      if (typeof value === 'string') return value; // 't', 'false', ... Postgres decides
      throw new ValueConversionError(`expected 0/1 or true/false for a boolean, got ${describe(value)}`);
    case 'bytea': {
      if (typeof value !== 'string')
        throw new ValueConversionError(`expected base64 text for bytea, got ${describe(value)}`);
      const compact = value.replace(/\s+/g, '');
      if (!BASE64.test(compact)) throw new ValueConversionError('expected base64 text for bytea');
      return (
        '\\x' +
        Buffer.from(compact, compact.includes('-') || compact.includes('_') ? 'base64url' : 'base64').toString('hex')
      );
    }
    case 'json':
      if (typeof value === 'string') return value;
      return jsonText(value);
    case 'number':
      if (typeof value === 'number') {
        if (!Number.isFinite(value)) throw new ValueConversionError(`${value} is not a finite number`);
        return String(value);
      }
      if (typeof value === 'bigint') return value.toString();
      if (typeof value === 'boolean') return value ? '1' : '0';
      return String(value);
    case 'text':
      if (typeof value === 'string') return value;
      if (typeof value === 'boolean') return value ? 'true' : 'false';
      if (typeof value === 'number' || typeof value === 'bigint') return String(value);
      return jsonText(value);
    case 'array':
      return arrayText(kind, value);
  }
}

function describe(value: unknown): string {
  return typeof value === 'string' ? 'text' : typeof value;
}

/** JSON text of a parsed value; bigints (int8 beyond 2^53) are written as bare integers. */
export function jsonText(value: unknown): string {
  if (typeof value === 'bigint') return value.toString();
  if (Array.isArray(value))
    return '[' + value.map((item) => (item === undefined ? 'null' : jsonText(item))).join(',') + ']';
  if (typeof value === 'object' && value !== null) {
    const parts: string[] = [];
    for (const [key, item] of Object.entries(value)) {
      if (item !== undefined) parts.push(JSON.stringify(key) + ':' + jsonText(item));
    }
    return '{' + parts.join(',') + '}';
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * Arrays arrive as JSON text (`[1,null,3]`, nested for multi-dimensional
 * arrays) and become an array literal. Text already in Postgres' literal
 * form (`{a,b}`) passes through.
 */
function arrayText(kind: Extract<ValueKind, { kind: 'array' }>, value: unknown): string {
  let parsed: unknown = value;
  if (typeof value === 'string') {
    if (value.trimStart().startsWith('{')) return value;
    try {
      parsed = parseJsonExact(value);
    } catch {
      throw new ValueConversionError('expected a JSON array (text) for an array column');
    }
  }
  if (!Array.isArray(parsed)) throw new ValueConversionError('expected a JSON array for an array column');
  return literal(parsed, kind.element, kind.delimiter);
}

function literal(items: unknown[], element: ValueKind, delimiter: string): string {
  const parts = items.map((item) => {
    if (item === null || item === undefined) return 'NULL';
    if (Array.isArray(item) && element.kind !== 'json') return literal(item, element, delimiter);
    // json/jsonb elements are embedded as JSON (docs/types.md), so a string element is a JSON string.
    const text = element.kind === 'json' ? jsonText(item) : toPostgresText(element, item);
    if (text === null) return 'NULL';
    return '"' + text.replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';
  });
  return '{' + parts.join(delimiter) + '}';
}
