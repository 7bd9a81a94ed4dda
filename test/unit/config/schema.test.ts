import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/config/errors.js';
import { parseConfigText } from '../../../src/config/load.js';
import { configSchema, parseHostPort, tryParseHostPort } from '../../../src/config/schema.js';

/** A config with the given `tenants:` block and optional extra top-level YAML. */
function yaml(tenants: string, extra = '', listen = '  - { host: 127.0.0.1, port: 11211 }'): string {
  return `listen:\n${listen}\nupstream:\n  servers: [ "127.0.0.1:11212" ]\n${extra}tenants:\n${tenants}`;
}

function problems(text: string): string[] {
  try {
    parseConfigText(text, 'm.yaml', {});
  } catch (err) {
    if (err instanceof ConfigError) return err.issues.map((i) => `${i.path}: ${i.message}`);
    throw err;
  }
  return [];
}

describe('tenants', () => {
  it('rejects namespace tenants with equal prefixes', () => {
    expect(problems(yaml('  shop: { prefix: "q7:" }\n  blog: { prefix: "q7:" }\n'))).toEqual([
      'tenants.blog.prefix: "q7:" is also tenant "shop"\'s prefix: the two tenants would share keys',
    ]);
  });

  it('rejects namespace prefixes where one starts with the other, either way round', () => {
    expect(problems(yaml('  shop: { prefix: "q7" }\n  blog: { prefix: "q7Zk:" }\n'))).toEqual([
      'tenants.blog.prefix: "q7Zk:" overlaps tenant "shop"\'s prefix "q7" (one starts with the other): one tenant could reach the other\'s keys',
    ]);
    expect(problems(yaml('  shop: { prefix: "q7Zk:" }\n  blog: { prefix: "q7" }\n'))).toHaveLength(1);
  });

  it('rejects an enforce prefix that reaches into a namespace tenant', () => {
    const text = yaml(
      '  shop: { prefix: "q7Zk:" }\n  app: { prefix: "app:", mode: enforce, prefixes: [ "app:", "q" ] }\n',
    );
    expect(problems(text)).toEqual([
      'tenants.app.prefixes[1]: "q" overlaps tenant "shop"\'s prefix "q7Zk:" (one starts with the other): one tenant could reach the other\'s keys',
    ]);
  });

  it('lets two enforce tenants share a keyspace on purpose', () => {
    const text = yaml('  a: { prefix: "app:", mode: enforce }\n  b: { prefix: "app:", mode: enforce }\n');
    expect(problems(text)).toEqual([]);
  });

  it('accepts prefixes that merely share a beginning', () => {
    expect(problems(yaml('  shop: { prefix: "q7a:" }\n  blog: { prefix: "q7b:" }\n'))).toEqual([]);
  });

  it('requires a prefix unless admin, and forbids one on an admin tenant', () => {
    expect(
      problems(yaml('  shop: { mode: namespace }\n  ops: { admin: true, prefix: "o:", prefixes: [ "o:" ] }\n')),
    ).toEqual([
      'tenants.shop.prefix: is required for a non-admin tenant (its secret namespace prefix)',
      'tenants.ops.prefix: must not be set on an admin tenant: admin keys are forwarded unchanged',
      'tenants.ops.prefixes: must not be set on an admin tenant: admin keys are forwarded unchanged',
    ]);
    expect(problems(yaml('  ops: { admin: true }\n'))).toEqual([]);
  });

  it('allows prefixes only in enforce mode', () => {
    expect(problems(yaml('  shop: { prefix: "s:", prefixes: [ "s:" ] }\n'))).toEqual([
      'tenants.shop.prefixes: applies only to mode: enforce (in namespace mode memgate adds `prefix` itself)',
    ]);
  });

  it('bounds a prefix to 1..64 printable ASCII bytes', () => {
    expect(problems(yaml(`  a: { prefix: "${'x'.repeat(64)}" }\n`))).toEqual([]);
    expect(problems(yaml(`  a: { prefix: "${'x'.repeat(65)}" }\n`))).toEqual([
      'tenants.a.prefix: must be at most 64 bytes',
    ]);
    expect(problems(yaml('  a: { prefix: "" }\n'))).toEqual(['tenants.a.prefix: must not be empty']);
    expect(problems(yaml('  a: { prefix: "caf\u00e9:" }\n'))[0]).toContain('may contain only printable ASCII');
    expect(problems(yaml('  a: { prefix: "tab\\t" }\n'))[0]).toContain('may contain only printable ASCII');
  });

  it('checks tenant names', () => {
    expect(problems(yaml('  Shop_1.v2-x: { prefix: "s:" }\n'))).toEqual([]);
    expect(problems(yaml(`  ${'n'.repeat(65)}: { prefix: "s:" }\n`))).toEqual([
      `tenants.${'n'.repeat(65)}: invalid tenant name: use 1..64 characters from A-Z a-z 0-9 _ . -`,
    ]);
    expect(problems(yaml('  "sh/op": { prefix: "s:" }\n'))).toEqual([
      'tenants["sh/op"]: invalid tenant name: use 1..64 characters from A-Z a-z 0-9 _ . -',
    ]);
  });

  it('needs at least one tenant', () => {
    expect(problems(yaml('  {}\n'))).toEqual(['tenants: must define at least one tenant']);
  });

  it('checks networks and rejects two password-less tenants claiming the same one', () => {
    const text = yaml(
      '  a: { prefix: "a:", networks: [ "10.0.0.0/8", "bogus" ] }\n  b: { prefix: "b:", networks: [ "::ffff:10.0.0.0/104" ] }\n  c: { prefix: "c:", password: "scrypt$15$8$1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U=", networks: [ "10.0.0.0/8" ] }\n',
    );
    expect(problems(text)).toEqual([
      'tenants.a.networks[1]: "bogus" is not an IPv4 or IPv6 address or CIDR network',
      'tenants.b.networks[0]: "::ffff:10.0.0.0/104" is also claimed by tenant "a"; neither has a password, so a peer there could not be told apart',
    ]);
    expect(problems(yaml('  a: { prefix: "a:", networks: [] }\n'))).toEqual([
      'tenants.a.networks: must list at least one network (leave the key out to allow any address)',
    ]);
  });

  it('checks tenant limits', () => {
    expect(
      problems(
        yaml('  a: { prefix: "a:", limits: { burst: 10, maxItemBytes: 2000000, maxKeysPerGet: 0, rate: 1 } }\n'),
      ),
    ).toEqual([
      'tenants.a.limits.maxKeysPerGet: must be at least 1',
      'tenants.a.limits.rate: unknown key "rate"',
      'tenants.a.limits.burst: needs limits.opsPerSecond (the rate the burst refills at)',
      'tenants.a.limits.maxItemBytes: must not exceed limits.maxValueBytes (1048576)',
    ]);
    expect(
      problems(
        yaml('  a: { prefix: "a:", limits: { maxItemBytes: 2000000 } }\n', 'limits: { maxValueBytes: 4000000 }\n'),
      ),
    ).toEqual([]);
  });
});

