/**
 * Compiles one data query or parameter query (a parsed SELECT) into an
 * evaluation plan of closures. See this package's README for what is accepted.
 */
import type { SqliteRow, SqliteValue } from '@ferry/protocol';
import type { Node, SelectStmt } from 'libpg-query';
import { QueryProblem } from './errors.js';
import {
  bucketReference,
  EMPTY_REQUEST,
  EMPTY_ROW,
  ExpressionCompiler,
  jsonArrayElements,
  nameParts,
  nodeLocation,
  type CompiledExpression,
  type Evaluator,
  type ExpressionScope,
  type TableScope,
} from './expressions.js';
import { findKeyword, IN_ARRAY_KIND, type ParsedQuery } from './sql-parser.js';
import { isTruthy } from './sqlite-values.js';
import type { RequestParameters, SourceTableName } from './types.js';

export type RowPredicate = (row: SqliteRow) => boolean;
export type RequestPredicate = (request: RequestParameters) => boolean;

export interface DataQueryPlan {
  kind: 'data';
  definition: string;
  index: number;
  /** `<definition> data[<index>]`, for evaluation errors. */
  source: string;
  table: SourceTableName;
  outputTable: string;
  /** Values of the bucket parameters in the definition's parameter order. */
  bucketParams: readonly Evaluator[];
  filter: RowPredicate | undefined;
  /** `SELECT *` (other outputs then override or add columns). */
  star: boolean;
  outputs: readonly { name: string; ev: Evaluator }[];
  columns: readonly string[] | '*';
}

/** One equality of a parameter query's WHERE: row side and request side each give candidate values. */
export interface LookupKey {
  row: (row: SqliteRow) => SqliteValue[];
  request: (request: RequestParameters) => SqliteValue[];
}

export type ParameterOutput =
  { kind: 'row'; name: string; ev: Evaluator } | { kind: 'request'; name: string; ev: Evaluator };

export interface StaticParameterQueryPlan {
  kind: 'static';
  definition: string;
  index: number;
  source: string;
  filter: RequestPredicate | undefined;
  outputs: readonly ParameterOutput[];
}

export interface TableParameterQueryPlan {
  kind: 'table';
  definition: string;
  index: number;
  source: string;
  table: SourceTableName;
  rowFilter: RowPredicate | undefined;
  requestFilter: RequestPredicate | undefined;
  keys: readonly LookupKey[];
  outputs: readonly ParameterOutput[];
  columns: readonly string[];
}

export type ParameterQueryPlan = StaticParameterQueryPlan | TableParameterQueryPlan;

const DATA_NO_REQUEST =
  'data queries run once per row at replication time, without a request; select request values in the parameter query and compare with bucket.<name>';

interface FromClause {
  table: SourceTableName;
  outputName: string;
  scope: TableScope;
}

function fail(
  query: ParsedQuery,
  code: 'FERRY_S1101' | 'FERRY_S1103' | 'FERRY_S1104',
  message: string,
  location: number | undefined,
): never {
  throw new QueryProblem(code, message, query.offset(location));
}

function failAt(code: 'FERRY_S1103' | 'FERRY_S1104', message: string, offset: number | undefined): never {
  throw new QueryProblem(code, message, offset);
}

/** The SELECT, after rejecting every clause sync rules cannot express. */
function checkSelect(query: ParsedQuery): SelectStmt {
  const stmt = query.stmt;
  if (!('SelectStmt' in stmt)) {
    failAt('FERRY_S1103', `only SELECT queries are allowed in sync rules, not ${stmtName(stmt)}`, 0);
  }
  const select = stmt.SelectStmt;
  const reject = (message: string, location: number | undefined, ...keywords: string[]): never => {
    throw new QueryProblem('FERRY_S1103', message, findKeyword(query, ...keywords) ?? query.offset(location) ?? 0);
  };
  if (select.op !== undefined && select.op !== 'SETOP_NONE') {
    reject(
      'UNION, INTERSECT and EXCEPT are not supported; write each SELECT as its own data query',
      undefined,
      'UNION',
      'INTERSECT',
      'EXCEPT',
    );
  }
  if (select.withClause !== undefined)
    reject('WITH (common table expressions) is not supported in sync rules', select.withClause.location, 'WITH');
  if (select.valuesLists !== undefined) reject('VALUES lists are not supported in sync rules', undefined, 'VALUES');
  if (select.intoClause !== undefined) reject('SELECT INTO is not supported in sync rules', undefined, 'INTO');
  if (select.distinctClause !== undefined)
    reject('DISTINCT is not supported in sync rules: buckets are sets of rows already', undefined, 'DISTINCT');
  if (select.groupClause !== undefined) {
    reject(
      'GROUP BY is not supported: sync rules map each row on its own',
      nodeLocation(select.groupClause[0]),
      'GROUP',
    );
  }
  if (select.havingClause !== undefined) reject('HAVING is not supported in sync rules', undefined, 'HAVING');
  if (select.windowClause !== undefined) reject('WINDOW clauses are not supported in sync rules', undefined, 'WINDOW');
  if (select.sortClause !== undefined) {
    reject('ORDER BY is not supported: clients order rows in their own queries', undefined, 'ORDER');
  }
  if (select.limitCount !== undefined || select.limitOffset !== undefined) {
    reject(
      'LIMIT and OFFSET are not supported: a bucket holds every matching row',
      undefined,
      'LIMIT',
      'OFFSET',
      'FETCH',
    );
  }
  if (select.lockingClause !== undefined) reject('FOR UPDATE/SHARE is not supported in sync rules', undefined, 'FOR');
  return select;
}

