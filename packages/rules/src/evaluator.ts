/**
 * The runtime side of compiled sync rules: per-table lists of compiled
 * queries, evaluated with closures on the replication hot path.
 */
import { bucketName, valuesToJson, type SqliteRow, type SqliteValue } from '@ferry/protocol';
import { EMPTY_ROW } from './expressions.js';
import type {
  DataQueryPlan,
  ParameterQueryPlan,
  StaticParameterQueryPlan,
  TableParameterQueryPlan,
} from './queries.js';
import { castToText } from './sqlite-values.js';
import type {
  BucketDescription,
  BucketQuerier,
  CompiledSyncRules,
  EvaluatedParameters,
  EvaluatedRow,
  EvaluationError,
  RequestParameters,
  SourceTableName,
  SourceTableUse,
} from './types.js';

/** One compiled bucket definition. */
export interface DefinitionPlan {
  name: string;
  /** 0 (highest) … 3 (default). */
  priority: number;
  /** Bucket parameter names in bucket-name order (the first parameter query's output order). */
  parameterNames: readonly string[];
  /** No `parameters` key: one bucket `name[]` for everyone. */
  global: boolean;
  parameterQueries: readonly ParameterQueryPlan[];
  dataQueries: readonly DataQueryPlan[];
}

function tableKey(table: SourceTableName): string {
  return table.schema + '\u0000' + table.name;
}

/**
 * The key a parameter row is stored under and a request looks up:
 * `[definition, queryIndex, ...values]` as JSON (bigints exact).
 */
export function lookupString(definition: string, queryIndex: number, values: readonly SqliteValue[]): string {
  return valuesToJson([definition, queryIndex, ...values]);
}

