import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/config/errors.js';
import { formatPath, loadConfig, parseConfigText } from '../../../src/config/load.js';

const MINIMAL = `
listen:
  - { host: 127.0.0.1, port: 11311, tenant: shop }
upstream:
  servers: [ "127.0.0.1:11212" ]
tenants:
  shop:
    prefix: "q7Zk2:"
`;

/** The problems parseConfigText reports, formatted as the CLI prints them. */
function problems(text: string, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseConfigText(text, 'memgate.yaml', env);
  } catch (err) {
    if (err instanceof ConfigError) return err.lines();
    throw err;
  }
  throw new Error('expected the config to be rejected');
}

describe('parseConfigText', () => {
  it('accepts a minimal config and fills in every default', () => {
    const config = parseConfigText(MINIMAL, 'memgate.yaml', {});
    expect(config.upstream).toEqual({
      servers: ['127.0.0.1:11212'],
      connectionsPerServer: 2,
      connectTimeoutMs: 1000,
      requestTimeoutMs: 2000,
      backoffMinMs: 50,
      backoffMaxMs: 2000,
      distribution: 'ketama',
      failureLimit: 3,
      ejectHosts: false,
      retryAfterMs: 1000,
      metaGets: true,
    });
    expect(config.state).toEqual({ url: 'file:./memgate-state.json', keyPrefix: 'memgate:', sentinelName: 'mymaster' });
    expect(config.log).toEqual({ level: 'info' });
    expect(config.limits).toEqual({
      maxLineBytes: expect.any(Number),
      maxValueBytes: 1048576,
      maxKeysPerGet: 10_000,
      maxInFlightPerSession: 1024,
      maxPendingReplyBytesPerSession: 8 * 1024 * 1024,
      maxConnections: 10_000,
      maxConnectionsPerAddress: 0,
      idleTimeoutMs: 0,
      requestTimeoutMs: 30_000,
      authTimeoutMs: 10_000,
      memoryHighWatermarkBytes: 0,
    });
    expect(config.limits.maxLineBytes).toBeGreaterThanOrEqual(2048);
    expect(config.admin).toBeUndefined();
    expect(config.tenants.shop).toEqual({
      prefix: 'q7Zk2:',
      mode: 'namespace',
      admin: false,
      limits: { overLimit: 'reject', maxDelayMs: 1000 },
      pool: 'default',
    });
    expect(config.listen).toEqual([{ host: '127.0.0.1', port: 11311, tenant: 'shop' }]);
  });

  it('fills admin defaults when the section is present', () => {
    const config = parseConfigText(`${MINIMAL}admin: {}\n`, 'memgate.yaml', {});
    expect(config.admin).toEqual({ host: '127.0.0.1', port: 9211 });
  });

  it('returns a deep-frozen config', () => {
    const config = parseConfigText(MINIMAL, 'memgate.yaml', {});
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.listen)).toBe(true);
    expect(Object.isFrozen(config.listen[0])).toBe(true);
    expect(Object.isFrozen(config.tenants.shop)).toBe(true);
    expect(Object.isFrozen(config.tenants.shop?.limits)).toBe(true);
    expect(Object.isFrozen(config.upstream.servers)).toBe(true);
    expect(() => {
      (config.upstream as { requestTimeoutMs: number }).requestTimeoutMs = 1;
    }).toThrow(TypeError);
  });

  it('rejects an unknown key, naming the key and its line', () => {
    const text = MINIMAL.replace('    prefix: "q7Zk2:"', '    prefix: "q7Zk2:"\n    prefx: "oops"');
    expect(problems(text)).toEqual([
      'memgate.yaml:9: tenants.shop.prefx: unknown key "prefx" (did you mean "prefix"?)',
    ]);
  });

  it('rejects unknown keys at the top level, in lists and in flow mappings', () => {
    const text = `listen:
  - { host: 127.0.0.1, port: 11311, tenant: shop, tls_cert: x.pem }
upstream:
  servers: [ "127.0.0.1:11212" ]
tenants:
  shop: { prefix: "q7Zk2:" }
metrics: true
`;
    expect(problems(text)).toEqual([
      'memgate.yaml:2: listen[0].tls_cert: unknown key "tls_cert"',
      'memgate.yaml:7: metrics: unknown key "metrics"',
    ]);
  });

  it('reports every problem together, in line order', () => {
    const text = `listen:
  - { host: 127.0.0.1, port: 0 }
  - { host: 127.0.0.1, port: 70000 }
upstream:
  servers: [ "127.0.0.1" ]
  requestTimeoutMs: -5
log: { level: loud }
tenants:
  shop:
    mode: namespaced
    limits: { connections: "many" }
  blog:
    prefix: "has space"
`;
    expect(problems(text)).toEqual([
      'memgate.yaml:3: listen[1].port: must be a port number from 1 to 65535 (or 0 for any free port)',
      'memgate.yaml:5: upstream.servers[0]: "127.0.0.1" must be "host:port", "host:port:weight" (or "[ipv6]:port[:weight]")',
      'memgate.yaml:6: upstream.requestTimeoutMs: must be at least 1',
      'memgate.yaml:7: log.level: must be one of fatal, error, warn, info, debug, trace, silent',
      'memgate.yaml:9: tenants.shop.prefix: is required for a non-admin tenant (its secret namespace prefix)',
      'memgate.yaml:10: tenants.shop.mode: must be namespace or enforce',
      'memgate.yaml:11: tenants.shop.limits.connections: must be a number, not the string "many"',
      'memgate.yaml:13: tenants.blog.prefix: may contain only printable ASCII (0x21..0x7e): no spaces, control or non-ASCII characters',
    ]);
  });

  it('points a missing section at the document, and a missing key at its parent', () => {
    const lines = problems('listen:\n  - { host: 127.0.0.1, port: 1 }\ntenants:\n  shop: { prefix: "x:" }\n');
    expect(lines).toEqual(['memgate.yaml:1: upstream: is required']);
    const missingPort = problems(MINIMAL.replace('port: 11311, ', ''));
    expect(missingPort).toEqual(['memgate.yaml:3: listen[0].port: is required']);
  });

  it('reports YAML syntax errors and duplicate keys with their lines', () => {
    expect(problems(`${MINIMAL}upstream:\n  servers: []\n`)).toEqual(['memgate.yaml:9: YAML: Map keys must be unique']);
    expect(problems('listen: [\n')[0]).toMatch(/^memgate\.yaml:\d+: YAML: /);
  });

  it('rejects an empty file and a file that is not a mapping', () => {
    expect(problems('')).toEqual(['memgate.yaml:1: the config file is empty']);
    expect(problems('# only a comment\n')).toEqual(['memgate.yaml:1: the config file is empty']);
    expect(problems('- a\n- b\n')).toEqual(['memgate.yaml:1: must be a mapping, not a list']);
  });

  it('reports a "__proto__" key instead of letting it vanish', () => {
    const text = MINIMAL.replace('  shop:\n', '  __proto__: { prefix: "zz:" }\n  shop:\n');
    expect(problems(text)).toEqual(['memgate.yaml:7: tenants.__proto__: reserved key "__proto__" is not allowed']);
  });

  it('expands YAML aliases and merge keys', () => {
    const text = `${MINIMAL}    limits: &small { opsPerSecond: 10, connections: 2 }
  blog:
    prefix: "Hb41x:"
    limits: { <<: *small, connections: 5 }
`;
    const config = parseConfigText(text, 'memgate.yaml', {});
    expect(config.tenants.blog?.limits).toEqual({
      opsPerSecond: 10,
      connections: 5,
      overLimit: 'reject',
      maxDelayMs: 1000,
    });
  });

  it('names the tenant key in brackets when it is not a plain identifier', () => {
    expect(problems(`${MINIMAL}  "bad name": { prefix: "b:" }\n`)).toEqual([
      'memgate.yaml:9: tenants["bad name"]: invalid tenant name: use 1..64 characters from A-Z a-z 0-9 _ . -',
    ]);
  });
});

