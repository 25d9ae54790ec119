import { FerryError } from '@ferry/protocol';
import { describe, expect, it } from 'vitest';
import { openFerryDatabase } from './open-ferry-database.js';
import { todoSchema } from './test-support/test-db.js';

describe('in-memory database', () => {
  it('works on one connection, and reads wait for open write transactions', async () => {
    const db = await openFerryDatabase({ path: ':memory:', schema: todoSchema });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const writer = db.writeTransaction(async (tx) => {
      await tx.execute('INSERT INTO drafts (id) VALUES (?)', ['x']);
      await gate;
    });
    const read = db.getAll('SELECT id FROM drafts');
    release();
    await writer;
    expect(await read).toEqual([{ id: 'x' }]);
    await db.close();
    const error = await db.getAll('SELECT 1').catch((e: unknown) => e);
    expect(FerryError.is(error) && error.code).toBe('FERRY_C1006');
  });
});
