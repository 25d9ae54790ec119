/**
 * WebWorkerDriver in real Chromium: wa-sqlite in a module worker, on OPFS
 * and on IndexedDB. The page is a Vite build of the harness, so the worker
 * and WASM URLs are the ones an app's bundle would use.
 */
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callHarness, harnessValue, startHarness, type HarnessFixture } from './test-support/browser-fixture.js';
import { decodeValue, encodeValue, type Encoded } from './test-support/wire-values.js';

let fx: HarnessFixture;
let page: Page;

beforeAll(async () => {
  fx = await startHarness();
  page = await fx.newPage();
});

afterAll(() => fx?.close());

const enc = (values: unknown[]): Encoded[] => values.map(encodeValue);

for (const vfs of ['opfs', 'idb'] as const) {
  describe(`on ${vfs}`, () => {
    let id: number;

    it('opens on the requested VFS', async () => {
      const opened = await harnessValue(page, 'driverOpen', `driver-${vfs}-${Date.now()}.db`, vfs);
      expect(opened.vfs).toBe(vfs);
      expect(opened.sqliteVersion).toMatch(/^3\.\d+\.\d+$/);
      id = opened.id;
    });

    const exec = async (sql: string, params: unknown[] = []) => {
      const result = await harnessValue(page, 'driverExecute', id, sql, enc(params));
      return {
        rows: decodeValue(result.rows) as Record<string, unknown>[],
        rowsAffected: result.rowsAffected,
        insertId: decodeValue(result.insertId),
      };
    };

    it('creates a table, inserts and selects rows keyed by column name', async () => {
      const created = await exec('CREATE TABLE items (n INTEGER PRIMARY KEY, name TEXT, score REAL)');
      expect(created).toEqual({ rows: [], rowsAffected: 0, insertId: undefined });
      const inserted = await exec('INSERT INTO items (name, score) VALUES (?, ?)', ['a', 1.5]);
      expect(inserted).toEqual({ rows: [], rowsAffected: 1, insertId: 1 });
      await exec('INSERT INTO items (n, name, score) VALUES (?, ?, ?)', [10, 'b', null]);
      const selected = await exec('SELECT n, name, score, name AS alias FROM items ORDER BY n');
      expect(selected.rows).toEqual([
        { n: 1, name: 'a', score: 1.5, alias: 'a' },
        { n: 10, name: 'b', score: null, alias: 'b' },
      ]);
      expect(selected.rowsAffected).toBe(0);
      // A SELECT after a write does not report the write's changes.
      expect((await exec('SELECT count(*) AS c FROM items')).rowsAffected).toBe(0);
      // RETURNING: rows and the change count.
      const returning = await exec('UPDATE items SET score = 2 WHERE n >= ? RETURNING n', [1]);
      expect(returning.rows).toEqual([{ n: 1 }, { n: 10 }]);
      expect(returning.rowsAffected).toBe(2);
    });

    it('binds booleans as 0/1 and integral numbers as INTEGER', async () => {
      const { rows } = await exec('SELECT ? AS t, ? AS f, typeof(?) AS big, typeof(?) AS real, ? AS n', [
        true,
        false,
        2 ** 40,
        0.5,
        2 ** 40,
      ]);
      expect(rows).toEqual([{ t: 1, f: 0, big: 'integer', real: 'real', n: 2 ** 40 }]);
    });

    it('runs executeBatch with one prepared statement and sums the changes', async () => {
      await exec('CREATE TABLE batch (id TEXT PRIMARY KEY, v INTEGER)');
      const sets = Array.from({ length: 50 }, (_, i) => enc([`k${i}`, i]));
      const batch = await harnessValue(page, 'driverExecuteBatch', id, 'INSERT INTO batch VALUES (?, ?)', sets);
      expect(batch.rowsAffected).toBe(50);
      const again = await harnessValue(page, 'driverExecuteBatch', id, 'UPDATE batch SET v = v + 1 WHERE id = ?', [
        enc(['k1']),
        enc(['missing']),
        enc(['k2']),
      ]);
      expect(again.rowsAffected).toBe(2);
      expect((await exec('SELECT sum(v) AS s, count(*) AS c FROM batch')).rows).toEqual([{ s: 1227, c: 50 }]);
    });

    it('rejects a SQL error with its SQLite code and message', async () => {
      await exec('CREATE TABLE uniq (id TEXT PRIMARY KEY)');
      await exec('INSERT INTO uniq VALUES (?)', ['x']);
      const dup = await callHarness(page, 'driverExecute', id, 'INSERT INTO uniq VALUES (?)', enc(['x']));
      expect(dup.ok).toBe(false);
      if (dup.ok) return;
      expect(dup.error).toMatchObject({
        name: 'SqliteError',
        code: 'SQLITE_CONSTRAINT_PRIMARYKEY',
        errno: 1555,
        message: 'UNIQUE constraint failed: uniq.id',
        sqlite: true,
      });
      const syntax = await callHarness(page, 'driverExecute', id, 'SELEC 1');
      expect(syntax.ok ? null : syntax.error).toMatchObject({
        code: 'SQLITE_ERROR',
        message: 'near "SELEC": syntax error',
      });
      const missing = await callHarness(page, 'driverExecute', id, 'SELECT * FROM no_such_table');
      expect(missing.ok ? null : missing.error.message).toBe('no such table: no_such_table');
      // The statement that failed is reusable, and the connection still works.
      expect((await exec('INSERT INTO uniq VALUES (?)', ['y'])).rowsAffected).toBe(1);
      // Too many parameters is an error, not silently ignored.
      const extra = await callHarness(page, 'driverExecute', id, 'SELECT ?', enc([1, 2]));
      expect(extra.ok ? null : extra.error.code).toBe('SQLITE_RANGE');
    });

    it('keeps int8 exact at ±2^63 (bigint beyond 2^53, number below)', async () => {
      await exec('CREATE TABLE big (id INTEGER PRIMARY KEY, v INTEGER)');
      const values = [
        9223372036854775807n,
        -9223372036854775808n,
        9007199254740993n,
        -9007199254740993n,
        9007199254740991,
        -42,
      ];
      await harnessValue(
        page,
        'driverExecuteBatch',
        id,
        'INSERT INTO big (v) VALUES (?)',
        values.map((v) => enc([v])),
      );
      const { rows } = await exec('SELECT v, CAST(v AS TEXT) AS t FROM big ORDER BY id');
      expect(rows.map((r) => r['v'])).toEqual(values);
      expect(rows.map((r) => r['t'])).toEqual(values.map(String));
      // Out of range is rejected, not wrapped.
      const tooBig = await callHarness(page, 'driverExecute', id, 'SELECT ?', enc([2n ** 63n]));
      expect(tooBig.ok ? null : tooBig.error.code).toBe('SQLITE_RANGE');
      // A large rowid comes back exact as insertId.
      const inserted = await exec('INSERT INTO big (id, v) VALUES (?, 0)', [9007199254740993n]);
      expect(inserted.insertId).toBe(9007199254740993n);
    });

    it('round-trips blobs as Uint8Array', async () => {
      await exec('CREATE TABLE blobs (id TEXT PRIMARY KEY, b BLOB)');
      const bytes = Uint8Array.from({ length: 300 }, (_, i) => (i * 7) % 256);
      await exec('INSERT INTO blobs VALUES (?, ?)', ['one', bytes]);
      await exec('INSERT INTO blobs VALUES (?, ?)', ['empty', new Uint8Array(0)]);
      const { rows } = await exec('SELECT id, b, length(b) AS n FROM blobs ORDER BY id');
      expect(rows).toEqual([
        { id: 'empty', b: new Uint8Array(0), n: 0 },
        { id: 'one', b: bytes, n: 300 },
      ]);
    });

    it('has jsonb_each and json_extract (the client stages ops with them)', async () => {
      const { rows } = await exec(`SELECT key, value, type FROM jsonb_each(jsonb(?)) ORDER BY key`, [
        '{"a":1,"b":"x","c":9223372036854775807}',
      ]);
      expect(rows).toEqual([
        { key: 'a', value: 1, type: 'integer' },
        { key: 'b', value: 'x', type: 'text' },
        { key: 'c', value: 9223372036854775807n, type: 'integer' },
      ]);
    });

    it('runs several statements in one call, in order', async () => {
      const result = await exec(
        'CREATE TABLE multi (x); INSERT INTO multi VALUES (1), (2); SELECT sum(x) AS s FROM multi',
      );
      expect(result.rows).toEqual([{ s: 3 }]);
    });

    it('rolls back a transaction', async () => {
      await exec('CREATE TABLE tx (v)');
      await exec('BEGIN');
      await exec('INSERT INTO tx VALUES (1)');
      await exec('ROLLBACK');
      await exec('BEGIN');
      await exec('INSERT INTO tx VALUES (2)');
      await exec('COMMIT');
      expect((await exec('SELECT v FROM tx')).rows).toEqual([{ v: 2 }]);
    });

    it('closes; later calls fail with FERRY_C1006', async () => {
      await harnessValue(page, 'driverClose', id);
      const after = await callHarness(page, 'driverExecute', id, 'SELECT 1');
      expect(after.ok).toBe(false);
    });
  });
}

