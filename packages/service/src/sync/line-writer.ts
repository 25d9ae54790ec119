import type { Writable } from 'node:stream';
import type { FerryMetrics, SyncLineKind } from '../metrics/metrics.js';

/** The subset of a writable (an HTTP response) the sync stream writes to. */
export type LineSink = Pick<Writable, 'write' | 'once' | 'off' | 'writableLength' | 'writableNeedDrain' | 'destroyed'>;

/** Thrown by {@link LineWriter.write} once the stream has stopped; not an error to report. */
export class StreamStopped extends Error {
  override readonly name = 'StreamStopped';
}

/**
 * Writes whole ndjson lines to a sink with backpressure: when the sink's
 * buffer is full, `write` waits for `drain` before resolving, so a slow
 * client slows its own producer instead of growing the buffer. Counts bytes
 * and lines in the metrics.
 */
export class LineWriter {
  private readonly sink: LineSink;
  private readonly signal: AbortSignal;
  private readonly metrics: FerryMetrics | null;

  constructor(sink: LineSink, signal: AbortSignal, metrics: FerryMetrics | null) {
    this.sink = sink;
    this.signal = signal;
    this.metrics = metrics;
  }

  /** True while the sink's buffer is over its high-water mark. */
  get congested(): boolean {
    return this.sink.writableNeedDrain;
  }

  /** Writes a line (with its newline) and waits for drain if the sink is full. Rejects with StreamStopped after stop. */
  async write(kind: SyncLineKind, line: Buffer | string): Promise<void> {
    if (this.signal.aborted || this.sink.destroyed) throw new StreamStopped('stream stopped');
    this.writeNow(kind, line);
    if (this.sink.writableNeedDrain) await this.drain();
  }

  /** Writes a line without waiting (for small control lines such as keepalives). */
  writeNow(kind: SyncLineKind, line: Buffer | string): void {
    if (this.sink.destroyed) return;
    this.sink.write(line);
    this.metrics?.bytesSent.inc(typeof line === 'string' ? Buffer.byteLength(line) : line.length);
    this.metrics?.syncLinesSent.inc({ kind });
  }

  private drain(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const done = (error?: Error) => {
        this.sink.off('drain', onDrain);
        this.sink.off('close', onClose);
        this.signal.removeEventListener('abort', onClose);
        if (error === undefined) resolve();
        else reject(error);
      };
      const onDrain = () => done();
      const onClose = () => done(new StreamStopped('stream stopped'));
      this.sink.once('drain', onDrain);
      this.sink.once('close', onClose);
      this.signal.addEventListener('abort', onClose, { once: true });
    });
  }
}

/** True for errors that only mean "the stream was stopped". */
export function isStreamStopped(error: unknown): error is StreamStopped {
  return error instanceof StreamStopped;
}
