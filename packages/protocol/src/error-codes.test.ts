import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderErrorDocs } from './error-docs.js';
import { ERROR_CODES } from './error-codes.js';
import { FerryError } from './errors.js';

const source = readFileSync(new URL('./error-codes.ts', import.meta.url), 'utf8');

describe('error code registry', () => {
  it('uses FERRY_<S|C><4 digits> codes, each documented', () => {
    for (const code of Object.keys(ERROR_CODES)) {
      expect(code).toMatch(/^FERRY_[SC]\d{4}$/);
      expect(renderErrorDocs(source)).toMatch(new RegExp(`\\| \`${code}\` \\|[^\\n]+\\| [A-Z][^|]{10,} \\|`));
    }
  });

  it('keeps docs/errors.md in sync with the registry (run npm run docs:errors)', () => {
    const docs = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
    expect(docs).toBe(renderErrorDocs(source));
  });

  it('serializes errors as data without stacks, and recognizes them across copies', () => {
    const error = new FerryError('FERRY_S2003', 'token expired 5 s ago', { details: { expiredAt: 1 } });
    expect(error.status).toBe(401);
    expect(JSON.parse(JSON.stringify(error))).toEqual({
      error: { code: 'FERRY_S2003', message: 'token expired 5 s ago', details: { expiredAt: 1 } },
    });
    expect(FerryError.is(error)).toBe(true);
    expect(FerryError.is(new Error('x'))).toBe(false);
    expect(FerryError.is({ code: 'FERRY_S2003' })).toBe(false);
  });
});
