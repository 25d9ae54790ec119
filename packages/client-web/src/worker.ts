/**
 * The database worker: a dedicated module worker that owns one
 * {@link WaSqliteDatabase}. Requests are handled strictly one at a time in
 * arrival order (a statement never interleaves with another's awaits), and
 * each gets exactly one response.
 */
import type { WorkerRequest, WorkerResponse, WorkerResults } from './messages.js';
import { toWorkerError, WaSqliteDatabase } from './wa-sqlite-database.js';

/** The dedicated-worker global scope, typed without the WebWorker lib. */
interface WorkerScope {
  onmessage: ((event: MessageEvent<WorkerRequest>) => void) | null;
  postMessage(message: WorkerResponse, transfer?: Transferable[]): void;
  close(): void;
}

const scope = globalThis as unknown as WorkerScope;
const database = new WaSqliteDatabase();
let queue: Promise<void> = Promise.resolve();

async function handle(request: WorkerRequest): Promise<WorkerResults[WorkerRequest['kind']]> {
  switch (request.kind) {
    case 'open':
      return database.open(request.name, request.vfs, request.exclusive);
    case 'execute':
      return database.execute(request.sql, request.params);
    case 'executeBatch':
      return database.executeBatch(request.sql, request.paramSets);
    case 'close':
      await database.close();
      return null;
  }
}

/** Blob buffers of a result, moved rather than copied (each is its own copy out of the WASM heap). */
function transferablesOf(result: unknown): Transferable[] {
  const rows = (result as { rows?: unknown } | null)?.rows;
  if (!Array.isArray(rows)) return [];
  const buffers: Transferable[] = [];
  for (const row of rows as unknown[][]) {
    for (const value of row) {
      if (value instanceof Uint8Array && value.byteOffset === 0 && value.byteLength === value.buffer.byteLength) {
        buffers.push(value.buffer as ArrayBuffer);
      }
    }
  }
  return buffers;
}

scope.onmessage = (event) => {
  const request = event.data;
  queue = queue.then(async () => {
    let response: WorkerResponse;
    let transfer: Transferable[] = [];
    try {
      const result = await handle(request);
      response = { kind: request.kind, requestId: request.requestId, ok: true, result } as WorkerResponse;
      transfer = transferablesOf(result);
    } catch (error) {
      const failure = toWorkerError(error);
      response = {
        kind: request.kind,
        requestId: request.requestId,
        ok: false,
        error: { code: failure.code, errno: failure.errno, message: failure.message },
      };
    }
    scope.postMessage(response, transfer);
    if (request.kind === 'close' && response.ok) scope.close();
  });
};
