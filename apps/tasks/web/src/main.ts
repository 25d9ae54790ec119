// A placeholder for the task board: it proves the wiring `ferry dev` sets up
// (the app, the demo sign-in backend and the sync endpoint on one origin, and
// .wasm served as application/wasm). The real board replaces this file.
import wasmUrl from '@journeyapps/wa-sqlite/dist/wa-sqlite.wasm?url';

interface DemoUser {
  id: string;
  workspaces: number;
}

interface DemoToken {
  token: string;
  endpoint: string;
  expiresAt: string;
}

function element(id: string): HTMLElement {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`#${id} is missing from index.html`);
  return found;
}

async function signIn(user: DemoUser): Promise<void> {
  const session = element('session');
  session.textContent = `Signing in as ${user.id}…`;
  const response = await fetch('/demo/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user: user.id }),
  });
  if (!response.ok) {
    session.textContent = `Sign-in failed: HTTP ${response.status}`;
    return;
  }
  const { endpoint, expiresAt } = (await response.json()) as DemoToken;
  session.textContent = `Signed in as ${user.id}: sync endpoint ${endpoint}, token valid until ${expiresAt}`;
}

async function showUsers(): Promise<void> {
  const status = element('status');
  const response = await fetch('/demo/users');
  if (!response.ok) {
    status.textContent = `Could not load the demo users: HTTP ${response.status}`;
    return;
  }
  const { users } = (await response.json()) as { users: DemoUser[] };
  const list = element('users');
  list.replaceChildren(
    ...users.map((user) => {
      const item = document.createElement('li');
      item.dataset['user'] = user.id;
      const button = document.createElement('button');
      button.type = 'button';
      button.textContent = `Sign in as ${user.id}`;
      button.addEventListener('click', () => void signIn(user));
      item.append(`${user.id} (${user.workspaces} workspace${user.workspaces === 1 ? '' : 's'}) `, button);
      return item;
    }),
  );
  status.textContent = `${users.length} demo users`;
}

async function checkWasm(): Promise<void> {
  // compileStreaming insists on the application/wasm content type.
  const module = await WebAssembly.compileStreaming(fetch(wasmUrl));
  element('wasm').textContent = `SQLite WASM ok (${WebAssembly.Module.exports(module).length} exports)`;
}

void showUsers().catch((error: unknown) => (element('status').textContent = `Error: ${String(error)}`));
void checkWasm().catch((error: unknown) => (element('wasm').textContent = `SQLite WASM failed: ${String(error)}`));
