/**
 * The initial copy: reads every rules table from the slot's exported
 * snapshot with a cursor, in batches, and stores the rows through the bucket
 * writer. The next batch is fetched while the current one is written, and at
 * most two batches are in memory at a time.
 */
import type pg from 'pg';
import type { BucketWriter, StoredSourceTable } from '../storage/bucket-writer.js';
import type { CompleteRawRow } from '../storage/row-state.js';
import { quoteIdent } from '../storage/sql.js';
import { RelationMapper } from './relation-mapper.js';
import type { SourceTableInfo } from './source-schema.js';
import type { TypeRegistry } from './type-mapping.js';

export interface SnapshotProgress {
  /** `schema.table`. */
  table: string;
  rowsCopied: number;
  /** Planner estimate of the table's rows; null if unknown. */
  totalEstimate: number | null;
  done: boolean;
}

export interface InitialCopyOptions {
  /** A source connection (raw text types) not used by anything else meanwhile. */
  client: pg.Client;
  snapshotName: string;
  tables: readonly { stored: StoredSourceTable; info: SourceTableInfo }[];
  writer: BucketWriter;
  types: TypeRegistry;
  batchSize: number;
  onProgress: (progress: SnapshotProgress) => void;
  onOpsStored: (count: number) => void;
  /** Checked between batches; throwing aborts the copy. */
  checkAborted: () => void;
}

export async function copyInitialSnapshot(options: InitialCopyOptions): Promise<void> {
  const { client, writer } = options;
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    await client.query(`SET TRANSACTION SNAPSHOT '${options.snapshotName.replace(/'/g, "''")}'`);
    for (const { stored, info } of options.tables) {
      const label = `${info.schema}.${info.name}`;
      const mapper = new RelationMapper(info.columns, options.types, info.replicaIdentity);
      const columns = info.columns.map((c) => quoteIdent(c.name)).join(', ');
      await client.query(
        `DECLARE ferry_copy NO SCROLL CURSOR FOR SELECT ${columns} FROM ${quoteIdent(info.schema)}.${quoteIdent(info.name)}`,
      );
      const fetch = () =>
        client.query<unknown[]>({ text: `FETCH ${options.batchSize} FROM ferry_copy`, rowMode: 'array' });
      let copied = 0;
      options.onProgress({ table: label, rowsCopied: 0, totalEstimate: info.estimatedRows, done: false });
      let next = fetch();
      for (;;) {
        const { rows } = await next;
        if (rows.length === 0) break;
        options.checkAborted();
        next =
          rows.length < options.batchSize
            ? Promise.resolve({ rows: [] as unknown[][] } as unknown as pg.QueryResult<unknown[]>)
            : fetch();
        // Avoid an unhandled rejection if the write below fails first.
        next.catch(() => {});
        const batch = rows.map((values) => {
          const tuple = values as (string | null)[];
          return { key: mapper.keyOf(tuple), row: mapper.rawRow(tuple) as CompleteRawRow };
        });
        const ops = await writer.writeSnapshotRows(stored, batch, mapper.toSqlite, { uniqueKeys: mapper.uniqueKeys });
        copied += rows.length;
        if (ops > 0) options.onOpsStored(ops);
        options.onProgress({ table: label, rowsCopied: copied, totalEstimate: info.estimatedRows, done: false });
      }
      await client.query('CLOSE ferry_copy');
      await writer.markTableCopied(stored);
      options.onProgress({ table: label, rowsCopied: copied, totalEstimate: info.estimatedRows, done: true });
    }
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  }
}
