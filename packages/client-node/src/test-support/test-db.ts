import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { column, Schema, Table, type FerryDatabase } from '@ferry/client';
import { openFerryDatabase } from '../open-ferry-database.js';
import { FakeSyncService } from './fake-sync-service.js';

export const todoSchema = new Schema({
  todos: new Table(
    { list_id: column.text, title: column.text, done: column.integer, amount: column.real, big: column.integer },
    { indexes: { by_list: ['list_id', '-title'] } },
  ),
  lists: new Table({ name: column.text }),
  drafts: new Table({ body: column.text }, { localOnly: true }),
});

/** A temp directory removed by the returned cleanup. */
export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-client-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface TestContext extends AsyncDisposable {
  db: FerryDatabase;
  service: FakeSyncService;
  path: string;
  dir: string;
  connect(params?: Record<string, unknown>): Promise<void>;
}

export const connector = {
  tokens: 0,
  async fetchCredentials() {
    return { endpoint: 'http://ferry.test/', token: `token-${++connector.tokens}` };
  },
};

export async function openTestDb(schema: Schema = todoSchema): Promise<TestContext> {
  const { dir, cleanup } = tempDir();
  const path = join(dir, 'app.db');
  const service = new FakeSyncService();
  const db = await openFerryDatabase({ path, schema, fetch: service.fetch });
  return {
    db,
    service,
    path,
    dir,
    connect: (params) =>
      db.connect(connector, { retryDelay: { initialMs: 5, maxMs: 20 }, ...(params === undefined ? {} : { params }) }),
    async [Symbol.asyncDispose]() {
      await db.close();
      cleanup();
    },
  };
}
