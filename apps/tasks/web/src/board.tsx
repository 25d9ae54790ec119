import { useConflicts, useFerry, useQuery } from '@ferry/react';
import { useState, type FormEvent } from 'react';
import { addProject, addTask, renameWorkspace } from './actions';
import { ConflictsPanel } from './conflicts';
import { RoomsView } from './rooms';
import { COLUMNS } from './schema';
import { TaskCard, type BoardTask } from './task-card';

interface WorkspaceRow {
  id: string;
  name: string | null;
  tasks: number;
}

/** The signed-in user's workspaces (whatever sync put in local SQLite) and the chosen one's board. */
export function Board({ user }: { user: string }) {
  const { data: workspaces } = useQuery<WorkspaceRow>(
    `SELECT w.id, w.name, (SELECT count(*) FROM tasks t WHERE t.workspace_id = w.id) AS tasks
       FROM workspaces w ORDER BY w.name, w.id`,
  );
  const [chosen, setChosen] = useState<string | null>(null);
  // A workspace the user just lost (membership removed) disappears; fall back to the first one.
  const current = workspaces.find((w) => w.id === chosen) ?? workspaces[0];

  if (workspaces.length === 0) {
    return (
      <p className="empty" data-testid="no-workspaces">
        You are not a member of any workspace.
      </p>
    );
  }
  return (
    <div className="board-layout">
      <nav aria-label="Workspaces" className="workspaces">
        <h2>Workspaces</h2>
        <ul>
          {workspaces.map((w) => (
            <li key={w.id}>
              <button
                type="button"
                data-testid="workspace"
                data-workspace-id={w.id}
                aria-current={w.id === current?.id ? 'page' : undefined}
                onClick={() => setChosen(w.id)}
              >
                <span>{w.name}</span> <span className="count">{w.tasks}</span>
              </button>
            </li>
          ))}
        </ul>
      </nav>
      {current !== undefined && (
        <WorkspaceBoard key={current.id} workspaceId={current.id} name={current.name ?? ''} user={user} />
      )}
    </div>
  );
}

interface ProjectRow {
  id: string;
  name: string | null;
}

interface MemberRow {
  user_id: string | null;
  role: string | null;
}

type View = 'tasks' | 'rooms';

