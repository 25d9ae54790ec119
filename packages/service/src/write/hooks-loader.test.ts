import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { FerryError } from '@ferry/protocol';
import { beforeAll, describe, expect, it } from 'vitest';
import type { MergeContext, WriteHooks } from './hooks.js';
import { checkWriteHooks, loadWriteHooks } from './hooks-loader.js';
import { compileWriteRules } from './write-rules.js';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'ferry-hooks-'));
});

async function write(name: string, text: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, text);
  return file;
}

async function failure(promise: Promise<unknown>): Promise<FerryError> {
  const error = await promise.then(
    () => {
      throw new Error('expected a failure');
    },
    (e: unknown) => e,
  );
  if (!FerryError.is(error)) throw error;
  return error;
}

function merge(hooks: WriteHooks, name: string, context: Partial<MergeContext>): unknown {
  const fn = hooks.merge?.[name];
  if (fn === undefined) throw new Error(`no merge function ${name}`);
  return fn({ table: 't', id: '1', column: 'c', base: undefined, current: 0, incoming: 0, ...context } as MergeContext);
}

const TS_HOOKS = `import type { MergeContext } from '@ferry/service';

interface Counter { base: number }
const zero: Counter = { base: 0 };

export default {
  validate: {
    tasks(context: { op: { id: string } }): void {
      if (context.op.id === '') throw new Error('empty id');
    },
  },
  merge: {
    add: ({ base, current, incoming }: MergeContext): number =>
      Number(current) + Number(incoming) - Number(base ?? zero.base),
  },
};
`;

describe('loadWriteHooks', () => {
  it('loads a TypeScript module with type annotations (compiled as CommonJS: no package.json)', async () => {
    const file = await write('write-hooks.ts', TS_HOOKS);
    const hooks = await loadWriteHooks(file);
    expect(Object.keys(hooks)).toEqual(['validate', 'merge']);
    expect(Object.keys(hooks.validate!)).toEqual(['tasks']);
    expect(merge(hooks, 'add', { base: 5, current: 7, incoming: 8 })).toBe(10);
  });

  it('loads a TypeScript ES module exporting `hooks`, with `satisfies` and type-only imports', async () => {
    const esm = await mkdtemp(path.join(dir, 'esm-'));
    await writeFile(path.join(esm, 'package.json'), '{ "type": "module" }');
    const file = path.join(esm, 'hooks.ts');
    await writeFile(
      file,
      `import type { WriteHooks } from './types.js';
export const hooks = { merge: { longest: ({ current, incoming }) => (String(incoming).length > String(current).length ? incoming : current) } } satisfies WriteHooks;
`,
    );
    const hooks = await loadWriteHooks(file);
    expect(Object.keys(hooks)).toEqual(['merge']);
    expect(merge(hooks, 'longest', { current: 'ab', incoming: 'abc' })).toBe('abc');
  });

  it('loads .mts and .cts files', async () => {
    const mts = await write('h.mts', `export default { merge: { one: (): number => 1 } };\n`);
    expect(merge(await loadWriteHooks(mts), 'one', {})).toBe(1);
    const cts = await write(
      'h.cts',
      `const hooks: object = { merge: { two: (): number => 2 } };\nmodule.exports = hooks;\n`,
    );
    expect(merge(await loadWriteHooks(cts), 'two', {})).toBe(2);
  });

  it('loads plain JavaScript: .mjs default export, .cjs exports.hooks', async () => {
    const mjs = await write(
      'h.mjs',
      `export default { merge: { max: ({ current, incoming }) => Math.max(current, incoming) } };\n`,
    );
    expect(merge(await loadWriteHooks(mjs), 'max', { current: 3, incoming: 9 })).toBe(9);
    const cjs = await write('h.cjs', `exports.hooks = { validate: { tasks() {} } };\n`);
    expect(Object.keys((await loadWriteHooks(cjs)).validate!)).toEqual(['tasks']);
  });

  it('accepts a module exporting empty hooks', async () => {
    expect(await loadWriteHooks(await write('empty.mjs', 'export default {};\n'))).toEqual({});
  });

  it('fails with FERRY_S1203 and the compiler message when TypeScript does not compile', async () => {
    const file = await write('broken.ts', `export default { merge: { x: ( => 1 } };\n`);
    const error = await failure(loadWriteHooks(file));
    expect(error.code).toBe('FERRY_S1203');
    expect(error.message).toMatch(new RegExp(`^${escape(file)}: cannot load the write hooks module: `));
    expect(error.message).toContain('broken.ts:1:');
    expect(error.cause).toBeInstanceOf(Error);
  });

  it('fails with FERRY_S1203 when the module throws while loading, or does not exist', async () => {
    const throwing = await write('throws.mjs', `throw new Error('no config here');\n`);
    const thrown = await failure(loadWriteHooks(throwing));
    expect(thrown.code).toBe('FERRY_S1203');
    expect(thrown.message).toBe(`${throwing}: cannot load the write hooks module: no config here`);

    const missing = path.join(dir, 'missing.ts');
    const absent = await failure(loadWriteHooks(missing));
    expect(absent.code).toBe('FERRY_S1203');
    expect(absent.message).toMatch(new RegExp(`^${escape(missing)}: cannot load the write hooks module: `));
  });

  it('fails with FERRY_S1203 naming the file and each bad key', async () => {
    const file = await write(
      'bad-shape.mjs',
      `export default { merge: { add: 1, ok: () => 0 }, validate: [], validators: {} };\n`,
    );
    const error = await failure(loadWriteHooks(file));
    expect(error.code).toBe('FERRY_S1203');
    expect(error.message.split('\n')).toEqual([
      `${file}: unknown key "validators" in the exported hooks; expected validate, merge`,
      `${file}: \`validate\` must be an object of functions; got an array`,
      `${file}: merge.add must be a function; got a number`,
    ]);
  });

  it('fails with FERRY_S1203 when the module exports no hooks, two sets, or a non-object', async () => {
    const none = await write('none.mjs', `export const merge = {};\n`);
    expect((await failure(loadWriteHooks(none))).message).toBe(
      `${none}: exports no hooks; export them as the default export or as \`export const hooks = { … }\``,
    );
    const both = await write('both.mjs', `export const hooks = {};\nexport default {};\n`);
    expect((await failure(loadWriteHooks(both))).message).toBe(
      `${both}: exports both a default export and \`hooks\`; export the hooks once`,
    );
    const fn = await write('fn.mjs', `export default () => ({});\n`);
    expect((await failure(loadWriteHooks(fn))).message).toBe(
      `${fn}: the exported hooks must be an object { validate?, merge? }; got a function`,
    );
  });

  it('fails with FERRY_S1203 for a file type it cannot load', async () => {
    const file = await write('hooks.json', '{}');
    const error = await failure(loadWriteHooks(file));
    expect(error.code).toBe('FERRY_S1203');
    expect(error.message).toBe(`${file}: unsupported file type ".json"; expected .ts, .mts, .cts, .js, .mjs or .cjs`);
  });
});

