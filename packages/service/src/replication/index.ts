export { Replicator } from './replicator.js';
export type { ReplicatorEvents, ReplicatorOptions, ReplicatorState } from './replicator.js';
export type { SnapshotProgress } from './initial-copy.js';
export { ReplicationConnection } from './replication-connection.js';
export type { CreatedSlot, StartReplicationOptions } from './replication-connection.js';
export { decodePgoutput } from './pgoutput-decoder.js';
export type * from './pgoutput-decoder.js';
export { decodeReplicationCopyData, encodeStandbyStatus, BackendMessageFramer } from './copy-both.js';
export type { XLogData, PrimaryKeepalive, ReplicationCopyData, StandbyStatus, BackendMessage } from './copy-both.js';
export { parseLsn, formatLsn, pgMicrosToUnixMs } from './lsn.js';
export type { Lsn } from './lsn.js';
export {
  TypeRegistry,
  builtinTypes,
  PG_TYPE,
  SOURCE_SESSION_OPTIONS,
  mapTimestamptz,
  mapTimestamp,
  mapBytea,
} from './type-mapping.js';
export type { ValueMapper, PgTypeInfo } from './type-mapping.js';
export { parsePgArray } from './pg-array.js';
export { RelationMapper } from './relation-mapper.js';
export {
  checkWalLevel,
  describeSourceTables,
  ensurePublication,
  getSlot,
  dropSlot,
  defaultReplicationNames,
} from './source-schema.js';
export type { SourceTableInfo, SlotInfo } from './source-schema.js';
