export type * from './types.js';
export { compileSyncRules, type CompileOptions } from './compile.js';
export {
  SyncRulesError,
  type SourceLocation,
  type SyncRulesErrorCode,
  type SyncRulesErrorDetails,
  type SyncRulesProblem,
} from './errors.js';
export { lookupString } from './evaluator.js';
export { byteToCharOffset } from './source-map.js';
