import type { Scenario } from './bench-context.js';

/**
 * Picks scenarios by `--only` names (comma-separated, in suite order); all
 * when empty. Throws on an unknown name, listing the known ones.
 */
export function selectScenarios(all: readonly Scenario[], only: string | undefined): Scenario[] {
  if (only === undefined || only.trim() === '') return [...all];
  const names = only
    .split(',')
    .map((n) => n.trim())
    .filter(Boolean);
  const unknown = names.filter((n) => !all.some((s) => s.name === n));
  if (unknown.length) {
    throw new Error(`unknown scenario ${unknown.join(', ')}; scenarios: ${all.map((s) => s.name).join(', ')}`);
  }
  return all.filter((s) => names.includes(s.name));
}
