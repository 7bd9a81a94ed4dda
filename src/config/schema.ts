/**
 * The config file's schema: the single source of option names, types, defaults,
 * units (in the names: `connectTimeoutMs`) and help text (`.describe()`).
 *
 * Every object is strict: an unknown key is an error, never silently ignored, so a
 * typo such as `prefx:` cannot quietly turn a tenant's isolation off.
 *
 * Rules that span fields (a listener's tenant exists, two tenants' prefixes do not
 * overlap, …) are `superRefine` checks with `when: always`, so they run even when
 * other parts of the file are broken and every problem is reported in one pass.
 * They read their input defensively for the same reason.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { MAX_KEYS_PER_GET, MAX_LINE_BYTES, MAX_VALUE_BYTES } from '../protocol/limits.js';
import { parsePasswordHash } from '../policy/password.js';
import { KETAMA_DEFAULT_PORT, ketamaName } from '../upstream/ketama-name.js';
import { normalizeAddress, tryParseCidr } from './cidr.js';

export const TENANT_NAME_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;
/** Longest namespace prefix: leaves room for the generation and a useful key within 250 bytes. */
export const MAX_PREFIX_BYTES = 64;
/** The pool `upstream.servers` forms; tenants without `pool` use it. */
export const DEFAULT_POOL = 'default';
export const DEFAULT_STATE_URL = 'file:./memgate-state.json';
export const ADMIN_TOKEN_ENV = 'MEMGATE_ADMIN_TOKEN';
export const MIN_ADMIN_TOKEN_LENGTH = 16;
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Command-line flags, described here so `cli.ts` holds no names, help or defaults of its own. */
export const cliOptions = {
  config: {
    flags: '-c, --config <file>',
    help: 'YAML config file (see docker/config/example.yaml)',
    env: 'MEMGATE_CONFIG',
  },
} as const;

// ─── field builders ────────────────────────────────────────────────────────────

const PRINTABLE_ASCII = /^[\x21-\x7e]*$/;
const HOST_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;
const WILDCARD_HOSTS: ReadonlySet<string> = new Set(['0.0.0.0', '::']);
const always = (): boolean => true;

function isHost(text: string): boolean {
  return isIP(text) !== 0 || HOST_NAME.test(text);
}

function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  const normalized = normalizeAddress(host);
  if (normalized === null) return false;
  return normalized.family === 4 ? normalized.address.startsWith('127.') : normalized.address === '::1';
}

const positiveInt = (help: string) => z.number().int('must be an integer').min(1, 'must be at least 1').describe(help);

/** A port to listen on; 0 asks the OS for a free one (tests read the bound port back). */
const listenPort = (help: string) =>
  z
    .number()
    .int('must be an integer')
    .min(0, 'must be a port number from 1 to 65535 (or 0 for any free port)')
    .max(65535, 'must be a port number from 1 to 65535 (or 0 for any free port)')
    .describe(help);

const host = (help: string) => z.string().refine(isHost, 'must be an IP address or a host name').describe(help);

const filePath = (help: string) => z.string().min(1, 'must not be empty').describe(help);

const tenantName = (help: string) =>
  z
    .string()
    .regex(TENANT_NAME_PATTERN, 'must be 1..64 characters from A-Z a-z 0-9 _ . -')
    .refine((name) => name !== '__proto__', 'is a reserved name')
    .describe(help);

const keyPrefix = (help: string) =>
  z
    .string()
    .min(1, 'must not be empty')
    .max(MAX_PREFIX_BYTES, `must be at most ${MAX_PREFIX_BYTES} bytes`)
    .regex(PRINTABLE_ASCII, 'may contain only printable ASCII (0x21..0x7e): no spaces, control or non-ASCII characters')
    .describe(help);

/** `host:port` or `[v6]:port`, as written in `upstream.servers`. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** Parse `host:port` / `[v6addr]:port`; returns a message instead of throwing. */
export function tryParseHostPort(text: string): HostPort | string {
  const usage = `"${text}" must be "host:port" (or "[ipv6]:port")`;
  const bracketed = /^\[([^\]]+)\]:([0-9]{1,5})$/.exec(text);
  const plain = /^([^:[\]]+):([0-9]{1,5})$/.exec(text);
  const match = bracketed ?? plain;
  if (match === null) return usage;
  const hostText = match[1] ?? '';
  const portNumber = Number(match[2]);
  if (bracketed !== null ? isIP(hostText) !== 6 : !isHost(hostText)) return usage;
  if (portNumber < 1 || portNumber > 65535) return `"${text}": port must be from 1 to 65535`;
  return { host: hostText, port: portNumber };
}

/** Parse an `upstream.servers` entry; throws on a value the schema would have rejected. */
export function parseHostPort(text: string): HostPort {
  const parsed = tryParseHostPort(text);
  if (typeof parsed === 'string') throw new Error(parsed);
  return parsed;
}

const network = (help: string) =>
  z
    .string()
    .superRefine((text, ctx) => {
      const parsed = tryParseCidr(text);
      if (parsed.error !== undefined) ctx.addIssue({ code: 'custom', message: parsed.error });
    })
    .describe(help);

