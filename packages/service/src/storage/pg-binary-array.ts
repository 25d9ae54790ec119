/**
 * One-dimensional Postgres arrays in the binary wire format (`array_send`),
 * for batch statements such as `INSERT … SELECT * FROM unnest($1::text[], …)`.
 *
 * node-postgres sends a `Buffer` parameter as binary, so the server reads
 * each element with a length prefix instead of parsing a `{"…","…"}`
 * literal. That removes the per-character quoting in JavaScript (pg's
 * `escapeElement`) and the unquoting in `array_in`, which dominated the cost
 * of passing a batch of JSON rows.
 *
 * Layout: int32 ndim, int32 has-null flag, int32 element type oid, then per
 * dimension int32 length and int32 lower bound (1), then per element int32
 * byte length (-1 = NULL) and the element's binary form. The parameter's type
 * must be fixed by the statement (`$1::text[]`), and the element type oid
 * written here must match it, or the server rejects the value.
 */

const TEXT_OID = 25;
const INT8_OID = 20;
const INT4_OID = 23;
const INT2_OID = 21;

const HEADER_BYTES = 20;

function allocate(count: number, elementOid: number, bodyBytes: number): Buffer {
  if (count === 0) {
    // ndim 0: an empty array has no dimension fields.
    const empty = Buffer.allocUnsafe(12);
    empty.writeInt32BE(0, 0);
    empty.writeInt32BE(0, 4);
    empty.writeInt32BE(elementOid, 8);
    return empty;
  }
  const buffer = Buffer.allocUnsafe(HEADER_BYTES + bodyBytes);
  buffer.writeInt32BE(1, 0);
  buffer.writeInt32BE(0, 4);
  buffer.writeInt32BE(elementOid, 8);
  buffer.writeInt32BE(count, 12);
  buffer.writeInt32BE(1, 16);
  return buffer;
}

/** A `text[]` parameter. Strings are sent as UTF-8 (the encoding node-postgres uses for text parameters). */
export function textArray(values: readonly (string | null)[]): Buffer {
  const n = values.length;
  let bytes = n * 4;
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (v != null) bytes += Buffer.byteLength(v, 'utf8');
  }
  const buffer = allocate(n, TEXT_OID, bytes);
  let at = HEADER_BYTES;
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (v == null) {
      buffer.writeInt32BE(-1, at);
      at += 4;
    } else {
      const written = buffer.write(v, at + 4, 'utf8');
      buffer.writeInt32BE(written, at);
      at += 4 + written;
    }
  }
  return buffer;
}

/**
 * An `int8[]` parameter. Numbers must be safe integers; bigints must fit in a
 * signed 64-bit integer.
 */
export function int8Array(values: readonly (bigint | number)[]): Buffer {
  const n = values.length;
  const buffer = allocate(n, INT8_OID, n * 12);
  let at = HEADER_BYTES;
  for (let i = 0; i < n; i++) {
    const v = values[i]!;
    buffer.writeInt32BE(8, at);
    if (typeof v === 'bigint') {
      buffer.writeBigInt64BE(v, at + 4);
    } else {
      if (!Number.isSafeInteger(v)) throw new RangeError(`int8 array element is not a safe integer: ${v}`);
      // Split into 32-bit halves; the high half carries the sign (floor division).
      const high = Math.floor(v / 0x1_0000_0000);
      buffer.writeInt32BE(high, at + 4);
      buffer.writeUInt32BE(v - high * 0x1_0000_0000, at + 8);
    }
    at += 12;
  }
  return buffer;
}

/** An `int4[]` parameter. */
export function int4Array(values: readonly number[]): Buffer {
  const n = values.length;
  const buffer = allocate(n, INT4_OID, n * 8);
  let at = HEADER_BYTES;
  for (let i = 0; i < n; i++) {
    buffer.writeInt32BE(4, at);
    buffer.writeInt32BE(values[i]!, at + 4);
    at += 8;
  }
  return buffer;
}

/** An `int2[]` parameter. */
export function int2Array(values: readonly number[]): Buffer {
  const n = values.length;
  const buffer = allocate(n, INT2_OID, n * 6);
  let at = HEADER_BYTES;
  for (let i = 0; i < n; i++) {
    buffer.writeInt32BE(2, at);
    buffer.writeInt16BE(values[i]!, at + 4);
    at += 6;
  }
  return buffer;
}
