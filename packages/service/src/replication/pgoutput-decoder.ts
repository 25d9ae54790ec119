/**
 * Decoder for the messages of Postgres' built-in `pgoutput` logical decoding
 * plugin, protocol version 1 (Postgres docs: "Logical Replication Message
 * Formats"). Pure: `decodePgoutput(buffer)` turns the payload of one XLogData
 * message into one {@link PgoutputMessage}; no I/O, no state.
 *
 * Tuple values are kept in Postgres' text output format (`string`), `null`
 * for SQL NULL, `undefined` for an unchanged TOASTed value that the server
 * did not send, and `Uint8Array` for binary-format values (only if binary
 * mode is enabled, which Ferry does not do).
 */
import { FerryError } from '@ferry/protocol';
import type { Lsn } from './lsn.js';

/** One column value of a tuple. See the module comment. */
export type TupleValue = string | null | undefined | Uint8Array;
export type TupleData = TupleValue[];

/** Replica identity setting of a relation: DEFAULT, NOTHING, FULL, INDEX. */
export type ReplicaIdentity = 'd' | 'n' | 'f' | 'i';

export interface RelationColumn {
  name: string;
  typeOid: number;
  typeMod: number;
  /** Part of the replica identity (for FULL: every column). */
  isKey: boolean;
}

export interface BeginMessage {
  tag: 'begin';
  /** LSN of the transaction's commit record. */
  finalLsn: Lsn;
  /** Commit time, µs since 2000-01-01 UTC. */
  commitTime: bigint;
  xid: number;
}

export interface CommitMessage {
  tag: 'commit';
  flags: number;
  commitLsn: Lsn;
  /** End of the commit record: the position to confirm once the transaction is stored. */
  endLsn: Lsn;
  commitTime: bigint;
}

export interface OriginMessage {
  tag: 'origin';
  originLsn: Lsn;
  name: string;
}

export interface RelationMessage {
  tag: 'relation';
  relationId: number;
  /** Schema name ("pg_catalog" when the server sends an empty string). */
  schema: string;
  name: string;
  replicaIdentity: ReplicaIdentity;
  columns: RelationColumn[];
}

export interface TypeMessage {
  tag: 'type';
  typeOid: number;
  schema: string;
  name: string;
}

export interface InsertMessage {
  tag: 'insert';
  relationId: number;
  new: TupleData;
}

export interface UpdateMessage {
  tag: 'update';
  relationId: number;
  /** Old key columns ('K'): sent when the replica identity columns changed. */
  key: TupleData | null;
  /** Old row ('O'): sent for REPLICA IDENTITY FULL. */
  old: TupleData | null;
  new: TupleData;
}

export interface DeleteMessage {
  tag: 'delete';
  relationId: number;
  key: TupleData | null;
  old: TupleData | null;
}

export interface TruncateMessage {
  tag: 'truncate';
  relationIds: number[];
  cascade: boolean;
  restartIdentity: boolean;
}

export interface LogicalMessage {
  tag: 'message';
  transactional: boolean;
  lsn: Lsn;
  prefix: string;
  content: Uint8Array;
}

export type PgoutputMessage =
  | BeginMessage
  | CommitMessage
  | OriginMessage
  | RelationMessage
  | TypeMessage
  | InsertMessage
  | UpdateMessage
  | DeleteMessage
  | TruncateMessage
  | LogicalMessage;

/** A cursor over one message. Every read checks bounds, so a truncated message throws instead of reading garbage. */
class Reader {
  readonly buf: Buffer;
  pos = 0;

  constructor(buf: Buffer) {
    this.buf = buf;
  }

  private need(n: number): void {
    if (this.pos + n > this.buf.length) {
      throw new FerryError(
        'FERRY_S3005',
        `pgoutput message truncated at byte ${this.pos} (needs ${n} more of ${this.buf.length})`,
      );
    }
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }

