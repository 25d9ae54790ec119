/**
 * `npm run bench`: the read-path benchmark suite. Starts one embedded
 * Postgres for the run (fsync off, temp data dir), runs each scenario on a
 * fresh database with the service as a child process, prints a table and
 * merges `bench-results.json` at the repository root.
 *
 *   node packages/cli/dist/bench/run.js [--only initial_sync,fanout] [--list]
 *
 * A failed scenario prints its error and shows as failed in the table (its
 * metrics are removed from bench-results.json rather than left stale); the
 * run exits non-zero only if every scenario failed.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadOrCreateDevKey } from '../dev-keys.js';
import { startEmbeddedPostgres, type RunningPostgres } from '../embedded-postgres.js';
import { createBenchContext, removeDir, type Scenario } from './bench-context.js';
import { killAllChildrenNow, liveChildren } from './child-processes.js';
import { fanoutScenario } from './fanout-scenario.js';
import { metric, renderTable, writeResults, type MetricResult } from './harness.js';
import { initialSyncScenario } from './initial-sync-scenario.js';
import { lagScenario } from './lag-scenario.js';
import { localQueryScenario } from './local-query-scenario.js';
import { localWriteScenario } from './local-write-scenario.js';
import { replicationScenario } from './replication-scenario.js';
import { selectScenarios } from './select-scenarios.js';
import { snapshotScenario } from './snapshot-scenario.js';
import { webScenario } from './web-scenario.js';
import { writePathScenario } from './write-path-scenario.js';

const SCENARIOS: readonly Scenario[] = [
  initialSyncScenario,
  replicationScenario,
  snapshotScenario,
  lagScenario,
  fanoutScenario,
  localQueryScenario,
  localWriteScenario,
  writePathScenario,
  webScenario,
];

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A failed metric: NaN value, no samples, and the reason in the note. */
function failed(name: string, unit: string, target: MetricResult['target'], reason: string): MetricResult {
  const firstLine = reason.split('\n')[0]!.slice(0, 160);
  return metric(name, unit, [], { value: Number.NaN, note: `FAILED: ${firstLine}`, ...(target ? { target } : {}) });
}

/** Drops metrics that failed this run from bench-results.json, so no stale figure survives next to a failure. */
async function removeStale(file: string, names: readonly string[]): Promise<void> {
  if (names.length === 0 || !existsSync(file)) return;
  try {
    const existing = JSON.parse(await readFile(file, 'utf8')) as Record<string, number>;
    for (const name of names) delete existing[name];
    await writeFile(file, JSON.stringify(existing, null, 2) + '\n');
  } catch {
    // unreadable: writeResults replaces it
  }
}

function findRepoRoot(): string {
  // dist/bench/run.js → packages/cli/dist/bench → repo root is four levels up.
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..');
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { only: { type: 'string' }, list: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  });
  if (values.help || values.list) {
    process.stdout.write('Usage: node packages/cli/dist/bench/run.js [--only a,b] [--list]\n\nScenarios:\n');
    for (const s of SCENARIOS) process.stdout.write(`  ${s.name.padEnd(14)} ${s.summary}\n`);
    return 0;
  }
  const scenarios = selectScenarios(SCENARIOS, values.only);
  const repoRoot = findRepoRoot();
  const tmpDir = await mkdtemp(path.join(os.tmpdir(), 'ferry-bench-'));
  // Postgres runs as the `postgres` OS user when we are root: let it into our temp folder.
  if (typeof process.getuid === 'function' && process.getuid() === 0) {
    const { chmod } = await import('node:fs/promises');
    await chmod(tmpDir, 0o755);
  }
  const startedAt = Date.now();
  const results: MetricResult[] = [];
  const failedNames: string[] = [];
  let scenariosFailed = 0;
  let pgServer: RunningPostgres | null = null;

  const onSignal = () => {
    killAllChildrenNow();
    process.stderr.write('\n[bench] interrupted; children stopped\n');
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    const devKey = await loadOrCreateDevKey(path.join(tmpDir, 'dev-key.json'));
    if (scenarios.some((s) => s.needsPostgres)) {
      process.stderr.write('[bench] starting embedded Postgres\n');
      pgServer = await startEmbeddedPostgres({ dataDir: path.join(tmpDir, 'pg'), persistent: false, unsafeFast: true });
    }
    for (const scenario of scenarios) {
      const scenarioStarted = Date.now();
      const reported = new Map<string, MetricResult>();
      process.stderr.write(`[bench] ── ${scenario.name}: ${scenario.summary}\n`);
      const out = {
        add(result: MetricResult) {
          reported.set(result.name, result);
        },
        fail(name: string, error: unknown) {
          const spec = scenario.metrics.find((m) => m.name === name);
          reported.set(name, failed(name, spec?.unit ?? '', spec?.target, errorText(error)));
        },
      };
      let scenarioError: unknown = null;
      const ctx = createBenchContext({ repoRoot, tmpDir, pg: pgServer!, devKey });
      try {
        if (scenario.needsPostgres && pgServer === null) throw new Error('Postgres is not running');
        await scenario.run(ctx, out);
      } catch (error) {
        scenarioError = error;
        process.stderr.write(
          `[bench] ${scenario.name} FAILED: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
        );
        for (const service of ctx.services) {
          const tail = `${service.process.stdout}\n${service.process.stderr}`.trim();
          process.stderr.write(`[bench] service pid ${service.pid} log tail:\n${tail.slice(-4000)}\n`);
        }
      }
      if (liveChildren() > 0) {
        process.stderr.write(`[bench] ${scenario.name} left ${liveChildren()} child process(es); killing them\n`);
        killAllChildrenNow();
      }
      const specs = [
        ...scenario.metrics,
        ...[...reported.keys()]
          .filter((n) => !scenario.metrics.some((m) => m.name === n))
          .map((name) => ({ name, unit: '', target: undefined })),
      ];
      let anyOk = false;
      for (const spec of specs) {
        let result = reported.get(spec.name);
        if (result === undefined) {
          result = failed(
            spec.name,
            spec.unit,
            spec.target,
            scenarioError === null ? 'not reported' : errorText(scenarioError),
          );
        }
        if (Number.isNaN(result.value)) failedNames.push(result.name);
        else anyOk = true;
        results.push(result);
      }
      if (!anyOk) scenariosFailed++;
      process.stderr.write(
        `[bench] ${scenario.name} done in ${((Date.now() - scenarioStarted) / 1000).toFixed(1)} s\n`,
      );
    }
  } finally {
    killAllChildrenNow();
    if (pgServer !== null)
      await pgServer
        .stop()
        .catch((error: unknown) => process.stderr.write(`[bench] stopping Postgres: ${errorText(error)}\n`));
    await removeDir(tmpDir);
  }

  process.stdout.write('\n' + renderTable(results) + '\n');
  process.stdout.write(
    `\n${os.cpus().length} CPUs, load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}; run took ${((Date.now() - startedAt) / 1000).toFixed(0)} s\n`,
  );
  const file = path.resolve(repoRoot, 'bench-results.json');
  await removeStale(file, failedNames);
  const measured = results.filter((r) => !Number.isNaN(r.value));
  if (measured.length > 0) await writeResults(file, measured);
  process.stdout.write(`results: ${file}\n`);
  return scenariosFailed === scenarios.length && scenarios.length > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    killAllChildrenNow();
    process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 2;
  },
);
