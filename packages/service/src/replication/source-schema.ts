/**
 * What the replicator needs to know about (and set up in) the source
 * database: wal_level, the rules' tables with their columns and replica
 * identity, the publication, and the slot.
 */
import { FerryError } from '@ferry/protocol';
import type { SourceTableName } from '@ferry/rules';
import type pg from 'pg';
import { quoteIdent } from '../storage/sql.js';
import type { MappedColumn } from './relation-mapper.js';

export interface SourceTableInfo extends SourceTableName {
  relid: number;
  /** d (default: primary key), i (index), f (full), n (nothing). */
  replicaIdentity: string;
  /** Replicated columns in attribute order (generated columns are not published, so not copied either). */
  columns: MappedColumn[];
  /** Planner row estimate, null if never analyzed. */
  estimatedRows: number | null;
}

type Queryable = Pick<pg.ClientBase, 'query'>;

/** Throws FERRY_S3001 unless the server has wal_level=logical. */
export async function checkWalLevel(client: Queryable): Promise<void> {
  const { rows } = await client.query<{ wal_level: string }>('SHOW wal_level');
  const level = rows[0]?.wal_level;
  if (level !== 'logical') {
    throw new FerryError(
      'FERRY_S3001',
      `Postgres has wal_level=${level ?? 'unknown'}; Ferry needs wal_level=logical (set it and restart Postgres)`,
      {
        details: { wal_level: level },
      },
    );
  }
}

export async function serverVersionNum(client: Queryable): Promise<number> {
  const { rows } = await client.query<{ server_version_num: string }>('SHOW server_version_num');
  return Number(rows[0]?.server_version_num ?? 0);
}

/**
 * Looks up the tables in the catalog. Throws FERRY_S3002 if one is missing
 * and FERRY_S3003 if one has no usable replica identity.
 */
export async function describeSourceTables(
  client: Queryable,
  tables: readonly SourceTableName[],
): Promise<SourceTableInfo[]> {
  const out: SourceTableInfo[] = [];
  for (const table of tables) {
    const { rows } = await client.query<{ oid: string; relreplident: string; relkind: string; reltuples: string }>(
      `SELECT c.oid::int8 AS oid, c.relreplident, c.relkind, c.reltuples
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`,
      [table.schema, table.name],
    );
    const rel = rows[0];
    if (!rel) {
      throw new FerryError(
        'FERRY_S3002',
        `table ${table.schema}.${table.name} used by the sync rules does not exist in the source database`,
        {
          details: { schema: table.schema, table: table.name },
        },
      );
    }
    const relid = Number(rel.oid);
    const identity = rel.relreplident;
    const { rows: cols } = await client.query<{ attname: string; atttypid: string; is_key: boolean }>(
      `SELECT a.attname, a.atttypid::int8 AS atttypid,
              CASE $2::text
                WHEN 'f' THEN true
                WHEN 'd' THEN EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary AND a.attnum = ANY(i.indkey))
                WHEN 'i' THEN EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = a.attrelid AND i.indisreplident AND a.attnum = ANY(i.indkey))
                ELSE false END AS is_key
         FROM pg_catalog.pg_attribute a
        WHERE a.attrelid = $1::int8::oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
        ORDER BY a.attnum`,
      [relid, identity],
    );
    const columns = cols.map((c) => ({
      name: c.attname,
      typeOid: Number(c.atttypid),
      isKey: c.is_key === true || String(c.is_key) === 't',
    }));
    if (!columns.some((c) => c.isKey)) {
      throw new FerryError(
        'FERRY_S3003',
        `table ${table.schema}.${table.name} has no replica identity (REPLICA IDENTITY ${identityName(identity)}${identity === 'd' ? ' without a primary key' : ''}); add a primary key or run ALTER TABLE ${quoteIdent(table.schema)}.${quoteIdent(table.name)} REPLICA IDENTITY FULL`,
        { details: { schema: table.schema, table: table.name, replicaIdentity: identity } },
      );
    }
    const estimate = Number(rel.reltuples);
    out.push({
      schema: table.schema,
      name: table.name,
      relid,
      replicaIdentity: identity,
      columns,
      estimatedRows: estimate >= 0 ? Math.round(estimate) : null,
    });
  }
  return out;
}