describe('environment', () => {
  const withAdmin = `${MINIMAL}admin: { host: 127.0.0.1, port: 9211 }\n`;
  const token = 'a-long-enough-secret-token';

  it('takes admin.token from MEMGATE_ADMIN_TOKEN', () => {
    const config = parseConfigText(withAdmin, 'memgate.yaml', { MEMGATE_ADMIN_TOKEN: token });
    expect(config.admin?.token).toBe(token);
  });

  it('lets MEMGATE_ADMIN_TOKEN override a token in the file', () => {
    const text = withAdmin.replace('port: 9211', 'port: 9211, token: "file-token-file-token"');
    expect(parseConfigText(text, 'memgate.yaml', {}).admin?.token).toBe('file-token-file-token');
    expect(parseConfigText(text, 'memgate.yaml', { MEMGATE_ADMIN_TOKEN: token }).admin?.token).toBe(token);
  });

  it('fills an empty admin section, and does not start an admin server from the env alone', () => {
    expect(parseConfigText(`${MINIMAL}admin:\n`, 'memgate.yaml', { MEMGATE_ADMIN_TOKEN: token }).admin).toEqual({
      host: '127.0.0.1',
      port: 9211,
      token,
    });
    expect(parseConfigText(MINIMAL, 'memgate.yaml', { MEMGATE_ADMIN_TOKEN: token }).admin).toBeUndefined();
  });

  it('says when a bad token came from the environment', () => {
    expect(problems(withAdmin, { MEMGATE_ADMIN_TOKEN: 'short' })).toEqual([
      'memgate.yaml:9: admin.token: must be at least 16 characters (from env MEMGATE_ADMIN_TOKEN)',
    ]);
  });

  it('defaults to process.env', () => {
    const saved = process.env.MEMGATE_ADMIN_TOKEN;
    process.env.MEMGATE_ADMIN_TOKEN = token;
    try {
      expect(parseConfigText(withAdmin, 'memgate.yaml').admin?.token).toBe(token);
    } finally {
      if (saved === undefined) delete process.env.MEMGATE_ADMIN_TOKEN;
      else process.env.MEMGATE_ADMIN_TOKEN = saved;
    }
  });
});

