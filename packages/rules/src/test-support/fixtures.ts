/** The rules file from the brief: every example shape real rules files use. */
export const EXAMPLE_RULES = `bucket_definitions:
  global:
    data:
      - SELECT * FROM settings
  user_lists:
    parameters: SELECT id AS list_id FROM lists WHERE owner_id = request.user_id()
    data:
      - SELECT * FROM lists WHERE id = bucket.list_id
      - SELECT id, list_id, description AS title, completed::int AS done FROM todos WHERE list_id = bucket.list_id
  by_workspace:
    parameters: |
      SELECT workspace_id
      FROM workspace_memberships
      WHERE user_id = request.user_id()
    data:
      - SELECT * FROM records WHERE workspace_id = bucket.workspace_id
  user_data:
    parameters: SELECT request.user_id() as user_id
    data:
      - SELECT * FROM projects WHERE owner_id = bucket.user_id
  by_org:
    parameters: SELECT request.jwt() ->> 'org_id' AS org_id
    priority: 1
    data:
      - SELECT * FROM org_docs AS docs WHERE org_id = bucket.org_id AND archived = false
`;
