import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configJsonSchema } from './schema.js';

describe('published JSON Schema of ferry.yaml', () => {
  it('matches docs/ferry.schema.json (run npm run docs:config after changing options)', () => {
    const published = JSON.parse(readFileSync(new URL('../../../../docs/ferry.schema.json', import.meta.url), 'utf8'));
    expect(published).toEqual(JSON.parse(JSON.stringify(configJsonSchema())));
  });

  it('documents every option', () => {
    const missing: string[] = [];
    const walk = (node: Record<string, unknown>, at: string) => {
      const properties = node['properties'] as Record<string, Record<string, unknown>> | undefined;
      for (const [key, child] of Object.entries(properties ?? {})) {
        const inner = (child['anyOf'] as Record<string, unknown>[] | undefined)?.[0] ?? child;
        if (inner['properties']) walk(inner, `${at}${key}.`);
        else if (!child['description'] && !inner['description']) missing.push(at + key);
      }
    };
    walk(configJsonSchema(), '');
    expect(missing).toEqual([]);
  });
});