// ─── sections ──────────────────────────────────────────────────────────────────

const tlsSchema = z.strictObject({
  cert: filePath('PEM certificate chain presented to clients (path relative to the working directory)'),
  key: filePath('PEM private key for `cert`'),
  ca: filePath('PEM CA bundle; when set, client certificates signed by one of these CAs identify tenants').optional(),
  requireClientCert: z
    .boolean()
    .optional()
    .describe('refuse clients without a verified certificate (default: true when `ca` is set)'),
});

const listenerSchema = z.strictObject({
  host: host('address to listen on: 0.0.0.0 / :: for every interface, 127.0.0.1 for local clients only'),
  port: listenPort('TCP port; 0 = any free port'),
  tls: tlsSchema.optional().describe('serve TLS on this listener'),
  tenant: tenantName(
    'bind every connection on this listener to this tenant (its `networks`, if any, still apply)',
  ).optional(),
});

/** `host:port` / `host:port:weight` / `[v6]:port[:weight]`; returns a message instead of throwing. */
export function tryParseServerText(text: string): { host: string; port: number; weight: number } | string {
  const weighted = /^(.*):([0-9]{1,9})$/.exec(text);
  if (weighted !== null) {
    const head = weighted[1] ?? '';
    const asHostPort = tryParseHostPort(head);
    if (typeof asHostPort !== 'string') {
      const weight = Number(weighted[2]);
      if (weight < 1) return `"${text}": weight must be at least 1`;
      return { ...asHostPort, weight };
    }
  }
  const plain = tryParseHostPort(text);
  if (typeof plain === 'string') return `"${text}" must be "host:port", "host:port:weight" (or "[ipv6]:port[:weight]")`;
  return { ...plain, weight: 1 };
}

const serverText = z
  .string()
  .superRefine((text, ctx) => {
    const parsed = tryParseServerText(text);
    if (typeof parsed === 'string') ctx.addIssue({ code: 'custom', message: parsed });
  })
  .describe('memcached server as "host:port" or "host:port:weight" ("[ipv6]:port[:weight]")');

const SERVER_NAME = /^[\x21-\x7e]{1,128}$/;
/** libmemcached keeps a server's weight in a uint32_t. */
const MAX_SERVER_WEIGHT = 4294967295;

const serverObject = z
  .strictObject({
    host: host('server address or host name').optional(),
    port: z
      .number()
      .int('must be an integer')
      .min(1, 'must be a port number from 1 to 65535')
      .max(65535, 'must be a port number from 1 to 65535')
      .describe('TCP port (default 11211)')
      .optional(),
    path: filePath('unix socket of a local memcached (`memcached -s`), instead of host and port')
      .refine(
        (p) => p.startsWith('/'),
        'must be an absolute path (a unix socket such as /run/memcached/memcached.sock)',
      )
      .optional(),
    weight: positiveInt('share of the ketama ring, relative to the other servers (ketama only, as in libmemcached)')
      .max(MAX_SERVER_WEIGHT, `must be at most ${MAX_SERVER_WEIGHT}`)
      .default(1),
    name: z
      .string()
      .regex(SERVER_NAME, 'must be 1..128 printable ASCII characters without spaces')
      .describe('the name hashed onto the ketama ring instead of host[:port], so a server can move and keep its keys')
      .optional(),
  })
  .superRefine(
    (value: unknown, ctx) => {
      if (!isObject(value)) return;
      if ((value.host === undefined) === (value.path === undefined)) {
        ctx.addIssue({
          code: 'custom',
          message: 'needs exactly one of `host` (with `port`) or `path` (a unix socket)',
        });
      } else if (value.path !== undefined && value.port !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['port'], message: 'does not apply to a unix socket (`path`)' });
      }
    },
    { when: always },
  );

const serverEntry = z.union([serverText, serverObject], {
  error: () => 'must be "host:port[:weight]" or { host, port, weight, name } or { path, weight, name }',
});

const upstreamTlsSchema = z
  .strictObject({
    ca: filePath("PEM CA bundle that signed the servers' certificates (default: the system CAs)").optional(),
    cert: filePath('PEM client certificate presented to memcached (for `-Z` with ssl_ca_cert)').optional(),
    key: filePath('PEM private key for `cert`').optional(),
    servername: z
      .string()
      .min(1, 'must not be empty')
      .describe("name the server certificate must carry (default: each server's host)")
      .optional(),
  })
  .superRefine(
    (value: unknown, ctx) => {
      if (!isObject(value) || (value.cert === undefined) === (value.key === undefined)) return;
      const [given, missing] = value.cert === undefined ? ['key', 'cert'] : ['cert', 'key'];
      ctx.addIssue({
        code: 'custom',
        path: [missing],
        message: `is required with \`${given}\` (a client certificate and its key)`,
      });
    },
    { when: always },
  );

const distribution = z
  .enum(['ketama', 'modula'], 'must be ketama or modula')
  .default('ketama')
  .describe(
    "ketama: libmemcached's weighted consistent hashing (MD5; pylibmc ketama_weighted, twemproxy md5/ketama); modula: libmemcached's default hash (one_at_a_time) modulo the number of servers, weights not allowed",
  );

