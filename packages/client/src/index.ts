export { column, COLUMN_TYPES, Schema, Table, quoteIdentifier } from './schema.js';
export type { ColumnDefinition, ColumnType, IndexDefinition, ResolvedTable, RowOf, TableOptions } from './schema.js';
export type { SqliteConnection, SqliteDriver, SqliteParam, SqliteQueryResult, SqliteResultRow } from './driver.js';
export { FerryDatabase } from './ferry-database.js';
export type {
  ChangeEvent,
  ConnectOptions,
  FerryDatabaseOptions,
  OnChangeOptions,
  QueryContext,
  StatusListener,
  WatchCallbacks,
  WatchOptions,
} from './ferry-database.js';
export type { FerryConnector, FerryCredentials, UploadDataOptions } from './connector.js';
export { FerryWriteConnector, ferryConnector } from './ferry-write-connector.js';
export type { FerryWriteConnectorOptions } from './ferry-write-connector.js';
export { REJECTIONS_TABLE } from './rejections.js';
export {
  CONFLICTS_TABLE,
  conflictFromRow,
  conflictsQuery,
  VIOLATIONS_TABLE,
  violationFromRow,
  violationsQuery,
} from './conflicts.js';
export type {
  BuiltQuery,
  Conflict,
  ConflictFilter,
  ConflictPolicy,
  ConflictResolution,
  Violation,
  ViolationRowRef,
} from './conflicts.js';
export type { RejectedOp, RejectedWrite } from './rejections.js';
export type { SyncOptions } from './sync-client.js';
export {
  broadcastTabChannel,
  parseTabMessage,
  statusToTab,
  TAB_PROTOCOL_VERSION,
  TabStatusDecoder,
  webTabLocks,
} from './multi-tab.js';
export type {
  BroadcastChannelLike,
  LockManagerLike,
  TabChannel,
  TabError,
  TabLocks,
  TabMessage,
  TabMessageKind,
  TabsOptions,
  TabStatus,
} from './multi-tab.js';
export type { DataFlowStatus, DownloadProgress, SyncStatus } from './sync-status.js';
export { retryDelay } from './backoff.js';
export type { RetryDelayOptions } from './backoff.js';
export { silentLogger } from './logger.js';
export type { FerryLogger } from './logger.js';
export { TableUsageAnalyzer } from './table-usage.js';
export type { TableUsage } from './table-usage.js';
export { Mutex } from './mutex.js';
export { compactCrud } from './queue-compaction.js';
export type { CompleteOptions, CrudBatch, CrudEntry, CrudOp, CrudTransaction } from './upload-queue.js';
