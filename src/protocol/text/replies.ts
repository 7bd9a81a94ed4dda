/**
 * Pre-encoded replies in memcached's vocabulary. Reply strings are public API:
 * tests assert these exact bytes and docs/errors.md lists them.
 */
const r = (s: string): Buffer => Buffer.from(`${s}\r\n`, 'latin1');

export const CRLF = Buffer.from('\r\n', 'latin1');

export const Replies = {
  ERROR: r('ERROR'),
  OK: r('OK'),
  END: r('END'),
  STORED: r('STORED'),
  MN: r('MN'),
  BAD_FORMAT: r('CLIENT_ERROR bad command line format'),
  BAD_DELETE_FORMAT: r('CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]'),
  BAD_DATA_CHUNK: r('CLIENT_ERROR bad data chunk'),
  INVALID_DELTA: r('CLIENT_ERROR invalid numeric delta argument'),
  INVALID_EXPTIME: r('CLIENT_ERROR invalid exptime argument'),
  LINE_TOO_LONG: r('CLIENT_ERROR line too long'),
  REQUEST_TIMEOUT: r('CLIENT_ERROR request timed out'),
  DUPLICATE_FLAG: r('CLIENT_ERROR duplicate flag'),
  INVALID_FLAG: r('CLIENT_ERROR invalid flag'),
  /** md and ma: memcached's one text for every flag problem it finds while reading their flags */
  INVALID_OR_DUPLICATE_FLAG: r('CLIENT_ERROR invalid or duplicate flag'),
  BAD_MODE_LENGTH: r('CLIENT_ERROR incorrect length for M token'),
  OPAQUE_TOO_LONG: r('CLIENT_ERROR opaque token too long'),
  BAD_TOKEN: r('CLIENT_ERROR bad token in command line format'),
  KEY_ENCODING: r('CLIENT_ERROR error decoding key'),
  UNAUTHENTICATED: r('CLIENT_ERROR unauthenticated'),
  AUTH_FAILURE: r('CLIENT_ERROR authentication failure'),
  AUTH_TOKEN_TOO_LONG: r('CLIENT_ERROR auth token too long'),
  AUTH_BUSY: r('SERVER_ERROR too many authentications in progress'),
  ACCESS_DENIED: r('CLIENT_ERROR access denied'),
  TOO_LARGE: r('SERVER_ERROR object too large for cache'),
  RATE_LIMITED: r('SERVER_ERROR rate limited'),
  /** a multi-get naming more keys than the tenant's ops burst: it could never be admitted */
  OVER_BURST: r('SERVER_ERROR rate limited (more keys than the burst)'),
  BACKEND_FAILURE: r('SERVER_ERROR backend failure'),
  /** flush_all while the shared state (Redis) cannot be reached: applied nowhere, the client may retry */
  STATE_UNAVAILABLE: r('SERVER_ERROR state store unavailable'),
  TOO_MANY_KEYS: r('CLIENT_ERROR too many keys'),
  TOO_MANY_CONNECTIONS: r('ERROR Too many open connections'),
} as const;

const notAllowedCache = new Map<string, Buffer>();

/** `CLIENT_ERROR <command> not allowed` (memcached's words for -F / -X). */
export function notAllowed(command: string): Buffer {
  let b = notAllowedCache.get(command);
  if (b === undefined) {
    b = r(`CLIENT_ERROR ${command} not allowed`);
    notAllowedCache.set(command, b);
  }
  return b;
}
