-- The task board: projects inside workspaces, and tasks in board columns.
CREATE TABLE projects (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
  name text NOT NULL,
  position int8 NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX projects_workspace ON projects (workspace_id);

-- A task without a project is shown under "No project". Its column on the
-- board is `status`; `done` stays (older clients, `ferry demo`) and the
-- trigger below keeps the two in step.
ALTER TABLE tasks
  ADD COLUMN project_id uuid REFERENCES projects (id) ON DELETE CASCADE,
  ADD COLUMN status text NOT NULL DEFAULT 'todo' CHECK (status IN ('todo', 'doing', 'done'));
CREATE INDEX tasks_project ON tasks (project_id);

-- Whoever changes one of `status` and `done` gets the other one right:
-- status 'done' <=> done. A write that sets both keeps `status`.
CREATE FUNCTION tasks_status_done() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.status = 'done' THEN
      NEW.done := true;
    ELSIF NEW.done THEN
      NEW.status := 'done';
    END IF;
  ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
    NEW.done := NEW.status = 'done';
  ELSIF NEW.done IS DISTINCT FROM OLD.done THEN
    NEW.status := CASE WHEN NEW.done THEN 'done' ELSE 'todo' END;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER tasks_status_done BEFORE INSERT OR UPDATE ON tasks
  FOR EACH ROW EXECUTE FUNCTION tasks_status_done();

-- Demo data for the board: a project or two per workspace, tasks spread over columns.
INSERT INTO projects (id, workspace_id, name, position) VALUES
  ('a1111111-1111-4111-8111-111111111111', '11111111-1111-4111-8111-111111111111', 'Announcement', 1),
  ('a2222222-2222-4222-8222-222222222222', '22222222-2222-4222-8222-222222222222', 'Pumping station', 1),
  ('a3333333-3333-4333-8333-333333333333', '22222222-2222-4222-8222-222222222222', 'Supplies', 2);

UPDATE tasks SET project_id = 'a1111111-1111-4111-8111-111111111111'
  WHERE workspace_id = '11111111-1111-4111-8111-111111111111';
UPDATE tasks SET project_id = 'a1111111-1111-4111-8111-111111111111', status = 'doing'
  WHERE title = 'Record the demo video';
UPDATE tasks SET project_id = 'a2222222-2222-4222-8222-222222222222' WHERE title = 'Check the north pumps';
UPDATE tasks SET project_id = 'a3333333-3333-4333-8333-333333333333' WHERE title = 'Order spare filters';
