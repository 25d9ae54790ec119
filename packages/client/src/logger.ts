/** Where the client writes diagnostics. `console` satisfies it. */
export interface FerryLogger {
  debug(message: string, details?: Record<string, unknown>): void;
  info(message: string, details?: Record<string, unknown>): void;
  warn(message: string, details?: Record<string, unknown>): void;
  error(message: string, details?: Record<string, unknown>): void;
}

const noop = (): void => {};

/** A logger that drops everything (the default). */
export const silentLogger: FerryLogger = { debug: noop, info: noop, warn: noop, error: noop };
