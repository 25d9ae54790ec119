/**
 * Loads the write hooks module named by `write_rules.hooks` and checks it
 * against the write rules at start-up, so a typo in a merge name or a
 * validator's table fails the service before it serves anything
 * (FERRY_S1203), not at the first conflicting write.
 */
import { FerryError } from '@ferry/protocol';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { WriteHooks } from './hooks.js';
import type { WriteRules } from './write-rules.js';

const TS_EXTENSIONS = new Set(['.ts', '.mts', '.cts']);
const JS_EXTENSIONS = new Set(['.js', '.mjs', '.cjs']);
const HOOK_KEYS = ['validate', 'merge'] as const;

/**
 * Imports a hooks module: `.ts`/`.mts`/`.cts` compiled on the fly by tsx
 * (types are stripped, not checked), `.js`/`.mjs`/`.cjs` as they are. The
 * module exports the hooks as its default export or as `hooks`. Throws
 * FERRY_S1203 when the module cannot be loaded or compiled, or when what it
 * exports is not `{ validate?: { [table]: function }, merge?: { [name]: function } }`.
 */
export async function loadWriteHooks(file: string): Promise<WriteHooks> {
  const absolute = path.resolve(file);
  const extension = path.extname(absolute).toLowerCase();
  if (!TS_EXTENSIONS.has(extension) && !JS_EXTENSIONS.has(extension)) {
    throw hooksError(file, [`unsupported file type "${extension}"; expected .ts, .mts, .cts, .js, .mjs or .cjs`]);
  }
  const url = pathToFileURL(absolute).href;
  let namespace: Record<string, unknown>;
  try {
    if (TS_EXTENSIONS.has(extension)) {
      // Loaded on demand: tsx pulls in esbuild, which apps without a TypeScript hooks module never need.
      const { tsImport } = await import('tsx/esm/api');
      namespace = (await tsImport(url, import.meta.url)) as Record<string, unknown>;
    } else {
      namespace = (await import(/* @vite-ignore */ url)) as Record<string, unknown>;
    }
  } catch (cause) {
    const message = cause instanceof Error ? cause.message : String(cause);
    throw new FerryError('FERRY_S1203', `${file}: cannot load the write hooks module: ${message}`, {
      cause,
      details: { file, problems: [message] },
    });
  }
  return checkHooksShape(exportedHooks(namespace, file), file);
}

/**
 * Checks that the hooks provide everything the rules name: each merge
 * function a `conflicts` policy uses, and that each `validate` key is a
 * table of the rules. `hooks` is null when no hooks module is configured.
 * Throws FERRY_S1203 listing every problem (merge names at their
 * `file:line:column` in the rules).
 */
export function checkWriteHooks(rules: WriteRules, hooks: WriteHooks | null, hooksFile: string | null): void {
  const problems: string[] = [];
  for (const table of rules.tables.values()) {
    for (const [name, position] of table.conflicts.positions.merges) {
      if (typeof hooks?.merge?.[name] === 'function') continue;
      const where = `${rules.file}:${position.line}:${position.column}`;
      problems.push(
        hooks === null || hooksFile === null
          ? `${where}: merge function "${name}" needs a hooks module; set write_rules.hooks in ferry.yaml`
          : `${where}: merge function "${name}" is not exported by ${hooksFile}`,
      );
    }
  }
  for (const table of Object.keys(hooks?.validate ?? {})) {
    if (rules.tables.has(table)) continue;
    problems.push(
      `${hooksFile ?? 'write hooks'}: validate.${table}: "${table}" is not a table of the write rules (${rules.file})`,
    );
  }
  if (problems.length > 0) {
    throw new FerryError('FERRY_S1203', problems.join('\n'), { details: { file: hooksFile, problems } });
  }
}

/**
 * The hooks object a module exports. A TypeScript file compiled as CommonJS
 * (no `"type": "module"` nearby) or a `.cjs` file arrives with `default` =
 * `module.exports`; when that carries `__esModule`, its own `default` or
 * `hooks` is the export.
 */
function exportedHooks(namespace: Record<string, unknown>, file: string): unknown {
  let module = namespace;
  const outer = namespace['default'];
  if (isObject(outer) && outer['__esModule'] === true) module = outer;
  const byDefault = module['default'];
  const byName = module['hooks'];
  if (byName !== undefined) {
    // CommonJS `exports.hooks = …` shows up both as `hooks` and inside `default`.
    const same =
      byDefault === undefined || byDefault === byName || (isObject(byDefault) && byDefault['hooks'] === byName);
    if (!same) throw hooksError(file, ['exports both a default export and `hooks`; export the hooks once']);
    return byName;
  }
  if (byDefault !== undefined) return byDefault;
  throw hooksError(file, ['exports no hooks; export them as the default export or as `export const hooks = { … }`']);
}

function checkHooksShape(value: unknown, file: string): WriteHooks {
  if (!isObject(value)) {
    throw hooksError(file, [`the exported hooks must be an object { validate?, merge? }; got ${describe(value)}`]);
  }
  const problems: string[] = [];
  for (const key of Object.keys(value)) {
    if (!(HOOK_KEYS as readonly string[]).includes(key)) {
      problems.push(`unknown key "${key}" in the exported hooks; expected ${HOOK_KEYS.join(', ')}`);
    }
  }
  for (const key of HOOK_KEYS) {
    const section = value[key];
    if (section === undefined) continue;
    if (!isObject(section)) {
      problems.push(`\`${key}\` must be an object of functions; got ${describe(section)}`);
      continue;
    }
    for (const [name, fn] of Object.entries(section)) {
      if (typeof fn !== 'function') problems.push(`${key}.${name} must be a function; got ${describe(fn)}`);
    }
  }
  if (problems.length > 0) throw hooksError(file, problems);
  const { validate, merge } = value as WriteHooks;
  return { ...(validate === undefined ? {} : { validate }), ...(merge === undefined ? {} : { merge }) };
}

function hooksError(file: string, problems: string[]): FerryError {
  return new FerryError('FERRY_S1203', problems.map((problem) => `${file}: ${problem}`).join('\n'), {
    details: { file, problems },
  });
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}