function identityName(code: string): string {
  return ({ d: 'DEFAULT', n: 'NOTHING', f: 'FULL', i: 'USING INDEX' } as Record<string, string>)[code] ?? code;
}

/** Creates the publication for exactly these tables, or updates its table list. */
export async function ensurePublication(
  client: Queryable,
  name: string,
  tables: readonly SourceTableName[],
): Promise<void> {
  const list = tables.map((t) => `${quoteIdent(t.schema)}.${quoteIdent(t.name)}`).join(', ');
  const { rows } = await client.query<{ puballtables: boolean }>(
    'SELECT puballtables FROM pg_catalog.pg_publication WHERE pubname = $1',
    [name],
  );
  const existing = rows[0];
  if (!existing) {
    await client.query(
      tables.length > 0
        ? `CREATE PUBLICATION ${quoteIdent(name)} FOR TABLE ${list}`
        : `CREATE PUBLICATION ${quoteIdent(name)}`,
    );
    return;
  }
  if (existing.puballtables === true || String(existing.puballtables) === 't') return;
  if (tables.length === 0) {
    await client.query(`DROP PUBLICATION ${quoteIdent(name)}`);
    await client.query(`CREATE PUBLICATION ${quoteIdent(name)}`);
    return;
  }
  const { rows: current } = await client.query<{ schemaname: string; tablename: string }>(
    'SELECT schemaname, tablename FROM pg_catalog.pg_publication_tables WHERE pubname = $1',
    [name],
  );
  const have = new Set(current.map((r) => `${r.schemaname}.${r.tablename}`));
  const want = new Set(tables.map((t) => `${t.schema}.${t.name}`));
  const same = have.size === want.size && [...want].every((t) => have.has(t));
  if (!same) await client.query(`ALTER PUBLICATION ${quoteIdent(name)} SET TABLE ${list}`);
}

export interface SlotInfo {
  slotName: string;
  activePid: number | null;
  /** The slot can no longer stream (WAL removed or invalidated). */
  lost: boolean;
  confirmedFlushLsn: string | null;
}

export async function getSlot(client: Queryable, slotName: string): Promise<SlotInfo | null> {
  const { rows } = await client.query<{
    slot_name: string;
    active_pid: number | null;
    wal_status: string | null;
    confirmed_flush_lsn: string | null;
    plugin: string | null;
  }>(
    `SELECT slot_name, active_pid, wal_status, confirmed_flush_lsn::text AS confirmed_flush_lsn, plugin
       FROM pg_catalog.pg_replication_slots WHERE slot_name = $1 AND database = current_database()`,
    [slotName],
  );
  const r = rows[0];
  if (!r) return null;
  return {
    slotName: r.slot_name,
    activePid: r.active_pid === null ? null : Number(r.active_pid),
    lost: r.wal_status === 'lost' || r.plugin !== 'pgoutput',
    confirmedFlushLsn: r.confirmed_flush_lsn,
  };
}

/**
 * Drops a slot. A slot still held by a dead replicator's walsender (the
 * caller holds the replication lock, so any holder is stale) is freed by
 * terminating that backend first.
 */
export async function dropSlot(client: Queryable, slotName: string): Promise<void> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const slot = await getSlot(client, slotName);
    if (!slot) return;
    if (slot.activePid !== null) {
      await client.query('SELECT pg_terminate_backend($1)', [slot.activePid]);
      await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    try {
      await client.query('SELECT pg_drop_replication_slot($1)', [slotName]);
      return;
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === '42704') return; // already gone
      if (code !== '55006') throw error; // 55006: slot is active; retry
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new FerryError('FERRY_S3005', `could not drop replication slot ${slotName}: it stays active`);
}

/** Default names: the publication is per database, the slot is cluster-wide and so includes the database name. */
export function defaultReplicationNames(
  database: string,
  storageSchema: string,
): { slotName: string; publicationName: string } {
  const clean = (s: string) => s.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  let slot = `ferry_${clean(storageSchema)}_${clean(database)}`;
  if (slot.length > 63) {
    let h = 0x811c9dc5;
    for (let i = 0; i < slot.length; i++) h = Math.imul(h ^ slot.charCodeAt(i), 0x01000193) >>> 0;
    slot = slot.slice(0, 54) + '_' + h.toString(16).padStart(8, '0');
  }
  return { slotName: slot, publicationName: `ferry_${clean(storageSchema)}`.slice(0, 63) };
}
