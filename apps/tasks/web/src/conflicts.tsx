import type { Conflict } from '@ferry/client';
import { decodeHlc, type SqliteValue } from '@ferry/protocol';
import { useFerry, useQuery } from '@ferry/react';
import { useState, type FormEvent } from 'react';
import { resolveConflict } from './actions';

/** Field names as the board shows them. */
const FIELDS: Record<string, string> = {
  title: 'title',
  status: 'column',
  done: 'done',
  position: 'position in its column',
  project_id: 'project',
  estimate: 'estimate',
  tags: 'tags',
  assignee_id: 'assignee',
  slot: 'slot',
  day: 'day',
  room_id: 'room',
};

const NOUNS: Record<string, string> = { tasks: 'Task', bookings: 'Booking' };

/** The DOM id of a conflict's entry in the panel (the card badge scrolls to it). */
export const conflictElementId = (id: string): string => `conflict-${id}`;

function showValue(value: SqliteValue | undefined): string {
  if (value === null || value === undefined) return '(empty)';
  return typeof value === 'string' ? `“${value}”` : String(value);
}

/** The wall-clock time of an HLC stamp, as the writer's device saw it. */
function clockTime(hlc: string | null): string {
  if (hlc === null) return 'unknown time';
  try {
    return new Date(decodeHlc(hlc).wallMs).toLocaleString();
  } catch {
    return hlc;
  }
}

function who(userId: string | null, me: string): string {
  if (userId === null) return 'the server'; // a write made outside Ferry (SQL, a backend)
  return userId === me ? `${userId} (you)` : userId;
}

interface RowLabel {
  id: string;
  label: string | null;
}

/**
 * Values that lost a concurrent edit in this workspace (`ferry_conflicts`
 * rows whose scope is the workspace, synced by the sync rules), with the
 * three ways to settle one. The row keeps the winning value meanwhile.
 */
export function ConflictsPanel({
  workspaceId,
  conflicts,
  user,
}: {
  workspaceId: string;
  conflicts: readonly Conflict[];
  user: string;
}) {
  // What the rows are called, for the list (the panel covers every task, whatever project is shown).
  const { data: labels } = useQuery<RowLabel>(
    `SELECT 'tasks:' || id AS id, title AS label FROM tasks WHERE workspace_id = ?1
     UNION ALL SELECT 'bookings:' || id, title FROM bookings WHERE workspace_id = ?1`,
    [workspaceId],
  );
  if (conflicts.length === 0) return null;
  const labelOf = (c: Conflict): string => {
    const label = labels.find((l) => l.id === `${c.table}:${c.rowId}`)?.label;
    return `${NOUNS[c.table] ?? c.table} ${label === undefined ? '(deleted)' : `“${label ?? ''}”`}`;
  };
  return (
    <section className="conflicts" data-testid="conflicts" aria-labelledby="conflicts-title">
      <h3 id="conflicts-title">
        Edits that lost a conflict <span className="count">{conflicts.length}</span>
      </h3>
      <p className="hint">
        Two people changed the same field without seeing each other&apos;s change. The later edit (by clock) was kept;
        the other one is listed here until someone decides.
      </p>
      <ul>
        {conflicts.map((c) => (
          <ConflictItem key={c.id} conflict={c} label={labelOf(c)} user={user} />
        ))}
      </ul>
    </section>
  );
}

function ConflictItem({ conflict: c, label, user }: { conflict: Conflict; label: string; user: string }) {
  const db = useFerry();
  const [writing, setWriting] = useState(false);
  const [draft, setDraft] = useState('');
  const [error, setError] = useState<string | null>(null);
  const field = FIELDS[c.column] ?? c.column;
  const rowGone = c.policy === 'deleted';

  const resolve = (resolution: Parameters<typeof resolveConflict>[2]): void => {
    setError(null);
    resolveConflict(db, c.id, resolution).catch((failure: unknown) =>
      setError(failure instanceof Error ? failure.message : String(failure)),
    );
  };
  const writeValue = (event: FormEvent): void => {
    event.preventDefault();
    setWriting(false);
    resolve({ value: draft });
  };

  return (
    <li
      id={conflictElementId(c.id)}
      tabIndex={-1}
      className="conflict"
      data-testid="conflict"
      data-row-id={c.rowId}
      data-column={c.column}
    >
      <p className="conflict-subject">
        <strong>{label}</strong>, {field}
      </p>
      <dl className="conflict-values">
        <dt>Kept</dt>
        <dd data-testid="conflict-kept">
          {rowGone ? (
            <>deleted by {who(c.winnerUserId, user)}</>
          ) : (
            <>
              <span className="conflict-value">{showValue(c.winnerValue)}</span> by {who(c.winnerUserId, user)}, edited{' '}
              {clockTime(c.winnerHlc)}
            </>
          )}
        </dd>
        <dt>Lost</dt>
        <dd data-testid="conflict-lost">
          <span className="conflict-value">{showValue(c.loserValue)}</span> by {who(c.loserUserId, user)}, edited{' '}
          {clockTime(c.loserHlc)}
          {c.baseValue !== undefined && <> (changed from {showValue(c.baseValue)})</>}
        </dd>
      </dl>
      <p className="conflict-meta">
        Recorded {new Date(c.createdAt).toLocaleString()}
        {c.policy !== 'lww' && c.policy !== 'deleted' && <> · policy {c.policy}</>}
      </p>
      {writing ? (
        <form className="text-form" onSubmit={writeValue}>
          <label>
            <span>New {field}</span>
            <input value={draft} onChange={(e) => setDraft(e.target.value)} autoFocus maxLength={200} />
          </label>
          <button type="submit">Write value</button>
          <button type="button" onClick={() => setWriting(false)}>
            Cancel
          </button>
        </form>
      ) : (
        <div className="conflict-actions">
          <button type="button" onClick={() => resolve({ keep: 'current' })}>
            {rowGone ? 'Dismiss' : 'Keep current'}
          </button>
          {!rowGone && (
            <>
              <button type="button" onClick={() => resolve({ keep: 'lost' })}>
                Take lost value
              </button>
              <button
                type="button"
                onClick={() => {
                  setDraft(typeof c.winnerValue === 'string' ? c.winnerValue : '');
                  setWriting(true);
                }}
              >
                Write a new value
              </button>
            </>
          )}
        </div>
      )}
      {error !== null && <p role="alert">{error}</p>}
    </li>
  );
}
