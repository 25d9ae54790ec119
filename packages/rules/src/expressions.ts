/**
 * Compiles Postgres expression ASTs (from libpg-query) into closures with
 * SQLite semantics. Compilation happens once per rules file; evaluation is a
 * closure call per row with no AST walking.
 */
import type { SqliteRow, SqliteValue } from '@ferry/protocol';
import type { Node } from 'libpg-query';
import { QueryProblem } from './errors.js';
import { AGGREGATES, checkModifier, FUNCTIONS } from './functions.js';
import { findKeywordAfter, IN_ARRAY_KIND, type ParsedQuery } from './sql-parser.js';
import {
  bool,
  castToBoolean,
  castToInteger,
  castToNumeric,
  castToReal,
  castToText,
  compareValues,
  isNumeric,
  isTruthy,
  jsonNavigate,
  jsonParse,
  jsonStringify,
  jsonToSqlite,
  normalizeInteger,
  parseJsonPath,
  valuesEqual,
  type JsonPathStep,
} from './sqlite-values.js';
import type { RequestParameters } from './types.js';

export type Evaluator = (row: SqliteRow, request: RequestParameters) => SqliteValue;
export type JsonEvaluator = (row: SqliteRow, request: RequestParameters) => unknown;

export interface CompiledExpression {
  ev: Evaluator;
  /** Set when the expression is a JSON document (`request.jwt()`, `x -> 'k'`): its parsed value, undefined if absent. */
  json: JsonEvaluator | undefined;
  usesRow: boolean;
  usesRequest: boolean;
  /** Offset of the expression in the query text. */
  offset: number | undefined;
  /** The column name Postgres would give this expression in a SELECT list, when it is a plain reference. */
  name: string | undefined;
  /**
   * Statically a REAL (a literal like `2.0`, a cast to real): JavaScript
   * numbers cannot tell 2.0 from 2, so arithmetic consults this.
   */
  real?: boolean;
}

/** The table a query reads, as expressions may refer to it. */
export interface TableScope {
  /** Names that may qualify a column: the alias if any, else the table name and `schema.table`. */
  qualifiers: ReadonlySet<string>;
}

export interface ExpressionScope {
  query: ParsedQuery;
  table: TableScope | undefined;
  /** When set, request values are not allowed here; the text explains why. */
  requestForbidden: string | undefined;
  /** Collects the table columns the expression reads. */
  columns: Set<string>;
}

export const EMPTY_ROW: SqliteRow = Object.freeze({});
export const EMPTY_REQUEST: RequestParameters = Object.freeze({ userId: '', tokenPayload: {}, clientParameters: {} });

/** The names in a ColumnRef or FuncCall name list, or undefined if one part is not a plain name (e.g. `*`). */
export function nameParts(fields: readonly Node[] | undefined): string[] | undefined {
  const out: string[] = [];
  for (const field of fields ?? []) {
    if (!('String' in field)) return undefined;
    out.push(field.String.sval ?? '');
  }
  return out;
}

/** `bucket.<name>` if the node is such a reference. */
export function bucketReference(
  node: Node,
): { name: string; offset: number | undefined; location: number | undefined } | undefined {
  if (!('ColumnRef' in node)) return undefined;
  const parts = nameParts(node.ColumnRef.fields);
  if (parts?.length !== 2 || parts[0] !== 'bucket') return undefined;
  return { name: parts[1] ?? '', offset: undefined, location: node.ColumnRef.location };
}

/** Location (byte offset) of any expression node. */
export function nodeLocation(node: Node | undefined): number | undefined {
  if (node === undefined) return undefined;
  const inner = Object.values(node)[0] as { location?: number; arg?: Node } | undefined;
  if (inner === undefined) return undefined;
  if (typeof inner.location === 'number') return inner.location;
  return undefined;
}

export function nodeKind(node: Node): string {
  return Object.keys(node)[0] ?? 'unknown';
}

function constant(value: SqliteValue, offset: number | undefined): CompiledExpression {
  return { ev: () => value, json: undefined, usesRow: false, usesRequest: false, offset, name: undefined };
}

