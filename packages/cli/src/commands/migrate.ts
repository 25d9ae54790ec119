import { loadConfig } from '@ferry/service';
import path from 'node:path';
import type { CommandSpec } from '../args.js';
import { runMigrations } from '../migrate.js';

const options = {
  dir: { type: 'string', default: 'migrations', help: 'folder of *.sql migrations, applied in name order' },
  url: { type: 'string', env: 'DATABASE_URL', help: 'Postgres connection string' },
  config: { type: 'string', short: 'c', help: 'take the connection from this ferry.yaml instead' },
} as const;

export const migrateCommand: CommandSpec<typeof options> = {
  name: 'migrate',
  summary: 'apply SQL migrations (each once, each in a transaction)',
  options,
  async run(values) {
    let url = values.url;
    if (values.config) url = (await loadConfig(values.config)).replication.connection;
    if (!url) throw new Error('ferry migrate: give --url, DATABASE_URL or --config');
    const result = await runMigrations(url, path.resolve(values.dir ?? 'migrations'));
    for (const name of result.applied) process.stdout.write(`applied  ${name}\n`);
    process.stdout.write(`${result.applied.length} applied, ${result.skipped.length} already applied\n`);
  },
};
