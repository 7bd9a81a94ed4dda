/**
 * Config loading: file → YAML document (with source positions) → env → schema → frozen Config.
 *
 * Every problem is collected before anything is thrown, each tied to the line it
 * comes from, so one `memgate check-config` run shows the operator the whole list:
 *
 *   memgate.yaml:7: tenants.shop.prefx: unknown key "prefx" (did you mean "prefix"?)
 *   memgate.yaml:12: listen[2].tenant: names tenant "opz", which is not configured (tenants: shop, ops)
 */
import { readFileSync } from 'node:fs';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import { z } from 'zod';
import { ConfigError, type ConfigIssue } from './errors.js';
import { ADMIN_TOKEN_ENV, configSchema, type Config } from './schema.js';

type PathSegment = PropertyKey;

/** Read, validate and freeze the config at `path`. Throws `ConfigError` listing every problem. */
export function loadConfig(path: string, env: NodeJS.ProcessEnv = process.env): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const reason = err instanceof Error && 'code' in err ? String(err.code) : String(err);
    throw new ConfigError(path, [{ path: '', message: `cannot read config file (${reason})` }], { cause: err });
  }
  return parseConfigText(text, path, env);
}

/** Validate config text; `fileName` only labels the problems. */
export function parseConfigText(text: string, fileName: string, env: NodeJS.ProcessEnv = process.env): Config {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, merge: true, uniqueKeys: true });
  const lineAt = (offset: number | undefined): number | undefined =>
    offset === undefined ? undefined : lineCounter.linePos(offset).line;

  const yamlProblems = [...doc.errors, ...doc.warnings].map((e): ConfigIssue => ({
    path: '',
    line: lineAt(e.pos[0]),
    message: `YAML: ${e.message}`,
  }));
  if (yamlProblems.length > 0) throw new ConfigError(fileName, sortIssues(yamlProblems));

  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ConfigError(
      fileName,
      [{ path: '', message: `YAML: ${err instanceof Error ? err.message : String(err)}` }],
      {
        cause: err,
      },
    );
  }
  if (raw === null || raw === undefined) {
    throw new ConfigError(fileName, [{ path: '', line: 1, message: 'the config file is empty' }]);
  }

  const fromEnv = applyEnv(raw, env);
  const issues: ConfigIssue[] = findProtoKeys(raw, []).map((path) => ({
    path: formatPath(path),
    line: lineOfPath(doc, path, lineAt),
    message: 'reserved key "__proto__" is not allowed',
  }));
  const result = configSchema.safeParse(raw, { error: friendlyMessage });
  if (result.success && issues.length === 0) return deepFreeze(result.data) as Config;
  if (result.success) throw new ConfigError(fileName, sortIssues(issues));

  for (const issue of result.error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        const path = [...issue.path, key];
        const suggestion = suggestKey(key, knownKeysAt(issue.path));
        issues.push({
          path: formatPath(path),
          line: lineOfPath(doc, path, lineAt),
          message: `unknown key "${key}"${suggestion === undefined ? '' : ` (did you mean "${suggestion}"?)`}`,
        });
      }
      continue;
    }
    const path = formatPath(issue.path);
    const viaEnv = fromEnv.has(path) ? ` (from env ${ADMIN_TOKEN_ENV})` : '';
    issues.push({ path, line: lineOfPath(doc, issue.path, lineAt), message: issue.message + viaEnv });
  }
  throw new ConfigError(fileName, sortIssues(issues));
}

/**
 * Env overrides: `MEMGATE_ADMIN_TOKEN` sets `admin.token` (it wins over the file,
 * so a secret can stay out of it). It only applies when an `admin:` section exists:
 * a token alone does not start an admin server. Returns the paths it set.
 */
function applyEnv(raw: unknown, env: NodeJS.ProcessEnv): Set<string> {
  const set = new Set<string>();
  const token = env[ADMIN_TOKEN_ENV];
  if (token === undefined || token === '' || !isPlainObject(raw)) return set;
  if (raw.admin === null) raw.admin = {}; // `admin:` with nothing under it
  if (isPlainObject(raw.admin)) {
    raw.admin.token = token;
    set.add('admin.token');
  }
  return set;
}

/**
 * YAML creates `__proto__` as an own key; zod drops such keys without a word, so a
 * tenant named `__proto__` would silently vanish. Report them instead.
 */
