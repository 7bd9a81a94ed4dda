#!/usr/bin/env node
/**
 * memgate's command line. Parses flags, loads the config, calls into the proxy;
 * no logic, names or defaults of its own (those live in config/schema.ts).
 *
 *   memgate serve --config memgate.yaml [--rotate-all-on-corrupt-state] [--workers N]
 *   memgate check-config --config memgate.yaml [--connect]
 *   memgate rotate <tenant> --config memgate.yaml
 *   memgate state show --config memgate.yaml
 *   memgate top [--config memgate.yaml | --admin host:port] [--interval s] [--once]
 *   memgate route --config memgate.yaml [--tenant T] KEY…   (keys on stdin when none are given)
 *
 * Exit codes: 0 success (and after a clean SIGTERM/SIGINT stop), 1 invalid config
 * or a failure to start or stop.
 *
 *   memgate hash-password            (reads a password on stdin, prints an scrypt hash)
 */
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { CliError, rotateCommand, stateShowCommand } from './admin/cli-actions.js';
import { SORT_KEYS, parseIntervalSeconds, parseSortKey, topCommand, type TopFlags } from './admin/top.js';
import { routeCommand, splitKeyLines } from './admin/route-command.js';
import { ConfigError } from './config/errors.js';
import { configBurstNotes } from './policy/compile.js';
import { ProxyError } from './errors.js';
import { hashPassword } from './policy/password.js';
import { loadConfig } from './config/load.js';
import { cliOptions, type Config } from './config/schema.js';
import { createLogger, type Logger } from './log.js';
import { sharedServerNotes } from './upstream/pool-notes.js';
import { compileTopology } from './upstream/topology.js';

interface ConfigFlag {
  readonly config: string;
}

interface ServeFlags extends ConfigFlag {
  readonly rotateAllOnCorruptState?: boolean;
  /** worker processes; 0 = one per CPU, 1 = a single process (cluster/primary.ts) */
  readonly workers: number;
}

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

function configOption(): Option {
  const { flags, help, env } = cliOptions.config;
  return new Option(flags, help).env(env).makeOptionMandatory();
}

/** Load the config or print every problem and exit 1. */
function loadOrExit(path: string): Config {
  try {
    return loadConfig(path);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.lines().join('\n')}\n`);
    process.stderr.write(`memgate: ${path}: ${err.issues.length} problem${err.issues.length === 1 ? '' : 's'}\n`);
    process.exit(1);
  }
}

async function checkConfig(opts: ConfigFlag & { readonly connect?: boolean }): Promise<void> {
  const config = loadOrExit(opts.config);
  const tenants = Object.keys(config.tenants).length;
  process.stdout.write(
    `config OK: ${tenants} tenant${tenants === 1 ? '' : 's'}, ${config.listen.length} listener${config.listen.length === 1 ? '' : 's'}\n`,
  );
  for (const note of configBurstNotes(config)) process.stdout.write(`note: ${note}\n`);
  for (const note of sharedServerNotes(compileTopology(config))) process.stdout.write(`note: ${note}\n`);
  if (opts.connect !== true) return;
  const { checkConnections, formatProbeResults } = await import('./admin/check-connect.js');
  const results = await checkConnections(config);
  process.stdout.write(formatProbeResults(results));
  if (results.some((r) => !r.ok)) process.exit(1);
}

/** `--workers <n>`: a whole number, 0 or more. */
function parseWorkers(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) {
    throw new InvalidArgumentError('must be a whole number: 0 (one per CPU), 1 (a single process) or more');
  }
  return n;
}

async function serve(opts: ServeFlags): Promise<void> {
  const { isMemgateWorker, resolveWorkerCount } = await import('./cluster/primary.js');
  if (isMemgateWorker()) {
    // forked by a --workers primary with the same arguments: the primary hands over the config
    const { runWorker } = await import('./cluster/worker.js');
    await runWorker().catch((err: unknown) => {
      process.stderr.write(`memgate worker: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    });
    return;
  }
  const config = loadOrExit(opts.config);
  const logger = createLogger(config.log.level);
  const workers = resolveWorkerCount(opts.workers);
  if (workers > 1) {
    await servePrimary(opts, config, logger, workers);
    return;
  }
  const { createProxy } = await import('./index.js');
  const proxy = createProxy(config, {
    logger,
    rotateAllOnCorrupt: opts.rotateAllOnCorruptState === true,
    loadConfig: () => loadConfig(opts.config),
  });
  try {
    await proxy.start();
  } catch (err) {
    await failedToStart(logger, err, () => proxy.stop());
  }
  logger.info({ version: pkg.version, config: opts.config }, 'memgate started');
  stopOnSignals(logger, () => proxy.stop());
  // SIGHUP: re-read the config; an invalid one is logged and the old one stays
  process.on('SIGHUP', () => {
    let next: Config;
    try {
      next = loadConfig(opts.config);
    } catch (err) {
      const lines = err instanceof ConfigError ? err.lines() : [String(err)];
      logger.error({ audit: 'reload', source: 'SIGHUP', ok: false, problems: lines }, 'reload refused: invalid config');
      return;
    }
    void proxy.reload(next, 'SIGHUP');
  });
}

