/**
 * A fake *network* for driving the sync client in tests: an in-process
 * `fetch` whose answers the test controls line by line. It is not a mock of
 * any Ferry component; the client under test runs unchanged.
 */
import {
  addChecksums,
  encodeLine,
  parseJsonExact,
  putChecksum,
  removeChecksum,
  type BucketChecksum,
  type OplogEntry,
  type SyncLine,
  type SyncRequest,
} from '@ferry/protocol';

export interface RecordedRequest {
  url: string;
  headers: Record<string, string>;
  body: SyncRequest;
}

/** The server side of one open sync stream. */
export interface FakeStream {
  readonly request: RecordedRequest;
  /** Sends one protocol line. */
  send(line: SyncLine | Record<string, unknown>): void;
  /** Sends raw bytes/text (e.g. a line split across chunks). */
  sendRaw(text: string): void;
  /** Ends the response body normally. */
  close(): void;
  /** Fails the response body (a dropped connection). */
  fail(error?: Error): void;
  /** Resolves when the client cancelled the body (disconnect/reconnect). */
  readonly cancelled: Promise<void>;
}

type Responder = { kind: 'status'; status: number; body: string } | { kind: 'network-error' };

/** A request to `POST /write`, body parsed with int8 exactness. */
export interface RecordedWrite {
  url: string;
  headers: Record<string, string>;
  /** The raw body text. */
  text: string;
  body: {
    client_id: string;
    transactions: {
      id: string;
      ops: { op: string; type: string; id: string; data?: Record<string, unknown>; hlc?: string }[];
    }[];
  };
}

/** Answers one `POST /write`: a Response, or throw for a network error. */
export type WriteHandler = (request: RecordedWrite) => Response | Promise<Response>;

export class FakeSyncService {
  readonly requests: RecordedRequest[] = [];
  /** `GET /write-checkpoint2.json` requests, in order. */
  readonly writeCheckpointRequests: { url: string; clientId: string | null; headers: Record<string, string> }[] = [];
  /** `POST /write` requests, in order. */
  readonly writes: RecordedWrite[] = [];
  /** Answers `POST /write` (default: 404). */
  writeHandler: WriteHandler | null = null;
  /** The last write checkpoint handed out; each request gets the next one. */
  lastWriteCheckpoint = 0n;
  /** Runs before a write checkpoint is answered (e.g. to have the stream echo it first). */
  beforeWriteCheckpointAnswer: ((id: bigint) => Promise<void>) | null = null;
  private readonly writeCheckpointResponders: Responder[] = [];
  private readonly responders: Responder[] = [];
  private readonly streamWaiters: ((stream: FakeStream) => void)[] = [];
  private readonly openedStreams: FakeStream[] = [];

  /** Queues an answer for the next request instead of a stream. */
  respondNext(responder: Responder): void {
    this.responders.push(responder);
  }

  /** Queues an answer for the next write checkpoint request instead of a fresh checkpoint. */
  respondNextWriteCheckpoint(responder: Responder): void {
    this.writeCheckpointResponders.push(responder);
  }

  /** The next stream the client opens (or one already opened and not yet taken). */
  nextStream(): Promise<FakeStream> {
    const ready = this.openedStreams.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    return new Promise((resolve) => this.streamWaiters.push(resolve));
  }

  readonly fetch: typeof fetch = async (input, init) => {
    const url = String(input);
    const headers: Record<string, string> = {};
    new Headers(init?.headers).forEach((value, key) => {
      headers[key] = value;
    });
    const path = new URL(url).pathname;
    if (path === '/write-checkpoint2.json') {
      this.writeCheckpointRequests.push({ url, clientId: new URL(url).searchParams.get('client_id'), headers });
      const scripted = this.writeCheckpointResponders.shift();
      if (scripted?.kind === 'network-error') throw new TypeError('fetch failed');
      if (scripted?.kind === 'status') return new Response(scripted.body, { status: scripted.status });
      this.lastWriteCheckpoint++;
      const id = this.lastWriteCheckpoint;
      await this.beforeWriteCheckpointAnswer?.(id);
      return Response.json({ data: { write_checkpoint: String(id) } });
    }
    if (path === '/write') {
      if (init?.signal?.aborted === true) throw new DOMException('aborted', 'AbortError');
      const text = String(init?.body);
      const write: RecordedWrite = { url, headers, text, body: parseJsonExact(text) as RecordedWrite['body'] };
      this.writes.push(write);
      if (this.writeHandler === null)
        return new Response('{"error":{"code":"FERRY_S4004","message":"no"}}', { status: 404 });
      return this.writeHandler(write);
    }
    // Like a real fetch: an already aborted request never starts.
    if (init?.signal?.aborted === true) throw new DOMException('aborted', 'AbortError');
    const request: RecordedRequest = { url, headers, body: JSON.parse(String(init?.body)) as SyncRequest };
    this.requests.push(request);
    const responder = this.responders.shift();
    if (responder?.kind === 'network-error') throw new TypeError('fetch failed');
    if (responder?.kind === 'status') return new Response(responder.body, { status: responder.status });

    const encoder = new TextEncoder();
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    let closed = false;
    let markCancelled!: () => void;
    const cancelled = new Promise<void>((resolve) => {
      markCancelled = resolve;
    });
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        controller = c;
      },
      cancel() {
        closed = true;
        markCancelled();
      },
    });
    const signal = init?.signal;
    signal?.addEventListener('abort', () => {
      if (!closed) {
        closed = true;
        try {
          controller.error(new DOMException('aborted', 'AbortError'));
        } catch {
          // already closed
        }
      }
      markCancelled();
    });
    const stream: FakeStream = {
      request,
      send: (line) => {
        if (!closed) controller.enqueue(encoder.encode(encodeLine(line)));
      },
      sendRaw: (text) => {
        if (!closed) controller.enqueue(encoder.encode(text));
      },
      close: () => {
        if (!closed) {
          closed = true;
          controller.close();
        }
      },
      fail: (error = new TypeError('network connection lost')) => {
        if (!closed) {
          closed = true;
          controller.error(error);
        }
      },
      cancelled,
    };
    const waiter = this.streamWaiters.shift();
    if (waiter !== undefined) waiter(stream);
    else this.openedStreams.push(stream);
    return new Response(body, { status: 200, headers: { 'content-type': 'application/x-ndjson' } });
  };
}

