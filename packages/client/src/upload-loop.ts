import { FerryError, type WriteCheckpointResponse } from '@ferry/protocol';
import { retryDelay, sleep, type RetryDelayOptions } from './backoff.js';
import { requireCredentials, type FerryConnector } from './connector.js';
import type { FerryLogger } from './logger.js';
import type { SyncStatusPatch } from './sync-status.js';

/** What the upload loop needs from its database. */
export interface UploadHost {
  readonly logger: FerryLogger;
  clientId(): Promise<string>;
  setStatus(patch: SyncStatusPatch): void;
  /** The id of the oldest queued op, or null when the queue is empty. */
  queueHead(): Promise<number | null>;
  /** The highest overlay op id still waiting for a write checkpoint, or null. */
  overlayAwaitingCheckpoint(): Promise<number | null>;
  /** Records `writeCheckpoint` on the overlay ops up to `throughId` that have none (persisted). */
  setWriteCheckpoint(throughId: number, writeCheckpoint: string): Promise<void>;
  /** Runs the connector's `uploadData` on the database, or null when the connector has none. */
  readonly upload: ((signal: AbortSignal) => Promise<void>) | null;
}

export interface UploadLoopOptions {
  /** The fetch implementation for write checkpoints (default `globalThis.fetch`). */
  fetch?: typeof fetch;
  /** Delays after a failed upload or write checkpoint request (default 250 ms … 30 s, jittered). */
  retryDelay?: RetryDelayOptions;
}

/**
 * The upload half of the sync loop, beside the download stream and never
 * blocking it. Whenever the queue is non-empty (at start, after a local
 * write, after a failure's backoff) it runs the connector's `uploadData`;
 * a failure (it threw, or settled nothing) is reported as `FERRY_C1009` and
 * retried with jittered backoff, forever. After uploads, and whenever the
 * overlay holds ops without one, it obtains a write checkpoint
 * (`GET /write-checkpoint2.json?client_id=`) and records it on those ops;
 * once a downloaded checkpoint carries it, they leave the overlay.
 *
 * Lifecycle: {@link start} once, {@link stop} aborts in-flight requests and
 * resolves when the loop has ended.
 */
export class UploadLoop {
  private readonly host: UploadHost;
  private readonly connector: FerryConnector;
  private readonly options: UploadLoopOptions;
  private readonly controller = new AbortController();
  private running: Promise<void> | null = null;
  private woken = false;
  private wake: (() => void) | null = null;

  constructor(host: UploadHost, connector: FerryConnector, options: UploadLoopOptions = {}) {
    this.host = host;
    this.connector = connector;
    this.options = options;
  }

  /** Starts the loop in the background. */
  start(): void {
    this.running ??= this.run();
  }

  /** Stops the loop (aborting in-flight requests) and resolves once it has ended. */
  async stop(): Promise<void> {
    this.controller.abort();
    this.wake?.();
    await this.running;
  }

  /** The queue or the overlay changed: look again (a no-op while backing off). */
  trigger(): void {
    this.woken = true;
    this.wake?.();
  }

  private async run(): Promise<void> {
    const signal = this.controller.signal;
    let failures = 0;
    while (!signal.aborted) {
      this.woken = false;
      let failure: unknown = null;
      let progressed = false;
      // A write checkpoint for ops already uploaded (also after a restart); a failure here never holds uploads back.
      try {
        const awaiting = await this.host.overlayAwaitingCheckpoint();
        if (awaiting !== null) {
          const writeCheckpoint = await this.fetchWriteCheckpoint(signal);
          await this.host.setWriteCheckpoint(awaiting, writeCheckpoint);
          this.host.logger.debug('ferry upload: write checkpoint obtained', { writeCheckpoint });
          progressed = true;
        }
      } catch (error) {
        failure = error;
      }
      if (signal.aborted) break;
      try {
        const head = this.host.upload === null ? null : await this.host.queueHead();
        if (head !== null) {
          await this.uploadOnce(head, signal);
          progressed = true;
        }
      } catch (error) {
        failure = error;
      }
      if (signal.aborted) break;
      if (failure !== null) {
        this.report(failure);
        await sleep(retryDelay(failures++, this.options.retryDelay), signal);
      } else if (progressed) {
        // Then a write checkpoint for what went up, and the rest of the queue.
        failures = 0;
        this.host.setStatus({ uploadError: undefined });
      } else {
        await this.idle(signal);
      }
    }
    this.host.setStatus({ uploading: false });
  }

  /** Waits for {@link trigger} or stop. */
  private idle(signal: AbortSignal): Promise<void> {
    if (this.woken || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      this.wake = () => {
        this.wake = null;
        resolve();
      };
    });
  }

  private async uploadOnce(head: number, signal: AbortSignal): Promise<void> {
    this.host.setStatus({ uploading: true });
    try {
      await abortable(this.host.upload!(signal), signal);
    } finally {
      this.host.setStatus({ uploading: false });
    }
    if (signal.aborted) return;
    if ((await this.host.queueHead()) === head) {
      throw new FerryError(
        'FERRY_C1009',
        'uploadData() returned without settling the first queued op: call complete() on each batch it uploads',
      );
    }
  }

  private report(error: unknown): void {
    const failure =
      FerryError.is(error) && error.code === 'FERRY_C1009'
        ? error
        : new FerryError('FERRY_C1009', `upload failed: ${error instanceof Error ? error.message : String(error)}`, {
            cause: error,
          });
    this.host.logger.warn('ferry upload: failed, retrying with backoff', {
      error: failure.message,
      ...(FerryError.is(error) ? { code: error.code } : {}),
    });
    this.host.setStatus({ uploadError: failure });
  }

  /** Asks the service for a write checkpoint for this client (PowerSync's `write-checkpoint2.json`). */
  private async fetchWriteCheckpoint(signal: AbortSignal): Promise<string> {
    const credentials = await requireCredentials(this.connector);
    const clientId = await this.host.clientId();
    const url = `${credentials.endpoint.replace(/\/+$/, '')}/write-checkpoint2.json?client_id=${encodeURIComponent(clientId)}`;
    const doFetch = this.options.fetch ?? globalThis.fetch;
    const response = await doFetch(url, {
      method: 'GET',
      headers: { authorization: `Token ${credentials.token}`, accept: 'application/json' },
      signal,
    });
    const text = await response.text();
    if (response.status === 401) {
      this.connector.invalidateCredentials?.();
      throw new FerryError('FERRY_C1002', 'the sync service rejected the credentials (401) for a write checkpoint', {
        details: { body: text },
      });
    }
    if (!response.ok) {
      throw new FerryError('FERRY_C1009', `could not obtain a write checkpoint: HTTP ${response.status}`, {
        details: { status: response.status, body: text },
      });
    }
    let id: unknown;
    try {
      id = (JSON.parse(text) as Partial<WriteCheckpointResponse>).data?.write_checkpoint;
    } catch (cause) {
      throw new FerryError('FERRY_C1003', 'the write checkpoint answer is not JSON', { cause });
    }
    if (typeof id !== 'string' || !/^\d{1,19}$/.test(id)) {
      throw new FerryError('FERRY_C1003', 'the write checkpoint answer has no decimal write_checkpoint', {
        details: { body: text.slice(0, 200) },
      });
    }
    return id;
  }
}

/**
 * Resolves or rejects with `promise`, or resolves early when `signal`
 * aborts (the promise keeps running detached; its failure is ignored).
 */
function abortable(promise: Promise<void>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) {
    promise.catch(() => {});
    return Promise.resolve();
  }
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      promise.catch(() => {});
      resolve();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
