/**
 * Binds compiled write rules to the LIVE source schema: every table and
 * column the rules name must exist (FERRY_S1202 otherwise, naming file and
 * line), each writable table must have `id` as its primary key, and every
 * `where` must resolve against the database, and the `conflicts` scope and
 * per-column policies must name columns of the table. The result carries
 * what the apply engine needs per column: its type, cast and value conversion.
 */
import type pg from 'pg';
import { quoteIdent } from '../storage/sql.js';
import type { ValueKind } from './value-conversion.js';
import { renderWhere } from './where-expression.js';
import {
  WriteRulesError,
  type RulesPosition,
  type TableWriteRule,
  type WriteRules,
  type WriteRulesProblem,
} from './write-rules.js';

export interface WriteColumn {
  name: string;
  /** Quoted identifier. */
  sql: string;
  /** The column's type OID (`pg_attribute.atttypid`; a domain's own OID, not its base type's). */
  oid: number;
  /** Cast target: the schema-qualified type name without typmod, so assignment still enforces `varchar(n)` etc. */
  cast: string;
  kind: ValueKind;
  /** The type has no usable `=` (json, xml, geometric): compare as text. */
  compareAsText: boolean;
}

/** A writable table, bound to the database. */
export interface WriteTable {
  rule: TableWriteRule;
  /** `"schema"."table"`. */
  sql: string;
  /** `schema.table`. */
  qualifiedName: string;
  columns: ReadonlyMap<string, WriteColumn>;
  id: WriteColumn;
  /** Columns an insert or update may set from the client (includes immutable ones for insert). */
  writable: ReadonlySet<string>;
  immutable: ReadonlySet<string>;
}

interface ColumnRow {
  attname: string;
  type_oid: string;
  cast_type: string;
  generated: string;
}

interface TypeRow {
  oid: string;
  typtype: string;
  typbasetype: string;
  typelem: string;
  typcategory: string;
  typdelim: string;
}

const OID = { bool: 16, bytea: 17, json: 114, xml: 142, jsonb: 3802 } as const;
const NUMBER_OIDS = new Set([20, 21, 23, 26, 700, 701, 1700]);

/**
 * Checks the rules against the database and describes each table.
 * Throws {@link WriteRulesError} FERRY_S1202 listing every mismatch.
 */
export async function loadWriteSchema(
  client: Pick<pg.ClientBase, 'query'>,
  rules: WriteRules,
): Promise<Map<string, WriteTable>> {
  const problems: WriteRulesProblem[] = [];
  const problem = (message: string, position: RulesPosition) =>
    problems.push({ message, file: rules.file, ...position });
  const out = new Map<string, WriteTable>();
  const types = new TypeResolver(client);

  for (const rule of rules.tables.values()) {
    const qualified = `${quoteIdent(rule.schema)}.${quoteIdent(rule.table)}`;
    const { rows: rel } = await client.query<{ oid: string | null; relkind: string | null }>(
      `SELECT c.oid::int8::text AS oid, c.relkind::text AS relkind
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relname = $2`,
      [rule.schema, rule.table],
    );
    const relation = rel[0];
    if (relation === undefined || !['r', 'p'].includes(relation.relkind ?? '')) {
      problem(`table ${rule.schema}.${rule.table} does not exist in the source database`, rule.positions.table);
      continue;
    }
    const { rows: columnRows } = await client.query<ColumnRow>(
      `SELECT a.attname, a.atttypid::int8::text AS type_oid,
              quote_ident(tn.nspname) || '.' || quote_ident(t.typname) AS cast_type,
              a.attgenerated::text AS generated
         FROM pg_catalog.pg_attribute a
         JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
         JOIN pg_catalog.pg_namespace tn ON tn.oid = t.typnamespace
        WHERE a.attrelid = $1::int8::oid AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum`,
      [relation.oid],
    );
    const { rows: keyRows } = await client.query<{ attname: string }>(
      `SELECT a.attname FROM pg_catalog.pg_index i
         JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
        WHERE i.indrelid = $1::int8::oid AND i.indisprimary`,
      [relation.oid],
    );
    if (keyRows.length !== 1 || keyRows[0]!.attname !== 'id') {
      problem(
        `table ${rule.schema}.${rule.table} must have a column \`id\` as its primary key to be writable (PowerSync convention)`,
        rule.positions.table,
      );
      continue;
    }
    const columns = new Map<string, WriteColumn>();
    const generated = new Set<string>();
    for (const row of columnRows) {
      if (row.generated !== '') {
        generated.add(row.attname);
        continue;
      }
      const oid = Number(row.type_oid);
      columns.set(row.attname, {
        name: row.attname,
        sql: quoteIdent(row.attname),
        oid,
        cast: row.cast_type,
        kind: await types.kind(oid),
        compareAsText: await types.needsTextCompare(oid),
      });
    }
    const named = [
      ...(rule.columns === '*' ? [] : rule.columns),
      ...rule.immutable,
      ...(rule.owner ? [rule.owner.column] : []),
    ];
    let ok = true;
    for (const name of new Set(named)) {
      if (columns.has(name)) continue;
      ok = false;
      const position = rule.positions.columns.get(name) ?? rule.positions.table;
      problem(
        generated.has(name)
          ? `column ${rule.table}.${name} is generated and cannot be written`
          : `column ${rule.table}.${name} does not exist in the source database`,
        position,
      );
    }
    // The scope is read from the written row and per-column policies apply to written fields:
    // both need an ordinary (not generated) column.
    const { conflicts } = rule;
    const conflictColumns = [...conflicts.columns.keys()].map((name) => ({
      name,
      what: 'conflicts.columns',
      position: conflicts.positions.columns.get(name),
    }));
    if (conflicts.scope !== null) {
      conflictColumns.unshift({
        name: conflicts.scope,
        what: 'conflicts.scope',
        position: conflicts.positions.scope ?? undefined,
      });
    }
    for (const { name, what, position } of conflictColumns) {
      if (columns.has(name)) continue;
      ok = false;
      problem(
        generated.has(name)
          ? `${what}: column ${rule.table}.${name} is generated; name a column that is not generated`
          : `${what}: column ${rule.table}.${name} does not exist in the source database`,
        position ?? rule.positions.table,
      );
    }
    if (!ok) continue;
    const writable = new Set<string>(rule.columns === '*' ? columns.keys() : rule.columns);
    writable.delete('id');
    if (rule.owner) writable.delete(rule.owner.column);
    for (const name of rule.immutable) writable.delete(name);

    if (rule.where !== null) {
      // Resolve the expression against the database now, not at the first write.
      try {
        await client.query(
          `EXPLAIN SELECT 1 FROM ${qualified} WHERE ${renderWhere(rule.where, 1)}`,
          rule.where.inputs.map(() => null),
        );
      } catch (error) {
        problem(`where does not resolve: ${(error as Error).message}`, rule.positions.where ?? rule.positions.table);
        ok = false;
      }
      if (!ok) continue;
    }
    out.set(rule.name, {
      rule,
      sql: qualified,
      qualifiedName: `${rule.schema}.${rule.table}`,
      columns,
      id: columns.get('id')!,
      writable,
      immutable: new Set(rule.immutable),
    });
  }
  if (problems.length > 0) throw new WriteRulesError('FERRY_S1202', problems);
  return out;
}

