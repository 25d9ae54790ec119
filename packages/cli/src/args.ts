import { parseArgs, type ParseArgsConfig } from 'node:util';

/** One CLI option, declared once: parsing, defaults and `--help` all come from here. */
export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  default?: string | boolean;
  /** Environment variable that supplies the value when the flag is absent. */
  env?: string;
  help: string;
}

export interface CommandSpec<Options extends Record<string, OptionSpec> = Record<string, OptionSpec>> {
  name: string;
  summary: string;
  options: Options;
  run(values: ParsedValues<Options>): Promise<void>;
}

export type ParsedValues<Options extends Record<string, OptionSpec>> = {
  [K in keyof Options]: Options[K]['type'] extends 'boolean' ? boolean : string | undefined;
};

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Parses argv for one command, applying env fallbacks and defaults. */
export function parseCommandArgs<Options extends Record<string, OptionSpec>>(
  spec: CommandSpec<Options>,
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): ParsedValues<Options> {
  const options: ParseArgsConfig['options'] = {};
  for (const [name, option] of Object.entries(spec.options)) {
    options[name] = option.short ? { type: option.type, short: option.short } : { type: option.type };
  }
  let values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  try {
    ({ values } = parseArgs({ args: argv, options, allowPositionals: false, strict: true }));
  } catch (error) {
    throw new UsageError(`ferry ${spec.name}: ${(error as Error).message}\n\n${commandHelp(spec)}`);
  }
  const out: Record<string, string | boolean | undefined> = {};
  for (const [name, option] of Object.entries(spec.options)) {
    const raw = values[name];
    let value = Array.isArray(raw) ? raw.at(-1) : raw;
    if (value === undefined && option.env && env[option.env] !== undefined) {
      value = option.type === 'boolean' ? env[option.env] === 'true' || env[option.env] === '1' : env[option.env];
    }
    if (value === undefined) value = option.default ?? (option.type === 'boolean' ? false : undefined);
    out[name] = value;
  }
  return out as ParsedValues<Options>;
}

export function commandHelp(spec: CommandSpec): string {
  const lines = [`ferry ${spec.name} — ${spec.summary}`, '', 'Options:'];
  for (const [name, option] of Object.entries(spec.options)) {
    const flag = `${option.short ? `-${option.short}, ` : ''}--${name}${option.type === 'string' ? ' <value>' : ''}`;
    const extras = [
      option.default !== undefined && option.default !== false ? `default: ${String(option.default)}` : '',
      option.env ? `env: ${option.env}` : '',
    ].filter(Boolean);
    lines.push(`  ${flag.padEnd(28)} ${option.help}${extras.length ? ` (${extras.join('; ')})` : ''}`);
  }
  return lines.join('\n');
}
