import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { FerryError } from '@ferry/protocol';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Node, type Scalar } from 'yaml';
import type { z } from 'zod';
import { configSchema, type RawFerryConfig } from './schema.js';
import type { FerryConfig, Jwk } from './types.js';

export interface ParseConfigOptions {
  /** Environment for `!env` (default `process.env`). */
  env?: Record<string, string | undefined>;
}

/** One problem found in a config file. */
export interface ConfigIssue {
  /** Dotted key path, e.g. `client_auth.audience` (empty for the document). */
  path: string;
  line: number;
  column: number;
  message: string;
}

/**
 * The `!env` tag: `!env VAR` is the value of the environment variable VAR;
 * `!env VAR:default` falls back to `default` when VAR is unset. Resolved
 * after parsing so errors can name the line.
 */
const envTag = { tag: '!env', resolve: (text: string) => text };
const ENV_REFERENCE = /^([A-Za-z_][A-Za-z0-9_]*)(?::(.*))?$/s;

/** Reads and validates a config file. Throws FerryError FERRY_S1001/S1002/S1003. */
export async function loadConfig(file: string, options: ParseConfigOptions = {}): Promise<FerryConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new FerryError('FERRY_S1001', `${file}: cannot read config file: ${(cause as Error).message}`, { cause });
  }
  return parseConfig(text, file, options);
}

/**
 * Parses and validates config text. `file` names the source in messages and
 * anchors relative paths (the current directory when it has no directory).
 * Every error names `file:line:column` and the key path.
 */
export function parseConfig(text: string, file: string, options: ParseConfigOptions = {}): FerryConfig {
  const env = options.env ?? process.env;
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, customTags: [envTag], prettyErrors: false, uniqueKeys: true });
  const where = (offset: number) => {
    const pos = lineCounter.linePos(offset);
    return { line: pos.line, column: pos.col };
  };

  if (doc.errors.length > 0) {
    const issues = doc.errors.map((error) => ({
      path: '',
      ...where(error.pos[0]),
      message: error.message.split('\n')[0]!,
    }));
    throw configError('FERRY_S1001', file, issues, 'is not valid YAML');
  }

  // Resolve !env references in place.
  const missing: ConfigIssue[] = [];
  visit(doc, {
    Scalar(_key, node) {
      if (node.tag !== '!env') return;
      const reference = String(node.value ?? '').trim();
      const match = ENV_REFERENCE.exec(reference);
      const start = where(node.range?.[0] ?? 0);
      if (match === null) {
        missing.push({
          path: keyPath(doc, node),
          ...start,
          message: `!env expects VAR or VAR:default, got ${JSON.stringify(reference)}`,
        });
        return;
      }
      const value = env[match[1]!] ?? match[2];
      if (value === undefined) {
        missing.push({ path: keyPath(doc, node), ...start, message: `environment variable ${match[1]} is not set` });
        return;
      }
      node.value = value;
      delete node.tag;
    },
  });
  if (missing.length > 0) throw configError('FERRY_S1003', file, missing, 'references unset environment variables');

  const input: unknown = doc.toJS() ?? {};
  const parsed = configSchema.safeParse(input);
  if (!parsed.success) {
    const issues = parsed.error.issues.flatMap((issue) => describeIssue(doc, issue, where));
    throw configError('FERRY_S1002', file, issues, 'is invalid');
  }
  return normalize(parsed.data, file);
}

function normalize(raw: RawFerryConfig, file: string): FerryConfig {
  const dir = path.dirname(path.resolve(file));
  const audience =
    typeof raw.client_auth.audience === 'string' ? [raw.client_auth.audience] : [...raw.client_auth.audience];
  return {
    file: path.resolve(file),
    replication: {
      connection: raw.replication.connection,
      slotName: raw.replication.slot_name ?? null,
      publication: raw.replication.publication ?? null,
    },
    storage: {
      connection: raw.storage.connection ?? raw.replication.connection,
      schema: raw.storage.schema,
      compactIntervalSeconds: raw.storage.compact_interval_seconds,
    },
    syncRules: {
      path: raw.sync_rules.path === undefined ? null : path.resolve(dir, raw.sync_rules.path),
      content: raw.sync_rules.content ?? null,
    },
    writeRules:
      raw.write_rules === undefined
        ? null
        : {
            path: raw.write_rules.path === undefined ? null : path.resolve(dir, raw.write_rules.path),
            content: raw.write_rules.content ?? null,
            maxRequestBytes: raw.write_rules.max_request_bytes,
            idempotencyRetentionHours: raw.write_rules.idempotency_retention_hours,
            hooks: raw.write_rules.hooks === undefined ? null : path.resolve(dir, raw.write_rules.hooks),
            maxClockSkewMs: raw.write_rules.max_clock_skew_ms,
          },
    clientAuth: {
      audience,
      jwksUri: raw.client_auth.jwks_uri ?? null,
      jwks: raw.client_auth.jwks === undefined ? null : { keys: raw.client_auth.jwks.keys as Jwk[] },
      hs256Secret: raw.client_auth.hs256_secret ?? null,
    },
    api: {
      host: raw.api.host,
      port: raw.api.port,
      maxBucketsPerClient: raw.api.max_buckets_per_client,
      keepaliveSeconds: raw.api.keepalive_seconds,
      corsOrigin: raw.api.cors_origin,
    },
    logLevel: raw.log_level,
  };
}

