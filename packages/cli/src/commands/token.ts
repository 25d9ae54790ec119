import path from 'node:path';
import type { CommandSpec } from '../args.js';
import { DEV_AUDIENCE, loadOrCreateDevKey, signDevToken } from '../dev-keys.js';

const options = {
  user: { type: 'string', short: 'u', help: 'user id to put in the token (sub)' },
  dir: { type: 'string', default: '.ferry', env: 'FERRY_DIR', help: 'folder holding the dev key' },
  audience: { type: 'string', default: DEV_AUDIENCE, help: 'token audience (aud)' },
  expires: { type: 'string', default: '3600', help: 'lifetime in seconds' },
  claims: { type: 'string', help: 'extra claims as JSON, e.g. {"org_id":"acme"}' },
} as const;

export const tokenCommand: CommandSpec<typeof options> = {
  name: 'token',
  summary: 'print a development token signed with the project dev key',
  options,
  async run(values) {
    if (!values.user) throw new Error('ferry token: --user is required, e.g. ferry token --user alice');
    const expires = Number(values.expires);
    if (!Number.isInteger(expires) || expires <= 0)
      throw new Error('ferry token: --expires must be a positive number of seconds');
    let claims: Record<string, unknown> = {};
    if (values.claims) {
      try {
        claims = JSON.parse(values.claims) as Record<string, unknown>;
      } catch {
        throw new Error('ferry token: --claims must be a JSON object');
      }
    }
    const key = await loadOrCreateDevKey(path.resolve(values.dir ?? '.ferry', 'dev-key.json'));
    const token = await signDevToken(key, {
      userId: values.user,
      audience: values.audience ?? DEV_AUDIENCE,
      expiresInSeconds: expires,
      claims,
    });
    process.stdout.write(token + '\n');
  },
};
