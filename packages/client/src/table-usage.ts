import type { SqliteConnection, SqliteParam } from './driver.js';

/** The tables one statement reads and writes, by name. */
export interface TableUsage {
  readonly reads: ReadonlySet<string>;
  readonly writes: ReadonlySet<string>;
  /** The statement changes the schema (writes sqlite_schema): caches must be dropped. */
  readonly changesSchema: boolean;
  /** EXPLAIN failed; treat the statement as touching every table. */
  readonly unknown: boolean;
}

const UNKNOWN: TableUsage = { reads: new Set(), writes: new Set(), changesSchema: false, unknown: true };
const SCHEMA_ROOT_PAGE = 1;
const MAX_CACHED = 500;

/**
 * Finds the tables a statement reads and writes from its bytecode: `EXPLAIN`
 * lists `OpenRead`/`OpenWrite` (p2 = root page) and `Clear`/`Destroy`
 * (p1 = root page) for every b-tree it touches; root pages map to table
 * names through `sqlite_schema` (an index maps to the table it indexes).
 * Works on any driver, because it is only SQL. Results are cached per SQL
 * text until the schema changes.
 */
export class TableUsageAnalyzer {
  private readonly cache = new Map<string, TableUsage>();
  private rootPages: Map<number, string> | null = null;

  /**
   * The usage of `sql`. `params` are needed because some drivers refuse to
   * prepare a statement with unbound parameters; they do not change the result.
   */
  async analyze(connection: SqliteConnection, sql: string, params: readonly SqliteParam[] = []): Promise<TableUsage> {
    const cached = this.cache.get(sql);
    if (cached !== undefined) return cached;
    let program: Record<string, unknown>[];
    try {
      program = (await connection.execute(`EXPLAIN ${sql}`, params)).rows;
    } catch {
      return UNKNOWN;
    }
    const readPages: number[] = [];
    const writePages: number[] = [];
    for (const row of program) {
      const opcode = row['opcode'];
      // p3 is the database index for Open*: 0 = main. Temp/attached databases are not tracked.
      if (opcode === 'OpenRead' && Number(row['p3']) === 0) readPages.push(Number(row['p2']));
      else if (opcode === 'OpenWrite' && Number(row['p3']) === 0) writePages.push(Number(row['p2']));
      else if ((opcode === 'Clear' || opcode === 'Destroy') && Number(row['p2']) === 0)
        writePages.push(Number(row['p1']));
    }
    const changesSchema = writePages.includes(SCHEMA_ROOT_PAGE);
    if (changesSchema) {
      // DDL: forget everything we know; the statement has not run yet, so don't cache it.
      this.invalidate();
      return { reads: new Set(), writes: new Set(), changesSchema, unknown: true };
    }
    const reads = await this.namesOf(connection, readPages);
    const writes = await this.namesOf(connection, writePages);
    const usage: TableUsage = { reads, writes, changesSchema, unknown: false };
    if (this.cache.size >= MAX_CACHED) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(sql, usage);
    return usage;
  }

  /** Drops every cached result (call after schema changes). */
  invalidate(): void {
    this.cache.clear();
    this.rootPages = null;
  }

  private async namesOf(connection: SqliteConnection, pages: readonly number[]): Promise<Set<string>> {
    const names = new Set<string>();
    for (const page of pages) {
      if (page === SCHEMA_ROOT_PAGE) continue;
      let name = this.rootPages?.get(page);
      if (name === undefined) {
        await this.loadRootPages(connection);
        name = this.rootPages!.get(page);
      }
      if (name !== undefined) names.add(name);
    }
    return names;
  }

  private async loadRootPages(connection: SqliteConnection): Promise<void> {
    const { rows } = await connection.execute(`SELECT rootpage, tbl_name FROM sqlite_schema WHERE rootpage > 0`);
    this.rootPages = new Map(rows.map((r) => [Number(r['rootpage']), String(r['tbl_name'])]));
  }
}