function derived(
  parts: readonly CompiledExpression[],
  offset: number | undefined,
  ev: Evaluator,
  json?: JsonEvaluator,
): CompiledExpression {
  const usesRow = parts.some((p) => p.usesRow);
  const usesRequest = parts.some((p) => p.usesRequest);
  if (!usesRow && !usesRequest) {
    // Fold constants once at compile time.
    const value = ev(EMPTY_ROW, EMPTY_REQUEST);
    return { ev: () => value, json, usesRow, usesRequest, offset, name: undefined };
  }
  return { ev, json, usesRow, usesRequest, offset, name: undefined };
}

function truth(value: SqliteValue): 1 | 0 | null {
  return value === null ? null : bool(isTruthy(value));
}

/** A JSON document view of an expression: its parsed value when it is JSON text or a JSON source. */
export function asJson(expr: CompiledExpression): JsonEvaluator {
  if (expr.json !== undefined) return expr.json;
  const ev = expr.ev;
  return (row, request) => {
    const value = ev(row, request);
    return typeof value === 'string' ? jsonParse(value) : value === null ? undefined : value;
  };
}

/** Elements of a JSON array expression as SQLite values; empty when it is not an array. */
export function jsonArrayElements(
  expr: CompiledExpression,
): (row: SqliteRow, request: RequestParameters) => SqliteValue[] {
  const json = asJson(expr);
  return (row, request) => {
    const value = json(row, request);
    return Array.isArray(value) ? value.map(jsonToSqlite) : [];
  };
}

const CAST_TYPES: ReadonlyMap<string, (v: SqliteValue) => SqliteValue> = new Map<
  string,
  (v: SqliteValue) => SqliteValue
>([
  ['text', castToText],
  ['varchar', castToText],
  ['bpchar', castToText],
  ['int2', castToInteger],
  ['int4', castToInteger],
  ['int8', castToInteger],
  ['integer', castToInteger],
  ['int', castToInteger],
  ['bigint', castToInteger],
  ['float4', castToReal],
  ['float8', castToReal],
  ['real', castToReal],
  ['numeric', castToNumeric],
  ['decimal', castToNumeric],
  ['bool', castToBoolean],
  ['boolean', castToBoolean],
]);

const REQUEST_FUNCTIONS = ['request.user_id()', 'request.jwt()', 'request.parameters()'];

export class ExpressionCompiler {
  readonly #scope: ExpressionScope;

  constructor(scope: ExpressionScope) {
    this.#scope = scope;
  }

