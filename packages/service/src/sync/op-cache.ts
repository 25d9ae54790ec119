import { encodeLine, formatOpId, parseOpId, type DataLine, type OpId } from '@ferry/protocol';
import type { BucketStorageReader } from '../storage/types.js';

/** One page of a bucket's ops, already encoded as a `data` line. */
export interface DataPage {
  /** The encoded line, newline included. */
  line: Buffer;
  /** Number of ops in the page (0 = nothing to send). */
  count: number;
  /** Op id of the last op in the page; the `after` of the next page. */
  lastOpId: OpId;
}

export interface SharedOpReaderOptions {
  /** Ops per page (per `data` line). Default 1000. */
  pageSize?: number;
  /** Most pages kept. Default 512. */
  maxPages?: number;
  /** Most bytes of encoded pages kept. Default 32 MiB. */
  maxBytes?: number;
}

/**
 * Reads pages of bucket ops for the sync stream and shares them between
 * clients: many clients at the same position of the same bucket (the fanout
 * case) cost one storage read and one JSON encoding. Concurrent requests for
 * the same page share one in-flight read; finished pages stay in a small LRU
 * bounded by count and bytes.
 *
 * Sharing is sound because a page is fully determined by (bucket, after,
 * upTo, page size): ops at or below a published checkpoint never change
 * except through compaction, which keeps checksums and only makes old pages
 * stale, never wrong for the client that applies them.
 */
export class SharedOpReader {
  readonly pageSize: number;
  private readonly storage: BucketStorageReader;
  private readonly maxPages: number;
  private readonly maxBytes: number;
  private readonly pages = new Map<string, Promise<DataPage>>();
  private readonly sizes = new Map<string, number>();
  private bytes = 0;

  constructor(storage: BucketStorageReader, options: SharedOpReaderOptions = {}) {
    this.storage = storage;
    this.pageSize = options.pageSize ?? 1000;
    this.maxPages = options.maxPages ?? 512;
    this.maxBytes = options.maxBytes ?? 32 * 1024 * 1024;
  }

  /**
   * The page of `bucket` after `after` up to checkpoint `upTo`.
   * `bucketLastOpId` is the bucket's last op id at `upTo` (sets `has_more`).
   */
  read(bucket: string, after: OpId, upTo: OpId, bucketLastOpId: OpId): Promise<DataPage> {
    const key = `${bucket}\u0000${after}\u0000${upTo}\u0000${this.pageSize}`;
    const cached = this.pages.get(key);
    if (cached !== undefined) {
      // Refresh its LRU position.
      this.pages.delete(key);
      this.pages.set(key, cached);
      return cached;
    }
    const page = this.load(bucket, after, upTo, bucketLastOpId);
    this.pages.set(key, page);
    page.then(
      (result) => {
        if (this.pages.get(key) !== page) return;
        this.sizes.set(key, result.line.length);
        this.bytes += result.line.length;
        this.evict();
      },
      () => {
        if (this.pages.get(key) === page) this.pages.delete(key);
      },
    );
    this.evict();
    return page;
  }

  /** Pages currently cached (including in-flight reads). */
  get size(): number {
    return this.pages.size;
  }

  private async load(bucket: string, after: OpId, upTo: OpId, bucketLastOpId: OpId): Promise<DataPage> {
    const ops = await this.storage.readBucketOps(bucket, after, upTo, this.pageSize);
    if (ops.length === 0) return { line: Buffer.alloc(0), count: 0, lastOpId: after };
    const lastOpId = parseOpId(ops.at(-1)!.op_id);
    const message: DataLine = {
      data: {
        bucket,
        data: ops,
        has_more: lastOpId < bucketLastOpId,
        after: formatOpId(after),
        next_after: formatOpId(lastOpId),
      },
    };
    return { line: Buffer.from(encodeLine(message)), count: ops.length, lastOpId };
  }

  private evict(): void {
    for (const key of this.pages.keys()) {
      if (this.pages.size <= this.maxPages && this.bytes <= this.maxBytes) return;
      const size = this.sizes.get(key);
      if (size === undefined) {
        // Still loading: keep it (the readers waiting on it need it) unless far over the count limit.
        if (this.pages.size <= this.maxPages * 2) continue;
      }
      this.pages.delete(key);
      this.sizes.delete(key);
      this.bytes -= size ?? 0;
    }
  }
}
