import { quoteIdent } from '@ferry/cli';
import pg from 'pg';
import { inject } from 'vitest';
import './provided-context.js';

let counter = 0;

/** The shared test server's connection string for `database`. */
export function testPostgresUrl(database = 'postgres'): string {
  const { url } = inject('ferryPg');
  const u = new URL(url);
  u.pathname = '/' + encodeURIComponent(database);
  return u.toString();
}

/**
 * Creates a fresh, empty database on the run's shared Postgres and returns
 * its connection string. Its default time zone is not UTC, so tests catch
 * code that assumes one. Each test file should use its own.
 */
export async function createTestDatabase(prefix = 'ferry_test'): Promise<string> {
  const name = `${prefix}_${process.pid}_${Date.now().toString(36)}_${counter++}`.toLowerCase();
  const admin = new pg.Client({ connectionString: testPostgresUrl('postgres') });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${quoteIdent(name)}`);
    await admin.query(`ALTER DATABASE ${quoteIdent(name)} SET timezone TO 'America/Sao_Paulo'`);
  } finally {
    await admin.end();
  }
  return testPostgresUrl(name);
}

/** Runs SQL against a database with a short-lived connection. */
export async function sql(url: string, text: string, params: unknown[] = []): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(text, params);
  } finally {
    await client.end();
  }
}
