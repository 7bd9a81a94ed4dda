/**
 * The one error config loading throws. It carries every problem found, not just
 * the first: an operator fixes a config file in one pass.
 *
 * NOTE: stands alone until `src/errors.ts` (ProxyError, stable codes) lands; the
 * lead reconciles it into a `ProxyError` subclass with the same `code`.
 */

export interface ConfigIssue {
  /** Dotted path into the config (`tenants.shop.prefix`, `listen[1].port`); '' for the file itself. */
  readonly path: string;
  /** 1-based line in the config file, when known. */
  readonly line?: number;
  readonly message: string;
}

export class ConfigError extends Error {
  readonly code = 'ERR_CONFIG_INVALID' as const;
  readonly file: string;
  readonly issues: readonly ConfigIssue[];

  constructor(file: string, issues: readonly ConfigIssue[], options?: ErrorOptions) {
    const count = issues.length;
    super(
      `invalid config ${file} (${count} problem${count === 1 ? '' : 's'}):\n` +
        issues.map((issue) => `  ${formatConfigIssue(file, issue)}`).join('\n'),
      options,
    );
    this.name = 'ConfigError';
    this.file = file;
    this.issues = Object.freeze([...issues]);
  }

  /** One line per problem: `<file>:<line>: <path>: <message>`. */
  lines(): string[] {
    return this.issues.map((issue) => formatConfigIssue(this.file, issue));
  }
}

/** `memgate.yaml:7: tenants.shop.prefx: unknown key "prefx"` (line and path left out when unknown). */
export function formatConfigIssue(file: string, issue: ConfigIssue): string {
  const where = issue.line === undefined ? file : `${file}:${issue.line}`;
  return issue.path === '' ? `${where}: ${issue.message}` : `${where}: ${issue.path}: ${issue.message}`;
}
