/**
 * A bare sync stream client on node:http: POSTs `/sync/stream` and hands
 * every ndjson line to a callback, without storing anything. Used where
 * the benchmark needs many streams (fanout) or the service's share of an
 * initial sync without a client database.
 */
import http from 'node:http';

/** Splits a text stream into lines; feed chunks, get complete lines. */
export class LineSplitter {
  private partial = '';

  /** Returns the complete lines in `chunk` (plus what was pending), without newlines. */
  push(chunk: string): string[] {
    const text = this.partial + chunk;
    const lines = text.split('\n');
    this.partial = lines.pop() ?? '';
    return lines.filter((line) => line.length > 0);
  }

  /** Bytes of an unfinished line held back. */
  get pending(): number {
    return this.partial.length;
  }
}

/** `last_op_id` of a `checkpoint_complete` line, or null if the line is another kind. */
export function checkpointCompleteOpId(line: string): string | null {
  if (!line.startsWith('{"checkpoint_complete"')) return null;
  const parsed = JSON.parse(line) as { checkpoint_complete: { last_op_id: string } };
  return parsed.checkpoint_complete.last_op_id;
}

export interface RawStream {
  /** Ends the stream (destroys the request). */
  close(): void;
  /** Resolves when the response ended or failed. */
  readonly done: Promise<void>;
}

export interface RawStreamOptions {
  url: string;
  token: string;
  clientId: string;
  agent?: http.Agent;
  /** Called for each line, with the time it was read (performance.now()). */
  onLine(line: string, at: number): void;
  /** Called when the request fails or the response is not 200. */
  onError?(error: Error): void;
  /** Called with the raw byte count of every chunk. */
  onBytes?(bytes: number): void;
}

/** Opens one sync stream (no buckets held: the service sends everything). */
export function openRawStream(options: RawStreamOptions): RawStream {
  const body = JSON.stringify({ buckets: [], include_checksum: true, raw_data: true, client_id: options.clientId });
  const target = new URL('/sync/stream', options.url);
  let resolveDone!: () => void;
  const done = new Promise<void>((resolve) => (resolveDone = resolve));
  const request = http.request(
    target,
    {
      method: 'POST',
      agent: options.agent,
      headers: {
        authorization: `Token ${options.token}`,
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
      },
    },
    (response) => {
      if (response.statusCode !== 200) {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () => {
          options.onError?.(new Error(`sync stream answered ${response.statusCode}: ${text.slice(0, 500)}`));
          resolveDone();
        });
        return;
      }
      const splitter = new LineSplitter();
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        const at = performance.now();
        options.onBytes?.(chunk.length);
        for (const line of splitter.push(chunk)) options.onLine(line, at);
      });
      response.on('end', resolveDone);
      response.on('close', resolveDone);
      response.on('error', (error) => {
        options.onError?.(error);
        resolveDone();
      });
    },
  );
  request.on('error', (error) => {
    options.onError?.(error);
    resolveDone();
  });
  request.end(body);
  return {
    close: () => request.destroy(),
    done,
  };
}

/**
 * Downloads one full initial sync over a raw stream and resolves with the ms
 * from request to the first `checkpoint_complete`, and the bytes received.
 */
export async function rawInitialSync(
  url: string,
  token: string,
  clientId: string,
): Promise<{ ms: number; bytes: number; dataLines: number }> {
  const started = performance.now();
  let bytes = 0;
  let dataLines = 0;
  return new Promise((resolve, reject) => {
    const stream = openRawStream({
      url,
      token,
      clientId,
      onBytes: (n) => (bytes += n),
      onLine(line, at) {
        if (line.startsWith('{"data"')) dataLines++;
        if (checkpointCompleteOpId(line) !== null) {
          stream.close();
          resolve({ ms: at - started, bytes, dataLines });
        }
      },
      onError: reject,
    });
    void stream.done.then(() => reject(new Error('sync stream ended before checkpoint_complete')));
  });
}
