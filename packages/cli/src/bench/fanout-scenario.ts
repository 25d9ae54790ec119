/**
 * Fanout: 1,000 concurrent raw sync streams (two child processes, 500
 * each) hold the same global bucket. After all have their first
 * `checkpoint_complete`, one UPDATE in that bucket; each stream's latency is
 * from just before the UPDATE is sent until that stream reads the
 * `checkpoint_complete` containing it. One warm-up round, then 5 measured.
 * Reported: the p95 over all per-stream latencies of the measured rounds
 * (5 × 1,000 samples), and the service RSS with 1,000 streams connected.
 */
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { GLOBAL_RULES, LISTS_ITEMS_DDL, insertItems, itemId } from './bench-data.js';
import type { Scenario } from './bench-context.js';
import { forkNode, stopChild, type TrackedChild } from './child-processes.js';
import type { FanoutReply, FanoutRequest } from './fanout-child.js';
import { median, metric, percentile } from './harness.js';
import { measurePhasePeak } from './proc.js';

const CLIENTS = 1_000;
const CHILDREN = 2;
const ROUNDS = 5;
const WARMUP_ROUNDS = 1;
const ROUND_TIMEOUT_MS = 15_000;
const CONNECT_CONCURRENCY = 50;

class FanoutChild {
  readonly process: TrackedChild;
  private readonly waiters = new Map<FanoutReply['type'], (reply: FanoutReply) => void>();

  constructor(script: string) {
    this.process = forkNode(script);
    this.process.child.on('message', (reply: FanoutReply) => {
      const waiter = this.waiters.get(reply.type);
      this.waiters.delete(reply.type);
      waiter?.(reply);
    });
  }

  /** Waits for the next reply of `type` (register before sending what causes it). */
  waitFor<T extends FanoutReply['type']>(type: T, timeoutMs: number): Promise<Extract<FanoutReply, { type: T }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(type);
        reject(new Error(`fanout child: no '${type}' within ${timeoutMs} ms\n${this.process.stderr}`));
      }, timeoutMs);
      void this.process.exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`fanout child exited (${code}) waiting for '${type}'\n${this.process.stderr}`));
      });
      this.waiters.set(type, (reply) => {
        clearTimeout(timer);
        resolve(reply as Extract<FanoutReply, { type: T }>);
      });
    });
  }

  send(message: FanoutRequest): void {
    this.process.child.send(message);
  }

  request<T extends FanoutReply['type']>(
    message: FanoutRequest,
    reply: T,
    timeoutMs: number,
  ): Promise<Extract<FanoutReply, { type: T }>> {
    const waiting = this.waitFor(reply, timeoutMs);
    this.send(message);
    return waiting;
  }

  async stop(): Promise<void> {
    if (this.process.hasExited()) return;
    try {
      this.process.child.send({ type: 'stop' } satisfies FanoutRequest);
    } catch {
      // channel already closed
    }
    const timer = setTimeout(() => void stopChild(this.process, 2000), 3000);
    await this.process.exited;
    clearTimeout(timer);
  }
}