function stmtName(stmt: Node): string {
  const kind = Object.keys(stmt)[0] ?? 'statement';
  return kind
    .replace(/Stmt$/, '')
    .replace(/([a-z])([A-Z])/g, '$1 $2')
    .toUpperCase();
}

function resolveFrom(query: ParsedQuery, select: SelectStmt, defaultSchema: string): FromClause | undefined {
  const from = select.fromClause ?? [];
  if (from.length === 0) return undefined;
  if (from.length > 1) {
    fail(
      query,
      'FERRY_S1103',
      'a query can read only one table (no joins); use a parameter query to select bucket parameters from the other table',
      nodeLocation(from[1]) ?? undefined,
    );
  }
  const item = from[0] as Node;
  if ('JoinExpr' in item) {
    const join = item.JoinExpr;
    const offset = findKeyword(query, 'JOIN') ?? query.offset(nodeLocation(join.rarg));
    failAt(
      'FERRY_S1103',
      'JOIN is not supported: a query reads one table; use a parameter query to select bucket parameters from the other table',
      offset,
    );
  }
  if ('RangeSubselect' in item) {
    failAt('FERRY_S1103', 'subqueries in FROM are not supported; read the table directly', findKeyword(query, 'FROM'));
  }
  if ('RangeFunction' in item) {
    failAt(
      'FERRY_S1103',
      'table functions in FROM (such as json_each) are not supported; read a table',
      findKeyword(query, 'FROM'),
    );
  }
  if (!('RangeVar' in item)) fail(query, 'FERRY_S1103', 'FROM must name a table', nodeLocation(item));
  const range = item.RangeVar;
  if (range.catalogname !== undefined)
    fail(query, 'FERRY_S1103', 'database-qualified table names are not supported', range.location);
  if (range.alias?.colnames !== undefined)
    fail(
      query,
      'FERRY_S1103',
      'column aliases in FROM are not supported; alias columns in the SELECT list',
      range.location,
    );
  const schema = range.schemaname ?? defaultSchema;
  const name = range.relname ?? '';
  const alias = range.alias?.aliasname;
  const qualifiers = new Set<string>(alias === undefined ? [name, `${schema}.${name}`] : [alias]);
  return { table: { schema, name }, outputName: alias ?? name, scope: { qualifiers } };
}

/** Splits a WHERE clause into its top-level AND terms. */
function conjuncts(node: Node | undefined): Node[] {
  if (node === undefined) return [];
  if ('BoolExpr' in node && node.BoolExpr.boolop === 'AND_EXPR') return (node.BoolExpr.args ?? []).flatMap(conjuncts);
  return [node];
}

function andAll<T>(predicates: readonly ((x: T) => boolean)[]): ((x: T) => boolean) | undefined {
  if (predicates.length === 0) return undefined;
  if (predicates.length === 1) return predicates[0];
  return (x) => {
    for (const p of predicates) if (!p(x)) return false;
    return true;
  };
}

function rowPredicate(expr: CompiledExpression): RowPredicate {
  const ev = expr.ev;
  return (row) => isTruthy(ev(row, EMPTY_REQUEST));
}

function requestPredicate(expr: CompiledExpression): RequestPredicate {
  const ev = expr.ev;
  return (request) => isTruthy(ev(EMPTY_ROW, request));
}

interface Target {
  star: boolean;
  name: string;
  expr: CompiledExpression | undefined;
  offset: number | undefined;
}

