import type { CommandSpec } from '../args.js';
import { untilSignal } from '../signals.js';

const options = {
  project: { type: 'string', default: '.', help: 'project folder with migrations/ and sync-rules.yaml' },
  port: { type: 'string', default: '8080', env: 'FERRY_PORT', help: 'HTTP port of the service' },
  'pg-port': { type: 'string', default: '0', help: 'port of the embedded Postgres (0 = a free one)' },
  'web-build': {
    type: 'boolean',
    help: 'build the web app once (into <project>/.ferry/web) and serve the files, instead of Vite with live reload; also when NODE_ENV=production',
  },
  'log-level': { type: 'string', default: 'info', env: 'FERRY_LOG_LEVEL', help: 'trace|debug|info|warn|error' },
} as const;

export const devCommand: CommandSpec<typeof options> = {
  name: 'dev',
  summary:
    'run an embedded Postgres, apply migrations/*.sql and start the service with a dev key; serves <project>/web on the same URL',
  options,
  async run(values) {
    // Loaded on demand: only dev and demo need the embedded Postgres.
    const { startDevStack } = await import('../dev-stack.js');
    const project = values.project ?? '.';
    const stack = await startDevStack({
      projectDir: project,
      port: Number(values.port),
      pgPort: Number(values['pg-port']),
      logLevel: (values['log-level'] ?? 'info') as 'info',
      web: values['web-build'] || process.env['NODE_ENV'] === 'production' ? 'static' : 'vite',
      demoAuth: true,
    });
    const url = stack.service.url;
    const web =
      stack.web === null
        ? [`  Web app         none (add ${project}/web/index.html to serve one here)`]
        : [
            `  Open            ${url}/`,
            `  Web app         ${stack.webDir} (${stack.web.mode === 'vite' ? 'Vite, live reload' : 'built, served from disk'})`,
          ];
    process.stdout.write(
      [
        '',
        `  Ferry dev is running.`,
        ...web,
        `  Sync endpoint   ${url}   (POST /sync/stream${stack.service.writeApi === null ? '' : ', POST /write'}, GET /health, /ready, /metrics)`,
        `  Demo sign-in    GET ${url}/demo/users, POST ${url}/demo/token {"user":"alice"}`,
        `  Postgres        ${stack.databaseUrl}`,
        `  Get a token     npm run ferry -- token --user alice --dir ${project}/.ferry`,
        `  Stop            Ctrl-C`,
        '',
      ].join('\n') + '\n',
    );
    await untilSignal();
    process.stdout.write('\nshutting down…\n');
    await stack.stop();
  },
};