const serverList = (help: string) =>
  z.array(serverEntry).min(1, 'must list at least one memcached server').describe(help);

const poolSchema = z.strictObject({
  servers: serverList('memcached servers of this pool'),
  distribution,
  tls: upstreamTlsSchema
    .optional()
    .describe("connect to this pool's servers over TLS (memcached -Z), certificate verified"),
});

const upstreamSchema = z
  .strictObject({
    servers: serverList('memcached servers of the default pool; keys are spread over them by `distribution`'),
    distribution,
    tls: upstreamTlsSchema
      .optional()
      .describe("connect to the default pool's servers over TLS (memcached -Z), server certificate verified"),
    pools: z
      .record(tenantName('pool name'), poolSchema, {
        error: (issue) =>
          issue.code === 'invalid_key' ? 'invalid pool name: use 1..64 characters from A-Z a-z 0-9 _ . -' : undefined,
      })
      .optional()
      .describe('further pools of servers, by name; a tenant with `pool: <name>` uses that pool instead of `servers`'),
    connectionsPerServer: positiveInt('pipelined connections kept open to each server').default(2),
    connectTimeoutMs: positiveInt('time allowed to connect to a server, in milliseconds').default(1000),
    requestTimeoutMs: positiveInt(
      'time allowed for a server to answer a request, in milliseconds; past it the request gets SERVER_ERROR backend failure',
    ).default(2000),
    backoffMinMs: positiveInt('first reconnect delay after a server fails, in milliseconds').default(50),
    backoffMaxMs: positiveInt('longest reconnect delay (the delay doubles up to this), in milliseconds').default(2000),
    failureLimit: positiveInt(
      'consecutive failures (connect errors, timeouts, resets) after which a server is marked down',
    ).default(3),
    ejectHosts: z
      .boolean()
      .default(false)
      .describe(
        'a server marked down leaves the ring and its keys move to the others until it answers again (twemproxy auto_eject_hosts); false: its keys get SERVER_ERROR backend failure at once',
      ),
    retryAfterMs: positiveInt(
      'how long a server marked down waits before a background `version` probe tries it again, in milliseconds',
    ).default(1000),
    metaGets: z
      .boolean()
      .default(true)
      .describe(
        'send a one-key get/gets to memcached 1.6+ as the equivalent mg (memcached answers a pipeline of mg with one write per batch instead of one per get); clients still get VALUE/END',
      ),
  })
  .superRefine(
    (value: unknown, ctx) => {
      if (!isObject(value)) return;
      const { backoffMinMs: min, backoffMaxMs: max } = value;
      if (typeof min === 'number' && typeof max === 'number' && min > max) {
        ctx.addIssue({ code: 'custom', path: ['backoffMaxMs'], message: `must be at least backoffMinMs (${min})` });
      }
      checkServerList(value.servers, value.distribution, ['servers'], ctx);
      if (isObject(value.pools)) {
        for (const [name, pool] of Object.entries(value.pools)) {
          if (name === DEFAULT_POOL) {
            ctx.addIssue({
              code: 'custom',
              path: ['pools', name],
              message: `"${DEFAULT_POOL}" is the name of upstream.servers; give this pool another name`,
            });
          }
          if (isObject(pool)) checkServerList(pool.servers, pool.distribution, ['pools', name, 'servers'], ctx);
        }
      }
    },
    { when: always },
  );

/** The address a server entry is known by (metrics, /readyz, `memgate route`); undefined when it does not parse. */
export function serverEntryAddress(entry: unknown): string | undefined {
  if (typeof entry === 'string') {
    const parsed = tryParseServerText(entry);
    return typeof parsed === 'string' ? undefined : formatHostPort(parsed.host, parsed.port);
  }
  if (!isObject(entry)) return undefined;
  if (typeof entry.path === 'string') return entry.path;
  if (typeof entry.host !== 'string') return undefined;
  return formatHostPort(entry.host, typeof entry.port === 'number' ? entry.port : 11211);
}

/** "host:port", with an IPv6 address in brackets. */
export function formatHostPort(hostText: string, port: number): string {
  return `${hostText.includes(':') ? `[${hostText}]` : hostText}:${port}`;
}

/** The name a parsed server entry is hashed by on the ketama ring; undefined when it does not parse. */
function serverEntryKetamaName(entry: unknown): string | undefined {
  if (typeof entry === 'string') {
    const parsed = tryParseServerText(entry);
    return typeof parsed === 'string' ? undefined : ketamaName(parsed.host, parsed.port, null, null);
  }
  if (!isObject(entry)) return undefined;
  const name = typeof entry.name === 'string' ? entry.name : null;
  const path = typeof entry.path === 'string' ? entry.path : null;
  if (name === null && path === null && typeof entry.host !== 'string') return undefined;
  const port = typeof entry.port === 'number' ? entry.port : KETAMA_DEFAULT_PORT;
  return ketamaName(typeof entry.host === 'string' ? entry.host : '', port, path, name);
}

