import { FerryService, loadConfig } from '@ferry/service';
import type { CommandSpec } from '../args.js';
import { untilSignal } from '../signals.js';

const options = {
  config: { type: 'string', short: 'c', default: 'ferry.yaml', env: 'FERRY_CONFIG', help: 'path of ferry.yaml' },
  'no-replication': { type: 'boolean', help: 'serve the API only; another process replicates' },
} as const;

export const startCommand: CommandSpec<typeof options> = {
  name: 'start',
  summary: 'start the service against any Postgres, configured by ferry.yaml',
  options,
  async run(values) {
    const config = await loadConfig(values.config ?? 'ferry.yaml');
    const service = await FerryService.start(config, { replicate: !values['no-replication'] });
    await untilSignal();
    await service.stop();
  },
};
