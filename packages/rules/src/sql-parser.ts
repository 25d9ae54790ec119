/**
 * Parses one sync rules query with the real Postgres parser (libpg-query,
 * WASM). PowerSync's rules accept `x IN <array expression>` without
 * parentheses, which is not Postgres syntax; we rewrite such `IN` tokens to
 * the same-length operator `!=` before parsing and mark the resulting nodes,
 * so AST locations still match the original text byte for byte.
 */
import { loadModule, parseSync, scanSync, type Node, type ParseResult } from 'libpg-query';
import { QueryProblem } from './errors.js';
import { byteToCharOffset } from './source-map.js';

/** A_Expr kind we give to a rewritten `x IN <array expression>`. */
export const IN_ARRAY_KIND = 'FERRY_IN_ARRAY';

let loaded: Promise<void> | undefined;

/** Loads the WASM parser once per process. */
export function loadParser(): Promise<void> {
  loaded ??= loadModule();
  return loaded;
}

export interface ParsedQuery {
  /** The query text as written. */
  text: string;
  /** The single statement. */
  stmt: Node;
  /** Converts an AST location (UTF-8 byte offset) to an offset into {@link text}. */
  offset(location: number | undefined): number | undefined;
}

interface ScanToken {
  start: number;
  end: number;
  text: string;
  tokenName: string;
}

/** Parses `text`, which must hold exactly one statement. Requires {@link loadParser} to have resolved. */
export function parseQuery(text: string): ParsedQuery {
  // eslint-disable-next-line no-control-regex
  const ascii = /^[\x00-\x7f]*$/.test(text);
  const offset = (location: number | undefined): number | undefined =>
    location === undefined ? undefined : ascii ? location : byteToCharOffset(text, location);

  let tokens: ScanToken[] = [];
  try {
    tokens = scanSync(text).tokens.filter((t) => t.tokenName !== 'SQL_COMMENT' && t.tokenName !== 'C_COMMENT');
  } catch {
    // The scanner fails on unterminated strings and the like; parsing reports those properly below.
  }
  const rewrittenIn = new Set<number>();
  let sql = text;
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i];
    const next = tokens[i + 1];
    const prev = tokens[i - 1];
    if (token === undefined || token.text.toUpperCase() !== 'IN' || next === undefined || next.text === '(') continue;
    if (prev?.text.toUpperCase() === 'NOT') continue; // NOT IN <array> stays a syntax error, reported with a hint
    rewrittenIn.add(token.start);
    const at = offset(token.start) ?? 0;
    sql = sql.slice(0, at) + '!=' + sql.slice(at + 2);
  }

  let result: ParseResult;
  try {
    result = parseSync(sql);
  } catch (error) {
    const details = (error as { sqlDetails?: { message?: string; cursorPosition?: number } }).sqlDetails;
    const message = details?.message ?? (error instanceof Error ? error.message : String(error));
    const at = offset(details?.cursorPosition);
    let hint = '';
    if (at !== undefined && /\bNOT\s+IN\s*$/i.test(text.slice(0, at))) {
      hint = '; `NOT IN <array expression>` is not supported in sync rules';
    }
    throw new QueryProblem('FERRY_S1102', `SQL syntax error: ${message}${hint}`, at);
  }
  const stmts = result.stmts ?? [];
  if (stmts.length === 0) throw new QueryProblem('FERRY_S1101', 'the query is empty; write a SELECT statement', 0);
  if (stmts.length > 1) {
    const second = stmts[1];
    throw new QueryProblem(
      'FERRY_S1103',
      'only one statement per query is allowed; remove the `;` and put each query in its own list item',
      skipSpace(text, offset(second?.stmt_location ?? 0) ?? 0),
    );
  }
  const stmt = stmts[0]?.stmt;
  if (stmt === undefined) throw new QueryProblem('FERRY_S1101', 'the query is empty; write a SELECT statement', 0);
  if (rewrittenIn.size > 0) markInArray(stmt, rewrittenIn);
  return { text, stmt, offset };
}

function markInArray(node: unknown, positions: ReadonlySet<number>): void {
  if (Array.isArray(node)) {
    for (const item of node) markInArray(item, positions);
    return;
  }
  if (typeof node !== 'object' || node === null) return;
  const record = node as Record<string, unknown>;
  const expr = record['A_Expr'] as { kind?: string; location?: number } | undefined;
  if (expr !== undefined && expr.kind === 'AEXPR_OP' && expr.location !== undefined && positions.has(expr.location)) {
    (expr as { kind: string }).kind = IN_ARRAY_KIND;
  }
  for (const value of Object.values(record)) markInArray(value, positions);
}

/** Offset (into the query text) of the first keyword token `word` outside strings and comments, if any. */
export function findKeyword(query: ParsedQuery, ...words: string[]): number | undefined {
  return findKeywordAfter(query, undefined, ...words);
}

/** Like {@link findKeyword}, starting at AST location (byte offset) `from`. */
export function findKeywordAfter(query: ParsedQuery, from: number | undefined, ...words: string[]): number | undefined {
  try {
    const upper = words.map((w) => w.toUpperCase());
    for (const token of scanSync(query.text).tokens) {
      if (from !== undefined && token.start < from) continue;
      if (upper.includes(token.text.toUpperCase())) return query.offset(token.start);
    }
  } catch {
    // fall through
  }
  return undefined;
}

function skipSpace(text: string, offset: number): number {
  while (offset < text.length && /\s/.test(text[offset] ?? '')) offset++;
  return offset;
}