/** Resolves type OIDs to their conversion, following domains and arrays through `pg_type`. */
class TypeResolver {
  private readonly client: Pick<pg.ClientBase, 'query'>;
  private readonly rows = new Map<number, TypeRow>();

  constructor(client: Pick<pg.ClientBase, 'query'>) {
    this.client = client;
  }

  private async row(oid: number): Promise<TypeRow | undefined> {
    if (!this.rows.has(oid)) {
      const { rows } = await this.client.query<TypeRow>(
        `SELECT oid::int8::text AS oid, typtype::text AS typtype, typbasetype::int8::text AS typbasetype,
                typelem::int8::text AS typelem, typcategory::text AS typcategory, typdelim::text AS typdelim
           FROM pg_catalog.pg_type WHERE oid = $1::int8::oid`,
        [oid],
      );
      if (rows[0]) this.rows.set(oid, rows[0]);
    }
    return this.rows.get(oid);
  }

  /** The type itself, or the base type of a domain (recursively). */
  private async base(oid: number): Promise<{ oid: number; row: TypeRow | undefined }> {
    let current = oid;
    for (let depth = 0; depth < 8; depth++) {
      const row = await this.row(current);
      if (row?.typtype !== 'd') return { oid: current, row };
      current = Number(row.typbasetype);
    }
    return { oid: current, row: await this.row(current) };
  }

  async kind(oid: number, depth = 0): Promise<ValueKind> {
    const { oid: base, row } = await this.base(oid);
    if (row?.typcategory === 'A' && Number(row.typelem) !== 0 && depth < 4) {
      return {
        kind: 'array',
        element: await this.kind(Number(row.typelem), depth + 1),
        delimiter: row.typdelim || ',',
      };
    }
    if (base === OID.bool) return { kind: 'bool' };
    if (base === OID.bytea) return { kind: 'bytea' };
    if (base === OID.json || base === OID.jsonb) return { kind: 'json' };
    if (NUMBER_OIDS.has(base)) return { kind: 'number' };
    return { kind: 'text' };
  }

  async needsTextCompare(oid: number, depth = 0): Promise<boolean> {
    const { oid: base, row } = await this.base(oid);
    if (row?.typcategory === 'A' && Number(row.typelem) !== 0 && depth < 4) {
      return this.needsTextCompare(Number(row.typelem), depth + 1);
    }
    return base === OID.json || base === OID.xml || row?.typcategory === 'G';
  }
}