describe('loadConfig', () => {
  it('reads a file and labels problems with its path', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memgate-config-'));
    const file = path.join(dir, 'memgate.yaml');
    fs.writeFileSync(file, MINIMAL);
    expect(loadConfig(file, {}).tenants.shop?.prefix).toBe('q7Zk2:');
    fs.writeFileSync(file, `${MINIMAL}bogus: 1\n`);
    expect(() => loadConfig(file, {})).toThrow(`${file}:9: bogus: unknown key "bogus"`);
    fs.rmSync(dir, { recursive: true });
  });

  it('throws a ConfigError with code ERR_CONFIG_INVALID for a missing file', () => {
    const file = path.join(os.tmpdir(), 'memgate-does-not-exist.yaml');
    let caught: unknown;
    try {
      loadConfig(file, {});
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).code).toBe('ERR_CONFIG_INVALID');
    expect((caught as ConfigError).issues).toEqual([{ path: '', message: 'cannot read config file (ENOENT)' }]);
  });

  it('loads the docker example config', () => {
    const config = loadConfig(path.join(import.meta.dirname, '../../../docker/config/example.yaml'), {});
    expect(Object.keys(config.tenants)).toEqual(['shop', 'blog', 'cart', 'ops']);
    expect(config.listen.map((l) => `${l.host}:${l.port}${l.tenant === undefined ? '' : ` ${l.tenant}`}`)).toEqual([
      '127.0.0.1:11211',
      '127.0.0.1:11311 shop',
      '127.0.0.1:11312 blog',
      '127.0.0.1:11411 ops',
    ]);
    expect(config.tenants.ops?.admin).toBe(true);
    expect(config.upstream.servers).toEqual(['127.0.0.1:11212']);
  });
});

describe('formatPath', () => {
  it.each([
    [[], ''],
    [['tenants', 'shop', 'prefix'], 'tenants.shop.prefix'],
    [['listen', 1, 'port'], 'listen[1].port'],
    [['tenants', 'shop.v2', 'prefix'], 'tenants["shop.v2"].prefix'],
  ])('%j → %s', (segments, text) => {
    expect(formatPath(segments)).toBe(text);
  });
});