describe('checkWriteHooks', () => {
  const RULES = `tables:
  tasks:
    operations: [update]
    columns: '*'
    conflicts:
      policy: { merge: add }
      columns:
        title: { merge: concat }
        votes: { merge: add }
  notes:
    operations: [delete]
`;

  it('accepts hooks that provide every merge function and validate only tables of the rules', async () => {
    const rules = await compileWriteRules(RULES);
    const hooks: WriteHooks = { merge: { add: () => 0, concat: () => '' }, validate: { notes: () => {} } };
    expect(() => checkWriteHooks(rules, hooks, 'hooks.ts')).not.toThrow();
  });

  it('accepts no hooks when the rules name no merge function', async () => {
    const rules = await compileWriteRules('tables:\n  notes:\n    operations: [delete]\n');
    expect(() => checkWriteHooks(rules, null, null)).not.toThrow();
  });

  it('names each missing merge function at its position in the rules', async () => {
    const rules = await compileWriteRules(RULES);
    const error = catching(() =>
      checkWriteHooks(rules, { merge: { add: () => 0 }, validate: { tsks: () => {} } }, '/app/write-hooks.ts'),
    );
    expect(error.code).toBe('FERRY_S1203');
    expect(error.message.split('\n')).toEqual([
      'write-rules.yaml:8:25: merge function "concat" is not exported by /app/write-hooks.ts',
      '/app/write-hooks.ts: validate.tsks: "tsks" is not a table of the write rules (write-rules.yaml)',
    ]);
  });

  it('asks for a hooks module when the rules use merge functions without one', async () => {
    const rules = await compileWriteRules(RULES);
    const error = catching(() => checkWriteHooks(rules, null, null));
    expect(error.code).toBe('FERRY_S1203');
    expect(error.message.split('\n')).toEqual([
      'write-rules.yaml:6:24: merge function "add" needs a hooks module; set write_rules.hooks in ferry.yaml',
      'write-rules.yaml:8:25: merge function "concat" needs a hooks module; set write_rules.hooks in ferry.yaml',
    ]);
  });
});

function catching(fn: () => void): FerryError {
  try {
    fn();
  } catch (error) {
    if (FerryError.is(error)) return error;
    throw error;
  }
  throw new Error('expected a failure');
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