function WorkspaceBoard({ workspaceId, name, user }: { workspaceId: string; name: string; user: string }) {
  const db = useFerry();
  const [view, setView] = useState<View>('tasks');
  const [projectId, setProjectId] = useState<string | null>(null);
  const { data: projects } = useQuery<ProjectRow>(
    `SELECT id, name FROM projects WHERE workspace_id = ? ORDER BY position, name`,
    [workspaceId],
  );
  const { data: members } = useQuery<MemberRow>(
    `SELECT user_id, role FROM workspace_members WHERE workspace_id = ? ORDER BY user_id`,
    [workspaceId],
  );
  const project = projects.find((p) => p.id === projectId) ?? null;
  const { data: tasks } = useQuery<BoardTask>(
    `SELECT t.id, t.workspace_id, t.title, coalesce(t.status, 'todo') AS status, p.name AS project_name
       FROM tasks t LEFT JOIN projects p ON p.id = t.project_id
      WHERE t.workspace_id = ?1 AND (?2 IS NULL OR t.project_id = ?2)
      ORDER BY t.position, t.created_at, t.id`,
    [workspaceId, project?.id ?? null],
  );
  // Unresolved conflicts of this workspace (their scope is its id), and which tasks they are about.
  const { data: allConflicts } = useConflicts();
  const conflicts = allConflicts.filter((c) => c.scope === workspaceId);
  const conflictsByTask = new Map<string, string[]>();
  for (const c of conflicts) {
    if (c.table === 'tasks') conflictsByTask.set(c.rowId, [...(conflictsByTask.get(c.rowId) ?? []), c.id]);
  }

  return (
    <section className="workspace" aria-labelledby="workspace-title" data-testid="board">
      <header className="workspace-header">
        <WorkspaceName workspaceId={workspaceId} name={name} />
        <p className="members" data-testid="members">
          Members: {members.map((m) => `${m.user_id ?? ''}${m.role === 'owner' ? ' (owner)' : ''}`).join(', ')}
        </p>
        <div className="view-switch" role="group" aria-label="View">
          {(['tasks', 'rooms'] as const).map((v) => (
            <button type="button" key={v} aria-pressed={view === v} onClick={() => setView(v)}>
              {v === 'tasks' ? 'Tasks' : 'Rooms'}
            </button>
          ))}
        </div>
      </header>
      <ConflictsPanel workspaceId={workspaceId} conflicts={conflicts} user={user} />
      {view === 'rooms' ? (
        <RoomsView workspaceId={workspaceId} user={user} />
      ) : (
        <>
          <div className="projects" role="group" aria-label="Projects">
            <button type="button" aria-pressed={project === null} onClick={() => setProjectId(null)}>
              All projects
            </button>
            {projects.map((p) => (
              <button
                type="button"
                key={p.id}
                aria-pressed={project?.id === p.id}
                data-testid="project"
                onClick={() => setProjectId(p.id)}
              >
                {p.name}
              </button>
            ))}
            <TextForm
              label="New project name"
              submit="Add project"
              onSubmit={async (value) => setProjectId(await addProject(db, workspaceId, value))}
            />
          </div>
          <div className="columns">
            {COLUMNS.map((column) => {
              const inColumn = tasks.filter((t) => t.status === column.status);
              return (
                <section
                  key={column.status}
                  className="column"
                  data-testid={`column-${column.status}`}
                  aria-labelledby={`column-${column.status}-title`}
                >
                  <h3 id={`column-${column.status}-title`}>
                    {column.title} <span className="count">{inColumn.length}</span>
                  </h3>
                  <ul>
                    {inColumn.map((task) => (
                      <TaskCard
                        key={task.id}
                        task={task}
                        showProject={project === null}
                        conflicts={conflictsByTask.get(task.id) ?? NO_CONFLICTS}
                      />
                    ))}
                  </ul>
                  {column.status === 'todo' && (
                    <TextForm
                      label="New task title"
                      submit="Add task"
                      onSubmit={async (title) => {
                        await addTask(db, { workspaceId, projectId: project?.id ?? projects[0]?.id ?? null, title });
                      }}
                    />
                  )}
                </section>
              );
            })}
          </div>
        </>
      )}
    </section>
  );
}

const NO_CONFLICTS: readonly string[] = [];

/** The workspace's name, with a rename form (which the service refuses: see `renameWorkspace`). */
function WorkspaceName({ workspaceId, name }: { workspaceId: string; name: string }) {
  const db = useFerry();
  const [renaming, setRenaming] = useState(false);
  if (!renaming) {
    return (
      <div className="workspace-name">
        <h2 id="workspace-title">{name}</h2>
        <button type="button" onClick={() => setRenaming(true)}>
          Rename workspace
        </button>
      </div>
    );
  }
  return (
    <div className="workspace-name">
      <h2 id="workspace-title" className="visually-hidden">
        {name}
      </h2>
      <TextForm
        label="Workspace name"
        submit="Save name"
        initial={name}
        onSubmit={async (value) => {
          setRenaming(false);
          await renameWorkspace(db, workspaceId, value);
        }}
        onCancel={() => setRenaming(false)}
      />
    </div>
  );
}

/** A one-field form with a visible label; empty input is not submitted. */
function TextForm(props: {
  label: string;
  submit: string;
  initial?: string;
  onSubmit(value: string): Promise<void>;
  onCancel?(): void;
}) {
  const [value, setValue] = useState(props.initial ?? '');
  const submit = (event: FormEvent): void => {
    event.preventDefault();
    const trimmed = value.trim();
    if (trimmed === '') return;
    setValue('');
    void props.onSubmit(trimmed);
  };
  return (
    <form className="text-form" onSubmit={submit}>
      <label>
        <span>{props.label}</span>
        <input value={value} onChange={(e) => setValue(e.target.value)} maxLength={200} />
      </label>
      <button type="submit">{props.submit}</button>
      {props.onCancel !== undefined && (
        <button type="button" onClick={props.onCancel}>
          Cancel
        </button>
      )}
    </form>
  );
}
