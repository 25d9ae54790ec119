/**
 * Child process entry for the fanout benchmark: holds many raw sync streams
 * (node:http, one keep-alive agent) and reports, per round, when each
 * stream received the `checkpoint_complete` after the round was armed.
 * Driven over IPC by fanout-scenario.ts; see {@link FanoutRequest}.
 * Times are epoch ms with sub-ms precision (`performance.timeOrigin +
 * performance.now()`), comparable with the parent's clock.
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { checkpointCompleteOpId, openRawStream, type RawStream } from './raw-stream.js';

export type FanoutRequest =
  | { type: 'start'; url: string; tokens: string[]; concurrency: number; idPrefix: string }
  | { type: 'arm'; round: number; timeoutMs: number }
  | { type: 'stop' };

export type FanoutReply =
  | { type: 'ready'; connectMs: number[]; errors: string[] }
  | { type: 'armed'; round: number }
  | { type: 'round'; round: number; receivedAt: number[]; missing: number; errors: string[] };

interface Client {
  stream: RawStream | null;
  lastComplete: bigint;
  armedAfter: bigint | null;
  receivedAt: number | null;
  ended: boolean;
}

const clients: Client[] = [];
const errors: string[] = [];
const agent = new http.Agent({ keepAlive: true, maxSockets: 2000 });
let round: { round: number; pending: number; timer: NodeJS.Timeout } | null = null;

function send(reply: FanoutReply): void {
  process.send?.(reply);
}

function epoch(at: number): number {
  return performance.timeOrigin + at;
}

function finishRound(): void {
  if (round === null) return;
  clearTimeout(round.timer);
  const receivedAt = clients.filter((c) => c.receivedAt !== null).map((c) => c.receivedAt!);
  send({
    type: 'round',
    round: round.round,
    receivedAt,
    missing: clients.length - receivedAt.length,
    errors: errors.splice(0),
  });
  round = null;
  for (const c of clients) c.armedAfter = null;
}

async function start(request: Extract<FanoutRequest, { type: 'start' }>): Promise<void> {
  const connectMs: number[] = [];
  let next = 0;
  await new Promise<void>((resolve) => {
    let open = 0;
    let done = 0;
    const total = request.tokens.length;
    const launch = (): void => {
      while (open < request.concurrency && next < total) {
        const index = next++;
        open++;
        const started = performance.now();
        const client: Client = { stream: null, lastComplete: -1n, armedAfter: null, receivedAt: null, ended: false };
        clients.push(client);
        let first = true;
        const settleFirst = (): void => {
          if (!first) return;
          first = false;
          open--;
          done++;
          if (done === total) resolve();
          else launch();
        };
        client.stream = openRawStream({
          url: request.url,
          token: request.tokens[index]!,
          clientId: `${request.idPrefix}-${index}`,
          agent,
          onLine(line, at) {
            const opId = checkpointCompleteOpId(line);
            if (opId === null) return;
            const id = BigInt(opId);
            client.lastComplete = id;
            if (first) {
              connectMs.push(at - started);
              settleFirst();
            }
            if (round !== null && client.armedAfter !== null && client.receivedAt === null && id > client.armedAfter) {
              client.receivedAt = epoch(at);
              if (--round.pending === 0) finishRound();
            }
          },
          onError(error) {
            errors.push(`client ${index}: ${error.message}`);
            settleFirst();
          },
        });
        void client.stream.done.then(() => {
          client.ended = true;
          if (first) {
            errors.push(`client ${index}: stream ended before its first checkpoint`);
            settleFirst();
          }
        });
      }
    };
    launch();
  });
  send({ type: 'ready', connectMs, errors: errors.splice(0) });
}

function arm(request: Extract<FanoutRequest, { type: 'arm' }>): void {
  for (const c of clients) {
    c.armedAfter = c.lastComplete;
    c.receivedAt = null;
  }
  const pending = clients.filter((c) => !c.ended).length;
  const timer = setTimeout(finishRound, request.timeoutMs);
  round = { round: request.round, pending, timer };
  send({ type: 'armed', round: request.round });
}

function stop(): void {
  for (const c of clients) c.stream?.close();
  agent.destroy();
  process.disconnect?.();
  setTimeout(() => process.exit(0), 100).unref();
}

process.on('message', (message: FanoutRequest) => {
  if (message.type === 'start') void start(message);
  else if (message.type === 'arm') arm(message);
  else stop();
});
process.on('disconnect', () => {
  for (const c of clients) c.stream?.close();
  process.exit(0);
});
