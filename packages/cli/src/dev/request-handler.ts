import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * Serves a request the service's API did not match (the service's
 * `fallback` hook): resolves true when it answered, false to decline (the
 * next handler, finally the service's 404). A rejection is answered as an
 * error response (a `FerryError` keeps its code).
 */
export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

/** Tries each handler in order until one answers. */
export function chainHandlers(...handlers: RequestHandler[]): RequestHandler {
  return async (req, res) => {
    for (const handler of handlers) {
      if (await handler(req, res)) return true;
    }
    return false;
  };
}
