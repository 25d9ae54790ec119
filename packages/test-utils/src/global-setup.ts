/**
 * Vitest global setup for `*.pg.test.ts`: starts one embedded PostgreSQL 18
 * (wal_level=logical) on a free port for the whole run and stops it at the
 * end. Test files each create their own database with `createTestDatabase`.
 */
import { startEmbeddedPostgres, type RunningPostgres } from '@ferry/cli';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';

import './provided-context.js';

let server: RunningPostgres | undefined;
let dataDir: string | undefined;

export async function setup(project: TestProject): Promise<void> {
  dataDir = path.join(os.tmpdir(), `ferry-test-pg-${process.pid}-${Date.now()}`);
  server = await startEmbeddedPostgres({ dataDir, persistent: false, unsafeFast: true });
  project.provide('ferryPg', { port: server.port, url: server.url('postgres') });
}

export async function teardown(): Promise<void> {
  await server?.stop();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
}
