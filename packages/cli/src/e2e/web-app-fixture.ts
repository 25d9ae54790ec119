/**
 * Helpers for the task-board browser tests: a real `ferry dev` (own embedded
 * Postgres, a temp copy of apps/tasks) and Debian's Chromium driving the app
 * like a user, through its labels and `data-testid`s.
 */
import { cp, mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { launchChromium } from '@ferry/test-utils';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { expect } from 'vitest';
import { Cleanup, pgQuery, REPO_ROOT, runCli, tempDir, waitFor, type CliProcess } from './stack.js';

export const LAUNCH = '11111111-1111-4111-8111-111111111111';
export const FIELD = '22222222-2222-4222-8222-222222222222';

/** How long the UI may take to show something (first sync, a change from another user). */
export const UI_TIMEOUT_MS = 30_000;

/**
 * A copy of apps/tasks in a temp dir, laid out like the repository: a
 * `node_modules` link and an ESM package.json above it, so the app's own
 * imports (`vite`, `react`, `@journeyapps/wa-sqlite`) resolve as they do in place.
 */
export async function copyProject(cleanup: Cleanup, prefix: string): Promise<string> {
  const root = await tempDir(cleanup, prefix);
  const project = path.join(root, 'tasks');
  await cp(path.join(REPO_ROOT, 'apps/tasks'), project, {
    recursive: true,
    filter: (source) => !source.split(path.sep).includes('.ferry'),
  });
  await symlink(path.join(REPO_ROOT, 'node_modules'), path.join(root, 'node_modules'), 'dir');
  await writeFile(path.join(root, 'package.json'), JSON.stringify({ private: true, type: 'module' }));
  return project;
}

export interface DevProcess {
  cli: CliProcess;
  /** The one URL printed as "Open", without a trailing slash. */
  url: string;
  /** The dev database, as printed. */
  databaseUrl: string;
}

/** Starts `ferry dev` on a free port and parses the URLs it prints. */
export async function startDev(cleanup: Cleanup, project: string, extraArgs: string[] = []): Promise<DevProcess> {
  const cli = runCli(['dev', '--project', project, '--port', '0', '--log-level', 'warn', ...extraArgs], { cleanup });
  const printed = waitFor(
    () => {
      const open = /^\s*Open\s+(http:\/\/\S+?)\/?$/m.exec(cli.output());
      const postgres = /^\s*Postgres\s+(postgres:\/\/\S+)$/m.exec(cli.output());
      return open !== null && postgres !== null ? [open[1]!, postgres[1]!] : undefined;
    },
    { timeoutMs: 120_000, message: () => `ferry dev printed no URL:\n${cli.output()}` },
  );
  // Fail at once (with its output) when ferry dev exits instead of starting.
  const exited = cli.exited.then(({ code, signal }) => {
    throw new Error(`ferry dev exited (${code ?? signal}) before it was ready:\n${cli.output()}`);
  });
  exited.catch(() => undefined); // after startup, exiting is stopDev's business
  const [url, databaseUrl] = await Promise.race([printed, exited]);
  return { cli, url, databaseUrl };
}

/** Stops a `ferry dev` (SIGTERM, as Ctrl-C) and checks it exited cleanly. */
export async function stopDev(dev: DevProcess | undefined): Promise<void> {
  if (dev === undefined || dev.cli.child.exitCode !== null || dev.cli.child.signalCode !== null) return;
  dev.cli.child.kill('SIGTERM');
  const { code } = await dev.cli.exited;
  expect({ code, tail: code === 0 ? '' : dev.cli.output().slice(-2000) }).toEqual({ code: 0, tail: '' });
}

/** `ferry dev --web-build` on a copy of apps/tasks, and one Chromium, for a test file. */
export interface TasksStack {
  dev: DevProcess;
  browser: Browser;
  cleanup: Cleanup;
  /** Runs SQL on the dev database. */
  sql<R extends Record<string, unknown> = Record<string, unknown>>(text: string, params?: unknown[]): Promise<R[]>;
  /** A fresh browser profile (own OPFS, IndexedDB, localStorage); closed by {@link TasksStack.cleanup}. */
  newContext(): Promise<BrowserContext>;
}

export async function startTasksStack(prefix: string): Promise<TasksStack> {
  const cleanup = new Cleanup();
  const project = await copyProject(cleanup, prefix);
  const [dev, browser] = await Promise.all([startDev(cleanup, project, ['--web-build']), launchChromium()]);
  cleanup.add(() => browser.close());
  cleanup.add(() => stopDev(dev));
  return {
    dev,
    browser,
    cleanup,
    sql: (text, params = []) => pgQuery(dev.databaseUrl, text, params),
    async newContext() {
      const context = await browser.newContext({ viewport: { width: 1180, height: 760 } });
      cleanup.add(() => context.close().catch(() => undefined));
      return context;
    },
  };
}

/** A page of the app; uncaught page errors are collected (a test expects none). */
export interface AppPage {
  page: Page;
  errors: string[];
}

/** Opens the app (optionally `?vfs=idb`) in `context`. */
export async function openApp(stack: TasksStack, context: BrowserContext, query = ''): Promise<AppPage> {
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(`${stack.dev.url}/${query}`);
  return { page, errors };
}

/** Signs in from the sign-in screen and waits for the board (first sync done). */
export async function signIn(page: Page, user: string): Promise<void> {
  await page.getByRole('button', { name: `Sign in as ${user}` }).click({ timeout: UI_TIMEOUT_MS });
  await page.getByTestId('board').waitFor({ timeout: UI_TIMEOUT_MS });
  await expect.poll(() => page.getByTestId('signed-in-as').textContent()).toBe(`Signed in as ${user}`);
}

/** Opens a workspace from the sidebar by name. */
export async function chooseWorkspace(page: Page, name: string): Promise<void> {
  await page.getByTestId('workspace').filter({ hasText: name }).click({ timeout: UI_TIMEOUT_MS });
  await expect.poll(() => page.locator('#workspace-title').textContent()).toBe(name);
}

/** The card of the task titled `title` on the shown board. */
export function task(page: Page, title: string): Locator {
  return page.getByTestId('task').filter({ has: page.getByTestId('task-title').getByText(title, { exact: true }) });
}

/** Waits until the task titled `title` is shown in column `status`. */
export async function expectTaskIn(page: Page, title: string, status: 'todo' | 'doing' | 'done'): Promise<void> {
  await page
    .getByTestId(`column-${status}`)
    .getByTestId('task-title')
    .getByText(title, { exact: true })
    .waitFor({ timeout: UI_TIMEOUT_MS });
}

/** Waits until no task titled `title` is shown. */
export async function expectNoTask(page: Page, title: string): Promise<void> {
  await task(page, title).waitFor({ state: 'detached', timeout: UI_TIMEOUT_MS });
}

/** Adds a task through the "To do" column's form. */
export async function addTask(page: Page, title: string): Promise<void> {
  await page.getByTestId('column-todo').getByLabel('New task title').fill(title);
  await page.getByTestId('column-todo').getByRole('button', { name: 'Add task' }).click();
  await expectTaskIn(page, title, 'todo');
}

/** Every task card of the shown board as `title/status`, sorted. */
export async function boardTasks(page: Page): Promise<string[]> {
  const cards = await page
    .getByTestId('task')
    .evaluateAll((items) =>
      items.map(
        (item) =>
          `${item.querySelector('[data-testid="task-title"]')?.textContent}/${item.getAttribute('data-status')}`,
      ),
    );
  return cards.sort();
}

/** The same as {@link boardTasks}, from Postgres, for one workspace. */
export async function postgresTasks(stack: TasksStack, workspaceId: string): Promise<string[]> {
  const rows = await stack.sql<{ task: string }>(
    `SELECT title || '/' || status AS task FROM tasks WHERE workspace_id = $1`,
    [workspaceId],
  );
  return rows.map((row) => row.task).sort();
}

/** Runs a query on the page's local SQLite (the app exposes its database as `window.ferryTasksDb`). */
export async function localQuery<R>(page: Page, sql: string, params: (string | number | null)[] = []): Promise<R[]> {
  return page.evaluate(
    async ([text, values]) => {
      const db = (
        window as unknown as { ferryTasksDb?: { getAll(sql: string, params: unknown[]): Promise<unknown[]> } }
      ).ferryTasksDb;
      if (db === undefined) throw new Error('the app has not opened its database');
      return (await db.getAll(text, [...values])) as never[];
    },
    [sql, params] as const,
  );
}

/** The pending upload count the page shows. */
export async function shownPending(page: Page): Promise<number> {
  return Number(await page.getByTestId('pending').getAttribute('data-count'));
}

/** `ferry_connected_clients` from the service's /metrics: sync streams open right now. */
export async function connectedClients(stack: TasksStack): Promise<number> {
  const text = await (await fetch(`${stack.dev.url}/metrics`)).text();
  const match = /^ferry_connected_clients\s+(\d+)/m.exec(text);
  if (match === null) throw new Error(`no ferry_connected_clients in /metrics:\n${text.slice(0, 500)}`);
  return Number(match[1]);
}

/**
 * Saves a screenshot to docs/img/<name>.png when FERRY_SCREENSHOTS=1 (how
 * docs/demo.md's pictures are made); otherwise does nothing, so test runs
 * leave the checkout alone.
 */
export async function screenshot(page: Page, name: string, options: { fullPage?: boolean } = {}): Promise<void> {
  if (process.env['FERRY_SCREENSHOTS'] !== '1') return;
  const dir = path.join(REPO_ROOT, 'docs', 'img');
  await mkdir(dir, { recursive: true });
  await page.screenshot({ path: path.join(dir, `${name}.png`), fullPage: options.fullPage ?? false });
}

/** Renames the task titled `from` through its card's edit form. */
export async function editTitle(page: Page, from: string, to: string): Promise<void> {
  const id = await task(page, from).getAttribute('data-task-id', { timeout: UI_TIMEOUT_MS });
  // While editing, the card shows a form instead of its title: find it by id.
  const card = page.locator(`[data-testid="task"][data-task-id="${id}"]`);
  await card.getByRole('button', { name: `Edit “${from}”` }).click();
  await card.getByLabel('Title').fill(to);
  await card.getByRole('button', { name: 'Save', exact: true }).click();
  await task(page, to).waitFor({ timeout: UI_TIMEOUT_MS });
}

/** The conflicts panel's entries about row `rowId` (a `ferry_conflicts` row each). */
export function conflictsOf(page: Page, rowId: string): Locator {
  return page
    .getByTestId('conflicts')
    .getByTestId('conflict')
    .and(page.locator(`[data-row-id="${rowId}"]`));
}

/** Switches the shown workspace to its rooms view and to `day` (`YYYY-MM-DD`). */
export async function openRooms(page: Page, day: string): Promise<void> {
  await page.getByRole('group', { name: 'View' }).getByRole('button', { name: 'Rooms' }).click();
  await page.getByTestId('rooms').getByLabel('Day').fill(day);
  await expect.poll(() => page.getByTestId('rooms').getByLabel('Day').inputValue()).toBe(day);
}

/** Books `room` at `slot` on the shown day. */
export async function bookSlot(page: Page, room: string, slot: string, title: string): Promise<void> {
  await page.getByRole('button', { name: `Book ${room} at ${slot}` }).click({ timeout: UI_TIMEOUT_MS });
  await page.getByLabel('What for?').fill(title);
  await page.getByRole('button', { name: 'Confirm booking' }).click();
  await booking(page, title).waitFor({ timeout: UI_TIMEOUT_MS });
}

/** The booking titled `title` in the rooms view. */
export function booking(page: Page, title: string): Locator {
  return page
    .getByTestId('booking')
    .filter({ has: page.locator('.booking-title strong').getByText(title, { exact: true }) });
}

/** The titles of the bookings shown in `room` at `slot`, sorted. */
export async function bookingsIn(page: Page, room: string, slot: string): Promise<string[]> {
  const titles = await page
    .locator(
      `[data-testid="slot"][data-room="${room}"][data-slot="${slot}"] [data-testid="booking"] .booking-title strong`,
    )
    .allTextContents();
  return titles.sort();
}
