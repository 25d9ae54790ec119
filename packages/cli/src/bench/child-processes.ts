/**
 * Child processes of a benchmark run: every process the run starts is
 * registered here and stopped by pid when the run ends, even on failure or
 * Ctrl-C, so no service or client outlives the benchmark.
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';

const live = new Set<ChildProcess>();

/** Keeps the last lines a child printed, for error reports. */
export class LogTail {
  private readonly lines: string[] = [];
  private partial = '';
  private readonly max: number;

  constructor(max = 40) {
    this.max = max;
  }

  push(chunk: string): void {
    const parts = (this.partial + chunk).split('\n');
    this.partial = parts.pop() ?? '';
    for (const line of parts) {
      if (line.length === 0) continue;
      this.lines.push(line.length > 2000 ? line.slice(0, 2000) + '…' : line);
      if (this.lines.length > this.max) this.lines.shift();
    }
  }

  toString(): string {
    return [...this.lines, ...(this.partial ? [this.partial] : [])].join('\n');
  }
}

export interface TrackedChild {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly stdout: LogTail;
  readonly stderr: LogTail;
  /** Resolves with the exit code (or signal name) when the process has exited. */
  readonly exited: Promise<number | string>;
  /** True once the process has exited. */
  readonly hasExited: () => boolean;
}

function track(child: ChildProcess, onStdout?: (chunk: string) => void): TrackedChild {
  if (child.pid === undefined) throw new Error('child process failed to start');
  live.add(child);
  const stdout = new LogTail();
  const stderr = new LogTail();
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    stdout.push(chunk);
    onStdout?.(chunk);
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => stderr.push(chunk));
  let done = false;
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      done = true;
      live.delete(child);
      resolve(code ?? signal ?? 'unknown');
    });
    child.once('error', () => {
      if (child.exitCode !== null || child.signalCode !== null) {
        done = true;
        live.delete(child);
        resolve(child.exitCode ?? child.signalCode ?? 'error');
      }
    });
  });
  return { child, pid: child.pid, stdout, stderr, exited, hasExited: () => done };
}

/** Starts `node <script> ...args` with piped stdout/stderr. */
export function spawnNode(
  script: string,
  args: readonly string[],
  options: { onStdout?: (chunk: string) => void; env?: NodeJS.ProcessEnv; nodeArgs?: readonly string[] } = {},
): TrackedChild {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), script, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: options.env ?? process.env,
  });
  return track(child, options.onStdout);
}

/** Starts `node <script>` with an IPC channel (for children driven by messages). */
export function forkNode(script: string, args: readonly string[] = []): TrackedChild {
  const child = fork(script, [...args], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  return track(child);
}

/**
 * Stops a child by pid: SIGTERM, then SIGKILL after `graceMs`. Resolves
 * once it has exited.
 */
export async function stopChild(tracked: TrackedChild, graceMs = 10_000): Promise<void> {
  if (tracked.hasExited()) return;
  tracked.child.kill('SIGTERM');
  const timer = setTimeout(() => {
    if (!tracked.hasExited()) tracked.child.kill('SIGKILL');
  }, graceMs);
  try {
    await tracked.exited;
  } finally {
    clearTimeout(timer);
  }
}

/** Kills every child still running (SIGKILL, by pid). For exit paths. */
export function killAllChildrenNow(): void {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
}

/** Number of children still running (the run checks it is 0 at the end). */
export function liveChildren(): number {
  return live.size;
}

/**
 * Runs a child to completion and returns the JSON object on the last line
 * of its stdout. Kills it (by pid) after `timeoutMs`.
 */
export async function runJsonChild<T>(
  script: string,
  args: readonly string[],
  timeoutMs: number,
  nodeArgs: readonly string[] = [],
): Promise<T> {
  let out = '';
  const tracked = spawnNode(script, args, { onStdout: (chunk) => (out += chunk), nodeArgs });
  const timer = setTimeout(() => tracked.child.kill('SIGKILL'), timeoutMs);
  let code: number | string;
  try {
    code = await tracked.exited;
  } finally {
    clearTimeout(timer);
  }
  const last = out.trim().split('\n').at(-1) ?? '';
  let parsed: unknown = null;
  try {
    parsed = JSON.parse(last);
  } catch {
    parsed = null;
  }
  if (code !== 0 || parsed === null || typeof parsed !== 'object') {
    throw new Error(
      `child ${script} failed (exit ${code}${code === 'SIGKILL' ? `, killed after ${timeoutMs} ms?` : ''}):\n${tracked.stderr.toString() || out.slice(-2000)}`,
    );
  }
  const result = parsed as { error?: string };
  if (typeof result.error === 'string') throw new Error(`child ${script}: ${result.error}`);
  return parsed as T;
}
