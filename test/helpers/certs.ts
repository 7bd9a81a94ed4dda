/**
 * Test certificates made with openssl in a temp directory: CAs, and
 * certificates signed by them (server certificates for 127.0.0.1 and
 * localhost, client certificates for a CN).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export class TestCerts {
  readonly dir: string;

  constructor(prefix = 'memgate-certs-') {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  }

  openssl(...args: string[]): string {
    return execFileSync('openssl', args, { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
  }

  /** `<dir>/<file>` */
  path(file: string): string {
    return path.join(this.dir, file);
  }

  /** A self-signed CA: `name`.pem and `name`.key. */
  ca(name: string, cn = name): void {
    this.openssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-subj',
      `/CN=${cn}`,
      '-days',
      '2',
      '-out',
      `${name}.pem`,
    );
  }

  /** `name`.pem / `name`.key with subject CN=`cn`, signed by CA `ca`, with `ext` (openssl extension lines) if given. */
  issue(name: string, cn: string, ca: string, ext?: string): void {
    this.openssl(
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-subj',
      `/CN=${cn}`,
      '-out',
      `${name}.csr`,
    );
    const extArgs: string[] = [];
    if (ext !== undefined) {
      fs.writeFileSync(this.path(`${name}.ext`), ext);
      extArgs.push('-extfile', `${name}.ext`);
    }
    this.openssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${ca}.pem`,
      '-CAkey',
      `${ca}.key`,
      '-CAcreateserial',
      '-days',
      '2',
      '-out',
      `${name}.pem`,
      ...extArgs,
    );
  }
}

/** subjectAltName lines for a server reached as 127.0.0.1 or localhost. */
export const LOOPBACK_SAN = 'subjectAltName=IP:127.0.0.1,DNS:localhost\n';