function serverEntryWeight(entry: unknown): number {
  if (typeof entry === 'string') {
    const parsed = tryParseServerText(entry);
    return typeof parsed === 'string' ? 1 : parsed.weight;
  }
  return isObject(entry) && typeof entry.weight === 'number' ? entry.weight : 1;
}

/**
 * Within one pool: no server twice, no two servers hashed by the same ketama
 * name (they would share every point of the ring), and no weights under modula
 * (libmemcached's modula ignores them; memgate does not pretend otherwise).
 */
function checkServerList(servers: unknown, distribution: unknown, path: (string | number)[], ctx: Ctx): void {
  if (!Array.isArray(servers)) return;
  const seen = new Map<string, number>();
  const names = new Map<string, number>();
  servers.forEach((server: unknown, i) => {
    const address = serverEntryAddress(server);
    if (address === undefined) return;
    const first = seen.get(address);
    if (first === undefined) seen.set(address, i);
    else {
      ctx.addIssue({
        code: 'custom',
        path: [...path, i],
        message: `"${address}" is listed twice (also servers[${first}])`,
      });
      return;
    }
    const name = serverEntryKetamaName(server);
    const sameName = name === undefined ? undefined : names.get(name);
    if (name !== undefined && sameName === undefined) names.set(name, i);
    else if (name !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: [...path, i],
        message: `is hashed onto the ketama ring as "${name}", as servers[${sameName}] is: the two would share every point; give each its own \`name\``,
      });
    }
    const weight = serverEntryWeight(server);
    if (distribution === 'modula' && weight !== 1) {
      ctx.addIssue({
        code: 'custom',
        path: [...path, i],
        message: `has weight ${weight}, but distribution modula uses no weights (libmemcached's modula ignores them): use ketama, or leave the weight out`,
      });
    }
  });
}

const adminSchema = z
  .strictObject({
    host: host('address of the admin HTTP server (/metrics, /healthz, /reload, /rotate)').default('127.0.0.1'),
    port: listenPort('TCP port of the admin HTTP server; 0 = any free port').default(9211),
    token: z
      .string()
      .min(MIN_ADMIN_TOKEN_LENGTH, `must be at least ${MIN_ADMIN_TOKEN_LENGTH} characters`)
      .describe(
        `bearer token for the admin endpoints; env ${ADMIN_TOKEN_ENV} overrides it (preferred: keeps it out of the file)`,
      )
      .optional(),
  })
  .superRefine(
    (value: unknown, ctx) => {
      if (!isObject(value) || typeof value.host !== 'string' || value.token !== undefined) return;
      if (!isLoopback(value.host)) {
        ctx.addIssue({
          code: 'custom',
          path: ['token'],
          message: `is required when the admin server listens on a non-loopback address (${value.host}); set it or ${ADMIN_TOKEN_ENV}`,
        });
      }
    },
    { when: always },
  );

const stateTlsSchema = z.strictObject({
  ca: filePath("PEM CA bundle that signed Redis's certificate (default: the system CAs)").optional(),
  cert: filePath('PEM client certificate presented to Redis (tls-auth-clients yes)').optional(),
  key: filePath('PEM private key for `cert`').optional(),
  servername: z
    .string()
    .min(1, 'must not be empty')
    .describe("name Redis's certificate must carry (default: the URL's host)")
    .optional(),
});

const stateSchema = z.strictObject({
  url: z
    .string()
    .refine(isStateUrl, 'must be "file:<path>" or "redis://host:port[/db]" (or "rediss://…")')
    .default(DEFAULT_STATE_URL)
    .describe(
      'where tenant generations live: a local file (one instance) or Redis (shared by several instances): ' +
        'redis://[user:password@]host:port/db, rediss://… for TLS',
    ),
  keyPrefix: z
    .string()
    .min(1, 'must not be empty')
    .max(64, 'must be at most 64 characters')
    .regex(PRINTABLE_ASCII, 'must be printable ASCII without spaces')
    .default('memgate:')
    .describe('Redis store: prefix of every key and channel memgate uses, so several deployments can share one Redis'),
  sentinels: z
    .array(z.string().regex(/^[^:\s]+:\d{1,5}$/, 'must be "host:port"'))
    .min(1, 'must list at least one sentinel')
    .optional()
    .describe(
      'Redis store: Sentinel addresses ("host:port"); when set, the master named by sentinelName is used and the ' +
        'host:port of state.url is ignored (its password and db still apply)',
    ),
  tls: stateTlsSchema
    .optional()
    .describe(
      'Redis store with rediss://: CA, client certificate and server name (files read at start; ignored for redis://)',
    ),
  sentinelName: z
    .string()
    .min(1, 'must not be empty')
    .default('mymaster')
    .describe('Redis store with sentinels: the name of the monitored master'),
});

function isStateUrl(text: string): boolean {
  if (/^file:.+/.test(text)) return true;
  if (!/^rediss?:\/\/./.test(text)) return false;
  try {
    new URL(text);
    return true;
  } catch {
    return false;
  }
}

