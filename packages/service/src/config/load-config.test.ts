import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FerryError } from '@ferry/protocol';
import { describe, expect, it } from 'vitest';
import { configJsonSchema, loadConfig, parseConfig } from './index.js';

const VALID = `# Ferry config
replication:
  connection: !env DATABASE_URL
sync_rules:
  path: rules/sync-rules.yaml
client_auth:
  audience: ferry
  hs256_secret: !env SECRET:dev-secret
api:
  port: !env PORT
`;

function failure(text: string, env: Record<string, string> = {}): FerryError {
  try {
    parseConfig(text, 'ferry.yaml', { env });
  } catch (error) {
    if (FerryError.is(error)) return error;
    throw error;
  }
  throw new Error('expected parseConfig to fail');
}

describe('parseConfig', () => {
  it('normalizes a valid file: defaults, !env, camelCase, absolute paths', () => {
    const config = parseConfig(VALID, '/etc/ferry/ferry.yaml', {
      env: { DATABASE_URL: 'postgres://u@h/db', PORT: '9090' },
    });
    expect(config).toEqual({
      file: '/etc/ferry/ferry.yaml',
      replication: { connection: 'postgres://u@h/db', slotName: null, publication: null },
      storage: { connection: 'postgres://u@h/db', schema: 'ferry', compactIntervalSeconds: 600 },
      syncRules: { path: '/etc/ferry/rules/sync-rules.yaml', content: null },
      writeRules: null,
      clientAuth: { audience: ['ferry'], jwksUri: null, jwks: null, hs256Secret: 'dev-secret' },
      api: { host: '127.0.0.1', port: 9090, maxBucketsPerClient: 1000, keepaliveSeconds: 20, corsOrigin: '*' },
      logLevel: 'info',
    });
  });

  it('accepts an audience list, inline JWKS and an explicit storage', () => {
    const config = parseConfig(
      `replication: { connection: postgres://a/b }
storage: { connection: postgres://c/d, schema: sync }
sync_rules: { content: "bucket_definitions: {}" }
client_auth:
  audience: [a, b]
  jwks: { keys: [ { kty: OKP, crv: Ed25519, x: abc, kid: k1 } ] }
  jwks_uri: https://auth.example.com/jwks.json
log_level: debug
`,
      'ferry.yaml',
      { env: {} },
    );
    expect(config.clientAuth.audience).toEqual(['a', 'b']);
    expect(config.clientAuth.jwks?.keys[0]?.kid).toBe('k1');
    expect(config.clientAuth.jwksUri).toBe('https://auth.example.com/jwks.json');
    expect(config.storage).toEqual({ connection: 'postgres://c/d', schema: 'sync', compactIntervalSeconds: 600 });
    expect(config.syncRules).toEqual({ path: null, content: 'bucket_definitions: {}' });
    expect(config.logLevel).toBe('debug');
  });

  it('names key and line:column for a wrong type', () => {
    const text = `replication:
  connection: postgres://a/b
sync_rules:
  path: rules.yaml
client_auth:
  audience: 17
  hs256_secret: s
`;
    const error = failure(text);
    expect(error.code).toBe('FERRY_S1002');
    expect(error.message).toBe('ferry.yaml:6:13: client_auth.audience: expected a string or list of strings');
  });

  it('names unknown keys with a did-you-mean hint', () => {
    const text = `replication:
  connection: postgres://a/b
sync_rules:
  path: rules.yaml
client_auth:
  audience: ferry
  hs256_secret: s
api:
  prot: 8080
`;
    const error = failure(text);
    expect(error.code).toBe('FERRY_S1002');
    expect(error.message).toMatch(/^ferry\.yaml:9:3: api\.prot: unknown key \(did you mean "port"\?\)/);
  });

  it('reports a missing required key at its parent', () => {
    const text = `replication:
  slot_name: s1
sync_rules:
  path: rules.yaml
client_auth:
  audience: ferry
  hs256_secret: s
`;
    const error = failure(text);
    expect(error.code).toBe('FERRY_S1002');
    expect(error.message).toBe('ferry.yaml:2:3: replication.connection: missing required key');
  });

  it('requires at least one key source', () => {
    const error = failure(`replication: { connection: x }\nsync_rules: { path: r }\nclient_auth:\n  audience: ferry\n`);
    expect(error.code).toBe('FERRY_S1002');
    expect(error.message).toBe('ferry.yaml:4:3: client_auth: set at least one of jwks_uri, jwks or hs256_secret');
  });

  it('lists every issue when there are several', () => {
    const error = failure(
      `replication: { connection: x }\nsync_rules: { path: r }\nclient_auth: { audience: a, hs256_secret: s }\napi: { port: 99999, keepalive_seconds: soon }\n`,
    );
    expect(error.code).toBe('FERRY_S1002');
    expect(error.message).toContain('ferry.yaml:4:14: api.port: must be at most 65535');
    expect(error.message).toContain('ferry.yaml:4:40: api.keepalive_seconds: expected an integer');
    expect((error.details as { issues: unknown[] }).issues).toHaveLength(2);
  });

  it('fails with FERRY_S1003 and the position for a missing environment variable', () => {
    const error = failure(VALID, { PORT: '1' });
    expect(error.code).toBe('FERRY_S1003');
    expect(error.message).toBe('ferry.yaml:3:20: replication.connection: environment variable DATABASE_URL is not set');
  });

  it('reads write_rules: a path next to the config, or inline content, with a body limit', () => {
    const base = `replication: { connection: x }\nsync_rules: { path: r }\nclient_auth: { audience: a, hs256_secret: s }\n`;
    const byPath = parseConfig(`${base}write_rules: { path: rules/write-rules.yaml }\n`, '/etc/ferry/ferry.yaml', {
      env: {},
    });
    expect(byPath.writeRules).toEqual({
      path: '/etc/ferry/rules/write-rules.yaml',
      content: null,
      maxRequestBytes: 8 * 1024 * 1024,
      idempotencyRetentionHours: 720,
      hooks: null,
      maxClockSkewMs: 60_000,
    });
    const inline = parseConfig(
      `${base}write_rules: { content: "tables: {}", max_request_bytes: 2048, idempotency_retention_hours: 48 }\n`,
      'f.yaml',
      { env: {} },
    );
    expect(inline.writeRules).toEqual({
      path: null,
      content: 'tables: {}',
      maxRequestBytes: 2048,
      idempotencyRetentionHours: 48,
      hooks: null,
      maxClockSkewMs: 60_000,
    });
    const both = failure(`${base}write_rules: { path: a, content: b }\n`);
    expect(both.code).toBe('FERRY_S1002');
    expect(both.message).toBe('ferry.yaml:4:14: write_rules: set exactly one of path or content');
  });

  it('reads write_rules.hooks (relative to the config file) and max_clock_skew_ms', () => {
    const base = `replication: { connection: x }\nsync_rules: { path: r }\nclient_auth: { audience: a, hs256_secret: s }\n`;
    const config = parseConfig(
      `${base}write_rules:\n  path: write-rules.yaml\n  hooks: rules/write-hooks.ts\n  max_clock_skew_ms: !env SKEW\n`,
      '/etc/ferry/ferry.yaml',
      { env: { SKEW: '1500' } },
    );
    expect(config.writeRules).toMatchObject({ hooks: '/etc/ferry/rules/write-hooks.ts', maxClockSkewMs: 1500 });
    const absolute = parseConfig(
      `${base}write_rules: { content: "tables: {}", hooks: /srv/hooks.mjs, max_clock_skew_ms: 0 }\n`,
      'f.yaml',
      {
        env: {},
      },
    );
    expect(absolute.writeRules).toMatchObject({ hooks: '/srv/hooks.mjs', maxClockSkewMs: 0 });
    const day = parseConfig(`${base}write_rules: { path: w.yaml, max_clock_skew_ms: 86400000 }\n`, 'f.yaml', {
      env: {},
    });
    expect(day.writeRules?.maxClockSkewMs).toBe(86_400_000);

    const tooFar = failure(`${base}write_rules: { path: w.yaml, max_clock_skew_ms: 86400001 }\n`);
    expect(tooFar.code).toBe('FERRY_S1002');
    expect(tooFar.message).toBe('ferry.yaml:4:49: write_rules.max_clock_skew_ms: must be at most 86400000');
    const negative = failure(`${base}write_rules: { path: w.yaml, max_clock_skew_ms: -1 }\n`);
    expect(negative.message).toBe('ferry.yaml:4:49: write_rules.max_clock_skew_ms: must be at least 0');
    const fractional = failure(`${base}write_rules: { path: w.yaml, max_clock_skew_ms: 1.5 }\n`);
    expect(fractional.message).toBe('ferry.yaml:4:49: write_rules.max_clock_skew_ms: expected an integer');
    const emptyHooks = failure(`${base}write_rules: { path: w.yaml, hooks: "" }\n`);
    expect(emptyHooks.message).toBe('ferry.yaml:4:37: write_rules.hooks: expected a file path, got an empty string');
    const misspelt = failure(`${base}write_rules: { path: w.yaml, hook: h.ts }\n`);
    expect(misspelt.message).toMatch(/^ferry\.yaml:4:30: write_rules\.hook: unknown key \(did you mean "hooks"\?\)/);
  });

  it('fails with FERRY_S1001 and the position for invalid YAML', () => {
    const error = failure('replication:\n  connection: [unclosed\n');
    expect(error.code).toBe('FERRY_S1001');
    expect(error.message).toMatch(/^ferry\.yaml:\d+:\d+: /);
  });
});

describe('loadConfig', () => {
  it('reads a file and resolves the rules path next to it', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'ferry-config-'));
    const file = path.join(dir, 'ferry.yaml');
    await writeFile(file, VALID);
    const config = await loadConfig(file, { env: { DATABASE_URL: 'postgres://x/y', PORT: '0' } });
    expect(config.syncRules.path).toBe(path.join(dir, 'rules/sync-rules.yaml'));
    expect(config.api.port).toBe(0);
  });

  it('fails with FERRY_S1001 for an unreadable file', async () => {
    await expect(loadConfig('/nonexistent/ferry.yaml')).rejects.toMatchObject({ code: 'FERRY_S1001' });
  });
});

describe('configJsonSchema', () => {
  it('exports the options with their help text', () => {
    const schema = JSON.stringify(configJsonSchema());
    expect(schema).toContain('Logical replication slot name.');
    expect(schema).toContain('max_buckets_per_client');
  });
});
