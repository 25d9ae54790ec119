import type { BucketStore } from './bucket-store.js';
import type { SqliteConnection } from './driver.js';
import { KV_SCHEMA } from './internal-tables.js';
import { quoteIdentifier, type ResolvedTable } from './schema.js';

/** What Ferry applied last time, kept in `ferry_kv` to find indexes to drop. */
interface AppliedSchema {
  tables: Record<string, { localOnly: boolean; indexes: Record<string, string> }>;
}

/** Physical name of a schema index. */
export function indexName(table: string, index: string): string {
  return `${table}__${index}`;
}

function createTableSql(table: ResolvedTable): string {
  const columns = table.columns.map((c) => `${quoteIdentifier(c.name)} ${c.type}`);
  return `CREATE TABLE ${quoteIdentifier(table.name)} (${['id TEXT PRIMARY KEY NOT NULL', ...columns].join(', ')})`;
}

function indexSqls(table: ResolvedTable): Map<string, string> {
  const result = new Map<string, string>();
  for (const index of table.indexes) {
    const name = indexName(table.name, index.name);
    const columns = index.columns.map((c) => `${quoteIdentifier(c.name)}${c.descending ? ' DESC' : ''}`).join(', ');
    result.set(name, `CREATE INDEX ${quoteIdentifier(name)} ON ${quoteIdentifier(table.name)} (${columns})`);
  }
  return result;
}

/**
 * Brings the database's tables in line with `tables` (the schema's, plus
 * the built-in synced ones), inside the caller's
 * write transaction: creates missing tables, adds missing columns, creates
 * new indexes and drops indexes Ferry created that the schema no longer
 * declares (apps' own indexes are never touched). Removed columns and
 * tables stay. Synced tables that are new or gained columns are filled from
 * the kept row data, so no resync is needed. Returns the tables changed.
 */
export async function applySchema(
  conn: SqliteConnection,
  tables: readonly ResolvedTable[],
  store: BucketStore,
): Promise<Set<string>> {
  const recordedText = (await conn.execute(`SELECT value FROM ferry_kv WHERE key = ?`, [KV_SCHEMA])).rows[0]?.['value'];
  const recorded: AppliedSchema =
    typeof recordedText === 'string' ? (JSON.parse(recordedText) as AppliedSchema) : { tables: {} };
  const applied: AppliedSchema = { tables: {} };
  const changed = new Set<string>();

  for (const table of tables) {
    const exists =
      (await conn.execute(`SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?`, [table.name])).rows.length >
      0;
    let refill = false;
    if (!exists) {
      await conn.execute(createTableSql(table));
      refill = !table.localOnly;
    } else {
      const info = await conn.execute(`SELECT name FROM pragma_table_info(?)`, [table.name]);
      const present = new Set(info.rows.map((r) => String(r['name']).toLowerCase()));
      for (const column of table.columns) {
        if (present.has(column.name.toLowerCase())) continue;
        await conn.execute(
          `ALTER TABLE ${quoteIdentifier(table.name)} ADD COLUMN ${quoteIdentifier(column.name)} ${column.type}`,
        );
        refill = !table.localOnly;
      }
    }

    const wanted = indexSqls(table);
    const before = recorded.tables[table.name]?.indexes ?? {};
    for (const [name, sql] of Object.entries(before)) {
      if (wanted.get(name) !== sql) await conn.execute(`DROP INDEX IF EXISTS ${quoteIdentifier(name)}`);
    }
    for (const [name, sql] of wanted) {
      const present =
        (await conn.execute(`SELECT 1 FROM sqlite_schema WHERE type = 'index' AND name = ?`, [name])).rows.length > 0;
      if (!present) await conn.execute(sql);
    }
    applied.tables[table.name] = { localOnly: table.localOnly, indexes: Object.fromEntries(wanted) };

    if (refill) {
      await store.materializeTable(conn, table);
      changed.add(table.name);
    }
  }
  // Indexes of tables that left the schema: drop the ones Ferry made, keep the table.
  for (const [tableName, entry] of Object.entries(recorded.tables)) {
    if (applied.tables[tableName] !== undefined) continue;
    for (const name of Object.keys(entry.indexes)) await conn.execute(`DROP INDEX IF EXISTS ${quoteIdentifier(name)}`);
  }
  await conn.execute(`INSERT OR REPLACE INTO ferry_kv (key, value) VALUES (?, ?)`, [
    KV_SCHEMA,
    JSON.stringify(applied),
  ]);
  return changed;
}
