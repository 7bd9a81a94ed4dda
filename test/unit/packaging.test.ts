/**
 * packaging/memgate.service passes `systemd-analyze verify`.
 *
 * NOTE: verify insists that every Exec*= binary exists and is executable, and
 * /usr/local/bin/memgate (where `npm install -g` puts the CLI) does not exist on
 * a CI machine. So the test verifies a copy in a temp directory whose only
 * change is that path, pointing at a real executable: a two-line wrapper that
 * runs this checkout's CLI. Every other line is verified as shipped.
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const UNIT = readFileSync(path.join(ROOT, 'packaging/memgate.service'), 'utf8');
const SHIPPED_BINARY = '/usr/local/bin/memgate';
const run = promisify(execFile);

/** `Key=value` lines of the [Service] section, in order (a key may repeat). */
function serviceDirectives(text: string): [string, string][] {
  const out: [string, string][] = [];
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header !== null) section = header[1] ?? '';
    else if (section === 'Service') {
      const eq = line.indexOf('=');
      out.push([line.slice(0, eq), line.slice(eq + 1)]);
    }
  }
  return out;
}

const tempDirs: string[] = [];
afterAll(() => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

function verifiableCopy(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'memgate-unit-'));
  tempDirs.push(dir);
  const bin = path.join(dir, 'memgate');
  writeFileSync(bin, `#!/bin/sh\nexec "${process.execPath}" --import tsx "${path.join(ROOT, 'src/cli.ts')}" "$@"\n`);
  chmodSync(bin, 0o755);
  const unit = path.join(dir, 'memgate.service');
  expect(UNIT.split(SHIPPED_BINARY).length - 1).toBe(2); // ExecStartPre and ExecStart, nothing else changes
  writeFileSync(unit, UNIT.replaceAll(SHIPPED_BINARY, bin));
  return unit;
}

describe('packaging/memgate.service', () => {
  it('passes systemd-analyze verify (a copy with ExecStart pointing at a real executable)', async () => {
    const r = await run('systemd-analyze', ['verify', verifiableCopy()], { timeout: 30_000 });
    expect(r.stderr).toBe('');
  });

  it('scores "OK" or better on systemd-analyze security (exposure at most 2.0 of 10)', async () => {
    const r = await run('systemd-analyze', ['security', '--offline=yes', '--threshold=20', verifiableCopy()], {
      timeout: 30_000,
    });
    const m = /Overall exposure level for \S+: (\d+\.\d+)/.exec(r.stdout);
    expect(Number(m?.[1])).toBeLessThanOrEqual(2);
  });

  it('runs as a dedicated user with no capabilities, state in StateDirectory, reload by SIGHUP', () => {
    const d = new Map<string, string[]>();
    for (const [k, v] of serviceDirectives(UNIT)) d.set(k, [...(d.get(k) ?? []), v]);
    const one = (k: string) => d.get(k)?.at(-1);
    expect(one('DynamicUser')).toBe('yes');
    expect(one('User')).toBe('memgate');
    expect(one('ProtectSystem')).toBe('strict');
    expect(one('NoNewPrivileges')).toBe('yes');
    expect(one('StateDirectory')).toBe('memgate');
    expect(one('ConfigurationDirectory')).toBe('memgate');
    expect(one('ExecReload')).toBe('/bin/kill -HUP $MAINPID');
    expect(one('Restart')).toBe('on-failure');
    expect(one('CapabilityBoundingSet')).toBe('');
    expect(one('AmbientCapabilities')).toBe('');
    expect(one('RestrictAddressFamilies')?.split(/\s+/).sort()).toEqual(['AF_INET', 'AF_INET6', 'AF_UNIX']);
    for (const k of ['PrivateTmp', 'ProtectHome']) expect(one(k), k).toBe('yes');
    expect(Number(one('LimitNOFILE'))).toBeGreaterThanOrEqual(65536);
    // the config it runs lives in ConfigurationDirectory, and check-config runs first
    expect(one('ExecStartPre')).toBe(`${SHIPPED_BINARY} check-config --config /etc/memgate/memgate.yaml`);
    expect(one('ExecStart')).toBe(`${SHIPPED_BINARY} serve --config /etc/memgate/memgate.yaml`);
  });
});
