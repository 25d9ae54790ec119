-- Demo data: two workspaces; alice is in both, bob only in "Field crew".
INSERT INTO workspaces (id, name) VALUES
  ('11111111-1111-4111-8111-111111111111', 'Launch plan'),
  ('22222222-2222-4222-8222-222222222222', 'Field crew');

INSERT INTO workspace_members (workspace_id, user_id, role) VALUES
  ('11111111-1111-4111-8111-111111111111', 'alice', 'owner'),
  ('22222222-2222-4222-8222-222222222222', 'alice', 'member'),
  ('22222222-2222-4222-8222-222222222222', 'bob', 'owner');

INSERT INTO tasks (workspace_id, title, position, estimate, tags) VALUES
  ('11111111-1111-4111-8111-111111111111', 'Write the announcement', 1, 2.5, '{writing}'),
  ('11111111-1111-4111-8111-111111111111', 'Record the demo video', 2, 4, '{video,marketing}'),
  ('22222222-2222-4222-8222-222222222222', 'Check the north pumps', 1, 1.25, '{maintenance}'),
  ('22222222-2222-4222-8222-222222222222', 'Order spare filters', 2, 0.5, '{}');

INSERT INTO notes (owner_id, body) VALUES
  ('alice', 'Alice''s private note'),
  ('bob', 'Bob''s private note');
