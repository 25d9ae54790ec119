/**
 * Client-side cost of an initial sync: from `connect()` to the first applied
 * checkpoint, with the stream served from memory (no service), so the
 * figure is the client's share of `initial_sync_*_ms`. Rows are ~200 B of
 * JSON. Run: `npx vitest bench --run packages/client-node`.
 */
import { encodeLine, putChecksum } from '@ferry/protocol';
import { bench, describe } from 'vitest';
import { connector, openTestDb } from './test-support/test-db.js';

function payload(rows: number, perLine: number): Uint8Array {
  const ops = [];
  let checksum = 0;
  for (let i = 1; i <= rows; i++) {
    const id = `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
    const data = `{"id":"${id}","list_id":"list-${i % 50}","title":"Todo ${i} padded to a typical size","done":${i % 2},"amount":${i * 1.25},"big":9007199254740993}`;
    const op = {
      op_id: String(i),
      op: 'PUT',
      object_type: 'todos',
      object_id: id,
      data,
      checksum: putChecksum('todos', id, data),
    };
    checksum = (checksum + op.checksum) >>> 0;
    ops.push(op);
  }
  let text = encodeLine({
    checkpoint: { last_op_id: String(rows), buckets: [{ bucket: 'global[]', checksum, count: rows, priority: 3 }] },
  });
  for (let i = 0; i < rows; i += perLine) {
    const data = ops.slice(i, i + perLine);
    text += encodeLine({
      data: {
        bucket: 'global[]',
        data,
        has_more: i + perLine < rows,
        after: String(i),
        next_after: data.at(-1)!.op_id,
      },
    });
  }
  text += encodeLine({ checkpoint_complete: { last_op_id: String(rows) } });
  return new TextEncoder().encode(text);
}

/** Serves `bytes` as a response body in 64 KiB chunks, like a socket would. */
function serve(bytes: Uint8Array): typeof fetch {
  return async () => {
    let offset = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (offset >= bytes.length) return controller.close();
        controller.enqueue(bytes.subarray(offset, offset + 65536));
        offset += 65536;
      },
    });
    return new Response(body, { status: 200 });
  };
}

for (const rows of [5_000, 100_000]) {
  describe(`initial sync, ${rows} rows`, () => {
    const bytes = payload(rows, 500);
    bench(
      'connect → first checkpoint applied',
      async () => {
        await using t = await openTestDb();
        await t.db.connect(connector, { fetch: serve(bytes) });
        await t.db.waitForFirstSync();
        await t.db.disconnect();
      },
      { iterations: 5, warmupIterations: 1 },
    );
  });
}
