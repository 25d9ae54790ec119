import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, expect, it } from 'vitest';
import { chainHandlers, type RequestHandler } from './request-handler.js';

describe('chainHandlers', () => {
  it('tries handlers in order and stops at the first that answers', async () => {
    const calls: string[] = [];
    const handler =
      (name: string, answers: boolean): RequestHandler =>
      async () => {
        calls.push(name);
        return answers;
      };
    const req = {} as IncomingMessage;
    const res = {} as ServerResponse;
    expect(await chainHandlers(handler('a', false), handler('b', true), handler('c', true))(req, res)).toBe(true);
    expect(calls).toEqual(['a', 'b']);
    expect(await chainHandlers(handler('d', false))(req, res)).toBe(false);
    expect(await chainHandlers()(req, res)).toBe(false);
  });
});
