import { describe, expect, it } from 'vitest';
import { promValue } from './service-process.js';

describe('promValue', () => {
  const text = `# HELP ferry_ops_stored_total Ops appended
# TYPE ferry_ops_stored_total counter
ferry_ops_stored_total 1500
ferry_sync_lines_sent_total{kind="data"} 10
ferry_sync_lines_sent_total{kind="checkpoint"} 2
ferry_ops_stored_total_other 9
`;
  it('reads a counter and sums its label sets', () => {
    expect(promValue(text, 'ferry_ops_stored_total')).toBe(1500);
    expect(promValue(text, 'ferry_sync_lines_sent_total')).toBe(12);
  });
  it('is null for a missing metric', () => {
    expect(promValue(text, 'ferry_nothing')).toBeNull();
  });
});
