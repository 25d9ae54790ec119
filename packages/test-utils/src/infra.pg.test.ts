import { describe, expect, it } from 'vitest';
import { createTestDatabase, sql } from './pg.js';

describe('test Postgres', () => {
  it('is PostgreSQL 18 with logical WAL and a non-UTC default zone per database', async () => {
    const url = await createTestDatabase();
    const version = await sql(url, 'SHOW server_version_num');
    expect(Number(version.rows[0].server_version_num)).toBeGreaterThanOrEqual(180000);
    const wal = await sql(url, 'SHOW wal_level');
    expect(wal.rows[0].wal_level).toBe('logical');
    const tz = await sql(url, 'SHOW timezone');
    expect(tz.rows[0].TimeZone).toBe('America/Sao_Paulo');
  });
});
