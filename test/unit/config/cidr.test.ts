import { describe, expect, it } from 'vitest';
import { createNetworkMatcher, normalizeAddress, parseCidr, tryParseCidr } from '../../../src/config/cidr.js';

describe('parseCidr', () => {
  it.each([
    ['203.0.113.0/24', 4, '203.0.113.0', 24],
    ['10.0.0.0/8', 4, '10.0.0.0', 8],
    ['0.0.0.0/0', 4, '0.0.0.0', 0],
    ['127.0.0.1', 4, '127.0.0.1', 32],
    ['2001:db8::/32', 6, '2001:db8::', 32],
    ['2001:DB8:0:0:0:0:0:0/32', 6, '2001:db8::', 32],
    ['::1', 6, '::1', 128],
    ['::/0', 6, '::', 0],
    ['fe80::/10', 6, 'fe80::', 10],
  ])('parses %s', (text, family, network, prefixLength) => {
    const cidr = parseCidr(text);
    expect(cidr).toMatchObject({ family, network, prefixLength });
    expect(cidr.key).toBe(`${network}/${prefixLength}`);
  });

  it('turns an IPv4-mapped IPv6 network into the IPv4 network it covers', () => {
    expect(parseCidr('::ffff:10.0.0.0/104')).toMatchObject({ family: 4, network: '10.0.0.0', prefixLength: 8 });
    expect(parseCidr('::ffff:10.1.2.3')).toMatchObject({ family: 4, network: '10.1.2.3', prefixLength: 32 });
  });

  it.each([
    ['10.1.0.0/8', 'host bits set past /8 (did you mean 10.0.0.0/8?)'],
    ['2001:db8::1/32', 'did you mean 2001:db8::/32?'],
    ['10.0.0.0/33', 'prefix length must be an integer from 0 to 32'],
    ['2001:db8::/129', 'from 0 to 128'],
    ['10.0.0.0/08', 'prefix length must be an integer'],
    ['10.0.0.0/', 'prefix length must be an integer'],
    ['10.0.0.0/-1', 'prefix length must be an integer'],
    ['example.com/24', 'not an IPv4 or IPv6 address'],
    ['10.0.0', 'not an IPv4 or IPv6 address'],
    ['', 'not an IPv4 or IPv6 address'],
    ['fe80::1%eth0', 'zone id'],
  ])('rejects %j with a clear message', (text, message) => {
    expect(() => parseCidr(text)).toThrow(message);
    expect(tryParseCidr(text).error).toContain(message);
  });

  it('ranks networks of both families on one scale of specificity', () => {
    expect(parseCidr('10.0.0.0/8').specificity).toBe(104);
    expect(parseCidr('10.1.2.3').specificity).toBe(128);
    expect(parseCidr('2001:db8::/32').specificity).toBe(32);
  });
});