describe('the worker boundary', () => {
  it('a worker whose script fails to load rejects open with a typed FerryError', async () => {
    const result = await callHarness(page, 'driverOpenSpecial', 'missing', 'auto');
    expect(result.ok ? null : result.error).toMatchObject({ name: 'FerryError', code: 'FERRY_C1012', ferry: true });
    expect(result.ok ? '' : result.error.message).toMatch(/database worker failed/);
  });

  it('a worker that dies mid-request rejects that request and every later one', async () => {
    const opened = await harnessValue(page, 'driverOpenSpecial', 'crashing', 'auto');
    const first = await callHarness(page, 'driverExecute', opened.id, 'SELECT 1');
    expect(first.ok ? null : first.error).toMatchObject({ code: 'FERRY_C1012', ferry: true });
    expect(first.ok ? '' : first.error.message).toMatch(/boom: the worker crashed/);
    const later = await callHarness(page, 'driverExecute', opened.id, 'SELECT 1');
    expect(later.ok ? null : later.error.code).toBe('FERRY_C1012');
  });

  it('requests pipelined from the page are answered in order', async () => {
    const opened = await harnessValue(page, 'driverOpen', `order-${Date.now()}.db`, 'auto');
    const results = await page.evaluate(async (id) => {
      const h = window.ferryHarness;
      const calls = [
        h.driverExecute(id, 'CREATE TABLE t (v)'),
        ...Array.from({ length: 20 }, (_, i) => h.driverExecute(id, 'INSERT INTO t VALUES (?)', [i])),
        h.driverExecute(id, 'SELECT count(*) AS n FROM t'),
      ];
      return Promise.all(calls);
    }, opened.id);
    expect(results.every((r) => r.ok)).toBe(true);
    const last = results.at(-1)!;
    expect(last.ok ? decodeValue(last.value.rows) : null).toEqual([{ n: 20 }]);
    await harnessValue(page, 'driverClose', opened.id);
  });

  it('without OPFS sync access handles, auto falls back to IndexedDB and forcing opfs fails with SQLITE_CANTOPEN', async () => {
    const auto = await harnessValue(page, 'driverOpenSpecial', 'no-opfs', 'auto');
    expect(auto.vfs).toBe('idb');
    const inserted = await harnessValue(page, 'driverExecute', auto.id, 'SELECT 41 + 1 AS n');
    expect(decodeValue(inserted.rows)).toEqual([{ n: 42 }]);
    await harnessValue(page, 'driverClose', auto.id);
    const forced = await callHarness(page, 'driverOpenSpecial', 'no-opfs', 'opfs');
    expect(forced.ok ? null : forced.error).toMatchObject({ name: 'SqliteError', code: 'SQLITE_CANTOPEN' });
  });

  for (const vfs of ['opfs', 'idb'] as const) {
    it(`exclusive locking on ${vfs}: writes, reads, and the data is there when reopened`, async () => {
      const name = `exclusive-${vfs}-${Date.now()}.db`;
      const first = await harnessValue(page, 'driverOpen', name, vfs, true);
      await harnessValue(page, 'driverExecute', first.id, 'CREATE TABLE t (v INTEGER)');
      await harnessValue(page, 'driverExecute', first.id, 'INSERT INTO t VALUES (1), (2)');
      const mode = await harnessValue(page, 'driverExecute', first.id, 'PRAGMA locking_mode');
      expect(decodeValue(mode.rows)).toEqual([{ locking_mode: 'exclusive' }]);
      await harnessValue(page, 'driverClose', first.id);
      const second = await harnessValue(page, 'driverOpen', name, vfs);
      const rows = await harnessValue(page, 'driverExecute', second.id, 'SELECT sum(v) AS s FROM t');
      expect(decodeValue(rows.rows)).toEqual([{ s: 3 }]);
      await harnessValue(page, 'driverClose', second.id);
    });
  }

  it('auto picks OPFS in Chromium', async () => {
    const opened = await harnessValue(page, 'driverOpen', `auto-${Date.now()}.db`, 'auto');
    expect(opened.vfs).toBe('opfs');
    await harnessValue(page, 'driverClose', opened.id);
  });
});
