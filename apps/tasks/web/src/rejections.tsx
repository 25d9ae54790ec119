import { useRejections } from '@ferry/react';

const VERBS = { PUT: 'Saving', PATCH: 'Changing', DELETE: 'Deleting' } as const;
const NOUNS: Record<string, string> = {
  tasks: 'a task',
  projects: 'a project',
  workspaces: 'a workspace',
  bookings: 'a booking',
  ferry_conflicts: 'a conflict resolution',
};

/** Writes the service rejected, with its reason; the rows are back to the server's state. */
export function Rejections() {
  const { rejections, clearRejections } = useRejections();
  if (rejections.length === 0) return null;
  return (
    <section className="rejections" data-testid="rejections" aria-labelledby="rejections-title">
      <h2 id="rejections-title">Changes the server refused</h2>
      <ul>
        {rejections.map((r) => (
          <li key={r.id} data-testid="rejection" data-code={r.code}>
            <span>
              {VERBS[r.op]} {NOUNS[r.table] ?? r.table} was not saved: {r.message} <code>{r.code}</code>
            </span>
            <button type="button" onClick={() => void clearRejections([r.id])}>
              Dismiss
            </button>
          </li>
        ))}
      </ul>
    </section>
  );
}
