export { MAX_CLIENT_ID_LENGTH, WriteCheckpoints } from './write-checkpoints.js';
export type { WriteCheckpointCreator, WriteCheckpointsOptions } from './write-checkpoints.js';
export {
  compileWriteRules,
  WRITE_OPERATIONS,
  WriteRulesError,
  type CompileWriteRulesOptions,
  type RulesPosition,
  type TableWriteRule,
  type WriteOperation,
  type WriteRules,
  type WriteRulesProblem,
} from './write-rules.js';
export { parseWhereExpression, type WhereExpression, type WhereInput } from './where-expression.js';
export { loadWriteSchema, type WriteColumn, type WriteTable } from './write-schema.js';
export { toPostgresText, ValueConversionError, type ValueKind } from './value-conversion.js';
export { parseWriteRequest, type ClientTransaction } from './write-request.js';
export { createWriteMetrics, type WriteMetrics } from './write-metrics.js';
export { ensureBookkeeping, WriteApi, type WriteApiOptions, type WriteClient, type WriteLogger } from './write-api.js';
export {
  createWriteHandler,
  DEFAULT_MAX_WRITE_BYTES,
  serveWrite,
  type WriteAuth,
  type WriteHandler,
  type WriteHandlerOptions,
} from './write-handler.js';
