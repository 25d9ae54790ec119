#!/usr/bin/env node
import { FerryError } from '@ferry/protocol';
import { commandHelp, parseCommandArgs, UsageError, type CommandSpec, type OptionSpec } from './args.js';
import { demoCommand } from './commands/demo.js';
import { devCommand } from './commands/dev.js';
import { migrateCommand } from './commands/migrate.js';
import { startCommand } from './commands/start.js';
import { tokenCommand } from './commands/token.js';

const commands = [devCommand, startCommand, tokenCommand, migrateCommand, demoCommand] as unknown as CommandSpec<
  Record<string, OptionSpec>
>[];

function usage(): string {
  return [
    'Usage: ferry <command> [options]',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(10)} ${c.summary}`),
    '',
    "Run `ferry <command> --help` for a command's options.",
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage() + '\n');
    return name ? 0 : 1;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`ferry: unknown command "${name}"\n\n${usage()}\n`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(commandHelp(command) + '\n');
    return 0;
  }
  try {
    await command.run(parseCommandArgs(command, rest));
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(error.message + '\n');
      return 2;
    }
    if (FerryError.is(error)) {
      process.stderr.write(`ferry ${name}: ${error.message} [${error.code}]\n`);
      return 1;
    }
    process.stderr.write(`ferry ${name}: ${error instanceof Error ? error.message : String(error)}\n`);
    if (process.env.FERRY_DEBUG) console.error(error);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
