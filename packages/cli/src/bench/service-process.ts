/**
 * The Ferry service as a child process (`node packages/cli/dist/bin.js start
 * --config <file>`), so its memory is measured alone: RSS from
 * `/proc/<pid>/status`, readiness by polling `GET /ready`.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { DEV_AUDIENCE, type DevKey } from '../dev-keys.js';
import { freePort } from '../embedded-postgres.js';
import { spawnNode, stopChild, type TrackedChild } from './child-processes.js';
import { readProcMemory, type ProcMemory } from './proc.js';

export interface ServiceProcessOptions {
  /** The built CLI entry (`packages/cli/dist/bin.js`). */
  binJs: string;
  /** Folder for the config and rules files. */
  dir: string;
  /** Source database (bucket storage lives in its `ferry` schema). */
  databaseUrl: string;
  rulesYaml: string;
  /** Write rules (the write API answers 404 without them). */
  writeRulesYaml?: string;
  devKey: DevKey;
  /** Replication slot name; slots are cluster-wide, so one per scenario. */
  slotName: string;
  /** How long to wait for `/ready` (default 180 s). */
  readyTimeoutMs?: number;
  /** Poll interval of `/ready` (default 20 ms). */
  pollMs?: number;
}

export interface StartedService {
  readonly process: TrackedChild;
  readonly pid: number;
  readonly url: string;
  /** ms from spawn until `/health` answered (process up, API listening). */
  readonly listeningMs: number;
  /** ms from spawn until `/ready` answered 200 (initial copy done, first checkpoint published). */
  readyMs: number;
  memory(): Promise<ProcMemory>;
  /** The Prometheus text of `/metrics`. */
  metrics(): Promise<string>;
  /** SIGTERM, then SIGKILL after 10 s. */
  stop(): Promise<void>;
}

async function get(url: string): Promise<number> {
  try {
    const response = await fetch(url);
    await response.arrayBuffer();
    return response.status;
  } catch {
    return 0;
  }
}

/**
 * Writes a ferry.yaml and starts the service; resolves once `/ready`
 * answers 200. On failure the process is stopped and the error carries its
 * last log lines.
 */
export async function startServiceProcess(options: ServiceProcessOptions): Promise<StartedService> {
  const port = await freePort();
  const rulesFile = path.join(options.dir, 'sync-rules.yaml');
  const configFile = path.join(options.dir, 'ferry.yaml');
  await writeFile(rulesFile, options.rulesYaml);
  const writeRulesFile = path.join(options.dir, 'write-rules.yaml');
  if (options.writeRulesYaml !== undefined) await writeFile(writeRulesFile, options.writeRulesYaml);
  // JSON is YAML; the config format is packages/service/src/config/schema.ts.
  const config = {
    replication: { connection: options.databaseUrl, slot_name: options.slotName },
    sync_rules: { path: rulesFile },
    ...(options.writeRulesYaml === undefined ? {} : { write_rules: { path: writeRulesFile } }),
    client_auth: { audience: [DEV_AUDIENCE], jwks: { keys: [options.devKey.publicJwk] } },
    api: { host: '127.0.0.1', port },
    log_level: 'warn',
  };
  await writeFile(configFile, JSON.stringify(config, null, 2) + '\n');

  const started = performance.now();
  // FERRY_BENCH_SERVICE_PROF=<dir>: write a CPU profile of each service process there (for diagnosis).
  const profDir = process.env['FERRY_BENCH_SERVICE_PROF'];
  const nodeArgs = profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [];
  const child = spawnNode(options.binJs, ['start', '--config', configFile], { nodeArgs });
  const url = `http://127.0.0.1:${port}`;
  const fail = async (message: string): Promise<never> => {
    await stopChild(child, 2000);
    throw new Error(`${message}\n--- service stdout ---\n${child.stdout}\n--- service stderr ---\n${child.stderr}`);
  };

  const deadline = started + (options.readyTimeoutMs ?? 180_000);
  const pollMs = options.pollMs ?? 20;
  let listeningMs = -1;
  let readyMs = -1;
  while (readyMs < 0) {
    if (child.hasExited()) return fail(`the service exited before it was ready (exit ${await child.exited})`);
    if (performance.now() > deadline)
      return fail(`the service was not ready within ${options.readyTimeoutMs ?? 180_000} ms`);
    if (listeningMs < 0) {
      if ((await get(`${url}/health`)) === 200) listeningMs = performance.now() - started;
    }
    if (listeningMs >= 0 && (await get(`${url}/ready`)) === 200) readyMs = performance.now() - started;
    else await new Promise((resolve) => setTimeout(resolve, pollMs));
  }

  return {
    process: child,
    pid: child.pid,
    url,
    listeningMs,
    readyMs,
    memory: () => readProcMemory(child.pid),
    async metrics() {
      const response = await fetch(`${url}/metrics`);
      return response.text();
    },
    stop: () => stopChild(child),
  };
}

/** Reads one counter or gauge (summing its label sets) from Prometheus text. */
export function promValue(text: string, name: string): number | null {
  let total: number | null = null;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (match && match[1] === name) total = (total ?? 0) + Number(match[3]);
  }
  return total;
}
