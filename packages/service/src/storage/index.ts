export type * from './types.js';
export { PostgresBucketStorage } from './postgres-bucket-storage.js';
export type {
  PostgresBucketStorageOptions,
  ReplicationState,
  SourceTableRegistration,
  StoredSourceTableStatus,
} from './postgres-bucket-storage.js';
export { BucketWriter, checkpointChannel } from './bucket-writer.js';
export type { BucketWriterOptions, CommitResult, RowChange, SourceCommit, StoredSourceTable } from './bucket-writer.js';
export type { CompactOptions, CompactResult } from './compactor.js';
export { encodeParams, decodeParams } from './row-state.js';
export type { RawRow, CompleteRawRow, CurrentRow, BucketEntry, LookupEntry } from './row-state.js';