  #offset(location: number | undefined): number | undefined {
    return this.#scope.query.offset(location);
  }

  #fail(code: 'FERRY_S1103' | 'FERRY_S1104', message: string, location: number | undefined): never {
    throw new QueryProblem(code, message, this.#offset(location));
  }

  #request(location: number | undefined, what: string): void {
    const forbidden = this.#scope.requestForbidden;
    if (forbidden !== undefined) this.#fail('FERRY_S1103', `${what} cannot be used here: ${forbidden}`, location);
  }

  compile(node: Node): CompiledExpression {
    if ('ColumnRef' in node) return this.#columnRef(node.ColumnRef.fields, node.ColumnRef.location);
    if ('A_Const' in node) return this.#constant(node.A_Const);
    if ('TypeCast' in node) return this.#cast(node.TypeCast);
    if ('FuncCall' in node) return this.#funcCall(node.FuncCall);
    if ('A_Expr' in node) return this.#aExpr(node.A_Expr);
    if ('BoolExpr' in node) return this.#boolExpr(node.BoolExpr);
    if ('NullTest' in node) {
      const arg = this.#required(node.NullTest.arg, node.NullTest.location);
      const isNull = node.NullTest.nulltesttype === 'IS_NULL';
      const ev = arg.ev;
      return derived([arg], this.#offset(node.NullTest.location), (r, q) => bool((ev(r, q) === null) === isNull));
    }
    if ('BooleanTest' in node) return this.#booleanTest(node.BooleanTest);
    if ('CoalesceExpr' in node) {
      const args = (node.CoalesceExpr.args ?? []).map((a) => this.compile(a));
      const evs = args.map((a) => a.ev);
      return derived(args, this.#offset(node.CoalesceExpr.location), (r, q) => {
        for (const ev of evs) {
          const v = ev(r, q);
          if (v !== null) return v;
        }
        return null;
      });
    }
    if ('CaseExpr' in node) return this.#caseExpr(node.CaseExpr);
    if ('SubLink' in node) {
      throw new QueryProblem(
        'FERRY_S1103',
        'subqueries are not supported in sync rules; use a parameter query to select bucket parameters from another table',
        findKeywordAfter(this.#scope.query, node.SubLink.location, 'SELECT') ?? this.#offset(node.SubLink.location),
      );
    }
    if ('ParamRef' in node)
      this.#fail('FERRY_S1103', 'query parameters ($1) are not supported in sync rules', node.ParamRef.location);
    if ('A_ArrayExpr' in node)
      this.#fail(
        'FERRY_S1103',
        'ARRAY[...] constructors are not supported; use a JSON array',
        node.A_ArrayExpr.location,
      );
    if ('CollateClause' in node)
      this.#fail('FERRY_S1103', 'COLLATE is not supported in sync rules', node.CollateClause.location);
    if ('A_Indirection' in node) {
      this.#fail(
        'FERRY_S1103',
        'array subscripts are not supported; use `->` / `->>` on JSON',
        nodeLocation(node.A_Indirection.arg),
      );
    }
    this.#fail(
      'FERRY_S1103',
      `this kind of expression (${nodeKind(node)}) is not supported in sync rules`,
      nodeLocation(node),
    );
  }

  #required(node: Node | undefined, location: number | undefined): CompiledExpression {
    if (node === undefined) this.#fail('FERRY_S1103', 'incomplete expression', location);
    return this.compile(node);
  }

  #constant(value: NonNullable<Extract<Node, { A_Const: unknown }>['A_Const']>): CompiledExpression {
    const offset = this.#offset(value.location);
    if (value.isnull === true) return constant(null, offset);
    if (value.ival !== undefined) return constant(value.ival.ival ?? 0, offset);
    if (value.fval !== undefined) {
      const text = value.fval.fval ?? '0';
      // Integer literals beyond 32 bits arrive as fval; keep them exact.
      if (/^-?\d+$/.test(text)) return constant(normalizeInteger(BigInt(text)), offset);
      return { ...constant(Number(text), offset), real: true };
    }
    if (value.boolval !== undefined) return constant(value.boolval.boolval === true ? 1 : 0, offset);
    if (value.sval !== undefined) return constant(value.sval.sval ?? '', offset);
    this.#fail('FERRY_S1103', 'bit string literals are not supported', value.location);
  }

  #columnRef(fields: readonly Node[] | undefined, location: number | undefined): CompiledExpression {
    const parts = nameParts(fields);
    if (parts === undefined) this.#fail('FERRY_S1103', '`*` can only be used alone in the SELECT list', location);
    const offset = this.#offset(location);
    const [first, second] = parts;
    if (parts.length === 2 && first === 'bucket') {
      this.#fail(
        'FERRY_S1103',
        `bucket.${second} can only be used in a data query's WHERE clause, as \`column = bucket.${second}\``,
        location,
      );
    }
    if (parts.length === 2 && (first === 'token_parameters' || first === 'user_parameters')) {
      this.#request(location, `${first}.${second}`);
      const key = second ?? '';
      const name = key;
      if (first === 'token_parameters') {
        if (key === 'user_id')
          return { ev: (_r, q) => q.userId, json: undefined, usesRow: false, usesRequest: true, offset, name };
        return {
          ev: (_r, q) => jsonToSqlite(q.tokenPayload[key]),
          json: (_r, q) => q.tokenPayload[key],
          usesRow: false,
          usesRequest: true,
          offset,
          name,
        };
      }
      return {
        ev: (_r, q) => jsonToSqlite(q.clientParameters[key]),
        json: (_r, q) => q.clientParameters[key],
        usesRow: false,
        usesRequest: true,
        offset,
        name,
      };
    }
    const table = this.#scope.table;
    let column: string | undefined;
    if (parts.length === 1) column = first;
    else if (parts.length === 2 || parts.length === 3) {
      const qualifier = parts.slice(0, -1).join('.');
      if (table === undefined || !table.qualifiers.has(qualifier)) {
        this.#fail(
          'FERRY_S1104',
          table === undefined
            ? `unknown reference "${parts.join('.')}": this query has no FROM table; use request.user_id(), request.jwt() ->> 'claim' or request.parameters() ->> 'name'`
            : `unknown table or alias "${qualifier}" in "${parts.join('.')}"; use ${[...table.qualifiers].map((q) => `"${q}"`).join(' or ')}`,
          location,
        );
      }
      column = parts[parts.length - 1];
    }
    if (column === undefined) this.#fail('FERRY_S1104', `unknown reference "${parts.join('.')}"`, location);
    if (table === undefined) {
      this.#fail(
        'FERRY_S1104',
        `unknown column "${column}": this query has no FROM table; use request.user_id(), request.jwt() ->> 'claim' or request.parameters() ->> 'name'`,
        location,
      );
    }
    this.#scope.columns.add(column);
    const key = column;
    return { ev: (r) => r[key] ?? null, json: undefined, usesRow: true, usesRequest: false, offset, name: column };
  }

  #cast(cast: NonNullable<Extract<Node, { TypeCast: unknown }>['TypeCast']>): CompiledExpression {
    const arg = this.#required(cast.arg, cast.location);
    const names = nameParts(cast.typeName?.names) ?? [];
    const type = names[names.length - 1] ?? '';
    const convert = CAST_TYPES.get(type);
    if (convert === undefined || (cast.typeName?.arrayBounds?.length ?? 0) > 0) {
      this.#fail(
        'FERRY_S1103',
        `cast to "${names.filter((n) => n !== 'pg_catalog').join('.')}" is not supported; use text, integer, bigint, real, float, numeric or boolean`,
        cast.typeName?.location ?? cast.location,
      );
    }
    const ev = arg.ev;
    const result = derived([arg], this.#offset(cast.location), (r, q) => convert(ev(r, q)));
    return { ...result, name: arg.name, real: convert === castToReal };
  }

  #funcCall(call: NonNullable<Extract<Node, { FuncCall: unknown }>['FuncCall']>): CompiledExpression {
    const parts = nameParts(call.funcname) ?? [];
    const offset = this.#offset(call.location);
    const args = call.args ?? [];
    if (parts.length === 2 && parts[0] === 'request') {
      const which = parts[1];
      this.#request(call.location, `request.${which}()`);
      if (args.length > 0) this.#fail('FERRY_S1104', `request.${which}() takes no arguments`, call.location);
      if (which === 'user_id')
        return { ev: (_r, q) => q.userId, json: undefined, usesRow: false, usesRequest: true, offset, name: 'user_id' };
      if (which === 'jwt') {
        return {
          ev: (_r, q) => jsonStringify(q.tokenPayload),
          json: (_r, q) => q.tokenPayload,
          usesRow: false,
          usesRequest: true,
          offset,
          name: 'jwt',
        };
      }
      if (which === 'parameters') {
        return {
          ev: (_r, q) => jsonStringify(q.clientParameters),
          json: (_r, q) => q.clientParameters,
          usesRow: false,
          usesRequest: true,
          offset,
          name: 'parameters',
        };
      }
      this.#fail(
        'FERRY_S1104',
        `unknown function request.${which}(); available: ${REQUEST_FUNCTIONS.join(', ')}`,
        call.location,
      );
    }
    // Postgres rewrites SQL-syntax forms such as substring(x FROM 1 FOR 2) to pg_catalog.<name>.
    const name =
      parts.length === 2 && parts[0] === 'pg_catalog'
        ? (parts[1] ?? '')
        : parts.length === 1
          ? (parts[0] ?? '')
          : parts.join('.');
    if (call.over !== undefined)
      this.#fail('FERRY_S1103', `window functions (${name} OVER ...) are not supported in sync rules`, call.location);
    if (
      call.agg_star === true ||
      call.agg_distinct === true ||
      AGGREGATES.has(name) ||
      call.agg_filter !== undefined ||
      (call.agg_order?.length ?? 0) > 0
    ) {
      this.#fail(
        'FERRY_S1103',
        `aggregate functions such as ${name}() are not supported: sync rules map each row on its own`,
        call.location,
      );
    }
    const fn = FUNCTIONS.get(name);
    if (fn === undefined) {
      this.#fail(
        'FERRY_S1104',
        `unknown function ${parts.join('.')}(); supported: ${[...FUNCTIONS.keys(), 'coalesce', 'nullif'].sort().join(', ')}`,
        call.location,
      );
    }
    if (args.length < fn.minArgs || args.length > fn.maxArgs) {
      const range =
        fn.minArgs === fn.maxArgs
          ? `${fn.minArgs}`
          : fn.maxArgs >= 100
            ? `at least ${fn.minArgs}`
            : `${fn.minArgs} to ${fn.maxArgs}`;
      this.#fail(
        'FERRY_S1104',
        `${name}() takes ${range} argument${range === '1' ? '' : 's'}, got ${args.length}`,
        call.location,
      );
    }
    const compiled = args.map((a) => this.compile(a));
    for (const index of fn.constantArgs ?? []) {
      const arg = compiled[index];
      if (arg === undefined) continue;
      if (arg.usesRow || arg.usesRequest)
        this.#fail(
          'FERRY_S1103',
          `argument ${index + 1} of ${name}() must be a constant`,
          args[index] ? nodeLocation(args[index]) : call.location,
        );
      const message = checkModifier(name, arg.ev(EMPTY_ROW, EMPTY_REQUEST));
      if (message !== null) this.#fail('FERRY_S1103', message, args[index] ? nodeLocation(args[index]) : call.location);
    }
    const call1 = fn.call;
    const evs = compiled.map((c) => c.ev);
    let ev: Evaluator;
    if (evs.length === 1) {
      const [a] = evs as [Evaluator];
      ev = (r, q) => call1([a(r, q)]);
    } else if (evs.length === 2) {
      const [a, b] = evs as [Evaluator, Evaluator];
      ev = (r, q) => call1([a(r, q), b(r, q)]);
    } else {
      ev = (r, q) => call1(evs.map((e) => e(r, q)));
    }
    return derived(compiled, offset, ev);
  }

  #aExpr(expr: NonNullable<Extract<Node, { A_Expr: unknown }>['A_Expr']>): CompiledExpression {
    const op = nameParts(expr.name)?.join('.') ?? '';
    const offset = this.#offset(expr.location);
    const kind = expr.kind as string | undefined;
    switch (kind) {
      case 'AEXPR_OP': {
        if (expr.lexpr === undefined) return this.#unary(op, this.#required(expr.rexpr, expr.location), expr.location);
        const left = this.#required(expr.lexpr, expr.location);
        const right = this.#required(expr.rexpr, expr.location);
        return this.#binary(op, left, right, expr.location);
      }
      case IN_ARRAY_KIND:
      case 'AEXPR_OP_ANY': {
        if (kind === 'AEXPR_OP_ANY' && op !== '=')
          this.#fail('FERRY_S1103', `only \`= ANY(...)\` is supported, not \`${op} ANY(...)\``, expr.location);
        const left = this.#required(expr.lexpr, expr.location);
        const right = this.#required(expr.rexpr, expr.location);
        const l = left.ev;
        const elements = jsonArrayElements(right);
        return derived([left, right], offset, (r, q) => {
          const v = l(r, q);
          if (v === null) return null;
          let sawNull = false;
          for (const e of elements(r, q)) {
            if (e === null) sawNull = true;
            else if (valuesEqual(v, e)) return 1;
          }
          return sawNull ? null : 0;
        });
      }
      case 'AEXPR_IN': {
        const left = this.#required(expr.lexpr, expr.location);
        const items = expr.rexpr !== undefined && 'List' in expr.rexpr ? (expr.rexpr.List.items ?? []) : [];
        const list = items.map((i) => this.compile(i));
        const negate = op === '<>';
        const l = left.ev;
        const evs = list.map((i) => i.ev);
        return derived([left, ...list], offset, (r, q) => {
          const v = l(r, q);
          if (v === null) return null;
          let sawNull = false;
          for (const e of evs) {
            const x = e(r, q);
            if (x === null) sawNull = true;
            else if (valuesEqual(v, x)) return negate ? 0 : 1;
          }
          return sawNull ? null : negate ? 1 : 0;
        });
      }
      case 'AEXPR_NULLIF': {
        const left = this.#required(expr.lexpr, expr.location);
        const right = this.#required(expr.rexpr, expr.location);
        const l = left.ev;
        const rr = right.ev;
        return derived([left, right], offset, (r, q) => {
          const a = l(r, q);
          return valuesEqual(a, rr(r, q)) ? null : a;
        });
      }
      case 'AEXPR_DISTINCT':
      case 'AEXPR_NOT_DISTINCT': {
        const left = this.#required(expr.lexpr, expr.location);
        const right = this.#required(expr.rexpr, expr.location);
        const l = left.ev;
        const rr = right.ev;
        const distinct = kind === 'AEXPR_DISTINCT';
        return derived([left, right], offset, (r, q) => {
          const a = l(r, q);
          const b = rr(r, q);
          const same = (a === null && b === null) || valuesEqual(a, b);
          return bool(same !== distinct);
        });
      }
      case 'AEXPR_BETWEEN':
      case 'AEXPR_NOT_BETWEEN': {
        const left = this.#required(expr.lexpr, expr.location);
        const items = expr.rexpr !== undefined && 'List' in expr.rexpr ? (expr.rexpr.List.items ?? []) : [];
        const [lo, hi] = items.map((i) => this.compile(i));
        if (lo === undefined || hi === undefined) this.#fail('FERRY_S1103', 'BETWEEN needs two bounds', expr.location);
        const l = left.ev;
        const loEv = lo.ev;
        const hiEv = hi.ev;
        const negate = kind === 'AEXPR_NOT_BETWEEN';
        return derived([left, lo, hi], offset, (r, q) => {
          const v = l(r, q);
          const a = compareValues(v, loEv(r, q));
          const b = compareValues(v, hiEv(r, q));
          if (a === null || b === null) return null;
          return bool(a >= 0 && b <= 0 ? !negate : negate);
        });
      }
      case 'AEXPR_LIKE':
      case 'AEXPR_ILIKE':
      case 'AEXPR_SIMILAR':
        this.#fail(
          'FERRY_S1103',
          'LIKE, ILIKE and SIMILAR TO are not supported in sync rules; compare with = or use substr()',
          expr.location,
        );
      // falls through (unreachable: #fail never returns)
      default:
        this.#fail('FERRY_S1103', `operator ${op || kind} is not supported in sync rules`, expr.location);
    }
  }

  #unary(op: string, arg: CompiledExpression, location: number | undefined): CompiledExpression {
    const ev = arg.ev;
    const offset = this.#offset(location);
    if (op === '-') {
      return derived([arg], offset, (r, q) => {
        const v = ev(r, q);
        if (v === null) return null;
        if (typeof v === 'bigint') return normalizeInteger(-v);
        if (typeof v === 'number') return -v;
        return -(castToNumeric(v) as number);
      });
    }
    if (op === '+') return derived([arg], offset, (r, q) => ev(r, q));
    this.#fail('FERRY_S1103', `prefix operator ${op} is not supported in sync rules`, location);
  }

  #binary(
    op: string,
    left: CompiledExpression,
    right: CompiledExpression,
    location: number | undefined,
  ): CompiledExpression {
    const l = left.ev;
    const rr = right.ev;
    const offset = this.#offset(location);
    const parts = [left, right];
    switch (op) {
      case '=':
        return derived(parts, offset, (r, q) => {
          const a = l(r, q);
          const b = rr(r, q);
          return a === null || b === null ? null : bool(valuesEqual(a, b));
        });
      case '<>':
        return derived(parts, offset, (r, q) => {
          const a = l(r, q);
          const b = rr(r, q);
          return a === null || b === null ? null : bool(!valuesEqual(a, b));
        });
      case '<':
      case '>':
      case '<=':
      case '>=': {
        const test: (c: number) => boolean =
          op === '<' ? (c) => c < 0 : op === '>' ? (c) => c > 0 : op === '<=' ? (c) => c <= 0 : (c) => c >= 0;
        return derived(parts, offset, (r, q) => {
          const c = compareValues(l(r, q), rr(r, q));
          return c === null ? null : bool(test(c));
        });
      }
      case '||':
        return derived(parts, offset, (r, q) => {
          const a = castToText(l(r, q));
          const b = castToText(rr(r, q));
          return a === null || b === null ? null : a + b;
        });
      case '->':
      case '->>':
        return this.#jsonAccess(op, left, right, location);
      case '+':
      case '-':
      case '*':
      case '/':
      case '%':
        return {
          ...derived(parts, offset, arithmetic(op, l, rr, left.real === true || right.real === true)),
          real: left.real === true || right.real === true,
        };
      default:
        this.#fail('FERRY_S1103', `operator ${op} is not supported in sync rules`, location);
    }
  }

  #jsonAccess(
    op: '->' | '->>',
    left: CompiledExpression,
    right: CompiledExpression,
    location: number | undefined,
  ): CompiledExpression {
    const base = asJson(left);
    const offset = this.#offset(location);
    let navigate: JsonEvaluator;
    if (!right.usesRow && !right.usesRequest) {
      const path = parseJsonPath(right.ev(EMPTY_ROW, EMPTY_REQUEST), true);
      if (path === null)
        this.#fail(
          'FERRY_S1103',
          `the right side of ${op} must be a key, an array index or a JSON path like '$.a.b'`,
          location,
        );
      const steps: readonly JsonPathStep[] = path;
      navigate =
        steps.length === 1 && typeof steps[0] === 'string'
          ? keyAccess(base, steps[0])
          : (r, q) => jsonNavigate(base(r, q), steps);
    } else {
      const key = right.ev;
      navigate = (r, q) => {
        const path = parseJsonPath(key(r, q), true);
        return path === null ? undefined : jsonNavigate(base(r, q), path);
      };
    }
    if (op === '->') {
      const ev: Evaluator = (r, q) => {
        const v = navigate(r, q);
        return v === undefined ? null : jsonStringify(v);
      };
      const result = derived([left, right], offset, ev, navigate);
      return result;
    }
    return derived([left, right], offset, (r, q) => jsonToSqlite(navigate(r, q)));
  }

  #boolExpr(expr: NonNullable<Extract<Node, { BoolExpr: unknown }>['BoolExpr']>): CompiledExpression {
    const args = (expr.args ?? []).map((a) => this.compile(a));
    const evs = args.map((a) => a.ev);
    const offset = this.#offset(expr.location);
    switch (expr.boolop) {
      case 'AND_EXPR':
        return derived(args, offset, (r, q) => {
          let sawNull = false;
          for (const ev of evs) {
            const t = truth(ev(r, q));
            if (t === 0) return 0;
            if (t === null) sawNull = true;
          }
          return sawNull ? null : 1;
        });
      case 'OR_EXPR':
        return derived(args, offset, (r, q) => {
          let sawNull = false;
          for (const ev of evs) {
            const t = truth(ev(r, q));
            if (t === 1) return 1;
            if (t === null) sawNull = true;
          }
          return sawNull ? null : 0;
        });
      default: {
        const [ev] = evs;
        if (ev === undefined) this.#fail('FERRY_S1103', 'NOT needs an operand', expr.location);
        return derived(args, offset, (r, q) => {
          const t = truth(ev(r, q));
          return t === null ? null : t === 1 ? 0 : 1;
        });
      }
    }
  }

  #booleanTest(test: NonNullable<Extract<Node, { BooleanTest: unknown }>['BooleanTest']>): CompiledExpression {
    const arg = this.#required(test.arg, test.location);
    const ev = arg.ev;
    const which = test.booltesttype;
    return derived([arg], this.#offset(test.location), (r, q) => {
      const t = truth(ev(r, q));
      switch (which) {
        case 'IS_TRUE':
          return bool(t === 1);
        case 'IS_NOT_TRUE':
          return bool(t !== 1);
        case 'IS_FALSE':
          return bool(t === 0);
        case 'IS_NOT_FALSE':
          return bool(t !== 0);
        case 'IS_UNKNOWN':
          return bool(t === null);
        default:
          return bool(t !== null);
      }
    });
  }

  #caseExpr(expr: NonNullable<Extract<Node, { CaseExpr: unknown }>['CaseExpr']>): CompiledExpression {
    const subject = expr.arg === undefined ? undefined : this.compile(expr.arg);
    const whens: { when: CompiledExpression; then: CompiledExpression }[] = [];
    for (const item of expr.args ?? []) {
      if (!('CaseWhen' in item)) continue;
      whens.push({
        when: this.#required(item.CaseWhen.expr, item.CaseWhen.location),
        then: this.#required(item.CaseWhen.result, item.CaseWhen.location),
      });
    }
    const otherwise = expr.defresult === undefined ? undefined : this.compile(expr.defresult);
    const parts = [
      ...(subject ? [subject] : []),
      ...whens.flatMap((w) => [w.when, w.then]),
      ...(otherwise ? [otherwise] : []),
    ];
    const s = subject?.ev;
    const pairs = whens.map((w) => [w.when.ev, w.then.ev] as const);
    const d = otherwise?.ev;
    return derived(parts, this.#offset(expr.location), (r, q) => {
      const sv = s === undefined ? undefined : s(r, q);
      for (const [when, then] of pairs) {
        const w = when(r, q);
        if (sv === undefined ? isTruthy(w) : valuesEqual(sv, w)) return then(r, q);
      }
      return d === undefined ? null : d(r, q);
    });
  }
}