function findProtoKeys(value: unknown, path: PathSegment[]): PathSegment[][] {
  if (Array.isArray(value)) return value.flatMap((item: unknown, i) => findProtoKeys(item, [...path, i]));
  if (!isPlainObject(value)) return [];
  const found: PathSegment[][] = Object.hasOwn(value, '__proto__') ? [[...path, '__proto__']] : [];
  for (const [key, child] of Object.entries(value)) {
    if (key !== '__proto__') found.push(...findProtoKeys(child, [...path, key]));
  }
  return found;
}

/** Default zod wording is generic; these read better next to a file line. */
const friendlyMessage: z.core.$ZodErrorMap = (issue) => {
  if (issue.code === 'invalid_type') {
    if (issue.input === undefined) return 'is required';
    return `must be ${withArticle(issue.expected)}, not ${describeValue(issue.input)}`;
  }
  return undefined;
};

function withArticle(type: string): string {
  if (type === 'object') return 'a mapping';
  if (type === 'array') return 'a list';
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

function describeValue(value: unknown): string {
  if (value === null) return 'empty (null)';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `the string "${value.length > 40 ? `${value.slice(0, 40)}…` : value}"`;
  return `${typeof value} ${String(value)}`;
}

/** `tenants.shop.limits.burst`, `listen[1].port`, `tenants["a b"]` for names that are not identifiers. */
export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (typeof segment === 'string' && /^[A-Za-z0-9_-]+$/.test(segment))
      out += out === '' ? segment : `.${segment}`;
    else out += `[${JSON.stringify(String(segment))}]`;
  }
  return out;
}

/**
 * The line a problem belongs to: walk the document along `path`; for a map entry
 * take its key's line (where the operator reads the name). A missing entry gets
 * the line of the nearest ancestor that exists ("tenants.shop: prefix is required"
 * points at `shop:`).
 */
function lineOfPath(
  doc: Document,
  path: readonly PathSegment[],
  lineAt: (offset: number | undefined) => number | undefined,
): number | undefined {
  let node: unknown = doc.contents;
  let line = lineAt(rangeStart(node));
  for (const segment of path) {
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(segment));
      if (pair === undefined) break;
      line = lineAt(rangeStart(pair.key)) ?? line;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === 'number') {
      const item: unknown = node.items[segment];
      if (item === undefined) break;
      line = lineAt(rangeStart(item)) ?? line;
      node = item;
    } else {
      break;
    }
  }
  return line;
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as Node | null | undefined)?.range;
  return range?.[0];
}

/** The keys the schema allows at `path` (for "did you mean"), or [] when unknown. */
function knownKeysAt(path: readonly PathSegment[]): string[] {
  let schema: z.core.$ZodType | undefined = configSchema;
  for (const segment of path) {
    schema = schema === undefined ? undefined : childSchema(unwrap(schema), segment);
  }
  const object = schema === undefined ? undefined : unwrap(schema);
  return object instanceof z.ZodObject ? Object.keys(object.shape) : [];
}

function unwrap(schema: z.core.$ZodType): z.core.$ZodType {
  let current = schema;
  while (
    current instanceof z.ZodOptional ||
    current instanceof z.ZodDefault ||
    current instanceof z.ZodPrefault ||
    current instanceof z.ZodNullable
  ) {
    current = current.unwrap();
  }
  return current;
}

function childSchema(schema: z.core.$ZodType, segment: PathSegment): z.core.$ZodType | undefined {
  if (schema instanceof z.ZodObject && typeof segment === 'string') return schema.shape[segment] as z.core.$ZodType;
  if (schema instanceof z.ZodRecord) return schema.valueType as z.core.$ZodType;
  if (schema instanceof z.ZodArray) return schema.element as z.core.$ZodType;
  return undefined;
}

/** The closest known key within edit distance 2 (or a third of the key's length, if larger). */
function suggestKey(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(key.length / 3)) + 1;
  for (const candidate of known) {
    const distance = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

function sortIssues(issues: ConfigIssue[]): ConfigIssue[] {
  return issues
    .map((issue, index) => ({ issue, index }))
    .sort((x, y) => (x.issue.line ?? Infinity) - (y.issue.line ?? Infinity) || x.index - y.index)
    .map(({ issue }) => issue);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
