/**
 * The metric names a PromQL expression reads, for tests that check a dashboard
 * or alert rule against a running memgate's /metrics. A small tokenizer, not a
 * parser: it drops strings, label matchers `{…}`, ranges and subqueries `[…]`,
 * the label lists of `by`/`without`/`on`/`ignoring`/`group_left`/`group_right`,
 * function names (an identifier followed by `(`) and keywords; every
 * identifier left is a metric name.
 */

const KEYWORDS = new Set([
  ...['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan'],
  // aggregation operators, which may be followed by `by (…)` rather than `(`
  ...['sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile'],
]);
const LABEL_LIST_WORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const IDENT_START = /[a-zA-Z_:]/;
const IDENT_PART = /[a-zA-Z0-9_:]/;

/** Index just past the bracket that closes the one at `from` (`open`/`close`), strings skipped. */
function skipBalanced(expr: string, from: number, open: string, close: string): number {
  let depth = 0;
  for (let i = from; i < expr.length; i++) {
    const ch = expr[i];
    if (ch === '"' || ch === "'" || ch === '`') {
      i = skipString(expr, i) - 1;
      continue;
    }
    if (ch === open) depth++;
    else if (ch === close && --depth === 0) return i + 1;
  }
  throw new Error(`unbalanced ${open} in PromQL: ${expr}`);
}

/** Index just past the string literal starting at `from`. */
function skipString(expr: string, from: number): number {
  const quote = expr[from];
  for (let i = from + 1; i < expr.length; i++) {
    if (expr[i] === '\\' && quote !== '`') i++;
    else if (expr[i] === quote) return i + 1;
  }
  throw new Error(`unterminated string in PromQL: ${expr}`);
}

function nextNonSpace(expr: string, from: number): number {
  let i = from;
  while (i < expr.length && /\s/.test(expr[i] ?? '')) i++;
  return i;
}

/** Metric names in `expr`, in order of first appearance. */
export function metricNames(expr: string): string[] {
  const names: string[] = [];
  let i = 0;
  while (i < expr.length) {
    const ch = expr[i] ?? '';
    if (ch === '"' || ch === "'" || ch === '`') {
      i = skipString(expr, i);
    } else if (ch === '{') {
      i = skipBalanced(expr, i, '{', '}');
    } else if (ch === '[') {
      i = skipBalanced(expr, i, '[', ']');
    } else if (ch === '#') {
      while (i < expr.length && expr[i] !== '\n') i++;
    } else if (/[0-9.]/.test(ch)) {
      // a number or a duration (5m, 1e3, 0x1f): digits and the letters glued to them
      while (i < expr.length && /[0-9a-zA-Z._]/.test(expr[i] ?? '')) i++;
    } else if (ch === '$') {
      // a Grafana variable ($tenant, ${x}): not PromQL
      i++;
      if (expr[i] === '{') i = skipBalanced(expr, i, '{', '}');
      else while (i < expr.length && IDENT_PART.test(expr[i] ?? '')) i++;
    } else if (IDENT_START.test(ch)) {
      const start = i;
      while (i < expr.length && IDENT_PART.test(expr[i] ?? '')) i++;
      const word = expr.slice(start, i);
      const after = nextNonSpace(expr, i);
      if (LABEL_LIST_WORDS.has(word.toLowerCase())) {
        if (expr[after] === '(') i = skipBalanced(expr, after, '(', ')');
      } else if (expr[after] === '(') {
        // a function call: its arguments are read on
      } else if (!KEYWORDS.has(word.toLowerCase()) && !names.includes(word)) {
        names.push(word);
      }
    } else {
      i++;
    }
  }
  return names;
}
