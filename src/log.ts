/**
 * The root pino logger and the per-connection child (STYLE.md §4): one child per
 * connection carrying `conn` and `peer`, then `tenant` once it is known; nothing
 * per request at info. Credentials are redacted wherever they appear in a logged
 * object, so a config section or an auth attempt can never leak one by accident.
 */
import { pino, type DestinationStream, type Level, type Logger } from 'pino';

export type { Logger } from 'pino';

/** Paths pino censors in every log line (one level of nesting; never log whole configs). */
export const REDACT_PATHS: readonly string[] = [
  'password',
  '*.password',
  'token',
  '*.token',
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
];

export type LogLevel = Level | 'silent';

/** The process's root logger; `destination` defaults to stdout (tests pass a stream to capture lines). */
export function createLogger(level: LogLevel = 'info', destination?: DestinationStream): Logger {
  const options = {
    level,
    name: 'memgate',
    redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
  };
  return destination === undefined ? pino(options) : pino(options, destination);
}

/** The logger of one client connection. Add the tenant with `.setBindings({ tenant })` once identified. */
export function connectionLogger(root: Logger, connId: number, peer: string): Logger {
  return root.child({ conn: connId, peer });
}