function keyAccess(base: JsonEvaluator, key: string): JsonEvaluator {
  return (r, q) => {
    const doc = base(r, q);
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return undefined;
    return Object.hasOwn(doc, key) ? (doc as Record<string, unknown>)[key] : undefined;
  };
}

function arithmetic(op: '+' | '-' | '*' | '/' | '%', l: Evaluator, r: Evaluator, real: boolean): Evaluator {
  return (row, q) => {
    let a = l(row, q);
    let b = r(row, q);
    if (a === null || b === null) return null;
    if (!isNumeric(a)) a = castToNumeric(a) ?? 0;
    if (!isNumeric(b)) b = castToNumeric(b) ?? 0;
    const integers =
      !real && (typeof a === 'bigint' || Number.isInteger(a)) && (typeof b === 'bigint' || Number.isInteger(b));
    if (integers && (typeof a === 'bigint' || typeof b === 'bigint' || op === '/' || op === '%')) {
      const x = BigInt(a);
      const y = BigInt(b);
      switch (op) {
        case '+':
          return normalizeInteger(x + y);
        case '-':
          return normalizeInteger(x - y);
        case '*':
          return normalizeInteger(x * y);
        case '/':
          return y === 0n ? null : normalizeInteger(x / y);
        default:
          return y === 0n ? null : normalizeInteger(x % y);
      }
    }
    const x = Number(a);
    const y = Number(b);
    switch (op) {
      case '+':
        return integers ? normalizeInteger(BigInt(x) + BigInt(y)) : x + y;
      case '-':
        return integers ? normalizeInteger(BigInt(x) - BigInt(y)) : x - y;
      case '*':
        return integers ? normalizeInteger(BigInt(x) * BigInt(y)) : x * y;
      case '/':
        return y === 0 ? null : x / y;
      default:
        return y === 0 ? null : x % y;
    }
  };
}
