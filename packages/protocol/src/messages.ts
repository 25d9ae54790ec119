/**
 * Sync protocol messages (PowerSync-compatible).
 *
 * The client POSTs a {@link SyncRequest} to `/sync/stream`; the service
 * answers `application/x-ndjson`, one {@link SyncLine} per line. Field names
 * are the wire's snake_case: these types *are* the wire format.
 *
 * Compatibility: fields may be added (peers ignore unknown fields and unknown
 * line kinds); none may be removed or change meaning. Ferry's extensions use
 * new optional fields or new line kinds only.
 */
import { z } from 'zod';

/** One bucket the client already holds, with the last op id it has of it. */
export const BucketRequestSchema = z.object({
  name: z.string().min(1).max(1024),
  /** Last op id the client holds for this bucket, decimal string. "0" = nothing. */
  after: z.string().regex(/^(0|[1-9][0-9]{0,18})$/, 'op id must be a decimal string'),
});
export type BucketRequest = z.infer<typeof BucketRequestSchema>;

/** Body of `POST /sync/stream`. Unknown fields are ignored. */
export const SyncRequestSchema = z.looseObject({
  buckets: z.array(BucketRequestSchema).max(10_000).default([]),
  /** Always true for current clients; Ferry always includes checksums. */
  include_checksum: z.boolean().optional(),
  /** Data as JSON text (true) rather than objects. Ferry always sends text. */
  raw_data: z.boolean().optional(),
  /** Stable id of the client database, used for write checkpoints. */
  client_id: z.string().max(256).optional(),
  /** Client parameters (`request.parameters()` in sync rules). */
  parameters: z.record(z.string(), z.unknown()).optional(),
  /** Sync streams (PowerSync's newer model); accepted and ignored for bucket rules. */
  streams: z.unknown().optional(),
  app_metadata: z.record(z.string(), z.unknown()).optional(),
});
export type SyncRequest = z.infer<typeof SyncRequestSchema>;

/** Checksum and size of one bucket at a checkpoint. */
export interface BucketChecksum {
  bucket: string;
  /** Wrapping u32 sum of every op checksum in the bucket up to the checkpoint. */
  checksum: number;
  /** Number of ops in the bucket up to the checkpoint (drives progress). */
  count: number;
  /** Sync priority 0 (first) … 3 (default). */
  priority: number;
}

export interface CheckpointLine {
  checkpoint: {
    last_op_id: string;
    write_checkpoint?: string | null;
    buckets: BucketChecksum[];
  };
}

export interface CheckpointDiffLine {
  checkpoint_diff: {
    last_op_id: string;
    write_checkpoint?: string | null;
    updated_buckets: BucketChecksum[];
    removed_buckets: string[];
  };
}

export interface CheckpointCompleteLine {
  checkpoint_complete: { last_op_id: string };
}

export interface PartialCheckpointCompleteLine {
  partial_checkpoint_complete: { last_op_id: string; priority: number };
}

/** Keepalive; seconds until the token expires (never a fake small value). */
export interface TokenExpiresInLine {
  token_expires_in: number;
}

export const OP_TYPES = ['PUT', 'REMOVE', 'MOVE', 'CLEAR'] as const;
export type OpType = (typeof OP_TYPES)[number];

/** One op of a bucket's log. */
export interface OplogEntry {
  op_id: string;
  op: OpType;
  /** Output table name (PUT/REMOVE). */
  object_type?: string | null;
  /** Row id (PUT/REMOVE). */
  object_id?: string | null;
  /** Distinguishes several source rows that map to the same object in one bucket. */
  subkey?: string | null;
  /** Row data as JSON text (PUT). */
  data?: string | null;
  checksum: number;
}

export interface SyncBucketData {
  bucket: string;
  data: OplogEntry[];
  /** More data for this bucket follows in a later line. */
  has_more: boolean;
  /** The `after` this chunk continues from. */
  after: string;
  /** The op id to continue after. */
  next_after: string;
}

export interface DataLine {
  data: SyncBucketData;
}

export type SyncLine =
  | CheckpointLine
  | CheckpointDiffLine
  | CheckpointCompleteLine
  | PartialCheckpointCompleteLine
  | TokenExpiresInLine
  | DataLine;

/** Answer of `GET /write-checkpoint2.json`. */
export interface WriteCheckpointResponse {
  data: { write_checkpoint: string };
}

/** The default priority of a bucket. */
export const DEFAULT_BUCKET_PRIORITY = 3;

/** Content type of the sync stream. */
export const NDJSON_CONTENT_TYPE = 'application/x-ndjson';
