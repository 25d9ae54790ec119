/**
 * The streaming-replication sub-protocol carried in CopyData messages once
 * `START_REPLICATION` switched the connection to CopyBoth mode (Postgres docs:
 * "Streaming Replication Protocol"). Pure: no I/O.
 *
 * Server → client: `w` XLogData (a WAL payload, here one pgoutput message) and
 * `k` primary keepalive. Client → server: `r` standby status update.
 *
 * {@link BackendMessageFramer} splits a raw backend byte stream into protocol
 * messages (type byte + int32 length). The live connection relies on
 * node-postgres' own framing and hands us whole CopyData payloads; the framer
 * is for byte streams that do not come through `pg` (and is what the
 * split-chunk tests exercise end to end).
 */
import { FerryError } from '@ferry/protocol';
import { nowPgMicros, type Lsn } from './lsn.js';

export interface XLogData {
  tag: 'xlogdata';
  /** WAL position where this message's data starts. */
  walStart: Lsn;
  /** Current end of WAL on the server. */
  walEnd: Lsn;
  /** Server clock, µs since 2000-01-01. */
  sendTime: bigint;
  /** The payload (for logical replication: one output-plugin message). Shares memory with the input. */
  data: Buffer;
}

export interface PrimaryKeepalive {
  tag: 'keepalive';
  walEnd: Lsn;
  sendTime: bigint;
  /** The server asks for a status update now, or it may time the connection out. */
  replyRequested: boolean;
}

export type ReplicationCopyData = XLogData | PrimaryKeepalive;

function toBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** Decodes the payload of one CopyData message received during streaming replication. */
export function decodeReplicationCopyData(payload: Uint8Array): ReplicationCopyData {
  const buf = toBuffer(payload);
  if (buf.length < 1) throw new FerryError('FERRY_S3005', 'empty CopyData message');
  const kind = buf[0];
  if (kind === 0x77) {
    // 'w'
    if (buf.length < 25) throw new FerryError('FERRY_S3005', `XLogData message too short (${buf.length} bytes)`);
    return {
      tag: 'xlogdata',
      walStart: buf.readBigUInt64BE(1),
      walEnd: buf.readBigUInt64BE(9),
      sendTime: buf.readBigInt64BE(17),
      data: buf.subarray(25),
    };
  }
  if (kind === 0x6b) {
    // 'k'
    if (buf.length < 18) throw new FerryError('FERRY_S3005', `keepalive message too short (${buf.length} bytes)`);
    return {
      tag: 'keepalive',
      walEnd: buf.readBigUInt64BE(1),
      sendTime: buf.readBigInt64BE(9),
      replyRequested: buf[17] === 1,
    };
  }
  throw new FerryError(
    'FERRY_S3005',
    `unknown replication CopyData message ${JSON.stringify(String.fromCharCode(kind ?? 0))}`,
  );
}

export interface StandbyStatus {
  /** Last WAL byte + 1 received and written. */
  written: Lsn;
  /** Last WAL byte + 1 durably stored: the slot's confirmed position. */
  flushed: Lsn;
  /** Last WAL byte + 1 applied. */
  applied: Lsn;
  /** Ask the server to answer with a keepalive. */
  replyRequested?: boolean;
  /** Client clock, µs since 2000-01-01 (default: now). */
  clock?: bigint;
}

/** Encodes a standby status update (`r`), to be sent as the payload of a CopyData message. */
export function encodeStandbyStatus(status: StandbyStatus): Buffer {
  const buf = Buffer.alloc(34);
  buf[0] = 0x72; // 'r'
  buf.writeBigUInt64BE(status.written, 1);
  buf.writeBigUInt64BE(status.flushed, 9);
  buf.writeBigUInt64BE(status.applied, 17);
  buf.writeBigInt64BE(status.clock ?? nowPgMicros(), 25);
  buf[33] = status.replyRequested ? 1 : 0;
  return buf;
}

/** One backend protocol message: its type byte and body (without the length word). */
export interface BackendMessage {
  type: number;
  body: Buffer;
}

/**
 * Splits a backend byte stream into protocol messages. Chunks may cut a
 * message anywhere, including inside the 5-byte header; whole messages are
 * emitted in order. Emitted bodies may share memory with the input.
 */
export class BackendMessageFramer {
  private pending: Buffer = Buffer.alloc(0);

  /** Maximum body size accepted; larger length words are treated as corruption. */
  private readonly maxMessageBytes: number;

  constructor(options: { maxMessageBytes?: number } = {}) {
    this.maxMessageBytes = options.maxMessageBytes ?? 1 << 30;
  }

  push(chunk: Uint8Array, onMessage: (message: BackendMessage) => void): void {
    const buf = this.pending.length === 0 ? toBuffer(chunk) : Buffer.concat([this.pending, toBuffer(chunk)]);
    let pos = 0;
    while (buf.length - pos >= 5) {
      const length = buf.readInt32BE(pos + 1);
      if (length < 4 || length - 4 > this.maxMessageBytes) {
        throw new FerryError('FERRY_S3005', `invalid backend message length ${length}`);
      }
      const end = pos + 1 + length;
      if (end > buf.length) break;
      onMessage({ type: buf[pos]!, body: buf.subarray(pos + 5, end) });
      pos = end;
    }
    // Copy the remainder so a retained tail never pins a large input chunk.
    this.pending = pos === buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(pos));
  }

  /** Bytes received but not yet emitted as a whole message. */
  get bufferedBytes(): number {
    return this.pending.length;
  }
}

/** Backend message type of CopyData. */
export const COPY_DATA = 0x64; // 'd'
/** Backend message type of CopyDone. */
export const COPY_DONE = 0x63; // 'c'