/** A server-side bucket: an op log with real PowerSync checksums. */
export class FakeBucket {
  readonly name: string;
  readonly ops: OplogEntry[] = [];
  private readonly nextOpId: () => bigint;
  private sentUpTo = 0;

  constructor(name: string, nextOpId: () => bigint) {
    this.name = name;
    this.nextOpId = nextOpId;
  }

  put(type: string, id: string, data: string | Record<string, unknown>, subkey?: string): OplogEntry {
    const text = typeof data === 'string' ? data : JSON.stringify(data);
    return this.add({
      op_id: String(this.nextOpId()),
      op: 'PUT',
      object_type: type,
      object_id: id,
      data: text,
      checksum: putChecksum(type, id, text, subkey),
      ...(subkey === undefined ? {} : { subkey }),
    });
  }

  remove(type: string, id: string, subkey?: string): OplogEntry {
    return this.add({
      op_id: String(this.nextOpId()),
      op: 'REMOVE',
      object_type: type,
      object_id: id,
      checksum: removeChecksum(type, id, subkey),
      ...(subkey === undefined ? {} : { subkey }),
    });
  }

  /** A MOVE tombstone carrying `checksum`. */
  move(checksum: number): OplogEntry {
    return this.add({ op_id: String(this.nextOpId()), op: 'MOVE', checksum });
  }

  /**
   * Compacts the log into a CLEAR carrying the checksum of everything so
   * far, followed by the given live ops re-issued (as compaction would).
   */
  clear(): OplogEntry {
    const checksum = this.checksum();
    this.ops.length = 0;
    this.sentUpTo = 0;
    return this.add({ op_id: String(this.nextOpId()), op: 'CLEAR', checksum });
  }

  private add(op: OplogEntry): OplogEntry {
    this.ops.push(op);
    return op;
  }

  checksum(): number {
    return this.ops.reduce((sum, op) => addChecksums(sum, op.checksum), 0);
  }

  /** Checksum entry for a checkpoint line. */
  entry(): BucketChecksum {
    return { bucket: this.name, checksum: this.checksum(), count: this.ops.length, priority: 3 };
  }

  /** A data line with the ops after `after` (default: ops not sent yet through this helper). */
  data(after?: string): SyncLine {
    const start = after === undefined ? this.sentUpTo : this.ops.findIndex((op) => BigInt(op.op_id) > BigInt(after));
    const ops = start < 0 ? [] : this.ops.slice(start);
    this.sentUpTo = this.ops.length;
    const previous = start > 0 ? this.ops[start - 1]!.op_id : (after ?? '0');
    return {
      data: {
        bucket: this.name,
        data: ops,
        has_more: false,
        after: previous,
        next_after: ops.at(-1)?.op_id ?? previous,
      },
    };
  }
}

/** A fake service's op id sequence and its buckets. */
export class FakeBuckets {
  private opId = 0n;
  readonly buckets = new Map<string, FakeBucket>();

  bucket(name: string): FakeBucket {
    let bucket = this.buckets.get(name);
    if (bucket === undefined) {
      bucket = new FakeBucket(name, () => ++this.opId);
      this.buckets.set(name, bucket);
    }
    return bucket;
  }

  get lastOpId(): string {
    return String(this.opId);
  }

  /** A checkpoint line over the named buckets (default: all), optionally carrying a write checkpoint. */
  checkpoint(names: readonly string[] = [...this.buckets.keys()], writeCheckpoint?: string): SyncLine {
    return {
      checkpoint: {
        last_op_id: this.lastOpId,
        buckets: names.map((n) => this.bucket(n).entry()),
        ...(writeCheckpoint === undefined ? {} : { write_checkpoint: writeCheckpoint }),
      },
    };
  }

  /** A checkpoint_diff line updating the named buckets, optionally carrying a write checkpoint. */
  diff(names: readonly string[], writeCheckpoint?: string): SyncLine {
    return {
      checkpoint_diff: {
        last_op_id: this.lastOpId,
        updated_buckets: names.map((n) => this.bucket(n).entry()),
        removed_buckets: [],
        ...(writeCheckpoint === undefined ? {} : { write_checkpoint: writeCheckpoint }),
      },
    };
  }

  complete(): SyncLine {
    return { checkpoint_complete: { last_op_id: this.lastOpId } };
  }
}

/** Waits until `predicate` holds, polling (tests only). */
export async function eventually(predicate: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const start = Date.now();
  for (;;) {
    if (await predicate()) return;
    if (Date.now() - start > timeoutMs) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
