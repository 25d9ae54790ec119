import { sql } from '@ferry/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../config/load-config.js';
import { createLogger } from '../metrics/logger.js';
import { FerryService } from '../service.js';
import { testToken, TEST_AUDIENCE, TEST_SECRET } from '../sync/testing.js';
import { createWriteTestDatabase, WRITE_TEST_RULES } from './testing.js';

let url: string;
let service: FerryService | null = null;

beforeAll(async () => {
  url = await createWriteTestDatabase();
});
afterAll(async () => {
  await service?.stop();
});

const config = (writeRules: string) =>
  parseConfig(
    `replication: { connection: "${url}" }
sync_rules: { content: "bucket_definitions: { all: { data: [ SELECT * FROM kinds ] } }" }
write_rules: { content: ${JSON.stringify(writeRules)} }
client_auth: { audience: ${TEST_AUDIENCE}, hs256_secret: ${TEST_SECRET} }
api: { port: 0 }
`,
    'ferry.yaml',
    { env: {} },
  );

describe('FerryService with write_rules', () => {
  it('serves POST /write and keeps its bookkeeping in the storage schema of the source database', async () => {
    service = await FerryService.start(config(WRITE_TEST_RULES), {
      replicate: false,
      processMetrics: false,
      logger: createLogger('silent'),
    });
    const response = await fetch(`${service.url}/write`, {
      method: 'POST',
      headers: { authorization: `Token ${await testToken('alice')}` },
      body: JSON.stringify({
        client_id: 'c',
        transactions: [{ id: 'c:1', ops: [{ op: 'PUT', type: 'kinds', id: 'svc' }] }],
      }),
    });
    expect(response.status).toBe(200);
    const { rows } = await sql(url, `SELECT user_id, key, result->>'status' AS status FROM ferry.write_transactions`);
    expect(rows).toEqual([{ user_id: 'alice', key: 'c:1', status: 'applied' }]);
  });

  it('refuses to start when the write rules do not match the database (FERRY_S1202)', async () => {
    await expect(
      FerryService.start(config('tables:\n  kinds:\n    operations: [insert]\n    columns: [missing]\n'), {
        replicate: false,
        processMetrics: false,
        logger: createLogger('silent'),
      }),
    ).rejects.toMatchObject({
      code: 'FERRY_S1202',
      message: expect.stringMatching(/ferry\.yaml \(write_rules\.content\):4:15: column kinds\.missing does not exist/),
    });
  });
});
