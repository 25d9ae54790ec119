/**
 * The one benchmark harness. Scenarios report samples; the harness turns
 * them into medians with spread, prints a table and writes
 * `bench-results.json` (metric → median) at the repository root, with the
 * full statistics in `bench-results.details.json`.
 */
import { readFile, writeFile } from 'node:fs/promises';

export interface MetricResult {
  name: string;
  unit: string;
  /** The reported figure (median of samples, or a single measured value). */
  value: number;
  samples: number[];
  /** Target from the issue, for the table; `<` means lower is better. */
  target?: { op: '<' | '>'; value: number };
  note?: string;
}

/** Defeats dead-code elimination of benchmarked work. */
export let sink: unknown;
export function consume(value: unknown): void {
  sink = value;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Nearest-rank percentile, p in [0, 100]. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export function metric(
  name: string,
  unit: string,
  samples: number[],
  extra: { target?: MetricResult['target']; note?: string; value?: number } = {},
): MetricResult {
  const result: MetricResult = { name, unit, value: extra.value ?? median(samples), samples };
  if (extra.target) result.target = extra.target;
  if (extra.note) result.note = extra.note;
  return result;
}

function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 1000) return Math.round(n).toLocaleString('en-US');
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(3);
}

export function renderTable(results: readonly MetricResult[]): string {
  const rows = results.map((r) => {
    const min = r.samples.length ? Math.min(...r.samples) : r.value;
    const max = r.samples.length ? Math.max(...r.samples) : r.value;
    const target = r.target ? `${r.target.op} ${fmt(r.target.value)}` : '';
    const ok = r.target
      ? (r.target.op === '<' ? r.value < r.target.value : r.value > r.target.value)
        ? 'ok'
        : 'MISS'
      : '';
    return [
      r.name,
      fmt(r.value),
      r.unit,
      `${fmt(min)} … ${fmt(max)}`,
      String(r.samples.length || 1),
      target,
      ok,
      r.note ?? '',
    ];
  });
  const header = ['metric', 'median', 'unit', 'spread (min … max)', 'n', 'target', '', 'note'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** Merges results into bench-results.json (metric → value) and the details file. */
export async function writeResults(file: string, results: readonly MetricResult[]): Promise<void> {
  let existing: Record<string, number> = {};
  try {
    existing = JSON.parse(await readFile(file, 'utf8')) as Record<string, number>;
  } catch {
    existing = {};
  }
  for (const r of results) existing[r.name] = Number(r.value.toFixed(3));
  await writeFile(file, JSON.stringify(existing, null, 2) + '\n');
  const details = file.replace(/\.json$/, '.details.json');
  await writeFile(
    details,
    JSON.stringify(
      {
        generatedAt: new Date().toISOString(),
        results: results.map((r) => ({ ...r, samples: r.samples.map((s) => Number(s.toFixed(3))) })),
      },
      null,
      2,
    ) + '\n',
  );
}
