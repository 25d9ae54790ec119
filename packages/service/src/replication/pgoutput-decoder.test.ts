import { describe, expect, it } from 'vitest';
import { BackendMessageFramer, COPY_DATA, decodeReplicationCopyData, encodeStandbyStatus } from './copy-both.js';
import { formatLsn, parseLsn, pgMicrosToUnixMs } from './lsn.js';
import { decodePgoutput, type PgoutputMessage } from './pgoutput-decoder.js';

/** Builds binary protocol messages the way the server writes them. */
class Writer {
  private parts: Buffer[] = [];
  u8(v: number) {
    this.parts.push(Buffer.from([v]));
    return this;
  }
  char(c: string) {
    return this.u8(c.charCodeAt(0));
  }
  i16(v: number) {
    const b = Buffer.alloc(2);
    b.writeInt16BE(v);
    this.parts.push(b);
    return this;
  }
  i32(v: number) {
    const b = Buffer.alloc(4);
    b.writeInt32BE(v);
    this.parts.push(b);
    return this;
  }
  u32(v: number) {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v);
    this.parts.push(b);
    return this;
  }
  u64(v: bigint) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(v);
    this.parts.push(b);
    return this;
  }
  str(s: string) {
    this.parts.push(Buffer.from(s + '\0', 'utf8'));
    return this;
  }
  bytes(b: Buffer) {
    this.parts.push(b);
    return this;
  }
  tuple(values: (string | null | undefined | Buffer)[]) {
    this.i16(values.length);
    for (const v of values) {
      if (v === null) this.char('n');
      else if (v === undefined) this.char('u');
      else if (Buffer.isBuffer(v)) this.char('b').i32(v.length).bytes(v);
      else {
        const b = Buffer.from(v, 'utf8');
        this.char('t').i32(b.length).bytes(b);
      }
    }
    return this;
  }
  build() {
    return Buffer.concat(this.parts);
  }
}

const LSN = 0x16_b374d848n;

