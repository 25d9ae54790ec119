/** What the global setup provides to every test file (`inject('ferryPg')`). */
declare module 'vitest' {
  export interface ProvidedContext {
    ferryPg: { port: number; url: string };
  }
}

export {};
