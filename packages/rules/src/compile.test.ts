import { describe, expect, test } from 'vitest';
import { compileSyncRules, type CompiledSyncRules, type RequestParameters } from './index.js';
import { EXAMPLE_RULES } from './test-support/fixtures.js';

const t = (name: string, schema = 'public') => ({ schema, name });
const request = (
  userId: string,
  claims: Record<string, unknown> = {},
  clientParameters: Record<string, unknown> = {},
): RequestParameters => ({
  userId,
  tokenPayload: { sub: userId, ...claims },
  clientParameters,
});

/** Buckets a request gets, resolving lookups against parameter rows as the service would store them. */
function bucketsFor(
  rules: CompiledSyncRules,
  req: RequestParameters,
  parameterRows: readonly [string, Record<string, unknown>][],
): string[] {
  const stored = new Map<string, Record<string, never>[]>();
  for (const [table, row] of parameterRows) {
    for (const { lookup, params } of rules.evaluateParameterRow(t(table), row as never).lookups) {
      stored.set(lookup, [...(stored.get(lookup) ?? []), params as Record<string, never>]);
    }
  }
  const querier = rules.querierFor(req);
  const found = new Map(querier.lookups.filter((l) => stored.has(l)).map((l) => [l, stored.get(l) ?? []]));
  return [...querier.staticBuckets, ...querier.resolve(found)].map((b) => b.bucket).sort();
}

