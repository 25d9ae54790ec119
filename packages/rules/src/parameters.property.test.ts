import type { SqliteRow, SqliteValue } from '@ferry/protocol';
import fc from 'fast-check';
import { expect, test } from 'vitest';
import { compileSyncRules, type CompiledSyncRules, type RequestParameters } from './index.js';

const RULES = `bucket_definitions:
  by_workspace:
    parameters:
      - SELECT workspace_id AS ws FROM memberships WHERE user_id = request.user_id() AND active = true
      - SELECT id AS ws FROM workspaces WHERE owner = request.user_id()
    data:
      - SELECT * FROM records WHERE workspace_id = bucket.ws
  by_role:
    parameters: SELECT team AS team, role AS role FROM roles WHERE member = request.jwt() ->> 'sub' AND role <> 'banned'
    data:
      - SELECT * FROM team_docs WHERE team_id = bucket.team AND min_role = bucket.role
`;

const table = (name: string) => ({ schema: 'public', name });

/** What the service does: index parameter rows by lookup, then resolve a request's lookups. */
function serviceBuckets(
  rules: CompiledSyncRules,
  req: RequestParameters,
  rows: readonly { table: string; row: SqliteRow }[],
): Set<string> {
  const stored = new Map<string, Record<string, SqliteValue>[]>();
  for (const { table: name, row } of rows) {
    const { lookups, errors } = rules.evaluateParameterRow(table(name), row);
    expect(errors).toEqual([]);
    for (const { lookup, params } of lookups) stored.set(lookup, [...(stored.get(lookup) ?? []), params]);
  }
  const querier = rules.querierFor(req);
  const found = new Map<string, Record<string, SqliteValue>[]>();
  for (const lookup of querier.lookups) {
    const hit = stored.get(lookup);
    if (hit !== undefined) found.set(lookup, hit);
  }
  return new Set([...querier.staticBuckets, ...querier.resolve(found)].map((b) => b.bucket));
}

/** The same, computed directly from the rules' meaning. */
function expectedBuckets(user: string, rows: readonly { table: string; row: SqliteRow }[]): Set<string> {
  const out = new Set<string>();
  const key = (v: SqliteValue) => (typeof v === 'string' ? JSON.stringify(v) : String(v));
  for (const { table: name, row } of rows) {
    if (name === 'memberships' && row['user_id'] === user && row['active'] === 1 && row['workspace_id'] !== null) {
      out.add(`by_workspace[${key(row['workspace_id'] ?? null)}]`);
    }
    if (name === 'workspaces' && row['owner'] === user && row['id'] !== null)
      out.add(`by_workspace[${key(row['id'] ?? null)}]`);
    if (
      name === 'roles' &&
      row['member'] === user &&
      row['role'] !== 'banned' &&
      row['team'] !== null &&
      row['role'] !== null
    ) {
      out.add(`by_role[${key(row['team'] ?? null)},${key(row['role'] ?? null)}]`);
    }
  }
  return out;
}

const users = fc.constantFrom('u1', 'u2', 'u3', 'ü4');
const workspaceId = fc.oneof(
  fc.constantFrom('w1', 'w2', 'w"3'),
  fc.integer({ min: -3, max: 3 }),
  fc.constantFrom(9007199254740993n, null),
);
const parameterRow = fc.oneof(
  fc
    .record({ user_id: fc.option(users), workspace_id: workspaceId, active: fc.constantFrom(0, 1, null) })
    .map((row) => ({ table: 'memberships', row })),
  fc.record({ id: workspaceId, owner: fc.option(users) }).map((row) => ({ table: 'workspaces', row })),
  fc
    .record({
      member: fc.option(users),
      team: fc.option(fc.constantFrom('red', 'blue')),
      role: fc.constantFrom('admin', 'viewer', 'banned', null),
    })
    .map((row) => ({
      table: 'roles',
      row,
    })),
);

test('querierFor + resolve agree with evaluateParameterRow and with the rules’ meaning', async () => {
  const rules = await compileSyncRules(RULES);
  fc.assert(
    fc.property(fc.array(parameterRow, { maxLength: 25 }), users, (rows, user) => {
      const req: RequestParameters = { userId: user, tokenPayload: { sub: user }, clientParameters: {} };
      expect(serviceBuckets(rules, req, rows)).toEqual(expectedBuckets(user, rows));
    }),
    { numRuns: 300 },
  );
});

test('a data row lands in a bucket the user holds exactly when its workspace is one of theirs', async () => {
  const rules = await compileSyncRules(RULES);
  fc.assert(
    fc.property(fc.array(parameterRow, { maxLength: 15 }), users, workspaceId, (rows, user, ws) => {
      const req: RequestParameters = { userId: user, tokenPayload: { sub: user }, clientParameters: {} };
      const held = serviceBuckets(rules, req, rows);
      const placed = rules.evaluateRow(table('records'), { id: 'r', workspace_id: ws }).rows.map((r) => r.bucket);
      const expected = expectedBuckets(user, rows);
      const visible = placed.filter((b) => held.has(b));
      expect(visible.length > 0).toBe(placed.some((b) => expected.has(b)));
      expect(ws === null && placed.length > 0).toBe(false);
    }),
    { numRuns: 200 },
  );
});