function compileTargets(
  query: ParsedQuery,
  select: SelectStmt,
  compiler: ExpressionCompiler,
  from: FromClause | undefined,
): Target[] {
  const targets: Target[] = [];
  const seen = new Set<string>();
  for (const item of select.targetList ?? []) {
    if (!('ResTarget' in item)) continue;
    const res = item.ResTarget;
    const val = res.val;
    const offset = query.offset(res.location);
    if (val === undefined) continue;
    if ('ColumnRef' in val) {
      const fields = val.ColumnRef.fields ?? [];
      const last = fields[fields.length - 1];
      if (last !== undefined && 'A_Star' in last) {
        const qualifier = nameParts(fields.slice(0, -1))?.join('.') ?? '';
        if (from === undefined) failAt('FERRY_S1103', 'SELECT * needs a FROM table', offset);
        if (qualifier !== '' && !from.scope.qualifiers.has(qualifier)) {
          failAt('FERRY_S1104', `unknown table or alias "${qualifier}"`, offset);
        }
        targets.push({ star: true, name: '*', expr: undefined, offset });
        continue;
      }
    }
    const expr = compiler.compile(val);
    const name = res.name ?? expr.name;
    if (name === undefined) {
      failAt('FERRY_S1103', 'give this expression a column name with `AS name`', offset);
    }
    if (seen.has(name)) failAt('FERRY_S1103', `output column "${name}" appears twice; rename one with AS`, offset);
    seen.add(name);
    targets.push({ star: false, name, expr, offset });
  }
  return targets;
}

/**
 * Compiles a data query. `parameterNames` are the definition's bucket
 * parameters, or undefined when they are unknown (the parameter query failed
 * to compile), in which case `bucket.x` references are not checked.
 */
export function compileDataQuery(
  query: ParsedQuery,
  definition: string,
  index: number,
  parameterNames: readonly string[] | undefined,
  defaultSchema: string,
): DataQueryPlan {
  const select = checkSelect(query);
  const from = resolveFrom(query, select, defaultSchema);
  if (from === undefined) failAt('FERRY_S1103', 'a data query needs a FROM table', findKeyword(query, 'SELECT') ?? 0);
  const columns = new Set<string>();
  const scope: ExpressionScope = { query, table: from.scope, requestForbidden: DATA_NO_REQUEST, columns };
  const compiler = new ExpressionCompiler(scope);

  const targets = compileTargets(query, select, compiler, from);
  const star = targets.some((t) => t.star);
  if (!star && !targets.some((t) => t.name === 'id')) {
    failAt(
      'FERRY_S1103',
      'a data query must output an `id` column (the row id clients key on); add `id` or `<column> AS id`',
      findKeyword(query, 'SELECT') ?? 0,
    );
  }

  const bindings = new Map<string, Evaluator>();
  const filters: RowPredicate[] = [];
  for (const term of conjuncts(select.whereClause)) {
    if (
      'A_Expr' in term &&
      term.A_Expr.kind === 'AEXPR_OP' &&
      nameParts(term.A_Expr.name)?.join('.') === '=' &&
      term.A_Expr.lexpr &&
      term.A_Expr.rexpr
    ) {
      const left = bucketReference(term.A_Expr.lexpr);
      const right = bucketReference(term.A_Expr.rexpr);
      const ref = left ?? right;
      const other = left ? term.A_Expr.rexpr : term.A_Expr.lexpr;
      if (ref !== undefined && !(left && right)) {
        if (parameterNames !== undefined && !parameterNames.includes(ref.name)) {
          fail(
            query,
            'FERRY_S1104',
            parameterNames.length === 0
              ? `unknown bucket parameter bucket.${ref.name}: bucket definition "${definition}" has no parameters query`
              : `unknown bucket parameter bucket.${ref.name}; "${definition}" has ${parameterNames.map((n) => `bucket.${n}`).join(', ')}`,
            ref.location,
          );
        }
        if (bindings.has(ref.name))
          fail(
            query,
            'FERRY_S1103',
            `bucket.${ref.name} is compared more than once; compare it with one column`,
            ref.location,
          );
        const value = compiler.compile(other);
        if (!value.usesRow)
          fail(query, 'FERRY_S1103', `compare bucket.${ref.name} with a column of the table`, ref.location);
        bindings.set(ref.name, value.ev);
        continue;
      }
    }
    filters.push(rowPredicate(compiler.compile(term)));
  }
  const names = parameterNames ?? [...bindings.keys()];
  const bucketParams: Evaluator[] = [];
  for (const name of names) {
    const ev = bindings.get(name);
    if (ev === undefined) {
      failAt(
        'FERRY_S1103',
        `bucket parameter bucket.${name} is not used: add \`AND <column> = bucket.${name}\` to the WHERE clause so each row maps to its bucket`,
        findKeyword(query, 'WHERE') ?? findKeyword(query, 'FROM') ?? 0,
      );
    }
    bucketParams.push(ev);
  }

  return {
    kind: 'data',
    definition,
    index,
    source: `${definition} data[${index}]`,
    table: from.table,
    outputTable: from.outputName,
    bucketParams,
    filter: andAll(filters),
    star,
    outputs: targets.filter((t) => !t.star).map((t) => ({ name: t.name, ev: (t.expr as CompiledExpression).ev })),
    columns: star ? '*' : [...columns].sort(),
  };
}

