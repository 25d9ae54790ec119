/**
 * The `where` of a write rule: a SQL boolean expression over the row, whose
 * only dynamic inputs are `request.user_id()` and `request.jwt() ->> 'claim'`.
 *
 * It is parsed with the real Postgres parser (libpg-query) inside
 * `SELECT 1 FROM <table> WHERE (<expr>)`: exactly one SELECT statement,
 * nothing after the WHERE, no data-modifying statements, no parameters, no
 * other `request.*` functions. The request functions are cut out of the text
 * and become bind parameters, so a token's claims never reach the SQL text.
 */
import { byteToCharOffset } from '@ferry/rules';
import { loadModule, parseSync, scanSync } from 'libpg-query';

/** A dynamic input of a where expression, bound as a text parameter. */
export type WhereInput = { kind: 'user_id' } | { kind: 'claim'; claim: string };

export interface WhereExpression {
  /** The expression as written. */
  readonly text: string;
  /** The expression with inputs cut out: strings are SQL, numbers index {@link inputs}. */
  readonly segments: readonly (string | number)[];
  readonly inputs: readonly WhereInput[];
  /** Tables the expression reads (`schema.table`, schema `public` when unqualified), besides the rule's own row. */
  readonly tables: readonly string[];
}

/** A problem in a where expression, at a UTF-16 offset into the expression text. */
export class WhereProblem extends Error {
  readonly offset: number;
  constructor(message: string, offset: number) {
    super(message);
    this.offset = offset;
  }
}

let loaded: Promise<void> | undefined;

/** Loads the WASM parser once per process. */
export function loadWhereParser(): Promise<void> {
  loaded ??= loadModule();
  return loaded;
}

/** Functions that change state or reach outside the database; never allowed in a where expression. */
const FORBIDDEN_FUNCTION = /^(pg_|dblink|lo_|set_config$|nextval$|setval$|currval$|lastval$|query_to_xml|txid_)/;

const ALLOWED_SELECT_KEYS = new Set(['targetList', 'fromClause', 'whereClause', 'limitOption', 'op']);

const PREFIX = 'SELECT 1 FROM __ferry_row WHERE (';

/**
 * Parses and checks a where expression. Requires {@link loadWhereParser} to
 * have resolved. Throws {@link WhereProblem} with an offset into `text`.
 */
