import { describe, expect, it } from 'vitest';
import type { Scenario } from './bench-context.js';
import { selectScenarios } from './select-scenarios.js';

const scenario = (name: string): Scenario => ({
  name,
  summary: name,
  metrics: [],
  needsPostgres: false,
  run: async () => {},
});
const all = [scenario('initial_sync'), scenario('replication'), scenario('fanout')];

describe('selectScenarios', () => {
  it('runs everything without --only', () => {
    expect(selectScenarios(all, undefined).map((s) => s.name)).toEqual(['initial_sync', 'replication', 'fanout']);
    expect(selectScenarios(all, ' ').map((s) => s.name)).toEqual(['initial_sync', 'replication', 'fanout']);
  });

  it('keeps suite order for a subset', () => {
    expect(selectScenarios(all, 'fanout, initial_sync').map((s) => s.name)).toEqual(['initial_sync', 'fanout']);
  });

  it('names unknown scenarios and the known ones', () => {
    expect(() => selectScenarios(all, 'fanout,nope')).toThrow(
      /unknown scenario nope; scenarios: initial_sync, replication, fanout/,
    );
  });
});
