import type { SqliteParam } from '@ferry/client';

/**
 * A string that is equal for two queries exactly when their SQL and their
 * parameters are equal by value, so a new `params` array with the same
 * values keeps the same subscription. Types stay distinct: `1`, `1n`,
 * `'1'` and `true` give different keys; bytes compare by content.
 */
export function queryKey(sql: string, params: readonly SqliteParam[]): string {
  if (params.length === 0) return `${sql}\u0000[]`;
  const encoded = params.map((p): unknown => {
    if (typeof p === 'bigint') return ['n', p.toString()];
    if (p instanceof Uint8Array) return ['b', Array.from(p)];
    // NaN and ±Infinity would all serialize as null.
    if (typeof p === 'number' && !Number.isFinite(p)) return ['f', String(p)];
    return p;
  });
  return `${sql}\u0000${JSON.stringify(encoded)}`;
}