const samples: { name: string; bytes: Buffer; expected: PgoutputMessage }[] = [
  {
    name: 'begin',
    bytes: new Writer().char('B').u64(LSN).u64(123_456_789n).u32(4242).build(),
    expected: { tag: 'begin', finalLsn: LSN, commitTime: 123_456_789n, xid: 4242 },
  },
  {
    name: 'commit',
    bytes: new Writer()
      .char('C')
      .u8(0)
      .u64(LSN)
      .u64(LSN + 48n)
      .u64(99n)
      .build(),
    expected: { tag: 'commit', flags: 0, commitLsn: LSN, endLsn: LSN + 48n, commitTime: 99n },
  },
  {
    name: 'origin',
    bytes: new Writer().char('O').u64(7n).str('upstream').build(),
    expected: { tag: 'origin', originLsn: 7n, name: 'upstream' },
  },
  {
    name: 'relation',
    bytes: new Writer()
      .char('R')
      .u32(16385)
      .str('public')
      .str('todos')
      .char('d')
      .i16(2)
      .u8(1)
      .str('id')
      .u32(2950)
      .i32(-1)
      .u8(0)
      .str('títle')
      .u32(25)
      .i32(-1)
      .build(),
    expected: {
      tag: 'relation',
      relationId: 16385,
      schema: 'public',
      name: 'todos',
      replicaIdentity: 'd',
      columns: [
        { name: 'id', typeOid: 2950, typeMod: -1, isKey: true },
        { name: 'títle', typeOid: 25, typeMod: -1, isKey: false },
      ],
    },
  },
  {
    name: 'relation in pg_catalog (empty namespace)',
    bytes: new Writer().char('R').u32(1).str('').str('x').char('f').i16(0).build(),
    expected: { tag: 'relation', relationId: 1, schema: 'pg_catalog', name: 'x', replicaIdentity: 'f', columns: [] },
  },
  {
    name: 'type',
    bytes: new Writer().char('Y').u32(90001).str('public').str('mood').build(),
    expected: { tag: 'type', typeOid: 90001, schema: 'public', name: 'mood' },
  },
  {
    name: 'insert with text, null and unicode',
    bytes: new Writer().char('I').u32(16385).char('N').tuple(['a1', null, 'café ☕']).build(),
    expected: { tag: 'insert', relationId: 16385, new: ['a1', null, 'café ☕'] },
  },
  {
    name: 'update without old tuple, unchanged toast',
    bytes: new Writer().char('U').u32(16385).char('N').tuple(['a1', undefined]).build(),
    expected: { tag: 'update', relationId: 16385, key: null, old: null, new: ['a1', undefined] },
  },
  {
    name: 'update with key (K)',
    bytes: new Writer().char('U').u32(5).char('K').tuple(['old', null]).char('N').tuple(['new', 'x']).build(),
    expected: { tag: 'update', relationId: 5, key: ['old', null], old: null, new: ['new', 'x'] },
  },
  {
    name: 'update with old row (O)',
    bytes: new Writer().char('U').u32(5).char('O').tuple(['1', 'a']).char('N').tuple(['1', 'b']).build(),
    expected: { tag: 'update', relationId: 5, key: null, old: ['1', 'a'], new: ['1', 'b'] },
  },
  {
    name: 'delete with key (K)',
    bytes: new Writer().char('D').u32(5).char('K').tuple(['1', null]).build(),
    expected: { tag: 'delete', relationId: 5, key: ['1', null], old: null },
  },
  {
    name: 'delete with old row (O)',
    bytes: new Writer().char('D').u32(5).char('O').tuple(['1', 'a']).build(),
    expected: { tag: 'delete', relationId: 5, key: null, old: ['1', 'a'] },
  },
  {
    name: 'truncate',
    bytes: new Writer().char('T').u32(2).u8(3).u32(10).u32(11).build(),
    expected: { tag: 'truncate', relationIds: [10, 11], cascade: true, restartIdentity: true },
  },
  {
    name: 'logical message',
    bytes: new Writer().char('M').u8(1).u64(LSN).str('ferry').i32(3).bytes(Buffer.from('abc')).build(),
    expected: {
      tag: 'message',
      transactional: true,
      lsn: LSN,
      prefix: 'ferry',
      content: new Uint8Array(Buffer.from('abc')),
    },
  },
];

describe('decodePgoutput', () => {
  for (const sample of samples) {
    it(`decodes ${sample.name}`, () => {
      expect(decodePgoutput(sample.bytes)).toEqual(sample.expected);
    });
    it(`rejects ${sample.name} truncated at any byte`, () => {
      for (let cut = 1; cut < sample.bytes.length; cut++) {
        let threw = false;
        try {
          decodePgoutput(sample.bytes.subarray(0, cut));
        } catch {
          threw = true;
        }
        // A cut inside a trailing tuple is always detected: no message decodes from a strict prefix.
        expect(threw, `cut at ${cut}`).toBe(true);
      }
    });
  }

  it('decodes binary tuple values', () => {
    const bytes = new Writer()
      .char('I')
      .u32(1)
      .char('N')
      .tuple([Buffer.from([1, 2, 3])])
      .build();
    expect(decodePgoutput(bytes)).toEqual({ tag: 'insert', relationId: 1, new: [new Uint8Array([1, 2, 3])] });
  });

  it('rejects unknown message types with a Ferry error', () => {
    expect(() => decodePgoutput(Buffer.from('Zxxxx'))).toThrow(/unsupported message type/);
  });
});

