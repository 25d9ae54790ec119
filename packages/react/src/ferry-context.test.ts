// @vitest-environment jsdom
import { FerryError } from '@ferry/protocol';
import { createElement } from 'react';
import { describe, expect, it } from 'vitest';
import { FerryProvider, useFerry } from './ferry-context.js';
import { ErrorBoundary, mount, openTestDb } from './test-support/harness.js';

describe('FerryProvider / useFerry', () => {
  it('gives components the provided database', async () => {
    await using t = await openTestDb();
    let got: unknown = null;
    function Probe(): null {
      got = useFerry();
      return null;
    }
    await using _view = await mount(createElement(FerryProvider, { db: t.db }, createElement(Probe)));
    expect(got).toBe(t.db);
  });

  it('throws a coded error that says what to do outside a provider', async () => {
    function Probe(): null {
      useFerry();
      return null;
    }
    await using view = await mount(createElement(ErrorBoundary, null, createElement(Probe)));
    expect(view.caught).toHaveLength(1);
    const error = view.caught[0];
    expect(FerryError.is(error)).toBe(true);
    expect((error as FerryError).code).toBe('FERRY_C1011');
    expect((error as FerryError).message).toMatch(/<FerryProvider db=\{db\}>/);
  });
});
