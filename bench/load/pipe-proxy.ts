/**
 * The floor for any Node proxy: a bare socket pipe. One upstream socket per client,
 * no parsing, no policy; bytes are piped both ways. memgate's CPU per request over
 * this one is the price of parsing, authorising and rewriting.
 *
 *   node --import tsx bench/load/pipe-proxy.ts --listen 127.0.0.1:0 --upstream 127.0.0.1:11211
 *
 * Prints `listening <host>:<port>` once it accepts connections; exits on SIGTERM/SIGINT.
 */
import net from 'node:net';
import { parseArgs } from 'node:util';

function hostPort(text: string | undefined, flag: string): { host: string; port: number } {
  const m = /^(.+):(\d+)$/.exec(text ?? '');
  if (m === null || m[1] === undefined) throw new Error(`${flag} must be host:port`);
  return { host: m[1], port: Number(m[2]) };
}

const { values } = parseArgs({ options: { listen: { type: 'string' }, upstream: { type: 'string' } } });
const listen = hostPort(values.listen ?? '127.0.0.1:0', '--listen');
const upstream = hostPort(values.upstream, '--upstream');

const server = net.createServer({ noDelay: true }, (client) => {
  const up = net.connect({ ...upstream, noDelay: true });
  client.pipe(up).on('error', () => client.destroy());
  up.pipe(client).on('error', () => up.destroy());
  client.on('error', () => up.destroy()).on('close', () => up.destroy());
  up.on('error', () => client.destroy()).on('close', () => client.destroy());
});
server.listen(listen.port, listen.host, () => {
  const addr = server.address();
  if (addr !== null && typeof addr === 'object') process.stdout.write(`listening ${addr.address}:${addr.port}\n`);
});
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => process.exit(0));