function configError(
  code: 'FERRY_S1001' | 'FERRY_S1002' | 'FERRY_S1003',
  file: string,
  issues: ConfigIssue[],
  summary: string,
): FerryError {
  const lines = issues.map(
    (issue) => `${file}:${issue.line}:${issue.column}: ${issue.path === '' ? '' : `${issue.path}: `}${issue.message}`,
  );
  const message = lines.length === 1 ? lines[0]! : `${file} ${summary}:\n${lines.join('\n')}`;
  return new FerryError(code, message, { details: { file, issues } });
}

// ── mapping zod issues to YAML positions ────────────────────────────────────

type Where = (offset: number) => { line: number; column: number };

function describeIssue(doc: Document, issue: z.core.$ZodIssue, where: Where): ConfigIssue[] {
  const segments = issue.path.map((segment) => (typeof segment === 'number' ? segment : String(segment)));
  if (issue.code === 'unrecognized_keys') {
    const known = knownKeys(segments);
    return issue.keys.map((key) => {
      const located = locate(doc, [...segments, key], true);
      const hint = closest(key, known);
      return {
        path: [...segments, key].join('.'),
        ...where(located.offset),
        message: `unknown key${hint === null ? '' : ` (did you mean "${hint}"?)`}${known.length > 0 ? `; expected one of ${known.join(', ')}` : ''}`,
      };
    });
  }
  const located = locate(doc, segments, false);
  const message = located.found ? issue.message : `missing required key`;
  return [{ path: segments.join('.'), ...where(located.offset), message }];
}

/**
 * The offset of the node at `segments`, or of its deepest existing ancestor
 * (for missing keys). With `keyNode`, the key of the last segment's pair.
 */
function locate(
  doc: Document,
  segments: readonly (string | number)[],
  keyNode: boolean,
): { found: boolean; offset: number } {
  let node: unknown = doc.contents;
  let offset = rangeStart(node) ?? 0;
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    const last = i === segments.length - 1;
    if (isMap(node)) {
      const pair = node.items.find(
        (item) => (isScalar(item.key) ? String(item.key.value) : String(item.key)) === String(segment),
      );
      if (pair === undefined) return { found: false, offset };
      if (last && keyNode) return { found: true, offset: rangeStart(pair.key) ?? offset };
      node = pair.value;
      // A key with no value (`audience:`) has no value node: point at the key.
      offset = rangeStart(pair.value) ?? rangeStart(pair.key) ?? offset;
      if (pair.value === null || (isScalar(pair.value) && pair.value.value === null)) {
        return { found: !last ? false : true, offset: rangeStart(pair.key) ?? offset };
      }
    } else if (isSeq(node) && typeof segment === 'number') {
      const item = node.items[segment];
      if (item === undefined) return { found: false, offset };
      node = item;
      offset = rangeStart(item) ?? offset;
    } else {
      return { found: false, offset };
    }
  }
  return { found: true, offset };
}

function rangeStart(node: unknown): number | undefined {
  return (node as Node | null | undefined)?.range?.[0];
}

/** The dotted key path of a scalar node inside the document. */
function keyPath(doc: Document, target: Scalar): string {
  let result = '';
  visit(doc, {
    Scalar(_key, node, ancestors) {
      if (node !== target) return;
      const parts: string[] = [];
      for (let i = 0; i < ancestors.length; i++) {
        const ancestor = ancestors[i];
        if (isMap(ancestor)) {
          const pair = ancestors[i + 1];
          if (pair !== undefined && 'key' in (pair as object)) {
            const key = (pair as { key: unknown }).key;
            parts.push(isScalar(key) ? String(key.value) : String(key));
          }
        } else if (isSeq(ancestor)) {
          const child = ancestors[i + 1] ?? node;
          parts.push(String(ancestor.items.indexOf(child as never)));
        }
      }
      result = parts.join('.');
      return visit.BREAK;
    },
  });
  return result;
}

/** The keys the schema accepts for the object at `segments`. */
function knownKeys(segments: readonly (string | number)[]): string[] {
  let schema: unknown = configSchema;
  for (const segment of [...segments, null]) {
    schema = unwrap(schema);
    const shape = (schema as { shape?: Record<string, unknown> }).shape;
    if (shape === undefined) return [];
    if (segment === null) return Object.keys(shape);
    schema = shape[String(segment)];
  }
  return [];
}

function unwrap(schema: unknown): unknown {
  let current = schema as
    { _zod?: { def: { type: string; innerType?: unknown; in?: unknown; schema?: unknown } } } | undefined;
  for (let guard = 0; guard < 10 && current?._zod !== undefined; guard++) {
    const def = current._zod.def;
    if ('shape' in current) return current;
    const inner = def.innerType ?? def.in ?? def.schema;
    if (inner === undefined) return current;
    current = inner as typeof current;
  }
  return current;
}

/** The closest candidate within a small edit distance, for "did you mean". */
function closest(word: string, candidates: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const candidate of candidates) {
    const distance = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}