/** Every combination taking one value from each list (none if any list is empty). */
function combinations(lists: readonly (readonly SqliteValue[])[]): SqliteValue[][] {
  let out: SqliteValue[][] = [[]];
  for (const list of lists) {
    if (list.length === 0) return [];
    const next: SqliteValue[][] = [];
    for (const prefix of out) for (const value of list) next.push([...prefix, value]);
    out = next;
  }
  return out;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export class SyncRulesEvaluator implements CompiledSyncRules {
  readonly sourceTables: readonly SourceTableUse[];
  readonly definitions: readonly string[];
  readonly hash: string;

  readonly #dataByTable = new Map<string, DataQueryPlan[]>();
  readonly #parametersByTable = new Map<string, TableParameterQueryPlan[]>();
  readonly #globalBuckets: readonly BucketDescription[];
  readonly #staticQueries: readonly StaticParameterQueryPlan[];
  readonly #tableQueries: readonly TableParameterQueryPlan[];
  readonly #priority = new Map<string, number>();

  constructor(plans: readonly DefinitionPlan[], hash: string) {
    this.hash = hash;
    this.definitions = plans.map((p) => p.name);
    const globals: BucketDescription[] = [];
    const statics: StaticParameterQueryPlan[] = [];
    const tables: TableParameterQueryPlan[] = [];
    const uses = new Map<
      string,
      { table: SourceTableName; data: boolean; parameters: boolean; columns: Set<string> | '*' }
    >();
    const use = (table: SourceTableName, kind: 'data' | 'parameters', columns: readonly string[] | '*') => {
      const key = tableKey(table);
      let entry = uses.get(key);
      if (entry === undefined) {
        entry = {
          table: { schema: table.schema, name: table.name },
          data: false,
          parameters: false,
          columns: new Set(),
        };
        uses.set(key, entry);
      }
      entry[kind] = true;
      if (columns === '*') entry.columns = '*';
      else if (entry.columns !== '*') for (const c of columns) entry.columns.add(c);
    };

    for (const plan of plans) {
      this.#priority.set(plan.name, plan.priority);
      if (plan.global)
        globals.push({ bucket: bucketName(plan.name, []), definition: plan.name, priority: plan.priority });
      for (const query of plan.parameterQueries) {
        if (query.kind === 'static') statics.push(query);
        else {
          tables.push(query);
          const key = tableKey(query.table);
          const list = this.#parametersByTable.get(key) ?? [];
          list.push(query);
          this.#parametersByTable.set(key, list);
          use(query.table, 'parameters', query.columns);
        }
      }
      for (const query of plan.dataQueries) {
        const key = tableKey(query.table);
        const list = this.#dataByTable.get(key) ?? [];
        list.push(query);
        this.#dataByTable.set(key, list);
        use(query.table, 'data', query.columns);
      }
    }
    this.#globalBuckets = globals;
    this.#staticQueries = statics;
    this.#tableQueries = tables;
    this.sourceTables = [...uses.values()]
      .map((u) => ({
        table: u.table,
        data: u.data,
        parameters: u.parameters,
        columns: u.columns === '*' ? ('*' as const) : [...u.columns].sort(),
      }))
      .sort((a, b) => (a.table.schema + '.' + a.table.name).localeCompare(b.table.schema + '.' + b.table.name));
  }

  evaluateRow(table: SourceTableName, row: SqliteRow): { rows: EvaluatedRow[]; errors: EvaluationError[] } {
    const rows: EvaluatedRow[] = [];
    const errors: EvaluationError[] = [];
    const plans = this.#dataByTable.get(tableKey(table));
    if (plans === undefined) return { rows, errors };
    for (const plan of plans) {
      try {
        if (plan.filter !== undefined && !plan.filter(row)) continue;
        const params = plan.bucketParams;
        let values: SqliteValue[] | undefined;
        if (params.length > 0) {
          values = [];
          let missing = false;
          for (let i = 0; i < params.length; i++) {
            const v = (params[i] as (typeof params)[number])(row, EMPTY_REQUEST_FOR_ROWS);
            if (v === null) {
              missing = true;
              break;
            }
            values.push(v);
          }
          if (missing) continue; // NULL never equals a bucket parameter
        }
        let data: SqliteRow;
        if (plan.star) {
          data = { ...row };
          for (const out of plan.outputs) data[out.name] = out.ev(row, EMPTY_REQUEST_FOR_ROWS);
        } else {
          data = {};
          for (const out of plan.outputs) data[out.name] = out.ev(row, EMPTY_REQUEST_FOR_ROWS);
        }
        const id = data['id'];
        if (id === undefined || id === null) {
          errors.push({
            message: `row of ${table.schema}.${table.name} has no id (output column \`id\` is NULL or missing)`,
            source: plan.source,
          });
          continue;
        }
        rows.push({
          bucket: values === undefined ? plan.definition + '[]' : bucketName(plan.definition, values),
          table: plan.outputTable,
          id: castToText(id) ?? '',
          data,
        });
      } catch (error) {
        errors.push({ message: errorMessage(error), source: plan.source });
      }
    }
    return { rows, errors };
  }

  evaluateParameterRow(
    table: SourceTableName,
    row: SqliteRow,
  ): { lookups: EvaluatedParameters[]; errors: EvaluationError[] } {
    const lookups: EvaluatedParameters[] = [];
    const errors: EvaluationError[] = [];
    const plans = this.#parametersByTable.get(tableKey(table));
    if (plans === undefined) return { lookups, errors };
    for (const plan of plans) {
      try {
        if (plan.rowFilter !== undefined && !plan.rowFilter(row)) continue;
        const combos = combinations(plan.keys.map((k) => k.row(row)));
        if (combos.length === 0) continue;
        const params: Record<string, SqliteValue> = {};
        for (const out of plan.outputs) if (out.kind === 'row') params[out.name] = out.ev(row, EMPTY_REQUEST_FOR_ROWS);
        const seen = new Set<string>();
        for (const combo of combos) {
          const lookup = lookupString(plan.definition, plan.index, combo);
          if (seen.has(lookup)) continue;
          seen.add(lookup);
          lookups.push({ lookup, params });
        }
      } catch (error) {
        errors.push({ message: errorMessage(error), source: plan.source });
      }
    }
    return { lookups, errors };
  }

  querierFor(request: RequestParameters): BucketQuerier {
    const staticBuckets: BucketDescription[] = [...this.#globalBuckets];
    const seen = new Set(staticBuckets.map((b) => b.bucket));
    for (const plan of this.#staticQueries) {
      if (plan.filter !== undefined && !plan.filter(request)) continue;
      const values = plan.outputs.map((o) => o.ev(EMPTY_ROW, request));
      if (values.includes(null)) continue; // a NULL parameter can never match a row
      const bucket = bucketName(plan.definition, values);
      if (seen.has(bucket)) continue;
      seen.add(bucket);
      staticBuckets.push({ bucket, definition: plan.definition, priority: this.#priority.get(plan.definition) ?? 3 });
    }

    const byLookup = new Map<string, { plan: TableParameterQueryPlan; requestValues: (SqliteValue | undefined)[] }>();
    for (const plan of this.#tableQueries) {
      if (plan.requestFilter !== undefined && !plan.requestFilter(request)) continue;
      const combos = combinations(plan.keys.map((k) => k.request(request)));
      if (combos.length === 0) continue;
      const requestValues = plan.outputs.map((o) => (o.kind === 'request' ? o.ev(EMPTY_ROW, request) : undefined));
      if (requestValues.includes(null)) continue;
      for (const combo of combos)
        byLookup.set(lookupString(plan.definition, plan.index, combo), { plan, requestValues });
    }
    const priority = this.#priority;
    return {
      staticBuckets,
      lookups: [...byLookup.keys()],
      resolve(rowsByLookup) {
        const out: BucketDescription[] = [];
        const found = new Set(seen);
        for (const [lookup, rows] of rowsByLookup) {
          const entry = byLookup.get(lookup);
          if (entry === undefined) continue;
          const { plan, requestValues } = entry;
          for (const params of rows) {
            const values: SqliteValue[] = [];
            let missing = false;
            for (let i = 0; i < plan.outputs.length; i++) {
              const out = plan.outputs[i] as (typeof plan.outputs)[number];
              const v = out.kind === 'row' ? (params[out.name] ?? null) : (requestValues[i] ?? null);
              if (v === null) {
                missing = true;
                break;
              }
              values.push(v);
            }
            if (missing) continue;
            const bucket = bucketName(plan.definition, values);
            if (found.has(bucket)) continue;
            found.add(bucket);
            out.push({ bucket, definition: plan.definition, priority: priority.get(plan.definition) ?? 3 });
          }
        }
        return out;
      },
    };
  }
}

/** Data and parameter-row expressions never read the request (the compiler rejects it); this fills the slot. */
const EMPTY_REQUEST_FOR_ROWS: RequestParameters = Object.freeze({
  userId: '',
  tokenPayload: Object.freeze({}),
  clientParameters: Object.freeze({}),
});
