import { ERROR_CODES } from './error-codes.js';

/**
 * Renders the error-code reference (`docs/errors.md`) from the registry and
 * the doc comments in error-codes.ts, so the docs can never drift from the
 * code. `source` is the text of error-codes.ts.
 */
export function renderErrorDocs(source: string): string {
  const comments = new Map<string, string>();
  const pattern = /\/\*\*\s*([\s\S]*?)\s*\*\/\s*(FERRY_[A-Z]\d{4}):/g;
  for (const match of source.matchAll(pattern)) {
    comments.set(match[2]!, match[1]!.replace(/\s*\n\s*\*\s?/g, ' ').trim());
  }
  const lines = [
    '# Error codes',
    '',
    'Generated from `packages/protocol/src/error-codes.ts` by `npm run docs:errors`; do not edit by hand.',
    '',
    'Every error Ferry reports carries one of these codes. HTTP errors answer',
    '`{"error": {"code": "FERRY_…", "message": "…", "details": …}}` with the status shown.',
    '',
    '| code | status | title | what happened, what to do |',
    '|---|---|---|---|',
  ];
  for (const [code, entry] of Object.entries(ERROR_CODES)) {
    lines.push(`| \`${code}\` | ${entry.status || '—'} | ${entry.title} | ${comments.get(code) ?? ''} |`);
  }
  return lines.join('\n') + '\n';
}