export const fanoutScenario: Scenario = {
  name: 'fanout',
  summary: '1,000 raw streams on one bucket (2 child processes); one UPDATE → last stream has it; service RSS',
  needsPostgres: true,
  metrics: [
    { name: 'fanout_1000_p95_ms', unit: 'ms', target: { op: '<', value: 250 } },
    { name: 'fanout_1000_last_client_ms', unit: 'ms' },
    { name: 'service_rss_1000_clients_mb', unit: 'MiB' },
  ],
  async run(ctx, out) {
    const db = await ctx.createDatabase('fanout');
    let service: Awaited<ReturnType<typeof ctx.startService>> | null = null;
    const children: FanoutChild[] = [];
    try {
      await db.client.query(LISTS_ITEMS_DDL);
      await insertItems(db.client, 'u1', 10, 1, 100);
      service = await ctx.startService(db, GLOBAL_RULES);
      const id = await itemId(db.client, 'u1', 1);
      const tokens: string[] = [];
      for (let i = 0; i < CLIENTS; i++) tokens.push(await ctx.token(`fan-${i}`));

      const script = path.join(ctx.distDir, 'fanout-child.js');
      for (let c = 0; c < CHILDREN; c++) children.push(new FanoutChild(script));
      const perChild = Math.ceil(CLIENTS / CHILDREN);
      const connectStarted = performance.now();
      const connect = await measurePhasePeak(service.pid, () =>
        Promise.all(
          children.map((child, c) =>
            child.request(
              {
                type: 'start',
                url: service!.url,
                tokens: tokens.slice(c * perChild, (c + 1) * perChild),
                concurrency: CONNECT_CONCURRENCY / CHILDREN,
                idPrefix: `fan${c}`,
              },
              'ready',
              180_000,
            ),
          ),
        ),
      );
      const connectSeconds = (performance.now() - connectStarted) / 1000;
      const connectErrors = connect.result.flatMap((r) => r.errors);
      if (connectErrors.length)
        throw new Error(`${connectErrors.length} streams failed to connect: ${connectErrors.slice(0, 3).join('; ')}`);
      const connectMs = connect.result.flatMap((r) => r.connectMs);
      if (connectMs.length !== CLIENTS)
        throw new Error(`only ${connectMs.length} of ${CLIENTS} streams got a first checkpoint`);
      const connected = await service.memory();
      ctx.log(
        `fanout: ${CLIENTS} streams up in ${connectSeconds.toFixed(1)} s (first checkpoint p50 ${median(connectMs).toFixed(0)} ms); service RSS ${connected.rssMb.toFixed(0)} MiB, peak while connecting ${connect.peakMb.toFixed(0)} MiB`,
      );

      const latencies: number[] = [];
      const roundP95: number[] = [];
      const roundMax: number[] = [];
      const rssDuring: number[] = [connected.rssMb];
      for (let round = 0; round < WARMUP_ROUNDS + ROUNDS; round++) {
        const results = children.map((child) => child.waitFor('round', ROUND_TIMEOUT_MS + 10_000));
        // Every child arms (records each stream's last checkpoint) before the UPDATE is sent.
        await Promise.all(
          children.map((child) => child.request({ type: 'arm', round, timeoutMs: ROUND_TIMEOUT_MS }, 'armed', 10_000)),
        );
        const sentAt = performance.timeOrigin + performance.now();
        await db.client.query('UPDATE items SET n = n + 1 WHERE id = $1', [id]);
        const replies = await Promise.all(results);
        const missing = replies.reduce((sum, r) => sum + r.missing, 0);
        if (missing > 0) {
          throw new Error(
            `round ${round}: ${missing} of ${CLIENTS} streams did not receive the update within ${ROUND_TIMEOUT_MS} ms; ${replies
              .flatMap((r) => r.errors)
              .slice(0, 3)
              .join('; ')}`,
          );
        }
        const perClient = replies.flatMap((r) => r.receivedAt.map((at) => at - sentAt));
        const rss = (await service.memory()).rssMb;
        ctx.log(
          `fanout: round ${round + 1}${round < WARMUP_ROUNDS ? ' (warm-up)' : ''}: p50 ${percentile(perClient, 50).toFixed(1)} ms, p95 ${percentile(perClient, 95).toFixed(1)} ms, last ${Math.max(...perClient).toFixed(1)} ms`,
        );
        if (round < WARMUP_ROUNDS) continue;
        latencies.push(...perClient);
        roundP95.push(percentile(perClient, 95));
        roundMax.push(Math.max(...perClient));
        rssDuring.push(rss);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      out.add(
        metric('fanout_1000_p95_ms', 'ms', roundP95, {
          value: percentile(latencies, 95),
          target: { op: '<', value: 250 },
          note: `p95 of ${latencies.length} per-stream latencies (${ROUNDS} rounds × ${CLIENTS}); spread = per-round p95; p50 ${percentile(latencies, 50).toFixed(1)} ms; ${CHILDREN} client processes`,
        }),
      );
      out.add(
        metric('fanout_1000_last_client_ms', 'ms', roundMax, {
          note: 'median over rounds of the slowest stream (UPDATE sent → its checkpoint_complete)',
        }),
      );
      out.add(
        metric('service_rss_1000_clients_mb', 'MiB', rssDuring, {
          value: connected.rssMb,
          note: `VmRSS once all ${CLIENTS} streams had their first checkpoint; spread incl. after each round; peak while connecting ${connect.peakMb.toFixed(0)} MiB; connect ${connectSeconds.toFixed(1)} s`,
        }),
      );
    } finally {
      await Promise.all(children.map((child) => child.stop()));
      await service?.stop();
      await ctx.dropDatabase(db);
    }
  },
};