describe('Cidr.matches', () => {
  it('matches IPv4 addresses inside the network only', () => {
    const cidr = parseCidr('203.0.113.0/24');
    expect(cidr.matches('203.0.113.0')).toBe(true);
    expect(cidr.matches('203.0.113.255')).toBe(true);
    expect(cidr.matches('203.0.114.1')).toBe(false);
    expect(cidr.matches('203.0.112.255')).toBe(false);
  });

  it('matches an IPv4-mapped IPv6 peer (what a dual-stack listener reports) against IPv4 networks', () => {
    const cidr = parseCidr('10.0.0.0/8');
    expect(cidr.matches('::ffff:10.1.2.3')).toBe(true);
    expect(cidr.matches('::FFFF:10.1.2.3')).toBe(true);
    expect(cidr.matches('::ffff:a01:203')).toBe(true);
    expect(cidr.matches('::ffff:11.1.2.3')).toBe(false);
  });

  it('matches IPv6 subnets', () => {
    const cidr = parseCidr('2001:db8:abcd::/48');
    expect(cidr.matches('2001:db8:abcd::1')).toBe(true);
    expect(cidr.matches('2001:db8:abcd:ffff:ffff:ffff:ffff:ffff')).toBe(true);
    expect(cidr.matches('2001:0db8:abcd:0012::0')).toBe(true);
    expect(cidr.matches('2001:db8:abce::1')).toBe(false);
    expect(cidr.matches('fe80::1%eth0')).toBe(false);
    expect(parseCidr('fe80::/10').matches('fe80::1%eth0')).toBe(true);
  });

  it('never mixes families: ::/0 is every IPv6 peer, not every peer', () => {
    expect(parseCidr('::/0').matches('2001:db8::1')).toBe(true);
    expect(parseCidr('::/0').matches('10.1.2.3')).toBe(false);
    expect(parseCidr('::/0').matches('::ffff:10.1.2.3')).toBe(false);
    expect(parseCidr('0.0.0.0/0').matches('::1')).toBe(false);
    expect(parseCidr('0.0.0.0/0').matches('::ffff:1.2.3.4')).toBe(true);
  });

  it('matches a bare address exactly', () => {
    expect(parseCidr('127.0.0.1').matches('127.0.0.1')).toBe(true);
    expect(parseCidr('127.0.0.1').matches('127.0.0.2')).toBe(false);
    expect(parseCidr('::1').matches('0:0:0:0:0:0:0:1')).toBe(true);
  });

  it('does not match what is not an address', () => {
    expect(parseCidr('0.0.0.0/0').matches('')).toBe(false);
    expect(parseCidr('0.0.0.0/0').matches('localhost')).toBe(false);
  });
});

describe('normalizeAddress', () => {
  it.each([
    ['10.1.2.3', 4, '10.1.2.3'],
    ['::ffff:10.1.2.3', 4, '10.1.2.3'],
    ['::ffff:a01:203', 4, '10.1.2.3'],
    ['2001:0DB8:0000:0000:0001:0000:0000:0001', 6, '2001:db8::1:0:0:1'],
    ['2001:db8:0:1:0:0:0:1', 6, '2001:db8:0:1::1'],
    ['fe80::1%eth0', 6, 'fe80::1'],
    ['::', 6, '::'],
    ['1::', 6, '1::'],
    ['1:2:3:4:5:6:7:8', 6, '1:2:3:4:5:6:7:8'],
    ['1:0:3:4:5:6:7:8', 6, '1:0:3:4:5:6:7:8'],
  ])('%s → IPv%i %s', (text, family, address) => {
    expect(normalizeAddress(text)).toEqual({ family, address });
  });

  it('returns null for a non-address', () => {
    expect(normalizeAddress('example.com')).toBeNull();
    expect(normalizeAddress('')).toBeNull();
  });
});

describe('createNetworkMatcher', () => {
  it('matches any of several networks of either family', () => {
    const matches = createNetworkMatcher([parseCidr('10.0.0.0/8'), parseCidr('2001:db8::/32')]);
    expect(matches('10.9.9.9')).toBe(true);
    expect(matches('::ffff:10.9.9.9')).toBe(true);
    expect(matches('2001:db8:1::1')).toBe(true);
    expect(matches('192.168.0.1')).toBe(false);
    expect(matches('2001:db9::1')).toBe(false);
    expect(matches('garbage')).toBe(false);
  });

  it('never lets an IPv6 network match an IPv4 peer: ::/0 in a networks list is every IPv6 peer only', () => {
    const v6 = createNetworkMatcher([parseCidr('::/0')]);
    expect(v6('2001:db8::1')).toBe(true);
    expect(v6('127.0.0.1')).toBe(false);
    expect(v6('::ffff:127.0.0.1')).toBe(false);
    expect(createNetworkMatcher([parseCidr('::/64')])('0.0.0.1')).toBe(false);
    const both = createNetworkMatcher([parseCidr('::/0'), parseCidr('10.0.0.0/8')]);
    expect(both('10.1.1.1')).toBe(true);
    expect(both('11.1.1.1')).toBe(false);
  });

  it('matches nothing when given no networks', () => {
    expect(createNetworkMatcher([])('10.0.0.1')).toBe(false);
  });
});
