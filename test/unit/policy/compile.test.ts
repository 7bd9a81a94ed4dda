import { describe, expect, it } from 'vitest';
import { parseConfigText } from '../../../src/config/load.js';
import { compilePolicy, type CompiledPolicy } from '../../../src/policy/compile.js';

function compile(tenants: string, listen = '  - { host: 127.0.0.1, port: 11211 }'): CompiledPolicy {
  const text = `listen:\n${listen}\nupstream:\n  servers: [ "127.0.0.1:11212" ]\ntenants:\n${tenants}`;
  return compilePolicy(parseConfigText(text, 'test.yaml', {}));
}

describe('compilePolicy', () => {
  it('encodes prefixes once and fills unlimited limits with 0', () => {
    const policy = compile(
      [
        '  shop: { prefix: "q7Zk2:", limits: { opsPerSecond: 100, connections: 5 } }',
        '  app: { prefix: "app:", mode: enforce, prefixes: [ "app:", "cart:" ], limits: { opsPerSecond: 10, burst: 50 } }',
        '  legacy: { prefix: "legacy:", mode: enforce }',
        '  ops: { admin: true, password: "scrypt$15$8$1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U=" }',
        '',
      ].join('\n'),
    );
    const shop = policy.tenants.get('shop');
    expect(shop).toMatchObject({ name: 'shop', admin: false, mode: 'namespace', networks: null, hasPassword: false });
    expect(shop?.prefix.equals(Buffer.from('q7Zk2:', 'latin1'))).toBe(true);
    expect(shop?.prefixes).toEqual([]);
    expect(shop?.limits).toEqual({
      opsPerSecond: 100,
      burst: 100,
      bytesPerSecond: 0,
      connections: 5,
      maxItemBytes: 0,
      maxKeysPerGet: 0,
      flushesPerMinute: 0,
      statsPerSecond: 0,
      delayOverLimit: false,
      maxDelayMs: 1000,
    });

    const app = policy.tenants.get('app');
    expect(app?.mode).toBe('enforce');
    expect(app?.prefixes.map((p) => p.toString('latin1'))).toEqual(['app:', 'cart:']);
    expect(app?.limits).toMatchObject({ opsPerSecond: 10, burst: 50 });
    expect(policy.tenants.get('legacy')?.prefixes.map((p) => p.toString('latin1'))).toEqual(['legacy:']);

    const ops = policy.tenants.get('ops');
    expect(ops).toMatchObject({ admin: true, hasPassword: true });
    expect(ops?.prefix.length).toBe(0);
    expect(ops?.prefixes).toEqual([]);
  });

  it('freezes every tenant policy', () => {
    const shop = compile('  shop: { prefix: "s:" }\n').tenants.get('shop');
    expect(Object.isFrozen(shop)).toBe(true);
    expect(Object.isFrozen(shop?.limits)).toBe(true);
    expect(Object.isFrozen(shop?.prefixes)).toBe(true);
  });

  it('keeps config order in the tenants map', () => {
    expect([...compile('  b: { prefix: "b:" }\n  a: { prefix: "a:" }\n').tenants.keys()]).toEqual(['b', 'a']);
  });

  it('compiles networks into a predicate', () => {
    const shop = compile('  shop: { prefix: "s:", networks: [ "203.0.113.0/24", "2001:db8::/32" ] }\n').tenants.get(
      'shop',
    );
    expect(shop?.networks?.('203.0.113.7')).toBe(true);
    expect(shop?.networks?.('::ffff:203.0.113.7')).toBe(true);
    expect(shop?.networks?.('2001:db8::5')).toBe(true);
    expect(shop?.networks?.('198.51.100.1')).toBe(false);
  });
});

describe('identify', () => {
  const policy = compile(
    [
      '  lan: { prefix: "lan:", networks: [ "10.0.0.0/8" ] }',
      '  build: { prefix: "build:", networks: [ "10.20.0.0/16", "2001:db8:20::/48" ] }',
      '  box: { prefix: "box:", networks: [ "10.20.30.40" ] }',
      '  v6: { prefix: "v6:", networks: [ "2001:db8::/32" ] }',
      '  secret: { prefix: "sec:", password: "scrypt$15$8$1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U=", networks: [ "10.20.30.0/24" ] }',
      '  shop: { prefix: "shop:", networks: [ "203.0.113.0/24" ] }',
      '  bound: { prefix: "bound:" }',
      '  ops: { admin: true, networks: [ "127.0.0.1", "::1" ] }',
      '',
    ].join('\n'),
    [
      '  - { host: 0.0.0.0, port: 11211 }',
      '  - { host: 0.0.0.0, port: 11311, tenant: shop }',
      '  - { host: 0.0.0.0, port: 11312, tenant: bound }',
    ].join('\n'),
  );
  const who = (listenerTenant: string | undefined, peer: string): string | null =>
    policy.identify(listenerTenant, peer)?.name ?? null;

  it('picks the most specific matching network', () => {
    expect(who(undefined, '10.1.1.1')).toBe('lan');
    expect(who(undefined, '10.20.1.1')).toBe('build');
    expect(who(undefined, '10.20.30.40')).toBe('box');
    expect(who(undefined, '2001:db8:20::1')).toBe('build');
    expect(who(undefined, '2001:db8:21::1')).toBe('v6');
  });

  it('normalises IPv4-mapped IPv6 peers', () => {
    expect(who(undefined, '::ffff:10.20.30.40')).toBe('box');
    expect(who(undefined, '::ffff:127.0.0.1')).toBe('ops');
  });

  it('never identifies a tenant with a password by network alone', () => {
    // 10.20.30.0/24 belongs to "secret", but it has a password: the next most specific network wins.
    expect(who(undefined, '10.20.30.1')).toBe('build');
  });

  it('never identifies a tenant without networks by address', () => {
    expect(who(undefined, '192.0.2.1')).toBeNull();
    expect(who(undefined, 'fe80::1')).toBeNull();
    expect(who(undefined, '')).toBeNull();
  });

  it("prefers the listener's bound tenant over any network match", () => {
    expect(who('bound', '10.20.30.40')).toBe('bound');
    expect(who('bound', '192.0.2.1')).toBe('bound');
  });

  it("still checks a bound tenant's networks", () => {
    expect(who('shop', '203.0.113.9')).toBe('shop');
    expect(who('shop', '::ffff:203.0.113.9')).toBe('shop');
    expect(who('shop', '10.1.1.1')).toBeNull();
    expect(who('ops', '::1')).toBe('ops');
    expect(who('ops', '10.1.1.1')).toBeNull();
  });

  it('returns null for a bound tenant that does not exist', () => {
    expect(who('nobody', '10.1.1.1')).toBeNull();
  });
});
