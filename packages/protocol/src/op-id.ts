/**
 * Op ids: one global, strictly increasing 64-bit sequence assigned by the
 * replicator. On the wire they are decimal strings (JSON numbers cannot hold
 * 64 bits); in code they are `bigint`.
 *
 * Invariant: within one bucket, op ids strictly increase in log order, and a
 * checkpoint's `last_op_id` is at least every op id it covers.
 */
export type OpId = bigint;

const OP_ID_PATTERN = /^(0|[1-9][0-9]{0,18})$/;
const MAX_OP_ID = (1n << 63n) - 1n;

/** Parses a wire op id; throws `RangeError` for anything but a canonical non-negative int64. */
export function parseOpId(text: string): OpId {
  if (!OP_ID_PATTERN.test(text)) throw new RangeError(`invalid op id: ${JSON.stringify(text)}`);
  const value = BigInt(text);
  if (value > MAX_OP_ID) throw new RangeError(`op id out of range: ${text}`);
  return value;
}

/** Wire form of an op id. */
export function formatOpId(id: OpId): string {
  return id.toString();
}

/** Compares two canonical wire op ids without parsing them. */
export function compareOpIdStrings(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}
