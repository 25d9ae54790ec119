import { ERROR_CODES, type ErrorCode } from './error-codes.js';

const BRAND = Symbol.for('ferry.error');

/** What a Ferry error looks like on the wire (HTTP bodies, logs). */
export interface ErrorBody {
  error: { code: ErrorCode; message: string; details?: unknown };
}

/**
 * The root of every Ferry error, on both sides. Carries a stable
 * machine-readable `code` from {@link ERROR_CODES}, the HTTP `status` the
 * service answers with, optional structured `details`, and `cause`.
 *
 * Use {@link FerryError.is} rather than `instanceof`: it works across
 * realms, workers and duplicated package copies.
 */
export class FerryError extends Error {
  override readonly name: string = 'FerryError';
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: unknown;
  readonly [BRAND] = true;

  constructor(code: ErrorCode, message: string, options: { details?: unknown; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.details = options.details;
  }

  static is(value: unknown): value is FerryError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }

  /** The wire form; never includes a stack. */
  toJSON(): ErrorBody {
    const error: ErrorBody['error'] = { code: this.code, message: this.message };
    if (this.details !== undefined) error.details = this.details;
    return { error };
  }
}

/** An invariant was broken: a bug in Ferry, not bad input. */
export class AssertionError extends Error {
  override readonly name = 'AssertionError';
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}
