/**
 * `compileSyncRules`: sync rules YAML → {@link CompiledSyncRules}.
 *
 * Errors: every problem found is collected (a query stops at its first
 * problem, other queries and definitions are still checked) and thrown as one
 * {@link SyncRulesError}; its code and location are the first problem's.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';
import {
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  type Node as YamlNode,
  type Pair,
  type Scalar,
  type YAMLMap,
} from 'yaml';
import { QueryProblem, SyncRulesError, type SyncRulesErrorCode, type SyncRulesProblem } from './errors.js';
import { compileDataQuery, compileParameterQuery, type DataQueryPlan, type ParameterQueryPlan } from './queries.js';
import { SyncRulesEvaluator, type DefinitionPlan } from './evaluator.js';
import { ScalarSourceMap } from './source-map.js';
import { loadParser, parseQuery, type ParsedQuery } from './sql-parser.js';
import type { CompiledSyncRules } from './types.js';

export interface CompileOptions {
  /** File name used in error messages. Default `sync-rules.yaml`. */
  file?: string;
  /** Schema for unqualified table names. Default `public`. */
  defaultSchema?: string;
}

/** Bump when the compiler's semantics change so the hash of unchanged rules changes too. */
const SEMANTICS_VERSION = 1;

const DEFINITION_KEYS = new Set(['parameters', 'data', 'priority', 'accept_potentially_dangerous_queries']);

interface QuerySource {
  text: string;
  map: ScalarSourceMap;
}

/**
 * Compiles a PowerSync-compatible `bucket_definitions` rules file. Throws
 * {@link SyncRulesError} (codes FERRY_S1101–S1104) listing every problem found.
 */
export async function compileSyncRules(source: string, options: CompileOptions = {}): Promise<CompiledSyncRules> {
  await loadParser();
  return new RulesCompiler(source, options.file ?? 'sync-rules.yaml', options.defaultSchema ?? 'public').compile();
}

class RulesCompiler {
  readonly #source: string;
  readonly #file: string;
  readonly #defaultSchema: string;
  readonly #lineCounter = new LineCounter();
  readonly #problems: SyncRulesProblem[] = [];

  constructor(source: string, file: string, defaultSchema: string) {
    this.#source = source;
    this.#file = file;
    this.#defaultSchema = defaultSchema;
  }

