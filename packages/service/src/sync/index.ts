export { SyncSession } from './sync-session.js';
export type { SyncSessionDeps } from './sync-session.js';
export { SharedOpReader } from './op-cache.js';
export type { DataPage, SharedOpReaderOptions } from './op-cache.js';
export { LineWriter, StreamStopped, isStreamStopped } from './line-writer.js';
export type { LineSink } from './line-writer.js';
