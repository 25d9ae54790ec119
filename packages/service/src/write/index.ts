export { MAX_CLIENT_ID_LENGTH, WriteCheckpoints } from './write-checkpoints.js';
export type { WriteCheckpointCreator, WriteCheckpointsOptions } from './write-checkpoints.js';
