/**
 * Two memgates on one state file that report the same pid (two containers on
 * one volume are both pid 1): only one may hold the file, and a rotation by the
 * holder is never undone by the other.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const HOLDER = path.join(import.meta.dirname, 'fixtures/state-holder.ts');

interface Holder {
  readonly child: ChildProcess;
  /** the next JSON line the child prints (rejects after 15 s or when it exits first) */
  next(): Promise<Record<string, unknown>>;
  send(line: string): void;
}

let dir: string;
let statePath: string;
const children: ChildProcess[] = [];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'memgate-same-pid-'));
  statePath = path.join(dir, 'state.json');
});

afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
});

function startHolder(pid: number, tenants: string[]): Holder {
  const child = spawn(process.execPath, ['--import', 'tsx', HOLDER, statePath, String(pid), ...tenants], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  children.push(child);
  const lines: string[] = [];
  const waiting: ((line: string | null) => void)[] = [];
  const rl = readline.createInterface({ input: child.stdout! });
  rl.on('line', (line) => {
    const w = waiting.shift();
    if (w !== undefined) w(line);
    else lines.push(line);
  });
  rl.on('close', () => {
    for (const w of waiting.splice(0)) w(null);
  });
  return {
    child,
    next() {
      const ready = lines.shift();
      if (ready !== undefined) return Promise.resolve(JSON.parse(ready) as Record<string, unknown>);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no answer from the state holder within 15 s')), 15_000);
        waiting.push((line) => {
          clearTimeout(timer);
          if (line === null) reject(new Error('the state holder exited without answering'));
          else resolve(JSON.parse(line) as Record<string, unknown>);
        });
      });
    },
    send(line) {
      child.stdin!.write(`${line}\n`);
    },
  };
}

function fileGeneration(tenant: string): string | undefined {
  const doc = JSON.parse(fs.readFileSync(statePath, 'utf8')) as { tenants: Record<string, { generation: string }> };
  return doc.tenants[tenant]?.generation;
}

describe('state file lock: two processes with the same pid', () => {
  it('lets only one of them hold the state file, and the other cannot undo its rotation', async () => {
    const fakePid = 1;
    const a = startHolder(fakePid, ['shop', 'blog']);
    const opened = await a.next();
    expect(opened).toHaveProperty('opened');

    const b = startHolder(fakePid, ['shop', 'blog']);
    const second = await b.next();
    expect(second).toHaveProperty('refused');
    const refused = second['refused'] as { code: string; message: string };
    expect(refused.code).toBe('ERR_STATE_LOCKED');
    expect(refused.message).toContain(statePath);
    expect(refused.message).not.toContain('\n');

    // the holder rotates (a tenant's flush_all); nothing else writes the file
    a.send('rotate shop');
    const rotated = await a.next();
    const flushed = (opened['opened'] as Record<string, string>)['shop'];
    expect(rotated['generation']).not.toBe(flushed);
    expect(fileGeneration('shop')).toBe(rotated['generation']);
    a.send('close');
    expect(await a.next()).toEqual({ closed: true });

    // a later start (same pid again) sees the rotation: the flushed generation never comes back
    const c = startHolder(fakePid, ['shop', 'blog']);
    const reopened = await c.next();
    expect((reopened['opened'] as Record<string, string>)['shop']).toBe(rotated['generation']);
    c.send('close');
    expect(await c.next()).toEqual({ closed: true });
  });
});