export function parseWhereExpression(text: string): WhereExpression {
  if (text.trim() === '') throw new WhereProblem('the where expression is empty', 0);
  const sql = `${PREFIX}${text})`;
  const toExpr = (byteLocation: number | undefined): number => {
    const at = byteToCharOffset(sql, byteLocation ?? PREFIX.length) - PREFIX.length;
    return Math.max(0, Math.min(text.length, at));
  };

  let parsed: ReturnType<typeof parseSync>;
  try {
    parsed = parseSync(sql);
  } catch (error) {
    const details = (error as { sqlDetails?: { message?: string; cursorPosition?: number } }).sqlDetails;
    const message = details?.message ?? (error instanceof Error ? error.message : String(error));
    throw new WhereProblem(`SQL syntax error in where: ${message}`, toExpr(details?.cursorPosition));
  }
  const stmts = parsed.stmts ?? [];
  if (stmts.length !== 1) {
    throw new WhereProblem(
      'the where expression must be one boolean expression; `;` and further statements are not allowed',
      toExpr(stmts[1]?.stmt_location),
    );
  }
  const select = (stmts[0]?.stmt as Record<string, unknown> | undefined)?.['SelectStmt'] as
    Record<string, unknown> | undefined;
  if (select === undefined) throw new WhereProblem('the where expression must be a boolean expression', 0);
  for (const key of Object.keys(select)) {
    if (!ALLOWED_SELECT_KEYS.has(key)) {
      throw new WhereProblem(
        `the where expression must be one boolean expression; found a trailing ${key.replace(/Clause$/, '').toUpperCase()} clause`,
        text.length,
      );
    }
  }
  const where = select['whereClause'];
  if (where === undefined) throw new WhereProblem('the where expression is empty', 0);

  // Walk the expression: find request functions, forbid what must not run.
  const cuts: { start: number; end: number; input: WhereInput }[] = [];
  const tables = new Set<string>();
  let tokens: { start: number; end: number; text: string }[] | undefined;
  const tokenList = () => (tokens ??= scanSync(sql).tokens);
  /** Byte offset just past the token sequence that starts at `start` and ends with the first `)` . */
  const endOfCall = (start: number): number => {
    const list = tokenList();
    const first = list.findIndex((t) => t.start === start);
    for (let i = first; i >= 0 && i < list.length; i++) if (list[i]!.text === ')') return list[i]!.end;
    throw new WhereProblem('cannot read the request function call', toExpr(start));
  };
  const endOfToken = (start: number): number => {
    const token = tokenList().find((t) => t.start === start);
    if (token === undefined) throw new WhereProblem('cannot read the claim name', toExpr(start));
    return token.end;
  };

  const visit = (node: unknown): void => {
    if (Array.isArray(node)) {
      for (const item of node) visit(item);
      return;
    }
    if (typeof node !== 'object' || node === null) return;
    const record = node as Record<string, unknown>;
    for (const forbidden of ['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt']) {
      if (forbidden in record) throw new WhereProblem('data-modifying statements are not allowed in where', 0);
    }
    if ('ParamRef' in record) {
      const ref = record['ParamRef'] as { location?: number };
      throw new WhereProblem(
        "parameters ($n) are not allowed in where; use request.user_id() or request.jwt() ->> 'claim'",
        toExpr(ref.location),
      );
    }
    const select = record['SelectStmt'] as Record<string, unknown> | undefined;
    if (select?.['lockingClause'] !== undefined) throw new WhereProblem('FOR UPDATE/SHARE is not allowed in where', 0);
    const range = record['RangeVar'] as { schemaname?: string; relname?: string } | undefined;
    if (range?.relname !== undefined) tables.add(`${range.schemaname ?? 'public'}.${range.relname}`);

    const expr = record['A_Expr'] as
      { name?: { String?: { sval?: string } }[]; lexpr?: unknown; rexpr?: unknown } | undefined;
    if (expr !== undefined && expr.name?.length === 1 && expr.name[0]?.String?.sval === '->>') {
      const call = requestCall(expr.lexpr);
      if (call?.name === 'jwt') {
        const constant = (expr.rexpr as { A_Const?: { sval?: { sval?: string }; location?: number } } | undefined)
          ?.A_Const;
        const claim = constant?.sval?.sval;
        if (claim === undefined || constant?.location === undefined) {
          throw new WhereProblem(
            "request.jwt() must be followed by ->> 'claim name' (a string literal)",
            toExpr(call.location),
          );
        }
        if (call.hasArgs) throw new WhereProblem('request.jwt() takes no arguments', toExpr(call.location));
        cuts.push({ start: call.location, end: endOfToken(constant.location), input: { kind: 'claim', claim } });
        return;
      }
    }
    const call = requestCall(node);
    if (call !== undefined) {
      if (call.name === 'user_id' && !call.hasArgs) {
        cuts.push({ start: call.location, end: endOfCall(call.location), input: { kind: 'user_id' } });
        return;
      }
      if (call.name === 'jwt') {
        throw new WhereProblem("request.jwt() is only allowed as request.jwt() ->> 'claim'", toExpr(call.location));
      }
      throw new WhereProblem(
        `unknown request function request.${call.name}(); use request.user_id() or request.jwt() ->> 'claim'`,
        toExpr(call.location),
      );
    }
    const func = record['FuncCall'] as { funcname?: { String?: { sval?: string } }[]; location?: number } | undefined;
    if (func !== undefined) {
      const name = func.funcname?.at(-1)?.String?.sval ?? '';
      if (FORBIDDEN_FUNCTION.test(name.toLowerCase())) {
        throw new WhereProblem(`function ${name}() is not allowed in where`, toExpr(func.location));
      }
    }
    for (const value of Object.values(record)) visit(value);
  };
  visit(where);
  tables.delete('public.__ferry_row');

  cuts.sort((a, b) => a.start - b.start);
  const segments: (string | number)[] = [];
  const inputs: WhereInput[] = [];
  let at = PREFIX.length;
  for (const cut of cuts) {
    const start = byteToCharOffset(sql, cut.start);
    const from = byteToCharOffset(sql, at);
    segments.push(sql.slice(from, start));
    let index = inputs.findIndex((input) => sameInput(input, cut.input));
    if (index < 0) index = inputs.push(cut.input) - 1;
    segments.push(index);
    at = cut.end;
  }
  segments.push(sql.slice(byteToCharOffset(sql, at), sql.length - 1));
  return { text, segments, inputs, tables: [...tables] };
}

function sameInput(a: WhereInput, b: WhereInput): boolean {
  return a.kind === b.kind && (a.kind === 'user_id' || a.claim === (b as { claim: string }).claim);
}

function requestCall(node: unknown): { name: string; location: number; hasArgs: boolean } | undefined {
  const func = (node as { FuncCall?: Record<string, unknown> } | undefined)?.FuncCall;
  if (func === undefined) return undefined;
  const names = (func['funcname'] as { String?: { sval?: string } }[] | undefined)?.map((n) => n.String?.sval);
  if (names?.length !== 2 || names[0]?.toLowerCase() !== 'request') return undefined;
  return {
    name: String(names[1]).toLowerCase(),
    location: Number(func['location'] ?? 0),
    hasArgs: Array.isArray(func['args']) && func['args'].length > 0,
  };
}

/**
 * The expression as SQL, its inputs as `$n::text` with n from `firstParam`
 * (1-based), wrapped so NULL counts as false.
 */
export function renderWhere(where: WhereExpression, firstParam: number): string {
  let sql = '';
  for (const segment of where.segments) {
    sql += typeof segment === 'string' ? segment : `$${firstParam + segment}::text`;
  }
  return `COALESCE((${sql}), false)`;
}

/** The values of a where expression's inputs for a token. */
export function whereParams(
  where: WhereExpression,
  userId: string,
  claims: Record<string, unknown>,
): (string | null)[] {
  return where.inputs.map((input) => (input.kind === 'user_id' ? userId : claimText(claims[input.claim])));
}

/** A claim as `->>` would give it: strings as is, other JSON values as JSON text, absent as NULL. */
export function claimText(value: unknown): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return value;
  if (typeof value === 'bigint') return value.toString();
  return JSON.stringify(value);
}
