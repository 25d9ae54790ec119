import type { CommandSpec } from '../args.js';
import { untilSignal } from '../signals.js';

const options = {
  project: { type: 'string', default: '.', help: 'project folder with migrations/ and sync-rules.yaml' },
  port: { type: 'string', default: '8080', env: 'FERRY_PORT', help: 'HTTP port of the service' },
  'pg-port': { type: 'string', default: '0', help: 'port of the embedded Postgres (0 = a free one)' },
  'log-level': { type: 'string', default: 'info', env: 'FERRY_LOG_LEVEL', help: 'trace|debug|info|warn|error' },
} as const;

export const devCommand: CommandSpec<typeof options> = {
  name: 'dev',
  summary: 'run an embedded Postgres, apply migrations/*.sql and start the service with a dev key',
  options,
  async run(values) {
    // Loaded on demand: only dev and demo need the embedded Postgres.
    const { startDevStack } = await import('../dev-stack.js');
    const stack = await startDevStack({
      projectDir: values.project ?? '.',
      port: Number(values.port),
      pgPort: Number(values['pg-port']),
      logLevel: (values['log-level'] ?? 'info') as 'info',
    });
    const url = stack.service.url;
    process.stdout.write(
      [
        '',
        `  Ferry dev is running.`,
        `  Sync endpoint   ${url}   (POST /sync/stream, GET /health, /ready, /metrics)`,
        `  Postgres        ${stack.databaseUrl}`,
        `  Get a token     npm run ferry -- token --user alice --dir ${values.project ?? '.'}/.ferry`,
        `  Stop            Ctrl-C`,
        '',
      ].join('\n') + '\n',
    );
    await untilSignal();
    process.stdout.write('\nshutting down…\n');
    await stack.stop();
  },
};
