/** Ferry tables apps read and watch (the others are never reported). */
const PUBLIC_INTERNAL_TABLES: ReadonlySet<string> = new Set([
  'ferry_rejections',
  'ferry_conflicts',
  'ferry_violations',
]);

/** A batch of committed changes. */
export interface TableChange {
  /** Names of the tables written (never Ferry's internal `ferry_` tables, except the public ones). */
  readonly tables: ReadonlySet<string>;
  /** The writer could not tell which tables changed (e.g. DDL): assume any. */
  readonly unknown: boolean;
}

export type TableChangeListener = (change: TableChange) => void;

/** Fans committed table changes out to watchers and `onChange` listeners. */
export class TableChangeEmitter {
  private readonly listeners = new Set<TableChangeListener>();

  subscribe(listener: TableChangeListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /**
   * Reports a committed change. Internal tables are dropped (except the
   * public ones: `ferry_rejections`, `ferry_conflicts`, `ferry_violations`); an empty, known change is not reported.
   */
  emit(tables: Iterable<string>, unknown = false): void {
    const visible = visibleTables(tables);
    if (visible.size === 0 && !unknown) return;
    const change: TableChange = { tables: visible, unknown };
    for (const listener of this.listeners) listener(change);
  }
}

/** The tables of `tables` apps may see changes of: all but Ferry's internal ones (except the public ones). */
export function visibleTables(tables: Iterable<string>): Set<string> {
  const visible = new Set<string>();
  for (const table of tables) {
    const lower = table.toLowerCase();
    if (!lower.startsWith('ferry_') || PUBLIC_INTERNAL_TABLES.has(lower)) visible.add(table);
  }
  return visible;
}

/** Whether a change touches any of `tables` (case-insensitive, like SQLite names). */
export function touches(change: TableChange, tables: ReadonlySet<string>): boolean {
  if (change.unknown) return true;
  for (const table of change.tables) if (tables.has(table.toLowerCase())) return true;
  return false;
}
