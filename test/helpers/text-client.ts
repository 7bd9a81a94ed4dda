/**
 * A raw loopback client for integration tests: send bytes, read until the
 * reply stream matches what is expected.
 */
import net from 'node:net';

export class TextClient {
  readonly socket: net.Socket;
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closed = false;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  /** `localAddress`: the source address to connect from (any 127.x.y.z works on loopback). */
  static connect(port: number, host = '127.0.0.1', localAddress?: string): Promise<TextClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host, port, ...(localAddress !== undefined ? { localAddress } : {}) });
      s.once('connect', () => resolve(new TextClient(s)));
      s.once('error', reject);
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  send(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Shuts down the sending side (FIN), as `nc` does at the end of its input; replies can still arrive. */
  endInput(): void {
    this.socket.end();
  }

  /** Everything received so far (and clears it). */
  take(): Buffer {
    const b = this.buf;
    this.buf = Buffer.alloc(0);
    return b;
  }

  /** Waits until the received bytes end with `suffix` (or the socket closes), returns them as latin1 and clears. */
  async readUntil(suffix: string, timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (!this.buf.toString('latin1').endsWith(suffix)) {
      if (this.closed) break;
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `timed out waiting for ${JSON.stringify(suffix)}; got ${JSON.stringify(this.buf.toString('latin1'))}`,
        );
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.take().toString('latin1');
  }

  /** Waits for at least `n` bytes. */
  async readBytes(n: number, timeoutMs = 5000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.buf.length < n && !this.closed) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${n} bytes; got ${this.buf.length}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.take();
  }

  /** Sends `cmd`, then "version", and returns everything before the VERSION line (proves the stream is in sync). */
  async request(cmd: string | Buffer, timeoutMs = 5000): Promise<string> {
    this.send(cmd);
    this.send('version\r\n');
    const all = await this.readUntil('\r\n', timeoutMs).then(async (first) => {
      let acc = first;
      while (!/VERSION [^\r\n]*\r\n$/.test(acc)) {
        if (this.closed) return acc;
        acc += await this.readUntil('\r\n', timeoutMs);
      }
      return acc;
    });
    return all.replace(/VERSION [^\r\n]*\r\n$/, '');
  }

  /** Waits for the server to close the connection. */
  async waitClosed(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('connection was not closed');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.socket.destroy();
  }
}