/** `serve --workers N`, N ≥ 2: the primary forks the workers and owns the state and the admin API. */
async function servePrimary(opts: ServeFlags, config: Config, logger: Logger, workers: number): Promise<void> {
  const { ClusterPrimary } = await import('./cluster/primary.js');
  const primary = new ClusterPrimary(config, {
    workers,
    logger,
    rotateAllOnCorrupt: opts.rotateAllOnCorruptState === true,
    loadConfig: () => loadConfig(opts.config),
  });
  try {
    await primary.start();
  } catch (err) {
    await failedToStart(logger, err, () => primary.stop());
  }
  logger.info({ version: pkg.version, config: opts.config, workers }, 'memgate started');
  stopOnSignals(logger, () => primary.stop());
  // SIGHUP: the primary re-reads and validates the config once, then every worker applies it
  process.on('SIGHUP', () => void primary.reload('SIGHUP'));
}

/**
 * Start-up failed: undo what started, exit 1. A known process error (a
 * ProxyError: the state file is locked or corrupt, …) is one line on stderr,
 * `memgate: <message>`, and one log line without a stack; anything else is
 * logged with its stack.
 */
async function failedToStart(logger: Logger, err: unknown, stop: () => Promise<void>): Promise<never> {
  if (err instanceof ProxyError) {
    logger.fatal({ code: err.code }, `memgate failed to start: ${err.message}`);
    process.stderr.write(`memgate: ${err.message}\n`);
  } else {
    logger.fatal({ err }, 'memgate failed to start');
  }
  await stop().catch(() => undefined);
  process.exit(1);
}