/** Compiles a parameter query. Output names are in SELECT order. */
export function compileParameterQuery(
  query: ParsedQuery,
  definition: string,
  index: number,
  defaultSchema: string,
): ParameterQueryPlan {
  const select = checkSelect(query);
  const from = resolveFrom(query, select, defaultSchema);
  const columns = new Set<string>();
  const scope: ExpressionScope = { query, table: from?.scope, requestForbidden: undefined, columns };
  const compiler = new ExpressionCompiler(scope);
  const source = `${definition} parameters[${index}]`;

  const targets = compileTargets(query, select, compiler, from);
  const outputs: ParameterOutput[] = [];
  for (const target of targets) {
    if (target.star || target.expr === undefined) {
      failAt(
        'FERRY_S1103',
        'SELECT * is not allowed in a parameter query; select the bucket parameters by name',
        target.offset,
      );
    }
    if (target.expr.usesRow && target.expr.usesRequest) {
      failAt('FERRY_S1103', 'a parameter output must come from the table or from the request, not both', target.offset);
    }
    outputs.push({ kind: target.expr.usesRow ? 'row' : 'request', name: target.name, ev: target.expr.ev });
  }

  if (from === undefined) {
    const filters = conjuncts(select.whereClause).map((term) => requestPredicate(compiler.compile(term)));
    return { kind: 'static', definition, index, source, filter: andAll(filters), outputs };
  }

  const rowFilters: RowPredicate[] = [];
  const requestFilters: RequestPredicate[] = [];
  const keys: LookupKey[] = [];
  for (const term of conjuncts(select.whereClause)) {
    const key = lookupKey(compiler, term);
    if (key !== undefined) {
      keys.push(key);
      continue;
    }
    const expr = compiler.compile(term);
    if (expr.usesRow && expr.usesRequest) {
      failAt(
        'FERRY_S1103',
        'conditions that mix table columns and request values must be `column = <request value>` or `column IN <request array>`, combined with AND',
        expr.offset,
      );
    }
    if (expr.usesRequest) requestFilters.push(requestPredicate(expr));
    else rowFilters.push(rowPredicate(expr));
  }
  return {
    kind: 'table',
    definition,
    index,
    source,
    table: from.table,
    rowFilter: andAll(rowFilters),
    requestFilter: andAll(requestFilters),
    keys,
    outputs,
    columns: [...columns].sort(),
  };
}

const single = (ev: Evaluator, row: boolean) =>
  row
    ? (r: SqliteRow): SqliteValue[] => {
        const v = ev(r, EMPTY_REQUEST);
        return v === null ? [] : [v];
      }
    : (q: RequestParameters): SqliteValue[] => {
        const v = ev(EMPTY_ROW, q);
        return v === null ? [] : [v];
      };

/**
 * If a WHERE term relates the table to the request (`col = <request value>`,
 * `col IN <request array>`, `<request value> IN <json array column>`), the
 * lookup key it contributes.
 */
function lookupKey(compiler: ExpressionCompiler, term: Node): LookupKey | undefined {
  if (!('A_Expr' in term)) return undefined;
  const expr = term.A_Expr;
  const op = nameParts(expr.name)?.join('.');
  const kind = expr.kind as string | undefined;
  if (expr.lexpr === undefined || expr.rexpr === undefined) return undefined;
  const isEquality = kind === 'AEXPR_OP' && op === '=';
  const isIn = kind === IN_ARRAY_KIND || (kind === 'AEXPR_OP_ANY' && op === '=');
  if (!isEquality && !isIn) return undefined;
  const left = compiler.compile(expr.lexpr);
  const right = compiler.compile(expr.rexpr);
  const rowOnly = (e: CompiledExpression) => e.usesRow && !e.usesRequest;
  const requestOnly = (e: CompiledExpression) => e.usesRequest && !e.usesRow;
  if (isEquality) {
    if (rowOnly(left) && requestOnly(right))
      return {
        row: single(left.ev, true) as LookupKey['row'],
        request: single(right.ev, false) as LookupKey['request'],
      };
    if (requestOnly(left) && rowOnly(right))
      return {
        row: single(right.ev, true) as LookupKey['row'],
        request: single(left.ev, false) as LookupKey['request'],
      };
    return undefined;
  }
  // x IN <array>: the array side yields several candidate values.
  const elements = jsonArrayElements(right);
  const nonNull = (values: SqliteValue[]) => values.filter((v) => v !== null);
  if (rowOnly(left) && requestOnly(right)) {
    return { row: single(left.ev, true) as LookupKey['row'], request: (q) => nonNull(elements(EMPTY_ROW, q)) };
  }
  if (requestOnly(left) && rowOnly(right)) {
    return { row: (r) => nonNull(elements(r, EMPTY_REQUEST)), request: single(left.ev, false) as LookupKey['request'] };
  }
  return undefined;
}
