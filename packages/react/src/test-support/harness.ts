import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { column, Schema, Table, type FerryDatabase, type SqliteParam, type WatchCallbacks } from '@ferry/client';
import { openFerryDatabase } from '@ferry/client-node';
import { act, Component, createElement, type ReactElement, type ReactNode } from 'react';
import { createRoot, type Root } from 'react-dom/client';

// Tells React that updates are driven through act() here.
(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

export const schema = new Schema({
  tasks: new Table({ project: column.text, title: column.text, rank: column.integer }),
  notes: new Table({ body: column.text }, { localOnly: true }),
});

export interface TestDb extends AsyncDisposable {
  db: FerryDatabase;
  /** Watches started on `db` so far (by anyone). */
  readonly watchesStarted: number;
  /** Watches started and not stopped yet. */
  readonly watchesActive: number;
}

/**
 * A real Ferry database (better-sqlite3 on a temp file) whose `watch` is
 * observed, not replaced: every call goes to the real implementation; the
 * wrapper only counts starts and stops.
 */
export async function openTestDb(): Promise<TestDb> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-react-'));
  const db = await openFerryDatabase({ path: join(dir, 'app.db'), schema });
  let started = 0;
  let active = 0;
  const watch = db.watch.bind(db) as <T>(
    sql: string,
    params: readonly SqliteParam[],
    callbacks: WatchCallbacks<T>,
  ) => () => void;
  const observed = <T>(sql: string, params: readonly SqliteParam[], callbacks: WatchCallbacks<T>): (() => void) => {
    started++;
    active++;
    const stop = watch<T>(sql, params, callbacks);
    let stopped = false;
    return () => {
      if (!stopped) {
        stopped = true;
        active--;
      }
      stop();
    };
  };
  db.watch = observed as typeof db.watch;
  return {
    db,
    get watchesStarted() {
      return started;
    },
    get watchesActive() {
      return active;
    },
    async [Symbol.asyncDispose]() {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Mounted extends AsyncDisposable {
  readonly container: HTMLElement;
  render(element: ReactElement): Promise<void>;
  unmount(): Promise<void>;
  /** Errors React reported as caught by an error boundary. */
  readonly caught: unknown[];
}

/** Renders `element` into a fresh root (inside act). */
export async function mount(element: ReactElement): Promise<Mounted> {
  const container = document.createElement('div');
  document.body.append(container);
  const caught: unknown[] = [];
  const root: Root = createRoot(container, { onCaughtError: (error) => caught.push(error) });
  let mounted = true;
  const result: Mounted = {
    container,
    caught,
    async render(next) {
      await act(async () => root.render(next));
    },
    async unmount() {
      if (!mounted) return;
      mounted = false;
      await act(async () => root.unmount());
      container.remove();
    },
    [Symbol.asyncDispose]: () => result.unmount(),
  };
  await result.render(element);
  return result;
}

/** Lets time pass inside act so watch results (async) are rendered. */
export async function settle(rounds = 6): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    await act(async () => {
      await new Promise((resolve) => setTimeout(resolve, 5));
    });
  }
}

/** Waits (inside act) until `predicate` holds; fails after `timeoutMs`. */
export async function until(predicate: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms: ${predicate.toString()}`);
    await act(async () => {
      await new Promise((resolve) => setTimeout(resolve, 5));
    });
  }
}

/** Runs a database write inside act. */
export async function write<T>(fn: () => Promise<T>): Promise<T> {
  let result!: T;
  await act(async () => {
    result = await fn();
  });
  return result;
}

/** Shows the caught error's message instead of its children. */
export class ErrorBoundary extends Component<{ children?: ReactNode }, { error: Error | null }> {
  override state: { error: Error | null } = { error: null };

  static getDerivedStateFromError(error: unknown): { error: Error } {
    return { error: error instanceof Error ? error : new Error(String(error)) };
  }

  override render(): ReactNode {
    if (this.state.error !== null) return createElement('p', { role: 'alert' }, `error: ${this.state.error.message}`);
    return this.props.children;
  }
}