  #at(offset: number): { line: number; column: number } {
    const { line, col } = this.#lineCounter.linePos(offset);
    return { line, column: col };
  }

  #problem(
    code: SyncRulesErrorCode,
    message: string,
    position: { line: number; column: number },
    end?: { line: number; column: number },
  ): void {
    const location = {
      file: this.#file,
      ...position,
      ...(end === undefined ? {} : { endLine: end.line, endColumn: end.column }),
    };
    this.#problems.push({ code, message, location });
  }

  #nodeProblem(message: string, node: YamlNode | null | undefined, fallbackOffset = 0): void {
    const range = node?.range;
    this.#problem(
      'FERRY_S1101',
      message,
      this.#at(range?.[0] ?? fallbackOffset),
      range ? this.#at(range[1]) : undefined,
    );
  }

  compile(): CompiledSyncRules {
    const doc = parseDocument(this.#source, { lineCounter: this.#lineCounter, prettyErrors: false, uniqueKeys: true });
    for (const error of doc.errors) {
      const pos = error.linePos?.[0];
      this.#problem(
        'FERRY_S1101',
        `invalid YAML: ${error.message.split('\n')[0]}`,
        pos ? { line: pos.line, column: pos.col } : this.#at(error.pos[0]),
      );
    }
    if (this.#problems.length > 0) throw new SyncRulesError(this.#problems);

    const root = doc.contents;
    if (!isMap(root)) {
      this.#nodeProblem('the sync rules file must be a mapping with a `bucket_definitions` key', root);
      throw new SyncRulesError(this.#problems);
    }
    let definitionsNode: YAMLMap | undefined;
    for (const pair of root.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : '';
      if (key === 'bucket_definitions') {
        if (isMap(pair.value)) definitionsNode = pair.value;
        else
          this.#nodeProblem(
            '`bucket_definitions` must be a mapping of bucket definition names to definitions',
            (pair.value as YamlNode | null) ?? (pair.key as YamlNode),
          );
      } else {
        this.#nodeProblem(
          `unknown top-level key "${key}"; Ferry supports \`bucket_definitions\` (sync streams and \`config\` are not supported yet)`,
          pair.key as YamlNode,
        );
      }
    }
    if (definitionsNode === undefined && this.#problems.length === 0) {
      this.#nodeProblem('missing `bucket_definitions`', root);
    }

    const plans: DefinitionPlan[] = [];
    const canonical: unknown[] = [];
    for (const pair of definitionsNode?.items ?? []) {
      const result = this.#definition(pair);
      if (result !== undefined) {
        plans.push(result.plan);
        canonical.push(result.canonical);
      }
    }
    if (this.#problems.length > 0) throw new SyncRulesError(this.#problems);

    const hash = bytesToHex(
      sha256(
        utf8ToBytes(JSON.stringify({ v: SEMANTICS_VERSION, schema: this.#defaultSchema, definitions: canonical })),
      ),
    );
    return new SyncRulesEvaluator(plans, hash);
  }

  #definition(pair: Pair): { plan: DefinitionPlan; canonical: unknown } | undefined {
    const keyNode = pair.key as YamlNode | null;
    const name = isScalar(keyNode) ? String(keyNode.value) : '';
    if (name === '' || /[[\]"]/.test(name)) {
      this.#nodeProblem('a bucket definition name must be non-empty and contain no `[`, `]` or `"`', keyNode);
      return undefined;
    }
    const body = pair.value as YamlNode | null;
    if (!isMap(body)) {
      this.#nodeProblem(
        `bucket definition "${name}" must be a mapping with \`data\` (and optionally \`parameters\`, \`priority\`)`,
        body ?? keyNode,
      );
      return undefined;
    }
    let parameterNodes: Scalar[] | undefined;
    let dataNodes: Scalar[] = [];
    let dataSeen = false;
    let priority = 3;
    for (const item of body.items) {
      const key = isScalar(item.key) ? String(item.key.value) : '';
      const value = item.value as YamlNode | null;
      if (!DEFINITION_KEYS.has(key)) {
        this.#nodeProblem(
          `unknown key "${key}" in bucket definition "${name}"; expected parameters, data or priority`,
          item.key as YamlNode,
        );
        continue;
      }
      if (key === 'parameters')
        parameterNodes = this.#queries(value, `"${name}".parameters`, item.key as YamlNode, true);
      else if (key === 'data') {
        dataSeen = true;
        dataNodes = this.#queries(value, `"${name}".data`, item.key as YamlNode, false) ?? [];
      } else if (key === 'priority') {
        const p = isScalar(value) ? value.value : undefined;
        if (typeof p !== 'number' || !Number.isInteger(p) || p < 0 || p > 3)
          this.#nodeProblem(
            '`priority` must be an integer from 0 (highest) to 3 (default)',
            value ?? (item.key as YamlNode),
          );
        else priority = p;
      }
    }
    if (!dataSeen) this.#nodeProblem(`bucket definition "${name}" has no \`data\` queries`, keyNode);

    const problemsBefore = this.#problems.length;
    const parameterQueries: ParameterQueryPlan[] = [];
    const canonicalParameters: unknown[] = [];
    // The first parameter query fixes the definition's parameter names and their order.
    let parameterNames: string[] | undefined;
    let parametersFailed = false;
    for (const [index, node] of (parameterNodes ?? []).entries()) {
      const compiled = this.#query(node, (q) => compileParameterQuery(q, name, index, this.#defaultSchema));
      if (compiled === undefined) {
        parametersFailed = true;
        continue;
      }
      const { plan, parsed } = compiled;
      canonicalParameters.push(canonicalAst(parsed));
      const names = plan.outputs.map((o) => o.name);
      if (parameterNames === undefined) {
        parameterNames = names;
        parameterQueries.push(plan);
        continue;
      }
      const expected = parameterNames;
      if (names.length !== expected.length || names.some((n) => !expected.includes(n))) {
        this.#problem(
          'FERRY_S1104',
          `every parameter query of "${name}" must output the same columns: expected (${expected.join(', ')}), got (${names.join(', ')})`,
          this.#sourceOf(node).map.start(),
        );
        continue;
      }
      const byName = new Map(plan.outputs.map((o) => [o.name, o]));
      const outputs = expected.map((n) => byName.get(n)).filter((o) => o !== undefined);
      parameterQueries.push({ ...plan, outputs });
    }
    if (parametersFailed) parameterNames = undefined;
    else parameterNames ??= [];

    const dataQueries: DataQueryPlan[] = [];
    const canonicalData: unknown[] = [];
    for (const [index, node] of dataNodes.entries()) {
      const compiled = this.#query(node, (q) => compileDataQuery(q, name, index, parameterNames, this.#defaultSchema));
      if (compiled === undefined) continue;
      dataQueries.push(compiled.plan);
      canonicalData.push(canonicalAst(compiled.parsed));
    }
    if (this.#problems.length > problemsBefore) return undefined;
    return {
      plan: {
        name,
        priority,
        parameterNames: parameterNames ?? [],
        global: parameterNodes === undefined,
        parameterQueries,
        dataQueries,
      },
      canonical: {
        name,
        priority,
        global: parameterNodes === undefined,
        parameters: canonicalParameters,
        data: canonicalData,
      },
    };
  }

  /** The query scalars under a `parameters` or `data` key. */
  #queries(value: YamlNode | null, what: string, keyNode: YamlNode, allowSingle: boolean): Scalar[] | undefined {
    const isQuery = (node: unknown): node is Scalar => isScalar(node) && typeof node.value === 'string';
    if (allowSingle && isQuery(value)) return [value];
    if (isSeq(value)) {
      const out: Scalar[] = [];
      for (const item of value.items) {
        if (isQuery(item)) out.push(item);
        else this.#nodeProblem(`each item of ${what} must be a SQL query string`, item as YamlNode);
      }
      if (out.length === 0 && value.items.length === 0)
        this.#nodeProblem(`${what} is empty; add at least one query`, value);
      return out;
    }
    this.#nodeProblem(
      allowSingle ? `${what} must be a SQL query or a list of queries` : `${what} must be a list of SQL queries`,
      value ?? keyNode,
    );
    return undefined;
  }

  #sourceOf(node: Scalar): QuerySource {
    const text = String(node.value);
    return { text, map: new ScalarSourceMap(this.#source, this.#lineCounter, node, text) };
  }

  #query<T>(node: Scalar, compile: (query: ParsedQuery) => T): { plan: T; parsed: ParsedQuery } | undefined {
    const { text, map } = this.#sourceOf(node);
    try {
      if (text.trim() === '') throw new QueryProblem('FERRY_S1101', 'the query is empty; write a SELECT statement', 0);
      const parsed = parseQuery(text);
      return { plan: compile(parsed), parsed };
    } catch (error) {
      if (!(error instanceof QueryProblem)) throw error;
      const position = error.offset === undefined ? map.start() : map.position(error.offset);
      this.#problem(
        error.code,
        error.message,
        position,
        error.endOffset === undefined ? undefined : map.position(error.endOffset),
      );
      return undefined;
    }
  }
}

const POSITION_KEYS = new Set([
  'location',
  'stmt_location',
  'stmt_len',
  'rexpr_list_start',
  'rexpr_list_end',
  'list_start',
  'list_end',
]);

/** The query's AST without source positions: equal for queries that differ only in layout. */
function canonicalAst(query: ParsedQuery): unknown {
  return JSON.parse(JSON.stringify(query.stmt, (key, value: unknown) => (POSITION_KEYS.has(key) ? undefined : value)));
}