  i16(): number {
    this.need(2);
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  i32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  u64(): bigint {
    this.need(8);
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  i64(): bigint {
    this.need(8);
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  /** A NUL-terminated UTF-8 string. */
  cstring(): string {
    const end = this.buf.indexOf(0, this.pos);
    if (end < 0) throw new FerryError('FERRY_S3005', `pgoutput message: unterminated string at byte ${this.pos}`);
    const s = this.buf.toString('utf8', this.pos, end);
    this.pos = end + 1;
    return s;
  }

  bytes(n: number): Buffer {
    this.need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  tuple(): TupleData {
    const n = this.i16();
    const values: TupleData = [];
    for (let i = 0; i < n; i++) {
      const kind = this.u8();
      switch (kind) {
        case 0x6e: // 'n'
          values[i] = null;
          break;
        case 0x75: // 'u'
          values[i] = undefined;
          break;
        case 0x74: {
          // 't'
          const len = this.i32();
          this.need(len);
          values[i] = this.buf.toString('utf8', this.pos, this.pos + len);
          this.pos += len;
          break;
        }
        case 0x62: {
          // 'b'
          const len = this.i32();
          values[i] = new Uint8Array(this.bytes(len));
          break;
        }
        default:
          throw new FerryError('FERRY_S3005', `pgoutput: unknown tuple value kind 0x${kind.toString(16)}`);
      }
    }
    return values;
  }
}

function toBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** Decodes one pgoutput message (the payload of an XLogData message). */
export function decodePgoutput(data: Uint8Array): PgoutputMessage {
  const r = new Reader(toBuffer(data));
  const tag = r.u8();
  switch (tag) {
    case 0x42: // 'B'
      return { tag: 'begin', finalLsn: r.u64(), commitTime: r.i64(), xid: r.u32() };
    case 0x43: {
      // 'C'
      const flags = r.u8();
      return { tag: 'commit', flags, commitLsn: r.u64(), endLsn: r.u64(), commitTime: r.i64() };
    }
    case 0x4f: // 'O'
      return { tag: 'origin', originLsn: r.u64(), name: r.cstring() };
    case 0x52: {
      // 'R'
      const relationId = r.u32();
      const schema = r.cstring() || 'pg_catalog';
      const name = r.cstring();
      const identity = String.fromCharCode(r.u8());
      if (identity !== 'd' && identity !== 'n' && identity !== 'f' && identity !== 'i') {
        throw new FerryError('FERRY_S3005', `pgoutput: unknown replica identity ${JSON.stringify(identity)}`);
      }
      const ncols = r.i16();
      const columns: RelationColumn[] = [];
      for (let i = 0; i < ncols; i++) {
        const flags = r.u8();
        const colName = r.cstring();
        const typeOid = r.u32();
        const typeMod = r.i32();
        columns.push({ name: colName, typeOid, typeMod, isKey: (flags & 1) === 1 });
      }
      return { tag: 'relation', relationId, schema, name, replicaIdentity: identity, columns };
    }
    case 0x59: // 'Y'
      return { tag: 'type', typeOid: r.u32(), schema: r.cstring() || 'pg_catalog', name: r.cstring() };
    case 0x49: {
      // 'I'
      const relationId = r.u32();
      const marker = r.u8();
      if (marker !== 0x4e)
        throw new FerryError('FERRY_S3005', `pgoutput insert: expected 'N', got 0x${marker.toString(16)}`);
      return { tag: 'insert', relationId, new: r.tuple() };
    }
    case 0x55: {
      // 'U'
      const relationId = r.u32();
      let key: TupleData | null = null;
      let old: TupleData | null = null;
      let marker = r.u8();
      if (marker === 0x4b) {
        key = r.tuple();
        marker = r.u8();
      } else if (marker === 0x4f) {
        old = r.tuple();
        marker = r.u8();
      }
      if (marker !== 0x4e)
        throw new FerryError('FERRY_S3005', `pgoutput update: expected 'N', got 0x${marker.toString(16)}`);
      return { tag: 'update', relationId, key, old, new: r.tuple() };
    }
    case 0x44: {
      // 'D'
      const relationId = r.u32();
      const marker = r.u8();
      if (marker === 0x4b) return { tag: 'delete', relationId, key: r.tuple(), old: null };
      if (marker === 0x4f) return { tag: 'delete', relationId, key: null, old: r.tuple() };
      throw new FerryError('FERRY_S3005', `pgoutput delete: expected 'K' or 'O', got 0x${marker.toString(16)}`);
    }
    case 0x54: {
      // 'T'
      const n = r.u32();
      const options = r.u8();
      const relationIds: number[] = [];
      for (let i = 0; i < n; i++) relationIds.push(r.u32());
      return { tag: 'truncate', relationIds, cascade: (options & 1) !== 0, restartIdentity: (options & 2) !== 0 };
    }
    case 0x4d: {
      // 'M'
      const flags = r.u8();
      const lsn = r.u64();
      const prefix = r.cstring();
      const len = r.i32();
      return { tag: 'message', transactional: (flags & 1) !== 0, lsn, prefix, content: new Uint8Array(r.bytes(len)) };
    }
    default:
      throw new FerryError(
        'FERRY_S3005',
        `pgoutput: unsupported message type ${JSON.stringify(String.fromCharCode(tag))}`,
      );
  }
}