const authSchema = z.strictObject({
  usernameAsKey: z
    .boolean()
    .default(false)
    .describe(
      'also accept the hosted-service form of ASCII auth: `set <username> 0 0 <len>` with the password as data',
    ),
  maxTokenBytes: positiveInt(
    'longest ASCII auth token (user name and password) accepted; a longer value before authentication closes the connection before it is read',
  ).default(1024),
  maxFailuresPerConnection: positiveInt('failed attempts after which a connection is closed').default(3),
  lockoutFailures: positiveInt('failed attempts from one source address that lock it out').default(10),
  lockoutWindowMs: positiveInt('window over which failures from one address are counted, in milliseconds').default(
    60_000,
  ),
  lockoutMs: positiveInt('how long a locked-out address or user name is refused, in milliseconds').default(300_000),
  userLockoutFailures: positiveInt(
    'failed attempts for one user name, from any addresses, within lockoutWindowMs that lock the name out for lockoutMs',
  ).default(50),
  maxConcurrentHashes: positiveInt(
    'password checks (scrypt, on the libuv thread pool) run at once in the process; the rest wait in a queue',
  ).default(2),
  maxQueuedHashes: positiveInt(
    'password checks that may wait for a free slot; past it: SERVER_ERROR too many authentications in progress',
  ).default(64),
});

const logSchema = z.strictObject({
  level: z
    .enum(LOG_LEVELS, `must be one of ${LOG_LEVELS.join(', ')}`)
    .default('info')
    .describe('pino log level'),
});

const limitsSchema = z.strictObject({
  maxLineBytes: z
    .number()
    .int('must be an integer')
    .min(1024, 'must be at least 1024')
    .default(MAX_LINE_BYTES)
    .describe(
      'longest command line read from a client, in bytes (lines other than get/gets/gat/gats: 2046, as memcached); past it: CLIENT_ERROR line too long, then close',
    ),
  maxValueBytes: positiveInt(
    'largest value accepted, in bytes (memcached -I); past it: SERVER_ERROR object too large for cache',
  ).default(MAX_VALUE_BYTES),
  maxKeysPerGet: positiveInt('most keys in one multi-get').default(MAX_KEYS_PER_GET),
  maxInFlightPerSession: positiveInt(
    'requests one client connection may have awaiting replies before memgate stops reading from it',
  ).default(1024),
  maxPendingReplyBytesPerSession: positiveInt(
    'reply bytes buffered for a slow client before memgate stops reading from it',
  ).default(8 * 1024 * 1024),
  maxConnections: z
    .number()
    .int('must be an integer')
    .min(0, 'must be 0 (unlimited) or more')
    .default(10_000)
    .describe('concurrent client connections in all; past it: ERROR Too many open connections, then close'),
  maxConnectionsPerAddress: z
    .number()
    .int('must be an integer')
    .min(0, 'must be 0 (unlimited) or more')
    .default(0)
    .describe('concurrent client connections from one source address; 0 = unlimited'),
  idleTimeoutMs: z
    .number()
    .int('must be an integer')
    .min(0, 'must be 0 (never) or more')
    .default(0)
    .describe('close a connection with nothing owed that sends nothing for this long, in milliseconds; 0 = never'),
  requestTimeoutMs: positiveInt(
    'deadline for a request to arrive whole (text line and value, binary header and body) from its first byte, in milliseconds; past it the client gets CLIENT_ERROR request timed out (binary: status 0x04) and the connection is closed',
  ).default(30_000),
  authTimeoutMs: positiveInt(
    'time an unidentified connection has to authenticate, in milliseconds; past it the connection is closed',
  ).default(10_000),
  memoryHighWatermarkBytes: z
    .number()
    .int('must be an integer')
    .min(0, 'must be 0 (off) or more')
    .default(0)
    .describe('resident memory above which memgate stops reading new requests until it falls again; 0 = off'),
});

const tenantLimitsSchema = z.strictObject({
  opsPerSecond: positiveInt('sustained operations per second (token bucket rate)').optional(),
  burst: positiveInt('operations allowed in a burst (token bucket size); default: opsPerSecond').optional(),
  bytesPerSecond: positiveInt('value bytes written per second').optional(),
  connections: positiveInt('concurrent client connections').optional(),
  maxItemBytes: positiveInt('largest value this tenant may store, in bytes (at most limits.maxValueBytes)').optional(),
  maxKeysPerGet: positiveInt('most keys in one multi-get (at most limits.maxKeysPerGet)').optional(),
  flushesPerMinute: positiveInt('flush_all (rotations) per minute').optional(),
  statsPerSecond: positiveInt('stats requests per second').optional(),
  overLimit: z
    .enum(['reject', 'delay'], 'must be reject or delay')
    .default('reject')
    .describe('reject: SERVER_ERROR rate limited; delay: hold the request until the budget allows (up to maxDelayMs)'),
  maxDelayMs: positiveInt('longest a request is held in delay mode before it is rejected, in milliseconds').default(
    1000,
  ),
});

const passwordHash = (help: string) =>
  z
    .string()
    .superRefine((text, ctx) => {
      const parsed = parsePasswordHash(text);
      if (typeof parsed === 'string') ctx.addIssue({ code: 'custom', message: parsed });
    })
    .describe(help);

