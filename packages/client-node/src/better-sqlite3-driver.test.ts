import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BetterSqlite3Driver } from './better-sqlite3-driver.js';

const dirs: string[] = [];
function tempFile(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ferry-driver-'));
  dirs.push(dir);
  return path.join(dir, 'db.sqlite');
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('BetterSqlite3Driver rows', () => {
  it('returns the same row objects as better-sqlite3 itself, key order included', async () => {
    const file = tempFile();
    const driver = new BetterSqlite3Driver({ path: file });
    await driver.writer.execute(`CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER, r REAL, s TEXT, b BLOB, z)`);
    await driver.writer.execute(
      `INSERT INTO t VALUES ('a', 9007199254740991, 1.5, 'x', x'00ff', NULL), ('b', -1, 0, '', NULL, 3)`,
    );
    const sql = 'SELECT * FROM t ORDER BY id';
    const ours = (await driver.reader!.execute(sql)).rows;
    const plain = new Database(file, { readonly: true });
    const theirs = plain.prepare(sql).all();
    plain.close();
    expect(ours).toEqual(theirs);
    expect(ours.map((r) => Object.keys(r))).toEqual(theirs.map((r) => Object.keys(r as object)));
    driver.close();
  });

  it('keeps the last of duplicate column names and drops a __proto__ column, as better-sqlite3 does', async () => {
    const driver = new BetterSqlite3Driver({ path: ':memory:' });
    const plain = new Database(':memory:');
    for (const sql of [`SELECT 1 AS a, 2 AS a, 3 AS b`, `SELECT 'x' AS "__proto__", 1 AS ok`]) {
      const [ours] = (await driver.writer.execute(sql)).rows;
      const theirs = plain.prepare(sql).get() as Record<string, unknown>;
      expect(ours).toEqual(theirs);
      expect(Object.getPrototypeOf(ours)).toBe(Object.prototype);
    }
    expect((await driver.writer.execute(`SELECT 1 AS a, 2 AS a, 3 AS b`)).rows).toEqual([{ a: 2, b: 3 }]);
    plain.close();
    driver.close();
  });

  it('follows a cached SELECT * when another connection adds a column', async () => {
    const driver = new BetterSqlite3Driver({ path: tempFile() });
    await driver.writer.execute(`CREATE TABLE t (id TEXT PRIMARY KEY, a TEXT)`);
    await driver.writer.execute(`INSERT INTO t VALUES ('1', 'x')`);
    expect((await driver.reader!.execute('SELECT * FROM t')).rows).toEqual([{ id: '1', a: 'x' }]);
    await driver.writer.execute(`ALTER TABLE t ADD COLUMN c INTEGER DEFAULT 7`);
    expect((await driver.reader!.execute('SELECT * FROM t')).rows).toEqual([{ id: '1', a: 'x', c: 7 }]);
    await driver.writer.execute(`ALTER TABLE t RENAME COLUMN a TO renamed`);
    expect((await driver.reader!.execute('SELECT * FROM t')).rows).toEqual([{ id: '1', renamed: 'x', c: 7 }]);
    driver.close();
  });
});

describe('BetterSqlite3Driver WAL', () => {
  it('keeps the WAL bounded through a burst of commits that never yields to timers', async () => {
    const file = tempFile();
    const driver = new BetterSqlite3Driver({ path: file });
    await driver.writer.execute(`CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)`);
    const body = 'x'.repeat(2000);
    // Each commit appends ~2 pages to the WAL; awaiting only resolved promises keeps the deferred checkpoint timer from firing.
    for (let i = 0; i < 5000; i++) {
      await driver.writer.execute('BEGIN');
      await driver.writer.execute('INSERT INTO t (id, body) VALUES (?, ?)', [i, body]);
      await driver.writer.execute('COMMIT');
    }
    const frames = driver.writer.db.pragma('wal_checkpoint(PASSIVE)', { simple: false }) as { log: number }[];
    // Without a commit-count bound the log holds every frame of the burst (> 10,000 frames).
    expect(frames[0]!.log).toBeLessThan(3000);
    driver.close();
  });
});