describe('CopyBoth framing', () => {
  const xlog = (data: Buffer) =>
    new Writer()
      .char('w')
      .u64(LSN)
      .u64(LSN + 100n)
      .u64(5n)
      .bytes(data)
      .build();
  const keepalive = (reply: boolean) =>
    new Writer()
      .char('k')
      .u64(LSN + 200n)
      .u64(6n)
      .u8(reply ? 1 : 0)
      .build();
  const copyData = (payload: Buffer) =>
    new Writer()
      .char('d')
      .i32(payload.length + 4)
      .bytes(payload)
      .build();

  it('decodes XLogData and keepalives', () => {
    const begin = samples[0]!.bytes;
    const w = decodeReplicationCopyData(xlog(begin));
    expect(w).toMatchObject({ tag: 'xlogdata', walStart: LSN, walEnd: LSN + 100n, sendTime: 5n });
    expect(w.tag === 'xlogdata' && decodePgoutput(w.data)).toEqual(samples[0]!.expected);
    expect(decodeReplicationCopyData(keepalive(true))).toEqual({
      tag: 'keepalive',
      walEnd: LSN + 200n,
      sendTime: 6n,
      replyRequested: true,
    });
    expect(decodeReplicationCopyData(keepalive(false))).toMatchObject({ replyRequested: false });
    expect(() => decodeReplicationCopyData(Buffer.from('k123'))).toThrow(/too short/);
  });

  it('encodes standby status updates', () => {
    const buf = encodeStandbyStatus({ written: 1n, flushed: 2n, applied: 3n, clock: 4n, replyRequested: true });
    expect(buf.length).toBe(34);
    expect(String.fromCharCode(buf[0]!)).toBe('r');
    expect([buf.readBigUInt64BE(1), buf.readBigUInt64BE(9), buf.readBigUInt64BE(17), buf.readBigInt64BE(25)]).toEqual([
      1n,
      2n,
      3n,
      4n,
    ]);
    expect(buf[33]).toBe(1);
  });

  it('frames a stream cut at every offset into the same messages', () => {
    const payloads = [
      xlog(samples[0]!.bytes),
      xlog(samples[3]!.bytes),
      keepalive(true),
      xlog(samples[6]!.bytes),
      xlog(samples[1]!.bytes),
    ];
    const stream = Buffer.concat(payloads.map(copyData));
    const expected = payloads.map((p) => decodeReplicationCopyData(p));
    const decodeAll = (chunks: Buffer[]) => {
      const framer = new BackendMessageFramer();
      const out: unknown[] = [];
      for (const chunk of chunks) {
        framer.push(chunk, (m) => {
          expect(m.type).toBe(COPY_DATA);
          const msg = decodeReplicationCopyData(m.body);
          out.push(msg.tag === 'xlogdata' ? { ...msg, data: decodePgoutput(msg.data) } : msg);
        });
      }
      expect(framer.bufferedBytes).toBe(0);
      return out;
    };
    const whole = decodeAll([stream]);
    expect(whole).toEqual(expected.map((m) => (m.tag === 'xlogdata' ? { ...m, data: decodePgoutput(m.data) } : m)));
    for (let cut = 1; cut < stream.length; cut++) {
      expect(decodeAll([stream.subarray(0, cut), stream.subarray(cut)])).toEqual(whole);
    }
    for (let a = 1; a < stream.length; a += 7) {
      for (let b = a + 1; b < stream.length; b += 5) {
        expect(decodeAll([stream.subarray(0, a), stream.subarray(a, b), stream.subarray(b)])).toEqual(whole);
      }
    }
    // One byte at a time.
    expect(decodeAll([...stream].map((byte) => Buffer.from([byte])))).toEqual(whole);
  });

  it('rejects a corrupt length word', () => {
    const framer = new BackendMessageFramer();
    expect(() => framer.push(Buffer.from([0x64, 0, 0, 0, 1]), () => {})).toThrow(/invalid backend message length/);
  });
});

describe('LSN', () => {
  it('parses and formats', () => {
    expect(parseLsn('16/B374D848')).toBe(LSN);
    expect(formatLsn(LSN)).toBe('16/B374D848');
    expect(formatLsn(0n)).toBe('0/0');
    expect(() => parseLsn('16-B3')).toThrow(RangeError);
  });

  it('converts Postgres epoch microseconds', () => {
    expect(pgMicrosToUnixMs(0n)).toBe(Date.UTC(2000, 0, 1));
    expect(pgMicrosToUnixMs(1_500_000n)).toBe(Date.UTC(2000, 0, 1) + 1500);
  });
});