describe('listeners', () => {
  it('rejects a listener bound to a tenant that is not configured', () => {
    const text = yaml('  shop: { prefix: "s:" }\n', '', '  - { host: 127.0.0.1, port: 11411, tenant: ops }');
    expect(problems(text)).toEqual(['listen[0].tenant: names tenant "ops", which is not configured (tenants: shop)']);
  });

  it('needs at least one listener', () => {
    expect(problems(yaml('  shop: { prefix: "s:" }\n', '', '  []'))).toEqual([
      'listen: must list at least one listener',
    ]);
  });

  it('rejects two listeners on the same port of one address, or of a wildcard address', () => {
    const listen = [
      '  - { host: 127.0.0.1, port: 11211 }',
      '  - { host: 127.0.0.1, port: 11211 }',
      '  - { host: 0.0.0.0, port: 11311 }',
      '  - { host: 10.0.0.1, port: 11311 }',
      '  - { host: 127.0.0.1, port: 0 }',
      '  - { host: 127.0.0.1, port: 0 }',
    ].join('\n');
    expect(problems(yaml('  shop: { prefix: "s:" }\n', 'admin: { port: 11211 }\n', listen))).toEqual([
      'listen[1].port: 127.0.0.1:11211 clashes with listen[0] (127.0.0.1:11211)',
      'listen[3].port: 10.0.0.1:11311 clashes with listen[2] (0.0.0.0:11311)',
      'admin.port: 127.0.0.1:11211 clashes with listen[0] (127.0.0.1:11211)',
    ]);
  });

  it('checks hosts and TLS settings', () => {
    const listen = [
      '  - { host: "not a host", port: 1 }',
      '  - { host: "::", port: 2, tls: { cert: c.pem } }',
      '  - { host: memgate.internal, port: 3, tls: { cert: c.pem, key: k.pem, ca: ca.pem } }',
    ].join('\n');
    expect(problems(yaml('  shop: { prefix: "s:" }\n', '', listen))).toEqual([
      'listen[0].host: must be an IP address or a host name',
      'listen[1].tls.key: is required',
    ]);
  });
});