export const CREDENTIAL_RIGHTS = ['read-write', 'read-only', 'no-flush'] as const;
export type CredentialRights = (typeof CREDENTIAL_RIGHTS)[number];

const credentialSchema = z.strictObject({
  username: z
    .string()
    .regex(/^[\x21-\x7e]{1,128}$/, 'must be 1..128 printable ASCII characters without spaces')
    .describe('user name the client sends (ASCII auth, SASL PLAIN)'),
  password: passwordHash('password hash from `memgate hash-password`'),
  rights: z
    .enum(CREDENTIAL_RIGHTS, `must be one of ${CREDENTIAL_RIGHTS.join(', ')}`)
    .default('read-write')
    .describe('read-only: storage commands are refused; no-flush: flush_all is refused'),
  networks: z
    .array(network('IPv4 or IPv6 CIDR, or a bare address'))
    .min(1, 'must list at least one network')
    .describe('source networks this credential is accepted from (default: the tenant networks, or any)')
    .optional(),
});

const certificatesSchema = z.strictObject({
  fingerprints: z
    .array(
      z
        .string()
        .regex(
          /^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$|^[0-9A-Fa-f]{64}$/,
          'must be a SHA-256 fingerprint (hex, colons optional)',
        ),
    )
    .optional()
    .describe('SHA-256 fingerprints of client certificates that are this tenant'),
  subjects: z
    .array(z.string().min(1, 'must not be empty'))
    .optional()
    .describe('certificate subject common names (CN) that are this tenant'),
});

const tenantSchema = z
  .strictObject({
    password: passwordHash(
      'password hash from `memgate hash-password` for user name = tenant name; a tenant with a password is never identified by network alone',
    ).optional(),
    credentials: z
      .array(credentialSchema)
      .min(1, 'must list at least one credential')
      .describe('several user names / passwords, each with its rights (rotate a password with no downtime)')
      .optional(),
    certificates: certificatesSchema
      .optional()
      .describe('client certificates (on a TLS listener with a CA) that identify this tenant'),
    networks: z
      .array(network('IPv4 or IPv6 CIDR, or a bare address'))
      .min(1, 'must list at least one network (leave the key out to allow any address)')
      .describe('source networks this tenant may connect from; without a password, a peer in them *is* this tenant')
      .optional(),
    prefix: keyPrefix('secret namespace prefix; required unless admin').optional(),
    prefixes: z
      .array(keyPrefix('key prefix'))
      .min(1, 'must list at least one prefix')
      .describe('mode enforce: the key prefixes this tenant may use (default: [prefix])')
      .optional(),
    mode: z
      .enum(['namespace', 'enforce'], 'must be namespace or enforce')
      .default('namespace')
      .describe('namespace: memgate adds and strips the prefix; enforce: keys must already carry an allowed prefix'),
    admin: z
      .boolean()
      .default(false)
      .describe('admin tenants may run every command, forwarded unchanged, keys untouched'),
    limits: tenantLimitsSchema.prefault({}).describe('per-tenant limits; absent = unlimited'),
    pool: tenantName("upstream pool (a name under upstream.pools) this tenant's requests go to").default(DEFAULT_POOL),
  })
  .superRefine(
    (tenant: unknown, ctx) => {
      if (!isObject(tenant)) return;
      if (tenant.admin === true) {
        for (const key of ['prefix', 'prefixes'] as const) {
          if (tenant[key] !== undefined) {
            ctx.addIssue({
              code: 'custom',
              path: [key],
              message: 'must not be set on an admin tenant: admin keys are forwarded unchanged',
            });
          }
        }
      } else if (tenant.prefix === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['prefix'],
          message: 'is required for a non-admin tenant (its secret namespace prefix)',
        });
      }
      if (tenant.prefixes !== undefined && tenant.admin !== true && tenant.mode !== 'enforce') {
        ctx.addIssue({
          code: 'custom',
          path: ['prefixes'],
          message: 'applies only to mode: enforce (in namespace mode memgate adds `prefix` itself)',
        });
      }
      const limits = tenant.limits;
      if (isObject(limits) && limits.burst !== undefined && limits.opsPerSecond === undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['limits', 'burst'],
          message: 'needs limits.opsPerSecond (the rate the burst refills at)',
        });
      }
    },
    { when: always },
  );

const tenantsSchema = z
  .record(tenantName('tenant name'), tenantSchema, {
    error: (issue) =>
      issue.code === 'invalid_key' ? 'invalid tenant name: use 1..64 characters from A-Z a-z 0-9 _ . -' : undefined,
  })
  .superRefine(
    (tenants: unknown, ctx) => {
      if (isObject(tenants) && Object.keys(tenants).length === 0) {
        ctx.addIssue({ code: 'custom', message: 'must define at least one tenant' });
      }
    },
    // Any issue inside means some tenant was written (a rejected name is dropped from the output).
    { when: (payload) => payload.issues.length === 0 },
  )
  .describe('tenants by name');

