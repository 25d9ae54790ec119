import { readdir, readFile } from 'node:fs/promises';
import { createTestDatabase, sql } from '@ferry/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tx } from './testing.js';
import { WriteApi } from './write-api.js';
import { compileWriteRules } from './write-rules.js';

const demo = (file: string) => new URL(`../../../../apps/tasks/${file}`, import.meta.url);
const LAUNCH = '11111111-1111-4111-8111-111111111111';
const FIELD = '22222222-2222-4222-8222-222222222222';

let url: string;
let api: WriteApi;

beforeAll(async () => {
  url = await createTestDatabase('ferry_demo_rules');
  const migrations = (await readdir(demo('migrations'))).filter((f) => f.endsWith('.sql')).sort();
  for (const migration of migrations) await sql(url, await readFile(demo(`migrations/${migration}`), 'utf8'));
  const rules = await compileWriteRules(await readFile(demo('write-rules.yaml'), 'utf8'), {
    file: 'apps/tasks/write-rules.yaml',
  });
  api = await WriteApi.open({ rules, connectionString: url });
});
afterAll(async () => {
  await api?.close();
});

const alice = { userId: 'alice', claims: { sub: 'alice' } };
const bob = { userId: 'bob', claims: { sub: 'bob' } };

describe('the demo app write rules (apps/tasks/write-rules.yaml)', () => {
  it('lets members create, edit, move and delete tasks of their workspaces only', async () => {
    const id = 'c0000000-0000-4000-8000-000000000001';
    const created = await api.apply(
      [
        tx([
          {
            op: 'PUT',
            type: 'tasks',
            id,
            data: { workspace_id: LAUNCH, title: 'Plan', tags: '["a"]', estimate: '1.50' },
          },
        ]),
      ],
      alice,
    );
    expect(created.transactions[0]!.status).toBe('applied');
    const moved = await api.apply(
      [tx([{ op: 'PATCH', type: 'tasks', id, data: { workspace_id: FIELD, done: 1 } }])],
      alice,
    );
    expect(moved.transactions[0]!.status).toBe('applied');
    // bob is a member of "Field crew" only: he may edit the moved task but not move it to "Launch plan".
    const bobEdits = await api.apply(
      [
        tx([{ op: 'PATCH', type: 'tasks', id, data: { title: 'Plan (bob)' } }]),
        tx([{ op: 'PATCH', type: 'tasks', id, data: { workspace_id: LAUNCH } }]),
        tx([
          {
            op: 'PUT',
            type: 'tasks',
            id: 'c0000000-0000-4000-8000-000000000002',
            data: { workspace_id: LAUNCH, title: 'x' },
          },
        ]),
      ],
      bob,
    );
    expect(bobEdits.transactions.map((t) => (t.ops[0] as { code?: string }).code ?? t.status)).toEqual([
      'applied',
      'FERRY_S6004',
      'FERRY_S6004',
    ]);
    const { rows } = await sql(
      url,
      'SELECT workspace_id::text, title, done, tags, estimate::text FROM tasks WHERE id = $1',
      [id],
    );
    expect(rows[0]).toEqual({ workspace_id: FIELD, title: 'Plan (bob)', done: true, tags: ['a'], estimate: '1.50' });
    const deleted = await api.apply([tx([{ op: 'DELETE', type: 'tasks', id }])], bob);
    expect(deleted.transactions[0]!.status).toBe('applied');
  });

  it('lets members add and rename projects and move tasks between board columns (status keeps done in step)', async () => {
    const project = 'e0000000-0000-4000-8000-000000000001';
    const task = 'e0000000-0000-4000-8000-000000000002';
    const result = await api.apply(
      [
        tx([{ op: 'PUT', type: 'projects', id: project, data: { workspace_id: FIELD, name: 'Repairs', position: 3 } }]),
        tx([{ op: 'PATCH', type: 'projects', id: project, data: { name: 'Repairs (bob)' } }]),
        tx([{ op: 'PUT', type: 'tasks', id: task, data: { workspace_id: FIELD, project_id: project, title: 'Fix' } }]),
        tx([{ op: 'PATCH', type: 'tasks', id: task, data: { status: 'done', done: 1 } }]),
        // Not a member of "Launch plan"; projects cannot be deleted by clients.
        tx([
          {
            op: 'PUT',
            type: 'projects',
            id: 'e0000000-0000-4000-8000-000000000003',
            data: { workspace_id: LAUNCH, name: 'x' },
          },
        ]),
        tx([{ op: 'DELETE', type: 'projects', id: project }]),
      ],
      bob,
    );
    expect(result.transactions.map((t) => (t.ops[0] as { code?: string }).code ?? t.status)).toEqual([
      'applied',
      'applied',
      'applied',
      'applied',
      'FERRY_S6004',
      'FERRY_S6001',
    ]);
    const { rows } = await sql(
      url,
      'SELECT p.name, t.status, t.done FROM tasks t JOIN projects p ON p.id = t.project_id WHERE t.id = $1',
      [task],
    );
    expect(rows[0]).toEqual({ name: 'Repairs (bob)', status: 'done', done: true });
    // An older client that only ticks `done` moves the task to the "done" column, and back.
    await api.apply([tx([{ op: 'PATCH', type: 'tasks', id: task, data: { done: 0 } }])], bob);
    expect((await sql(url, 'SELECT status, done FROM tasks WHERE id = $1', [task])).rows[0]).toEqual({
      status: 'todo',
      done: false,
    });
  });

  it("refuses a task pointing at another workspace's project", async () => {
    const task = 'e0000000-0000-4000-8000-000000000010';
    // alice is a member of both workspaces, but a Field-crew task may not use a Launch-plan project.
    const result = await api.apply(
      [
        tx([
          {
            op: 'PUT',
            type: 'tasks',
            id: task,
            data: { workspace_id: FIELD, project_id: 'a1111111-1111-4111-8111-111111111111', title: 'Mixed up' },
          },
        ]),
        tx([
          {
            op: 'PUT',
            type: 'tasks',
            id: task,
            data: { workspace_id: FIELD, project_id: 'a2222222-2222-4222-8222-222222222222', title: 'Right project' },
          },
        ]),
      ],
      alice,
    );
    expect(result.transactions.map((t) => (t.ops[0] as { code?: string }).code ?? t.status)).toEqual([
      'FERRY_S6004',
      'applied',
    ]);
  });

  it('forces note owners and keeps notes private; workspaces are not writable', async () => {
    const note = 'd0000000-0000-4000-8000-000000000001';
    await api.apply([tx([{ op: 'PUT', type: 'notes', id: note, data: { body: 'mine', owner_id: 'bob' } }])], alice);
    const { rows } = await sql(url, 'SELECT owner_id FROM notes WHERE id = $1', [note]);
    expect(rows[0].owner_id).toBe('alice');
    const result = await api.apply(
      [
        tx([{ op: 'PATCH', type: 'notes', id: note, data: { body: 'stolen' } }]),
        tx([{ op: 'PATCH', type: 'workspaces', id: LAUNCH, data: { name: 'mine' } }]),
      ],
      bob,
    );
    expect(result.transactions.map((t) => (t.ops[0] as { code?: string }).code)).toEqual([
      'FERRY_S6004',
      'FERRY_S6001',
    ]);
  });
});
