import { request, type IncomingMessage } from 'node:http';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { NdjsonDecoder } from '@ferry/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { LineWriter } from './line-writer.js';
import { startTestServer, testToken, type TestServer } from './testing.js';

let server: TestServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('backpressure', () => {
  it('LineWriter waits for drain, so the sink never holds more than one line over its mark', async () => {
    const sink = new PassThrough({ highWaterMark: 1024 });
    const writer = new LineWriter(sink, new AbortController().signal, null);
    const line = Buffer.alloc(600, 'x');
    let written = 0;
    let maxBuffered = 0;
    const producer = (async () => {
      for (let i = 0; i < 100; i++) {
        await writer.write('data', line);
        written++;
        maxBuffered = Math.max(maxBuffered, sink.writableLength);
      }
    })();
    await sleep(50);
    // Nobody reads: the producer is stuck after filling the buffer.
    expect(written).toBeLessThan(5);
    sink.resume();
    await producer;
    expect(written).toBe(100);
    expect(maxBuffered).toBeLessThanOrEqual(1024 + 600);
  });

  it('a client that does not read pauses the storage reads of its stream', async () => {
    server = await startTestServer({ opCache: { pageSize: 500 } });
    const { storage, url } = server;
    const total = 60_000;
    const padding = 'p'.repeat(200);
    for (let i = 0; i < total; i++)
      storage.put('global[]', { object_type: 'items', object_id: `i${i}`, data: { id: `i${i}`, padding } });
    storage.commit();
    const pages = total / 500;

    const req = request(`${url}/sync/stream`, {
      method: 'POST',
      headers: { authorization: `Token ${await testToken('slow')}`, 'content-type': 'application/json' },
    });
    req.end('{}');
    const [res] = (await once(req, 'response')) as [IncomingMessage];
    expect(res.statusCode).toBe(200);
    res.pause();
    await sleep(600);
    const readsWhilePaused = storage.stats.readBucketOps;
    await sleep(300);
    // Stuck: no further reads while the client does not read, and far from all pages.
    expect(storage.stats.readBucketOps).toBe(readsWhilePaused);
    expect(readsWhilePaused).toBeLessThan(pages / 2);

    // Once the client reads, everything arrives.
    let ops = 0;
    const decoder = new NdjsonDecoder();
    let complete = false;
    res.on('data', (chunk: Buffer) =>
      decoder.push(chunk, (line) => {
        const message = JSON.parse(line) as { data?: { data: unknown[] }; checkpoint_complete?: unknown };
        if (message.data) ops += message.data.data.length;
        if (message.checkpoint_complete) complete = true;
      }),
    );
    res.resume();
    for (let i = 0; i < 300 && !complete; i++) await sleep(20);
    res.destroy();
    expect(complete).toBe(true);
    expect(ops).toBe(total);
    expect(storage.stats.readBucketOps).toBe(pages);
  });
});
