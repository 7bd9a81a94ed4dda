/**
 * One command on a fresh socket of any kind (TLS, unix), read up to a reply
 * suffix, then the socket is closed: for looking at a server directly where
 * TextClient (plain TCP) does not fit.
 */
import type net from 'node:net';

export function readToEnd(
  connect: (onConnect: () => void) => net.Socket,
  cmd: string,
  suffix = 'END\r\n',
): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(() => s.write(cmd));
    let text = '';
    s.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (text.endsWith(suffix)) {
        s.destroy();
        resolve(text);
      }
    });
    s.on('error', reject);
  });
}
