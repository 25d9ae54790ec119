/**
 * Write rules: which tables and columns a token may write. YAML:
 *
 * ```yaml
 * tables:
 *   tasks:
 *     operations: [insert, update, delete]
 *     columns: [title, done, position]      # or '*'; id is always allowed
 *     immutable: [workspace_id]             # settable on insert, never changed after
 *     owner: { column: created_by, claim: sub }
 *     where: "workspace_id IN (SELECT workspace_id FROM workspace_members WHERE user_id = request.user_id())"
 *     conflicts:                            # or `off`
 *       scope: workspace_id                 # copied into conflict and violation records
 *       policy: lww                         # lww | server_wins | client_wins | { merge: <name> }
 *       columns: { estimate: { merge: add }, position: client_wins }
 * ```
 *
 * Deny by default: a table not listed is not writable. `compileWriteRules`
 * checks the file's shape and parses every `where`; names are checked
 * against the live schema later, by {@link loadWriteSchema}.
 */
import { FerryError } from '@ferry/protocol';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node as YamlNode, type Scalar } from 'yaml';
import { loadWhereParser, parseWhereExpression, WhereProblem, type WhereExpression } from './where-expression.js';

export const WRITE_OPERATIONS = ['insert', 'update', 'delete'] as const;
export type WriteOperation = (typeof WRITE_OPERATIONS)[number];

/** A position in the write rules file (1-based). */
export interface RulesPosition {
  line: number;
  column: number;
}

/**
 * How a field written concurrently is resolved. `lww`: the higher HLC stamp
 * wins; `server_wins`: the stored value stays; `client_wins`: the incoming
 * value is written; `merge`: the named merge function of the hooks module
 * computes the value.
 */
export type ConflictPolicy =
  { kind: 'lww' } | { kind: 'server_wins' } | { kind: 'client_wins' } | { kind: 'merge'; name: string };

/** The `conflicts` key of a table's rule. */
export interface TableConflictRule {
  /** False for `conflicts: off`: no field clocks, the last arrival wins and nothing is recorded. */
  readonly track: boolean;
  /** Column whose value (as text) is copied into conflict and violation records' `scope`. */
  readonly scope: string | null;
  /** The table's policy (default lww). */
  readonly policy: ConflictPolicy;
  /** Per-column policies overriding {@link policy}. */
  readonly columns: ReadonlyMap<string, ConflictPolicy>;
  readonly positions: {
    scope: RulesPosition | null;
    columns: ReadonlyMap<string, RulesPosition>;
    /** Where each merge name is used first. */
    merges: ReadonlyMap<string, RulesPosition>;
  };
}

/** The write rule of one table. */
export interface TableWriteRule {
  /** The name clients use as the op's `type` (the table name without schema). */
  readonly name: string;
  readonly schema: string;
  readonly table: string;
  readonly operations: ReadonlySet<WriteOperation>;
  /** Writable columns, or `'*'` for every column. `id` is always allowed. */
  readonly columns: '*' | readonly string[];
  /** Columns that may be set on insert and never change after. */
  readonly immutable: readonly string[];
  /** The owner column, forced to the token's claim on insert; updates and deletes need a match. */
  readonly owner: { column: string; claim: string } | null;
  readonly where: WhereExpression | null;
  /** Conflict tracking and policies (default: tracked, no scope, lww everywhere). */
  readonly conflicts: TableConflictRule;
  /** Where each name appears in the file, for schema errors. */
  readonly positions: {
    table: RulesPosition;
    columns: ReadonlyMap<string, RulesPosition>;
    where: RulesPosition | null;
  };
}

/** Compiled write rules. */
export interface WriteRules {
  /** File name used in messages. */
  readonly file: string;
  /** By client name (`type`). */
  readonly tables: ReadonlyMap<string, TableWriteRule>;
}

/** One problem found in a write rules file. */
export interface WriteRulesProblem {
  message: string;
  file: string;
  line: number;
  column: number;
}

const BRAND = Symbol.for('ferry.write-rules-error');