describe('the example rules file', async () => {
  const rules = await compileSyncRules(EXAMPLE_RULES);

  test('compiled shape: definitions and source tables', () => {
    expect(rules.definitions).toEqual(['global', 'user_lists', 'by_workspace', 'user_data', 'by_org']);
    expect(rules.sourceTables).toEqual([
      { table: t('lists'), data: true, parameters: true, columns: '*' },
      { table: t('org_docs'), data: true, parameters: false, columns: '*' },
      { table: t('projects'), data: true, parameters: false, columns: '*' },
      { table: t('records'), data: true, parameters: false, columns: '*' },
      { table: t('settings'), data: true, parameters: false, columns: '*' },
      { table: t('todos'), data: true, parameters: false, columns: ['completed', 'description', 'id', 'list_id'] },
      { table: t('workspace_memberships'), data: false, parameters: true, columns: ['user_id', 'workspace_id'] },
    ]);
    expect(rules.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  test('rows go to their buckets with the output columns', () => {
    expect(rules.evaluateRow(t('settings'), { id: 's1', theme: 'dark' })).toEqual({
      rows: [{ bucket: 'global[]', table: 'settings', id: 's1', data: { id: 's1', theme: 'dark' } }],
      errors: [],
    });
    expect(rules.evaluateRow(t('lists'), { id: 'l1', owner_id: 'u1', name: 'Groceries' }).rows).toEqual([
      { bucket: 'user_lists["l1"]', table: 'lists', id: 'l1', data: { id: 'l1', owner_id: 'u1', name: 'Groceries' } },
    ]);
    expect(
      rules.evaluateRow(t('todos'), { id: 't1', list_id: 'l1', description: 'Milk', completed: 1, secret: 'x' }).rows,
    ).toEqual([
      {
        bucket: 'user_lists["l1"]',
        table: 'todos',
        id: 't1',
        data: { id: 't1', list_id: 'l1', title: 'Milk', done: 1 },
      },
    ]);
    expect(rules.evaluateRow(t('records'), { id: 7, workspace_id: 'w1' }).rows).toEqual([
      { bucket: 'by_workspace["w1"]', table: 'records', id: '7', data: { id: 7, workspace_id: 'w1' } },
    ]);
    expect(rules.evaluateRow(t('projects'), { id: 'p1', owner_id: 'u1' }).rows.map((r) => r.bucket)).toEqual([
      'user_data["u1"]',
    ]);
    // FROM alias names the output table; the filter drops archived rows.
    expect(rules.evaluateRow(t('org_docs'), { id: 'd1', org_id: 'o1', archived: 0 }).rows).toEqual([
      { bucket: 'by_org["o1"]', table: 'docs', id: 'd1', data: { id: 'd1', org_id: 'o1', archived: 0 } },
    ]);
    expect(rules.evaluateRow(t('org_docs'), { id: 'd1', org_id: 'o1', archived: 1 }).rows).toEqual([]);
    expect(rules.evaluateRow(t('unrelated'), { id: 'x' })).toEqual({ rows: [], errors: [] });
    expect(rules.evaluateRow(t('settings', 'other'), { id: 'x' }).rows).toEqual([]);
  });

  test('parameter rows give lookups that a matching request asks for', () => {
    const lists = rules.evaluateParameterRow(t('lists'), { id: 'l1', owner_id: 'u1' });
    const members = rules.evaluateParameterRow(t('workspace_memberships'), {
      id: 'm1',
      user_id: 'u1',
      workspace_id: 'w1',
    });
    expect(lists).toEqual({ lookups: [{ lookup: expect.any(String), params: { list_id: 'l1' } }], errors: [] });
    expect(members.lookups).toEqual([{ lookup: expect.any(String), params: { workspace_id: 'w1' } }]);
    expect(rules.evaluateParameterRow(t('todos'), { id: 't1', list_id: 'l1' }).lookups).toEqual([]);

    const querier = rules.querierFor(request('u1', { org_id: 'o1' }));
    expect(querier.staticBuckets).toEqual([
      { bucket: 'global[]', definition: 'global', priority: 3 },
      { bucket: 'user_data["u1"]', definition: 'user_data', priority: 3 },
      { bucket: 'by_org["o1"]', definition: 'by_org', priority: 1 },
    ]);
    expect([...querier.lookups].sort()).toEqual([lists.lookups[0]?.lookup, members.lookups[0]?.lookup].sort());
    const resolved = querier.resolve(
      new Map([
        [lists.lookups[0]!.lookup, [lists.lookups[0]!.params, { list_id: 'l2' }]],
        [members.lookups[0]!.lookup, [members.lookups[0]!.params]],
      ]),
    );
    expect(resolved).toEqual([
      { bucket: 'user_lists["l1"]', definition: 'user_lists', priority: 3 },
      { bucket: 'user_lists["l2"]', definition: 'user_lists', priority: 3 },
      { bucket: 'by_workspace["w1"]', definition: 'by_workspace', priority: 3 },
    ]);
  });

  test('a request that matches nothing gets only the unconditional buckets', () => {
    const querier = rules.querierFor(request('nobody'));
    // No org_id claim: no by_org bucket (a NULL parameter can never match a row).
    expect(querier.staticBuckets.map((b) => b.bucket)).toEqual(['global[]', 'user_data["nobody"]']);
    expect(querier.resolve(new Map())).toEqual([]);
    expect(bucketsFor(rules, request('nobody'), [['lists', { id: 'l1', owner_id: 'u1' }]])).toEqual([
      'global[]',
      'user_data["nobody"]',
    ]);
    // Rows under a lookup the querier did not ask for are ignored.
    expect(querier.resolve(new Map([['["user_lists",0,"u1"]', [{ list_id: 'l1' }]]]))).toEqual([]);
  });

  test('moving a row changes its bucket; a NULL owner puts it in none', () => {
    expect(
      rules.evaluateRow(t('todos'), { id: 't1', list_id: 'l1', description: 'a', completed: 0 }).rows[0]?.bucket,
    ).toBe('user_lists["l1"]');
    expect(
      rules.evaluateRow(t('todos'), { id: 't1', list_id: 'l2', description: 'a', completed: 0 }).rows[0]?.bucket,
    ).toBe('user_lists["l2"]');
    expect(rules.evaluateRow(t('projects'), { id: 'p1', owner_id: 'u1' }).rows[0]?.bucket).toBe('user_data["u1"]');
    expect(rules.evaluateRow(t('projects'), { id: 'p1', owner_id: 'u2' }).rows[0]?.bucket).toBe('user_data["u2"]');
    expect(rules.evaluateRow(t('projects'), { id: 'p1', owner_id: null }).rows).toEqual([]);
    expect(rules.evaluateRow(t('projects'), { id: 'p1' }).rows).toEqual([]);
    // Same for parameter rows: a membership with a NULL user is indexed nowhere.
    expect(
      rules.evaluateParameterRow(t('workspace_memberships'), { user_id: null, workspace_id: 'w1' }).lookups,
    ).toEqual([]);
    expect(bucketsFor(rules, request('u1'), [['lists', { id: 'l1', owner_id: 'u1' }]])).toContain('user_lists["l1"]');
    expect(bucketsFor(rules, request('u1'), [['lists', { id: 'l1', owner_id: 'u2' }]])).not.toContain(
      'user_lists["l1"]',
    );
  });

  test('a row without an id is an evaluation error, not a crash', () => {
    const result = rules.evaluateRow(t('settings'), { theme: 'dark' });
    expect(result.rows).toEqual([]);
    expect(result.errors).toEqual([{ message: expect.stringMatching(/has no id/), source: 'global data[0]' }]);
  });
});

describe('bigint values stay exact', async () => {
  const big = 9007199254740993n;
  const rules = await compileSyncRules(`bucket_definitions:
  by_workspace:
    parameters: SELECT workspace_id FROM memberships WHERE user_id = request.jwt() ->> 'uid'
    data:
      - SELECT id, workspace_id, n FROM records WHERE workspace_id = bucket.workspace_id AND n = 5
  by_owner:
    parameters: SELECT request.jwt() ->> 'uid' AS owner
    data:
      - SELECT * FROM projects WHERE owner_id = bucket.owner
`);

  test('in bucket names, ids and data', () => {
    expect(rules.evaluateRow(t('records'), { id: big, workspace_id: big + 1n, n: 5n }).rows).toEqual([
      {
        bucket: 'by_workspace[9007199254740994]',
        table: 'records',
        id: '9007199254740993',
        data: { id: big, workspace_id: big + 1n, n: 5n },
      },
    ]);
    // 5n = 5 compares numerically; 6n does not.
    expect(rules.evaluateRow(t('records'), { id: 1, workspace_id: 1, n: 6n }).rows).toEqual([]);
    expect(rules.evaluateRow(t('projects'), { id: 'p', owner_id: big }).rows[0]?.bucket).toBe(
      'by_owner[9007199254740993]',
    );
  });

  test('in lookups and resolved buckets', () => {
    const { lookups } = rules.evaluateParameterRow(t('memberships'), { user_id: big, workspace_id: big + 1n });
    expect(lookups).toEqual([
      { lookup: expect.stringContaining('9007199254740993'), params: { workspace_id: big + 1n } },
    ]);
    const querier = rules.querierFor(request('x', { uid: big }));
    expect(querier.lookups).toEqual([lookups[0]?.lookup]);
    expect(querier.staticBuckets.map((b) => b.bucket)).toEqual(['by_owner[9007199254740993]']);
    expect(querier.resolve(new Map([[lookups[0]!.lookup, [lookups[0]!.params]]]))).toEqual([
      { bucket: 'by_workspace[9007199254740994]', definition: 'by_workspace', priority: 3 },
    ]);
    // A number claim equal to the bigint finds the same lookup.
    expect(rules.querierFor(request('x', { uid: 42 })).lookups).toEqual(
      rules.evaluateParameterRow(t('memberships'), { user_id: 42n, workspace_id: 1 }).lookups.map((l) => l.lookup),
    );
  });
});

describe('request values', () => {
  test('token_parameters, request.parameters() and WHERE over request values', async () => {
    const rules = await compileSyncRules(`bucket_definitions:
  legacy:
    parameters: SELECT token_parameters.user_id AS user_id, token_parameters.team AS team
    data:
      - SELECT * FROM notes WHERE owner = bucket.user_id AND team = bucket.team
  admin:
    parameters: SELECT WHERE request.jwt() ->> 'role' = 'admin'
    data:
      - SELECT * FROM audit_log
  chosen:
    parameters: SELECT request.parameters() ->> 'project' AS project, 'x' AS kind
    data:
      - SELECT * FROM items WHERE project_id = bucket.project AND kind = bucket.kind
`);
    expect(
      rules
        .querierFor(request('u1', { team: 't9', role: 'admin' }, { project: 'p3' }))
        .staticBuckets.map((b) => b.bucket),
    ).toEqual(['legacy["u1","t9"]', 'admin[]', 'chosen["p3","x"]']);
    expect(rules.querierFor(request('u1', { team: 't9', role: 'user' })).staticBuckets.map((b) => b.bucket)).toEqual([
      'legacy["u1","t9"]',
    ]);
    expect(rules.evaluateRow(t('notes'), { id: 'n', owner: 'u1', team: 't9' }).rows[0]?.bucket).toBe(
      'legacy["u1","t9"]',
    );
    expect(rules.evaluateRow(t('items'), { id: 'i', project_id: 'p3', kind: 'x' }).rows[0]?.bucket).toBe(
      'chosen["p3","x"]',
    );
    expect(rules.evaluateRow(t('audit_log'), { id: 'a' }).rows[0]?.bucket).toBe('admin[]');
  });

  test('table parameter queries with request outputs, row filters and request filters', async () => {
    const rules = await compileSyncRules(`bucket_definitions:
  team_docs:
    parameters: |
      SELECT m.team_id AS team, request.user_id() AS me
      FROM public.members AS m
      WHERE m.user_id = request.user_id() AND m.active = true AND request.jwt() ->> 'tier' <> 'free'
    data:
      - SELECT * FROM docs WHERE team_id = bucket.team AND author = bucket.me
`);
    expect(rules.sourceTables.find((s) => s.table.name === 'members')).toEqual({
      table: t('members'),
      data: false,
      parameters: true,
      columns: ['active', 'team_id', 'user_id'],
    });
    const rows: [string, Record<string, unknown>][] = [
      ['members', { user_id: 'u1', team_id: 'a', active: 1 }],
      ['members', { user_id: 'u1', team_id: 'b', active: 0 }],
      ['members', { user_id: 'u2', team_id: 'c', active: 1 }],
    ];
    expect(bucketsFor(rules, request('u1', { tier: 'pro' }), rows)).toEqual(['team_docs["a","u1"]']);
    expect(bucketsFor(rules, request('u1', { tier: 'free' }), rows)).toEqual([]);
    expect(bucketsFor(rules, request('u2', { tier: 'pro' }), rows)).toEqual(['team_docs["c","u2"]']);
  });

  test('column IN <request array> and <request value> IN <array column> give one lookup per element', async () => {
    const rules = await compileSyncRules(`bucket_definitions:
  by_list:
    parameters: SELECT id AS list_id FROM lists WHERE id IN request.jwt() -> 'list_ids'
    data:
      - SELECT * FROM todos WHERE list_id = bucket.list_id
  shared:
    parameters: SELECT id AS board FROM boards WHERE request.user_id() IN editors
    data:
      - SELECT * FROM cards WHERE board_id = bucket.board
  any:
    parameters: SELECT id AS tag FROM tags WHERE id = ANY(request.parameters() -> 'tags')
    data:
      - SELECT * FROM tagged WHERE tag_id = bucket.tag
`);
    const rows: [string, Record<string, unknown>][] = [
      ['lists', { id: 'l1' }],
      ['lists', { id: 'l2' }],
      ['lists', { id: 'l3' }],
      ['boards', { id: 'b1', editors: '["u1","u2"]' }],
      ['boards', { id: 'b2', editors: '["u2"]' }],
      ['tags', { id: 'red' }],
    ];
    expect(bucketsFor(rules, request('u1', { list_ids: ['l1', 'l3', 'l9'] }, { tags: ['red', 'blue'] }), rows)).toEqual(
      ['any["red"]', 'by_list["l1"]', 'by_list["l3"]', 'shared["b1"]'],
    );
    expect(bucketsFor(rules, request('u2', { list_ids: 'not an array' }), rows)).toEqual([
      'shared["b1"]',
      'shared["b2"]',
    ]);
  });

  test('several parameter queries: the union of their buckets, parameters in the first query’s order', async () => {
    const rules = await compileSyncRules(`bucket_definitions:
  lists:
    parameters:
      - SELECT id AS list_id, 'own' AS role FROM lists WHERE owner_id = request.user_id()
      - SELECT 'shared' AS role, list_id FROM shares WHERE user_id = request.user_id()
    data:
      - SELECT * FROM todos WHERE list_id = bucket.list_id AND kind = bucket.role
`);
    const rows: [string, Record<string, unknown>][] = [
      ['lists', { id: 'l1', owner_id: 'u1' }],
      ['shares', { list_id: 'l2', user_id: 'u1' }],
      ['shares', { list_id: 'l3', user_id: 'u2' }],
    ];
    expect(bucketsFor(rules, request('u1'), rows)).toEqual(['lists["l1","own"]', 'lists["l2","shared"]']);
    expect(rules.evaluateRow(t('todos'), { id: 'x', list_id: 'l2', kind: 'shared' }).rows[0]?.bucket).toBe(
      'lists["l2","shared"]',
    );
  });
});

describe('hash', () => {
  test('is stable under layout changes and changes with meaning', async () => {
    const base = await compileSyncRules(EXAMPLE_RULES);
    const relaid = await compileSyncRules(
      EXAMPLE_RULES.replace('SELECT * FROM settings', 'select   *\n        from settings').replace(
        'SELECT * FROM settings',
        '',
      ),
    );
    expect(relaid.hash).toBe(base.hash);
    expect((await compileSyncRules(EXAMPLE_RULES)).hash).toBe(base.hash);
    const changed = [
      EXAMPLE_RULES.replace('archived = false', 'archived = true'),
      EXAMPLE_RULES.replace('priority: 1', 'priority: 2'),
      EXAMPLE_RULES.replace('description AS title', 'description AS name'),
      EXAMPLE_RULES.replace('global:', 'everyone:'),
    ];
    const hashes = await Promise.all(changed.map(async (source) => (await compileSyncRules(source)).hash));
    for (const hash of hashes) expect(hash).not.toBe(base.hash);
    expect(new Set(hashes).size).toBe(hashes.length);
    expect((await compileSyncRules(EXAMPLE_RULES, { defaultSchema: 'app' })).hash).not.toBe(base.hash);
  });

  test('defaultSchema applies to unqualified tables only', async () => {
    const rules = await compileSyncRules(
      'bucket_definitions:\n  a:\n    data:\n      - SELECT * FROM notes\n      - SELECT * FROM public.tags\n      - SELECT * FROM "Mixed"\n',
      { defaultSchema: 'app' },
    );
    expect(rules.sourceTables.map((s) => `${s.table.schema}.${s.table.name}`)).toEqual([
      'app.Mixed',
      'app.notes',
      'public.tags',
    ]);
  });
});

describe('data query outputs', () => {
  test('`*` with extra columns, `table.*`, and Postgres output names for casts', async () => {
    const rules = await compileSyncRules(`bucket_definitions:
  a:
    data:
      - SELECT *, upper(name) AS shout FROM people
      - SELECT p.* FROM pets AS p
      - SELECT id, done::int FROM tasks
`);
    expect(rules.evaluateRow(t('people'), { id: 1, name: 'al' }).rows[0]?.data).toEqual({
      id: 1,
      name: 'al',
      shout: 'AL',
    });
    expect(rules.evaluateRow(t('pets'), { id: 2, kind: 'cat' }).rows[0]).toMatchObject({
      table: 'p',
      data: { id: 2, kind: 'cat' },
    });
    expect(rules.evaluateRow(t('tasks'), { id: 3, done: '1', extra: 'x' }).rows[0]?.data).toEqual({ id: 3, done: 1 });
    expect(rules.sourceTables.map((s) => [s.table.name, s.columns])).toEqual([
      ['people', '*'],
      ['pets', '*'],
      ['tasks', ['done', 'id']],
    ]);
  });

  test('a row in several definitions gets one output row per bucket', async () => {
    const rules = await compileSyncRules(`bucket_definitions:
  everyone:
    data:
      - SELECT id, title FROM posts WHERE published = 1
  mine:
    parameters: SELECT request.user_id() AS me
    data:
      - SELECT * FROM posts WHERE author = bucket.me
`);
    expect(
      rules
        .evaluateRow(t('posts'), { id: 'p', title: 'x', published: 1, author: 'u' })
        .rows.map((r) => [r.bucket, Object.keys(r.data)]),
    ).toEqual([
      ['everyone[]', ['id', 'title']],
      ['mine["u"]', ['id', 'title', 'published', 'author']],
    ]);
  });
});
