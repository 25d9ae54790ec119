/**
 * JSON-safe encoding of SQLite values between a test (Node) and the harness
 * page: `page.evaluate` arguments and results go through JSON-like
 * serialization, which has no bigint or Uint8Array. Objects and arrays are
 * encoded recursively.
 */
export type Encoded =
  | null
  | string
  | number
  | boolean
  | { $bigint: string }
  | { $bytes: number[] }
  | { $undefined: true }
  | Encoded[]
  | { [key: string]: Encoded };

export function encodeValue(value: unknown): Encoded {
  if (value === undefined) return { $undefined: true };
  if (typeof value === 'bigint') return { $bigint: value.toString() };
  if (value instanceof Uint8Array) return { $bytes: [...value] };
  if (Array.isArray(value)) return value.map(encodeValue);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, Encoded> = {};
    for (const [key, v] of Object.entries(value)) out[key] = encodeValue(v);
    return out;
  }
  return value as Encoded;
}

export function decodeValue(value: Encoded): unknown {
  if (Array.isArray(value)) return value.map(decodeValue);
  if (value !== null && typeof value === 'object') {
    if ('$undefined' in value && value.$undefined === true) return undefined;
    if ('$bigint' in value && typeof value.$bigint === 'string') return BigInt(value.$bigint);
    if ('$bytes' in value && Array.isArray(value.$bytes)) return Uint8Array.from(value.$bytes as number[]);
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) out[key] = decodeValue(v as Encoded);
    return out;
  }
  return value;
}
