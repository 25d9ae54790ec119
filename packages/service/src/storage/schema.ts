/**
 * Bucket storage tables (in a configurable schema, default `ferry`).
 *
 * - `state`: one row. The replication bookkeeping (rules hash, slot, whether
 *   the initial copy completed, the last op id ever allocated, the latest
 *   published checkpoint and the source LSNs it covers).
 * - `source_tables`: the tables the rules read, with their copy progress.
 * - `ops`: the per-bucket op log, PRIMARY KEY (bucket, op_id).
 * - `bucket_state`: per bucket the wrapping u32 checksum sum, op count and
 *   last op id, at the latest checkpoint (updated in the checkpoint's transaction).
 * - `current_rows`: per source row (table, replica identity key) its full raw
 *   row, the (bucket, table, id) objects it is in and the lookups it is
 *   indexed under.
 * - `parameter_rows`: parameter-query rows by lookup.
 * - `checkpoints`: one row per published checkpoint with the lookups whose
 *   parameter rows changed in it (NULL = unknown); pruned after a while.
 * - `write_checkpoints`: per (user, client) write checkpoint ids with the
 *   source LSN they wait for (migration 2).
 *
 * Migrations are idempotent and serialized with a transaction-level
 * advisory lock, so several service processes may run them at once.
 */
import { quoteIdent } from './sql.js';

/** Ordered migrations; never edit a released one, append a new one. */
export function migrations(schema: string): string[] {
  const s = quoteIdent(schema);
  return [
    `
    CREATE TABLE ${s}.state (
      id integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
      rules_hash text,
      slot_name text,
      snapshot_done boolean NOT NULL DEFAULT false,
      last_op_id bigint NOT NULL DEFAULT 0,
      checkpoint bigint,
      commit_lsn bigint,
      end_lsn bigint,
      commit_time timestamptz,
      updated_at timestamptz NOT NULL DEFAULT now()
    );
    INSERT INTO ${s}.state (id) VALUES (1);
    CREATE TABLE ${s}.source_tables (
      id serial PRIMARY KEY,
      schema_name text NOT NULL,
      table_name text NOT NULL,
      data boolean NOT NULL,
      parameters boolean NOT NULL,
      snapshot_done boolean NOT NULL DEFAULT false,
      rows_copied bigint NOT NULL DEFAULT 0,
      UNIQUE (schema_name, table_name)
    );
    CREATE TABLE ${s}.ops (
      bucket text NOT NULL,
      op_id bigint NOT NULL,
      op smallint NOT NULL,
      object_type text,
      object_id text,
      subkey text,
      data text,
      checksum bigint NOT NULL,
      PRIMARY KEY (bucket, op_id)
    );
    CREATE TABLE ${s}.bucket_state (
      bucket text PRIMARY KEY,
      checksum bigint NOT NULL,
      count bigint NOT NULL,
      last_op_id bigint NOT NULL
    );
    CREATE INDEX bucket_state_last_op_id ON ${s}.bucket_state (last_op_id);
    CREATE TABLE ${s}.current_rows (
      table_id integer NOT NULL,
      row_key text NOT NULL,
      data text NOT NULL,
      buckets text NOT NULL,
      lookups text NOT NULL,
      PRIMARY KEY (table_id, row_key)
    );
    CREATE TABLE ${s}.parameter_rows (
      lookup text NOT NULL,
      table_id integer NOT NULL,
      row_key text NOT NULL,
      params text NOT NULL,
      PRIMARY KEY (lookup, table_id, row_key)
    );
    CREATE TABLE ${s}.checkpoints (
      op_id bigint PRIMARY KEY,
      lsn bigint,
      commit_time timestamptz,
      created_at timestamptz NOT NULL DEFAULT now(),
      changed_lookups text[]
    );
    `,
    // 2: write checkpoints (issue 4). `lsn` is the source WAL position when the
    // client asked; the id is covered once `state.end_lsn >= lsn`.
    `
    CREATE SEQUENCE ${s}.write_checkpoint_ids;
    CREATE TABLE ${s}.write_checkpoints (
      id bigint PRIMARY KEY DEFAULT nextval('${schema}.write_checkpoint_ids'),
      user_id text NOT NULL,
      client_id text NOT NULL,
      lsn bigint NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX write_checkpoints_lsn ON ${s}.write_checkpoints (lsn);
    CREATE INDEX write_checkpoints_created_at ON ${s}.write_checkpoints (created_at);
    CREATE INDEX write_checkpoints_owner ON ${s}.write_checkpoints (user_id, client_id, id);
    `,
  ];
}

/** Applies pending migrations in one transaction. Safe to run concurrently from several processes. */
export async function migrate(
  client: { query(text: string, values?: unknown[]): Promise<{ rows: Record<string, unknown>[] }> },
  schema: string,
): Promise<void> {
  const s = quoteIdent(schema);
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 7))', [`ferry-migrate:${schema}`]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${s}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${s}.migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const { rows } = await client.query(`SELECT coalesce(max(version), 0) AS v FROM ${s}.migrations`);
    const current = Number(rows[0]?.['v'] ?? 0);
    const all = migrations(schema);
    for (let version = current + 1; version <= all.length; version++) {
      await client.query(all[version - 1]!);
      await client.query(`INSERT INTO ${s}.migrations (version) VALUES ($1)`, [version]);
    }
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  }
}