/**
 * A write rules file that is invalid (FERRY_S1201) or does not match the
 * database (FERRY_S1202). The message is one line per problem,
 * `file:line:column: what is wrong`; `details` holds the first problem's
 * location and every problem.
 */
export class WriteRulesError extends FerryError {
  override readonly name: string = 'WriteRulesError';
  readonly problems: readonly WriteRulesProblem[];
  readonly [BRAND] = true;

  constructor(code: 'FERRY_S1201' | 'FERRY_S1202', problems: readonly WriteRulesProblem[]) {
    const first = problems[0];
    if (first === undefined) throw new RangeError('WriteRulesError needs at least one problem');
    super(code, problems.map((p) => `${p.file}:${p.line}:${p.column}: ${p.message}`).join('\n'), {
      details: { file: first.file, line: first.line, column: first.column, problems },
    });
    this.problems = problems;
  }

  static isWriteRulesError(value: unknown): value is WriteRulesError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}

export interface CompileWriteRulesOptions {
  /** File name used in messages. Default `write-rules.yaml`. */
  file?: string;
  /** Schema of unqualified table names. Default `public`. */
  defaultSchema?: string;
}

const TABLE_KEYS = ['operations', 'columns', 'immutable', 'owner', 'where', 'conflicts'];
const CONFLICT_KEYS = ['scope', 'policy', 'columns'];
const IDENTIFIER = /^[^\s"]{1,63}$/;
/** Merge function names are the keys of the hooks module's `merge` object. */
const MERGE_NAME = /^[A-Za-z_$][A-Za-z0-9_$]{0,127}$/;
const POLICY_HELP = 'lww, server_wins, client_wins or { merge: <name> }';

/** The default: every field tracked, last writer (by HLC) wins, no scope. */
export const DEFAULT_CONFLICT_RULE: TableConflictRule = Object.freeze({
  track: true,
  scope: null,
  policy: Object.freeze({ kind: 'lww' }),
  columns: new Map(),
  positions: Object.freeze({ scope: null, columns: new Map(), merges: new Map() }),
});

/** Compiles a write rules file. Throws {@link WriteRulesError} FERRY_S1201 listing every problem found. */
export async function compileWriteRules(source: string, options: CompileWriteRulesOptions = {}): Promise<WriteRules> {
  await loadWhereParser();
  const file = options.file ?? 'write-rules.yaml';
  const defaultSchema = options.defaultSchema ?? 'public';
  const lineCounter = new LineCounter();
  const problems: WriteRulesProblem[] = [];
  const at = (offset: number): RulesPosition => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  const problem = (message: string, position: RulesPosition) => problems.push({ message, file, ...position });
  const nodeProblem = (message: string, node: unknown, fallback = 0) =>
    problem(message, at((node as YamlNode | null | undefined)?.range?.[0] ?? fallback));

  const doc = parseDocument(source, { lineCounter, prettyErrors: false, uniqueKeys: true });
  for (const error of doc.errors) {
    const pos = error.linePos?.[0];
    problem(
      `invalid YAML: ${error.message.split('\n')[0]}`,
      pos ? { line: pos.line, column: pos.col } : at(error.pos[0]),
    );
  }
  if (problems.length > 0) throw new WriteRulesError('FERRY_S1201', problems);

  const position = (node: unknown): RulesPosition => at((node as YamlNode | null | undefined)?.range?.[0] ?? 0);

  /** Parses a policy (`lww`, ..., `{ merge: name }`), noting merge names; null after reporting a problem. */
  const policyOf = (node: unknown, what: string, merges: Map<string, RulesPosition>): ConflictPolicy | null => {
    if (isScalar(node) && typeof node.value === 'string') {
      const name = node.value;
      if (name === 'lww' || name === 'server_wins' || name === 'client_wins') return { kind: name };
      if (name === 'merge') {
        nodeProblem(`${what}: write a merge policy as { merge: <function name> }`, node);
      } else nodeProblem(`${what}: unknown policy "${name}"; expected ${POLICY_HELP}`, node);
      return null;
    }
    if (isMap(node)) {
      const other = node.items.find((i) => !isScalar(i.key) || i.key.value !== 'merge');
      if (other !== undefined || node.items.length !== 1) {
        const key = other !== undefined && isScalar(other.key) ? String(other.key.value) : null;
        nodeProblem(
          `${what}: ${key === null ? 'expected' : `unknown key "${key}"; expected`} { merge: <function name> }`,
          other?.key ?? node,
        );
        return null;
      }
      const nameNode = node.items[0]!.value;
      const name = isScalar(nameNode) ? nameNode.value : undefined;
      if (typeof name !== 'string' || !MERGE_NAME.test(name)) {
        nodeProblem(
          `${what}: invalid merge function name ${JSON.stringify(name ?? null)}; expected a JavaScript identifier`,
          nameNode ?? node.items[0]!.key,
        );
        return null;
      }
      if (!merges.has(name)) merges.set(name, position(nameNode));
      return { kind: 'merge', name };
    }
    nodeProblem(`${what}: expected ${POLICY_HELP}`, node);
    return null;
  };

  /** Parses a table's `conflicts` value (`off` or a mapping). */
  const conflictRule = (node: unknown, qualified: string): TableConflictRule => {
    if (isScalar(node) && (node.value === 'off' || node.value === false)) {
      return { ...DEFAULT_CONFLICT_RULE, track: false };
    }
    if (!isMap(node)) {
      nodeProblem(`\`conflicts\` of table "${qualified}" must be \`off\` or a mapping (scope, policy, columns)`, node);
      return DEFAULT_CONFLICT_RULE;
    }
    let scope: string | null = null;
    let scopePosition: RulesPosition | null = null;
    let policy: ConflictPolicy = { kind: 'lww' };
    const columns = new Map<string, ConflictPolicy>();
    const columnPositions = new Map<string, RulesPosition>();
    const merges = new Map<string, RulesPosition>();
    for (const item of node.items) {
      const key = isScalar(item.key) ? String(item.key.value) : '';
      const value = item.value as YamlNode | null;
      switch (key) {
        case 'scope': {
          const name = isScalar(value) ? value.value : undefined;
          if (typeof name !== 'string' || !IDENTIFIER.test(name)) {
            nodeProblem('`conflicts.scope` must be a column name', value ?? item.key);
          } else {
            scope = name;
            scopePosition = position(value);
          }
          break;
        }
        case 'policy':
          policy = policyOf(value ?? item.key, '`conflicts.policy`', merges) ?? policy;
          break;
        case 'columns': {
          if (!isMap(value)) {
            nodeProblem('`conflicts.columns` must be a mapping of column names to policies', value ?? item.key);
            break;
          }
          for (const columnItem of value.items) {
            const name = isScalar(columnItem.key) ? columnItem.key.value : undefined;
            if (typeof name !== 'string' || !IDENTIFIER.test(name)) {
              nodeProblem(
                `\`conflicts.columns\` must map column names to policies; got ${JSON.stringify(name ?? null)}`,
                columnItem.key,
              );
              continue;
            }
            if (name === 'id') {
              nodeProblem('`conflicts.columns`: the id column identifies the row and has no policy', columnItem.key);
              continue;
            }
            const columnPolicy = policyOf(columnItem.value ?? columnItem.key, `\`conflicts.columns.${name}\``, merges);
            if (columnPolicy === null) continue;
            columns.set(name, columnPolicy);
            columnPositions.set(name, position(columnItem.key));
          }
          break;
        }
        default:
          nodeProblem(
            `unknown key "${key}" in \`conflicts\` of table "${qualified}"; expected ${CONFLICT_KEYS.join(', ')} (or \`conflicts: off\`)`,
            item.key,
          );
      }
    }
    return {
      track: true,
      scope,
      policy,
      columns,
      positions: { scope: scopePosition, columns: columnPositions, merges },
    };
  };

  const root = doc.contents;
  const tables = new Map<string, TableWriteRule>();
  if (!isMap(root)) {
    nodeProblem('the write rules file must be a mapping with a `tables` key', root);
    throw new WriteRulesError('FERRY_S1201', problems);
  }
  let tablesNode: unknown;
  for (const pair of root.items) {
    const key = isScalar(pair.key) ? String(pair.key.value) : '';
    if (key === 'tables') tablesNode = pair.value;
    else nodeProblem(`unknown top-level key "${key}"; expected \`tables\``, pair.key);
  }
  if (tablesNode === undefined || (isScalar(tablesNode) && tablesNode.value === null)) {
    if (problems.length === 0) nodeProblem('missing `tables` (a mapping of table names to rules)', root);
  } else if (!isMap(tablesNode)) {
    nodeProblem('`tables` must be a mapping of table names to rules', tablesNode);
  } else {
    for (const pair of tablesNode.items) {
      const keyNode = pair.key as YamlNode | null;
      const qualified = isScalar(keyNode) ? String(keyNode.value) : '';
      const parts = qualified.split('.');
      if (parts.length > 2 || parts.some((p) => !IDENTIFIER.test(p))) {
        nodeProblem(`invalid table name "${qualified}"; write \`table\` or \`schema.table\``, keyNode);
        continue;
      }
      const table = parts.at(-1)!;
      const schema = parts.length === 2 ? parts[0]! : defaultSchema;
      if (tables.has(table)) {
        nodeProblem(`table "${table}" is listed twice (clients name tables without their schema)`, keyNode);
        continue;
      }
      const body = pair.value as YamlNode | null;
      if (!isMap(body)) {
        nodeProblem(`the rule of table "${qualified}" must be a mapping (operations, columns, ...)`, body ?? keyNode);
        continue;
      }
      const columnPositions = new Map<string, RulesPosition>();
      let operations: Set<WriteOperation> | undefined;
      let columns: '*' | string[] | undefined;
      let immutable: string[] = [];
      let owner: { column: string; claim: string } | null = null;
      let where: WhereExpression | null = null;
      let wherePosition: RulesPosition | null = null;
      let conflicts: TableConflictRule = DEFAULT_CONFLICT_RULE;

      const names = (node: unknown, what: string): string[] | undefined => {
        if (!isSeq(node)) {
          nodeProblem(`\`${what}\` must be a list of column names`, node, keyNode?.range?.[0]);
          return undefined;
        }
        const out: string[] = [];
        for (const item of node.items) {
          const value = isScalar(item) ? item.value : undefined;
          if (typeof value !== 'string' || !IDENTIFIER.test(value)) {
            nodeProblem(`\`${what}\` must list column names; got ${JSON.stringify(value ?? null)}`, item);
            continue;
          }
          if (!columnPositions.has(value)) columnPositions.set(value, at((item as Scalar).range?.[0] ?? 0));
          out.push(value);
        }
        return out;
      };

      for (const item of body.items) {
        const key = isScalar(item.key) ? String(item.key.value) : '';
        const value = item.value as YamlNode | null;
        switch (key) {
          case 'operations': {
            if (!isSeq(value)) {
              nodeProblem('`operations` must be a list of insert, update, delete', value ?? item.key);
              break;
            }
            operations = new Set();
            for (const op of value.items) {
              const name = isScalar(op) ? String(op.value).toLowerCase() : '';
              if (!(WRITE_OPERATIONS as readonly string[]).includes(name)) {
                nodeProblem(`unknown operation "${name}"; expected insert, update or delete`, op);
              } else operations.add(name as WriteOperation);
            }
            break;
          }
          case 'columns':
            if (isScalar(value) && value.value === '*') columns = '*';
            else columns = names(value, 'columns');
            break;
          case 'immutable':
            immutable = names(value, 'immutable') ?? [];
            break;
          case 'owner': {
            let column: unknown;
            let claim: unknown = 'sub';
            if (isScalar(value)) column = value.value;
            else if (isMap(value)) {
              for (const ownerItem of value.items) {
                const ownerKey = isScalar(ownerItem.key) ? String(ownerItem.key.value) : '';
                const ownerValue = isScalar(ownerItem.value) ? ownerItem.value.value : undefined;
                if (ownerKey === 'column') {
                  column = ownerValue;
                  if (typeof ownerValue === 'string') {
                    columnPositions.set(ownerValue, at((ownerItem.value as Scalar).range?.[0] ?? 0));
                  }
                } else if (ownerKey === 'claim') claim = ownerValue;
                else nodeProblem(`unknown key "${ownerKey}" in owner; expected column and claim`, ownerItem.key);
              }
            }
            if (typeof column !== 'string' || !IDENTIFIER.test(column)) {
              nodeProblem('`owner` must be `{ column: <name>, claim: <claim, default sub> }`', value ?? item.key);
            } else if (typeof claim !== 'string' || claim === '') {
              nodeProblem('`owner.claim` must be a claim name such as sub', value);
            } else {
              if (isScalar(value)) columnPositions.set(column, at(value.range?.[0] ?? 0));
              owner = { column, claim };
            }
            break;
          }
          case 'where': {
            if (!isScalar(value) || typeof value.value !== 'string') {
              nodeProblem('`where` must be a SQL boolean expression (a string)', value ?? item.key);
              break;
            }
            const text = value.value;
            wherePosition = at(value.range?.[0] ?? 0);
            try {
              where = parseWhereExpression(text);
            } catch (error) {
              if (!(error instanceof WhereProblem)) throw error;
              problem(error.message, at(scalarFileOffset(source, value, error.offset)));
            }
            break;
          }
          case 'conflicts':
            conflicts = conflictRule(value ?? item.key, qualified);
            break;
          default:
            nodeProblem(
              `unknown key "${key}" in the rule of table "${qualified}"; expected ${TABLE_KEYS.join(', ')}`,
              item.key,
            );
        }
      }
      if (operations === undefined) {
        nodeProblem(`table "${qualified}" needs \`operations\` (a list of insert, update, delete)`, keyNode);
        continue;
      }
      if (columns === undefined && (operations.has('insert') || operations.has('update'))) {
        nodeProblem(`table "${qualified}" needs \`columns\` (a list of writable columns, or '*')`, keyNode);
        continue;
      }
      tables.set(table, {
        name: table,
        schema,
        table,
        operations,
        columns: columns ?? [],
        immutable,
        owner,
        where,
        conflicts,
        positions: { table: at(keyNode?.range?.[0] ?? 0), columns: columnPositions, where: wherePosition },
      });
    }
  }
  if (problems.length > 0) throw new WriteRulesError('FERRY_S1201', problems);
  return { file, tables };
}

/**
 * File offset of the character at `offset` in a scalar's value. Exact for
 * plain and quoted single-line scalars and `|` blocks; folded scalars land on
 * the right line. Aligns the value with the file text, skipping whitespace
 * present in only one of them (indentation, folding).
 */
export function scalarFileOffset(source: string, node: Scalar, offset: number): number {
  const value = String(node.value);
  const [start, end] = node.range ?? [0, 0];
  let j = start;
  if (node.type === 'BLOCK_LITERAL' || node.type === 'BLOCK_FOLDED') {
    const newline = source.indexOf('\n', start);
    j = newline < 0 ? end : newline + 1;
  } else if (node.type === 'QUOTE_DOUBLE' || node.type === 'QUOTE_SINGLE') {
    j = start + 1;
  }
  const isSpace = (c: string | undefined) => c === ' ' || c === '\t' || c === '\n' || c === '\r';
  let i = 0;
  while (j < end && isSpace(source[j]) && !isSpace(value[0])) j++;
  while (i < offset && j < end) {
    if (value[i] === source[j]) {
      i++;
      j++;
    } else if (isSpace(source[j])) j++;
    else if (isSpace(value[i])) i++;
    else {
      i++;
      j++;
    }
  }
  while (j < end && isSpace(source[j]) && !isSpace(value[i])) j++;
  return j;
}