describe('upstream, admin, state', () => {
  it('parses upstream servers, IPv6 in brackets included', () => {
    expect(parseHostPort('127.0.0.1:11211')).toEqual({ host: '127.0.0.1', port: 11211 });
    expect(parseHostPort('[::1]:11211')).toEqual({ host: '::1', port: 11211 });
    expect(parseHostPort('memcached:11211')).toEqual({ host: 'memcached', port: 11211 });
    expect(tryParseHostPort('::1:11211')).toContain('must be "host:port"');
    expect(tryParseHostPort('[1.2.3.4]:11211')).toContain('must be "host:port"');
    expect(tryParseHostPort('host:0')).toBe('"host:0": port must be from 1 to 65535');
    expect(tryParseHostPort('host:99999')).toBe('"host:99999": port must be from 1 to 65535');
    expect(() => parseHostPort('host')).toThrow('must be "host:port"');
  });

  it('rejects duplicate servers, an empty list and backoffMinMs above backoffMaxMs', () => {
    const text = `listen: [ { host: 127.0.0.1, port: 1 } ]
upstream: { servers: [ "a:1", "a:1" ], backoffMinMs: 300, backoffMaxMs: 200 }
tenants: { shop: { prefix: "s:" } }
`;
    expect(problems(text)).toEqual([
      'upstream.backoffMaxMs: must be at least backoffMinMs (300)',
      'upstream.servers[1]: "a:1" is listed twice (also servers[0])',
    ]);
    expect(problems(text.replace('[ "a:1", "a:1" ], backoffMinMs: 300', '[], backoffMinMs: 100'))).toEqual([
      'upstream.servers: must list at least one memcached server',
    ]);
  });

  it('requires an admin token when the admin server is not on loopback', () => {
    expect(problems(yaml('  s: { prefix: "s:" }\n', 'admin: { host: 0.0.0.0 }\n'))).toEqual([
      'admin.token: is required when the admin server listens on a non-loopback address (0.0.0.0); set it or MEMGATE_ADMIN_TOKEN',
    ]);
    expect(problems(yaml('  s: { prefix: "s:" }\n', 'admin: { host: 0.0.0.0, token: "0123456789abcdef" }\n'))).toEqual(
      [],
    );
    expect(problems(yaml('  s: { prefix: "s:" }\n', 'admin: { host: "::1" }\n'))).toEqual([]);
    expect(problems(yaml('  s: { prefix: "s:" }\n', 'admin: { host: localhost }\n'))).toEqual([]);
  });

  it('accepts file and redis state URLs only', () => {
    for (const url of ['file:/var/lib/memgate/state.json', 'redis://127.0.0.1:6379/0', 'rediss://cache:6380']) {
      expect(problems(yaml('  s: { prefix: "s:" }\n', `state: { url: "${url}" }\n`))).toEqual([]);
    }
    for (const url of ['/tmp/state.json', 'file:', 'http://x', 'redis://']) {
      expect(problems(yaml('  s: { prefix: "s:" }\n', `state: { url: "${url}" }\n`))).toEqual([
        'state.url: must be "file:<path>" or "redis://host:port[/db]" (or "rediss://…")',
      ]);
    }
  });
});

describe('configSchema', () => {
  it('carries help text for each option', () => {
    const upstream = configSchema.shape.upstream;
    expect(upstream.description).toBe('the memcached servers behind memgate');
  });
});
