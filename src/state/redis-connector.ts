/**
 * How a Redis client of the state store opens its socket: as ioredis's own
 * standalone connector does (TCP, unix socket or TLS from the client's
 * options), with one difference — the socket keeps an `error` listener for
 * its whole life.
 *
 * ioredis listens for a socket's errors with `once`. A TLS socket whose
 * handshake fails can report two errors (the certificate check, then the
 * server's alert), and the second one, with no listener left, is an uncaught
 * exception: memgate would crash instead of answering `SERVER_ERROR state
 * store unavailable` (or, at start, exiting with one line). Every error is
 * still seen by ioredis through its own listeners; this one only records the
 * first, as ioredis's connector does.
 */
import net from 'node:net';
import tls from 'node:tls';
import { AbstractConnector, type RedisOptions } from 'ioredis';

type Stream = net.Socket | tls.TLSSocket;

export class GuardedConnector extends AbstractConnector {
  private readonly options: RedisOptions;

  // ioredis hands a connector its options untyped (ConnectorConstructor): they are the client's RedisOptions
  constructor(options: unknown) {
    const o = options as RedisOptions;
    super(o.disconnectTimeout ?? 2000);
    this.options = o;
  }

  connect(): Promise<Stream> {
    this.connecting = true;
    const o = this.options;
    const target: net.NetConnectOpts =
      o.path !== undefined && o.path !== ''
        ? { path: o.path }
        : {
            host: o.host ?? '127.0.0.1',
            port: o.port ?? 6379,
            ...(o.family === undefined ? {} : { family: o.family }),
          };
    // a new tick, as ioredis's own connector: the client attaches its listeners first
    return new Promise((resolve, reject) => {
      process.nextTick(() => {
        if (!this.connecting) {
          reject(new Error('Connection is closed.'));
          return;
        }
        let stream: Stream;
        try {
          stream = o.tls === undefined ? net.createConnection(target) : tls.connect({ ...target, ...o.tls });
        } catch (err) {
          reject(err as Error);
          return;
        }
        stream.on('error', (err: Error) => {
          this.firstError ??= err;
        });
        this.stream = stream;
        resolve(stream);
      });
    });
  }
}
