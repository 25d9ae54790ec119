export { createMetrics, SYNC_LINE_KINDS } from './metrics.js';
export type { FerryMetrics, MetricsOptions, SyncLineKind } from './metrics.js';
export { createLogger, LOG_LEVELS } from './logger.js';
export type { Logger, LogLevel } from './logger.js';
