export { MAX_CLIENT_ID_LENGTH, WriteCheckpoints } from './write-checkpoints.js';
export type { WriteCheckpointCreator, WriteCheckpointsOptions } from './write-checkpoints.js';
export {
  compileWriteRules,
  DEFAULT_CONFLICT_RULE,
  WRITE_OPERATIONS,
  WriteRulesError,
  type CompileWriteRulesOptions,
  type ConflictPolicy,
  type RulesPosition,
  type TableConflictRule,
  type TableWriteRule,
  type WriteOperation,
  type WriteRules,
  type WriteRulesProblem,
} from './write-rules.js';
export { parseWhereExpression, type WhereExpression, type WhereInput } from './where-expression.js';
export {
  defineWriteHooks,
  type HookToken,
  type HookTransaction,
  type MergeContext,
  type MergeFunction,
  type RowRef,
  type ValidationContext,
  type ValidationHook,
  type ViolationInput,
  type WriteHooks,
} from './hooks.js';
export { checkWriteHooks, loadWriteHooks } from './hooks-loader.js';
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
