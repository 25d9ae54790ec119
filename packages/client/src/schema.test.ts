import { describe, expect, it } from 'vitest';
import { column, Schema, Table } from './schema.js';

describe('Schema', () => {
  it('resolves tables, columns and index directions in declaration order', () => {
    const schema = new Schema({
      todos: new Table({ title: column.text, done: column.integer }, { indexes: { by_title: ['-title', 'id'] } }),
      drafts: new Table({ body: column.text }, { localOnly: true }),
    });
    expect(schema.resolved).toEqual([
      {
        name: 'todos',
        columns: [
          { name: 'title', type: 'TEXT' },
          { name: 'done', type: 'INTEGER' },
        ],
        indexes: [
          {
            name: 'by_title',
            columns: [
              { name: 'title', descending: true },
              { name: 'id', descending: false },
            ],
          },
        ],
        localOnly: false,
      },
      { name: 'drafts', columns: [{ name: 'body', type: 'TEXT' }], indexes: [], localOnly: true },
    ]);
    expect(schema.table('TODOS')?.name).toBe('todos');
  });

  it('rejects duplicate columns (case-insensitive) and reserved names', () => {
    expect(() => new Schema({ t: new Table({ a: column.text, A: column.integer }) })).toThrow(/twice/);
    expect(() => new Schema({ sqlite_x: new Table({}) })).toThrow(/reserved/);
  });
});
