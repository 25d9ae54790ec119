/**
 * Log sequence numbers. Postgres writes them as `X/Y` (two hex halves of a
 * 64-bit WAL position); in code they are `bigint`.
 */
export type Lsn = bigint;

const LSN_PATTERN = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

/** Parses `X/Y` into a bigint. Throws `RangeError` on anything else. */
export function parseLsn(text: string): Lsn {
  const match = LSN_PATTERN.exec(text);
  if (!match) throw new RangeError(`invalid LSN: ${JSON.stringify(text)}`);
  return (BigInt('0x' + match[1]) << 32n) | BigInt('0x' + match[2]);
}

/** Formats a bigint LSN as Postgres does (`16/B374D848`). */
export function formatLsn(lsn: Lsn): string {
  const hi = lsn >> 32n;
  const lo = lsn & 0xffffffffn;
  return `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`;
}

/** Microseconds between the Unix epoch and the Postgres epoch (2000-01-01 UTC). */
const PG_EPOCH_OFFSET_US = 946_684_800_000_000n;

/** Postgres timestamps on the replication protocol are µs since 2000-01-01; returns ms since the Unix epoch. */
export function pgMicrosToUnixMs(micros: bigint): number {
  return Number((micros + PG_EPOCH_OFFSET_US) / 1000n);
}

/** The current time as µs since the Postgres epoch, for standby status updates. */
export function nowPgMicros(): bigint {
  return BigInt(Date.now()) * 1000n - PG_EPOCH_OFFSET_US;
}
