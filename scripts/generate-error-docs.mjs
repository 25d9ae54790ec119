// Writes docs/errors.md from the built protocol package (npm run docs:errors).
import { readFileSync, writeFileSync } from 'node:fs';
import { renderErrorDocs } from '../packages/protocol/dist/error-docs.js';

const source = readFileSync(new URL('../packages/protocol/src/error-codes.ts', import.meta.url), 'utf8');
writeFileSync(new URL('../docs/errors.md', import.meta.url), renderErrorDocs(source));
console.log('wrote docs/errors.md');
