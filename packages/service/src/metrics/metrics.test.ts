import { describe, expect, it } from 'vitest';
import { createLogger, createMetrics } from './index.js';

describe('createMetrics', () => {
  it('keeps each instance on its own registry', async () => {
    const a = createMetrics({ processMetrics: false });
    const b = createMetrics({ processMetrics: false });
    a.opsStored.inc(5);
    a.replicationLagMs.set(12);
    a.snapshotRowsCopied.inc(100);
    const body = (await a.render()).body;
    expect(body).toMatch(/^ferry_ops_stored_total 5$/m);
    expect(body).toMatch(/^ferry_replication_lag_ms 12$/m);
    expect(body).toMatch(/^ferry_snapshot_rows_copied_total 100$/m);
    expect((await b.render()).body).toMatch(/^ferry_ops_stored_total 0$/m);
  });

  it('includes process metrics by default', async () => {
    expect((await createMetrics().render()).body).toContain('ferry_process_resident_memory_bytes');
  });
});

describe('createLogger', () => {
  it('never writes tokens or authorization headers', () => {
    const out: string[] = [];
    const logger = createLogger('info', {}, { write: (line: string) => void out.push(line) });
    logger.info({ headers: { authorization: 'Token secret.jwt.value' }, token: 'tok-123', userId: 'u1' }, 'connected');
    logger.debug('hidden at info');
    const text = out.join('');
    expect(text).toContain('"userId":"u1"');
    expect(text).not.toContain('secret.jwt.value');
    expect(text).not.toContain('tok-123');
    expect(out).toHaveLength(1);
  });
});
