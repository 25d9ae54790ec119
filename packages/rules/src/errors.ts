import { FerryError, type ErrorCode } from '@ferry/protocol';

/** A position in the rules file. Lines and columns are 1-based. */
export interface SourceLocation {
  file: string;
  line: number;
  column: number;
  endLine?: number;
  endColumn?: number;
}

/** One problem found while compiling sync rules. */
export interface SyncRulesProblem {
  code: SyncRulesErrorCode;
  /** What is wrong and how to fix it, without the location prefix. */
  message: string;
  location: SourceLocation;
}

export type SyncRulesErrorCode = Extract<ErrorCode, 'FERRY_S1101' | 'FERRY_S1102' | 'FERRY_S1103' | 'FERRY_S1104'>;

/** `details` of a {@link SyncRulesError}: the first problem's location, plus every problem found. */
export interface SyncRulesErrorDetails extends SourceLocation {
  problems: { code: SyncRulesErrorCode; message: string; file: string; line: number; column: number }[];
}

const BRAND = Symbol.for('ferry.sync-rules-error');

/**
 * A sync rules file that does not compile. The compiler collects every
 * problem it can find (stopping a query at its first problem) and throws one
 * error: `code` and `details` (file, line, column, 1-based) are those of the
 * first problem; `details.problems` lists all of them. The message is one line
 * per problem, each `file:line:column: what is wrong and how to fix it`.
 */
export class SyncRulesError extends FerryError {
  override readonly name: string = 'SyncRulesError';
  declare readonly details: SyncRulesErrorDetails;
  readonly problems: readonly SyncRulesProblem[];
  readonly [BRAND] = true;

  constructor(problems: readonly SyncRulesProblem[]) {
    const first = problems[0];
    if (first === undefined) throw new RangeError('SyncRulesError needs at least one problem');
    super(first.code, problems.map(formatProblem).join('\n'), {
      details: {
        ...first.location,
        problems: problems.map((p) => ({
          code: p.code,
          message: p.message,
          file: p.location.file,
          line: p.location.line,
          column: p.location.column,
        })),
      } satisfies SyncRulesErrorDetails,
    });
    this.problems = problems;
  }

  /** Cross-realm check, like {@link FerryError.is}. */
  static isSyncRulesError(value: unknown): value is SyncRulesError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}

export function formatProblem(problem: SyncRulesProblem): string {
  const { file, line, column } = problem.location;
  return `${file}:${line}:${column}: ${problem.message}`;
}

/**
 * Thrown inside the compiler to abandon one query; carries a position
 * relative to the query text (UTF-16 offset) that the caller maps to the file.
 */
export class QueryProblem extends Error {
  readonly code: SyncRulesErrorCode;
  /** Offset into the query text (UTF-16 code units), or undefined for "the whole query". */
  readonly offset: number | undefined;
  readonly endOffset: number | undefined;

  constructor(code: SyncRulesErrorCode, message: string, offset?: number, endOffset?: number) {
    super(message);
    this.code = code;
    this.offset = offset;
    this.endOffset = endOffset;
  }
}