/** First SIGTERM/SIGINT: stop gracefully, exit 0. A second one while stopping: exit 1 at once. */
function stopOnSignals(logger: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal while stopping; exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'stopping');
    stop().then(
      () => {
        logger.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

const program = new Command('memgate')
  .description('Access-control proxy for memcached: per-tenant keyspaces, blocked destructive commands, limits.')
  .version(pkg.version)
  .showHelpAfterError();

program
  .command('serve')
  .description('run the proxy')
  .addOption(configOption())
  .option(
    '--rotate-all-on-corrupt-state',
    'start even if the state file is corrupt: every tenant gets a fresh generation (the corrupt file is kept aside)',
  )
  .addOption(
    // NOTE: defined here rather than in config/schema.ts cliOptions: it is a process layout, not a config key
    new Option(
      '--workers <n>',
      'worker processes sharing the listeners (node:cluster); 0 = one per CPU. Per-tenant limits are split evenly between them',
    )
      .argParser(parseWorkers)
      .default(1),
  )
  .action(serve);

program
  .command('check-config')
  .description('validate a config file: print a summary, or every problem and exit 1')
  .addOption(configOption())
  .option('--connect', 'also connect to every upstream server and the state store; exit 1 if any is unreachable')
  .action(checkConfig);

/** Runs a CLI action; a CliError or a state error is one line on stderr and exit 1. */
async function report(action: () => Promise<string> | string): Promise<void> {
  try {
    process.stdout.write(await action());
    process.stdout.write('\n');
  } catch (err) {
    const known = err instanceof CliError || (err instanceof Error && 'code' in err);
    if (!known) throw err;
    process.stderr.write(`memgate: ${(err as Error).message}\n`);
    process.exit(1);
  }
}

/** Reads the password from stdin (one line; a trailing newline is not part of it). */
async function readPassword(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
  if (text.length === 0) throw new CliError('no password on standard input');
  if (text.includes('\n')) throw new CliError('the password must be one line');
  return text;
}

program
  .command('hash-password')
  .description('read a password on stdin and print an scrypt hash for the config (tenants.<name>.password)')
  .action(async () => {
    await report(async () => hashPassword(await readPassword()));
  });

program
  .command('rotate')
  .description(
    "rotate a tenant's generation now: its keys become unreachable (through a running memgate, or in the state file)",
  )
  .argument('<tenant>', 'tenant name from the config')
  .addOption(configOption())
  .action(async (tenant: string, opts: ConfigFlag) => {
    const config = loadOrExit(opts.config);
    await report(() => rotateCommand(config, tenant));
  });

program
  .command('state')
  .description('inspect durable state')
  .command('show')
  .description('list tenants with generation age and pending rotations (never secrets)')
  .addOption(configOption())
  .action(async (opts: ConfigFlag) => {
    const config = loadOrExit(opts.config);
    await report(async () => (await stateShowCommand(config)).trimEnd());
  });

program
  .command('top')
  .description(
    'live view of a running memgate from its admin API: per tenant ops/s, hit ratio, errors, rate-limited, connections, bytes/s',
  )
  .addOption(new Option(cliOptions.config.flags, cliOptions.config.help).env(cliOptions.config.env))
  .option('--admin <host:port>', "admin API address or http(s):// URL (default: the config's admin section)")
  .option('--interval <seconds>', 'refresh interval', parseIntervalSeconds, 1)
  .option(
    '--sort <key>',
    'first sort key: o ops, h hit ratio, e errors, r rate-limited, c connections, b bytes, n name',
    parseSortKey,
    SORT_KEYS[0],
  )
  .option('--once', 'print one frame (two scrapes one interval apart) and exit')
  .action(async (opts: TopFlags) => {
    const config = opts.config === undefined || opts.config === '' ? null : loadOrExit(opts.config);
    process.exit(await topCommand(opts, config));
  });

program
  .command('route')
  .description(
    'print the memcached server of each key ("KEY host:port"), as memgate places it: with --tenant, the key the tenant stores on its pool; contacts no server',
  )
  .argument('[keys...]', 'keys (default: one per line on stdin)')
  .addOption(configOption())
  .option('--tenant <name>', "route the key this tenant stores (its namespace added) on the tenant's pool")
  .action(async (keys: string[], opts: ConfigFlag & { readonly tenant?: string }) => {
    const config = loadOrExit(opts.config);
    const fromStdin = keys.length === 0;
    let input: Buffer[] = keys.map((k) => Buffer.from(k, 'utf8'));
    if (fromStdin) {
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
      input = splitKeyLines(Buffer.concat(chunks));
    }
    let routed: ReturnType<typeof routeCommand>;
    try {
      routed = routeCommand(config, opts.tenant, input, fromStdin);
    } catch (err) {
      if (!(err instanceof CliError || err instanceof ProxyError)) throw err;
      process.stderr.write(`memgate: ${err.message}\n`);
      process.exit(1);
    }
    process.stdout.write(routed.stdout);
    const problems = routed.problems;
    for (const problem of problems) process.stderr.write(`memgate: ${problem}\n`);
    if (problems.length > 0) process.exit(1);
  });

await program.parseAsync(process.argv);
