/**
 * Process errors: things that went wrong in memgate or around it (a bad
 * config, a broken upstream), never a client's protocol mistake. Protocol
 * replies are pre-encoded Buffers in `protocol/text/replies.ts`; these two
 * kinds never mix (STYLE.md §3).
 *
 * Every ProxyError has a stable `code` that logs, tests and docs/errors.md
 * rely on. Messages may change; codes do not.
 */

/** Every stable error code memgate uses. Add new ones here (and to docs/errors.md). */
export const ErrorCode = {
  /** the config file, env or flags are invalid */
  CONFIG_INVALID: 'ERR_CONFIG_INVALID',
  /** the upstream socket closed (by the peer, or mid-reply) */
  UPSTREAM_CLOSED: 'ERR_UPSTREAM_CLOSED',
  /** connecting to the upstream failed or took longer than connectTimeoutMs */
  UPSTREAM_CONNECT: 'ERR_UPSTREAM_CONNECT',
  /** the oldest in-flight request waited longer than requestTimeoutMs */
  UPSTREAM_TIMEOUT: 'ERR_UPSTREAM_TIMEOUT',
  /** the upstream sent bytes that do not answer the request at the head of the in-flight queue */
  UPSTREAM_DESYNC: 'ERR_UPSTREAM_DESYNC',
  /** memcached answered a storage request CLIENT_ERROR / ERROR: it may read the data block as commands */
  UPSTREAM_BACKEND_ERROR: 'ERR_UPSTREAM_BACKEND_ERROR',
  /** the upstream socket reported an error */
  UPSTREAM_SOCKET: 'ERR_UPSTREAM_SOCKET',
  /** too many requests queued while a connection was being opened */
  UPSTREAM_QUEUE_FULL: 'ERR_UPSTREAM_QUEUE_FULL',
  /** the pool was closed */
  UPSTREAM_POOL_CLOSED: 'ERR_UPSTREAM_POOL_CLOSED',
  /** shared state (generations, budgets) could not be read or written */
  STATE_UNAVAILABLE: 'ERR_STATE_UNAVAILABLE',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface ProxyErrorOptions {
  readonly cause?: unknown;
}

/** Base class of every process error memgate throws or logs. */
export class ProxyError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: ProxyErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ProxyError';
    this.code = code;
  }
}

export type UpstreamErrorCode =
  | typeof ErrorCode.UPSTREAM_CLOSED
  | typeof ErrorCode.UPSTREAM_CONNECT
  | typeof ErrorCode.UPSTREAM_TIMEOUT
  | typeof ErrorCode.UPSTREAM_DESYNC
  | typeof ErrorCode.UPSTREAM_BACKEND_ERROR
  | typeof ErrorCode.UPSTREAM_SOCKET
  | typeof ErrorCode.UPSTREAM_QUEUE_FULL
  | typeof ErrorCode.UPSTREAM_POOL_CLOSED;

/**
 * A memcached connection broke. The connection fails its in-flight requests
 * with `SERVER_ERROR backend failure`, logs this error once at warn and
 * reconnects; it is never thrown out of a socket callback.
 */
export class UpstreamError extends ProxyError {
  /** "host:port" of the upstream */
  readonly address: string;

  constructor(code: UpstreamErrorCode, address: string, message: string, options?: ProxyErrorOptions) {
    super(code, message, options);
    this.name = 'UpstreamError';
    this.address = address;
  }
}

/** Shared state (file or Redis) could not be read or written. */
export class StateError extends ProxyError {
  constructor(message: string, options?: ProxyErrorOptions) {
    super(ErrorCode.STATE_UNAVAILABLE, message, options);
    this.name = 'StateError';
  }
}

/** True for any ProxyError carrying `code`. */
export function hasErrorCode(err: unknown, code: string): boolean {
  return err instanceof ProxyError && err.code === code;
}