export const configSchema = z
  .strictObject({
    listen: z.array(listenerSchema).min(1, 'must list at least one listener').describe('client listeners'),
    upstream: upstreamSchema.describe('the memcached servers behind memgate'),
    admin: adminSchema.optional().describe('admin HTTP server; absent = not started'),
    auth: authSchema.prefault({}).describe('password authentication'),
    state: stateSchema.prefault({}).describe('durable state: tenant generations and shared budgets'),
    log: logSchema.prefault({}),
    limits: limitsSchema.prefault({}).describe('protocol bounds for every connection'),
    tenants: tenantsSchema,
  })
  .superRefine(checkCrossFieldRules, { when: always });

// ─── types ─────────────────────────────────────────────────────────────────────

export type DeepReadonly<T> = T extends (infer U)[]
  ? readonly DeepReadonly<U>[]
  : T extends Buffer | ((...args: never[]) => unknown)
    ? T
    : T extends object
      ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
      : T;

/** A validated, defaulted config. `loadConfig` returns it deep-frozen. */
export type Config = DeepReadonly<z.output<typeof configSchema>>;
export type ListenerConfig = Config['listen'][number];
export type UpstreamConfig = Config['upstream'];
export type AdminConfig = NonNullable<Config['admin']>;
export type LimitsConfig = Config['limits'];
export type TenantConfig = Config['tenants'][string];
export type TenantLimitsConfig = TenantConfig['limits'];

// ─── cross-field rules ─────────────────────────────────────────────────────────

type Ctx = z.RefinementCtx;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkCrossFieldRules(config: unknown, ctx: Ctx): void {
  if (!isObject(config)) return;
  const tenants = isObject(config.tenants) ? config.tenants : undefined;
  checkListeners(config, tenants, ctx);
  if (tenants === undefined) return;
  checkTenantPools(tenants, isObject(config.upstream) ? config.upstream : {}, ctx);
  checkPrefixOverlap(tenants, ctx);
  checkNetworkClaims(tenants, ctx);
  checkUsernames(tenants, ctx);
  checkTenantLimits(tenants, isObject(config.limits) ? config.limits : {}, ctx);
}

function checkTenantPools(tenants: Record<string, unknown>, upstream: Record<string, unknown>, ctx: Ctx): void {
  const pools = isObject(upstream.pools) ? Object.keys(upstream.pools) : [];
  for (const [name, tenant] of Object.entries(tenants)) {
    if (!isObject(tenant) || typeof tenant.pool !== 'string' || tenant.pool === DEFAULT_POOL) continue;
    if (!pools.includes(tenant.pool)) {
      ctx.addIssue({
        code: 'custom',
        path: ['tenants', name, 'pool'],
        message: `names pool "${tenant.pool}", which is not under upstream.pools (pools: ${[DEFAULT_POOL, ...pools].join(', ')})`,
      });
    }
  }
}

interface Endpoint {
  readonly host: string;
  readonly port: number;
  readonly label: string;
}

function clashes(a: Endpoint, b: Endpoint): boolean {
  return (
    a.port !== 0 && a.port === b.port && (a.host === b.host || WILDCARD_HOSTS.has(a.host) || WILDCARD_HOSTS.has(b.host))
  );
}

function checkListeners(config: Record<string, unknown>, tenants: Record<string, unknown> | undefined, ctx: Ctx): void {
  const endpoints: Endpoint[] = [];
  const listen = Array.isArray(config.listen) ? (config.listen as unknown[]) : [];
  listen.forEach((listener, i) => {
    if (!isObject(listener)) return;
    const tenant = listener.tenant;
    if (typeof tenant === 'string' && tenants !== undefined && !Object.hasOwn(tenants, tenant)) {
      const known = Object.keys(tenants);
      ctx.addIssue({
        code: 'custom',
        path: ['listen', i, 'tenant'],
        message: `names tenant "${tenant}", which is not configured (tenants: ${known.length > 0 ? known.join(', ') : 'none'})`,
      });
    }
    if (typeof listener.host !== 'string' || typeof listener.port !== 'number') return;
    const endpoint = { host: listener.host, port: listener.port, label: `listen[${i}]` };
    const other = endpoints.find((e) => clashes(e, endpoint));
    if (other !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['listen', i, 'port'],
        message: `${endpoint.host}:${endpoint.port} clashes with ${other.label} (${other.host}:${other.port})`,
      });
    }
    endpoints.push(endpoint);
  });
  const admin = config.admin;
  if (isObject(admin) && typeof admin.host === 'string' && typeof admin.port === 'number') {
    const endpoint = { host: admin.host, port: admin.port, label: 'admin' };
    const other = endpoints.find((e) => clashes(e, endpoint));
    if (other !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['admin', 'port'],
        message: `${endpoint.host}:${endpoint.port} clashes with ${other.label} (${other.host}:${other.port})`,
      });
    }
  }
}

interface PrefixClaim {
  readonly tenant: string;
  readonly prefix: string;
  readonly isNamespace: boolean;
  readonly path: (string | number)[];
}

/**
 * A namespace tenant's keys are `prefix + generation + key`. If another tenant's
 * prefix equals it, or one starts with the other, that tenant can name keys inside
 * this one's namespace. Two enforce tenants may share prefixes on purpose (a shared
 * keyspace), so only pairs involving a namespace tenant are checked.
 */
