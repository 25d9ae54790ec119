import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';

export type { Logger } from 'pino';

/** Log levels accepted in `log_level`. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Paths never written to the log. */
const REDACTED = [
  'authorization',
  'token',
  '*.authorization',
  '*.token',
  'headers.authorization',
  'req.headers.authorization',
];

/**
 * Creates the service's structured (JSON) logger, writing to stdout or
 * `destination`. Credentials never reach the log: authorization headers and
 * `token` fields are redacted.
 */
export function createLogger(
  level: LogLevel = 'info',
  options: Omit<LoggerOptions, 'level'> = {},
  destination?: DestinationStream,
): Logger {
  const config: LoggerOptions = { name: 'ferry', redact: { paths: REDACTED, censor: '[redacted]' }, ...options, level };
  return destination === undefined ? pino(config) : pino(config, destination);
}