function checkPrefixOverlap(tenants: Record<string, unknown>, ctx: Ctx): void {
  const claims: PrefixClaim[] = [];
  for (const [name, tenant] of Object.entries(tenants)) {
    if (!isObject(tenant) || tenant.admin === true) continue;
    if (tenant.mode === 'enforce') {
      if (Array.isArray(tenant.prefixes)) {
        tenant.prefixes.forEach((prefix: unknown, j) => {
          if (typeof prefix === 'string' && prefix !== '') {
            claims.push({ tenant: name, prefix, isNamespace: false, path: ['tenants', name, 'prefixes', j] });
          }
        });
      } else if (typeof tenant.prefix === 'string' && tenant.prefix !== '') {
        claims.push({ tenant: name, prefix: tenant.prefix, isNamespace: false, path: ['tenants', name, 'prefix'] });
      }
    } else if (typeof tenant.prefix === 'string' && tenant.prefix !== '') {
      claims.push({ tenant: name, prefix: tenant.prefix, isNamespace: true, path: ['tenants', name, 'prefix'] });
    }
  }
  for (let j = 1; j < claims.length; j++) {
    const b = claims[j];
    if (b === undefined) continue;
    for (let i = 0; i < j; i++) {
      const a = claims[i];
      if (a === undefined || a.tenant === b.tenant || !(a.isNamespace || b.isNamespace)) continue;
      if (!a.prefix.startsWith(b.prefix) && !b.prefix.startsWith(a.prefix)) continue;
      const message =
        a.prefix === b.prefix
          ? `"${b.prefix}" is also tenant "${a.tenant}"'s prefix: the two tenants would share keys`
          : `"${b.prefix}" overlaps tenant "${a.tenant}"'s prefix "${a.prefix}" (one starts with the other): one tenant could reach the other's keys`;
      ctx.addIssue({ code: 'custom', path: b.path, message });
    }
  }
}

function hasCredentials(tenant: Record<string, unknown>): boolean {
  return tenant.password !== undefined || tenant.credentials !== undefined;
}

/** A user name names one credential of one tenant; `password` is the credential with user name = tenant name. */
function checkUsernames(tenants: Record<string, unknown>, ctx: Ctx): void {
  const owner = new Map<string, string>();
  const claim = (user: string, tenant: string, path: (string | number)[]): void => {
    const other = owner.get(user);
    if (other === undefined) owner.set(user, tenant);
    else
      ctx.addIssue({
        code: 'custom',
        path,
        message: `user name "${user}" is already used by ${other === tenant ? 'this tenant' : `tenant "${other}"`}`,
      });
  };
  for (const [name, tenant] of Object.entries(tenants)) {
    if (!isObject(tenant)) continue;
    if (tenant.password !== undefined) claim(name, name, ['tenants', name, 'password']);
    if (!Array.isArray(tenant.credentials)) continue;
    tenant.credentials.forEach((cred: unknown, j) => {
      if (isObject(cred) && typeof cred.username === 'string') {
        claim(cred.username, name, ['tenants', name, 'credentials', j, 'username']);
      }
    });
  }
}

/** Tenants without a password are identified by network; two claiming one network could not be told apart. */
function checkNetworkClaims(tenants: Record<string, unknown>, ctx: Ctx): void {
  const claimedBy = new Map<string, string>();
  for (const [name, tenant] of Object.entries(tenants)) {
    if (!isObject(tenant) || hasCredentials(tenant) || !Array.isArray(tenant.networks)) continue;
    tenant.networks.forEach((text: unknown, j) => {
      if (typeof text !== 'string') return;
      const { cidr } = tryParseCidr(text);
      if (cidr === undefined) return;
      const other = claimedBy.get(cidr.key);
      if (other === undefined) claimedBy.set(cidr.key, name);
      else if (other !== name) {
        ctx.addIssue({
          code: 'custom',
          path: ['tenants', name, 'networks', j],
          message: `"${text}" is also claimed by tenant "${other}"; neither has a password, so a peer there could not be told apart`,
        });
      }
    });
  }
}

function checkTenantLimits(tenants: Record<string, unknown>, limits: Record<string, unknown>, ctx: Ctx): void {
  const bounds = [
    ['maxItemBytes', 'maxValueBytes', MAX_VALUE_BYTES],
    ['maxKeysPerGet', 'maxKeysPerGet', MAX_KEYS_PER_GET],
  ] as const;
  for (const [name, tenant] of Object.entries(tenants)) {
    if (!isObject(tenant) || !isObject(tenant.limits)) continue;
    for (const [tenantKey, globalKey, fallback] of bounds) {
      const value = tenant.limits[tenantKey];
      const globalValue = typeof limits[globalKey] === 'number' ? limits[globalKey] : fallback;
      if (typeof value === 'number' && value > globalValue) {
        ctx.addIssue({
          code: 'custom',
          path: ['tenants', name, 'limits', tenantKey],
          message: `must not exceed limits.${globalKey} (${globalValue})`,
        });
      }
    }
  }
}
