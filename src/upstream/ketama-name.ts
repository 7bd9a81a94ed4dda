/**
 * The name a server is hashed by on the ketama ring, before the `-i` suffix of
 * each digest, as libmemcached (hosts.cc update_continuum) writes it:
 *
 *   name given            name                (twemproxy's `name`; survives a move)
 *   port 11211            host                (libmemcached leaves the default port out)
 *   other port            host:port           (an IPv6 host without brackets)
 *   unix socket           path:0              (libmemcached stores the path as host, port 0)
 *
 * A leaf module: the config schema (unique names per pool) and the ring both use it.
 */

/** memcached's default port, which libmemcached leaves out of a server's ketama name. */
export const KETAMA_DEFAULT_PORT = 11211;

export function ketamaName(host: string, port: number, path: string | null, name: string | null): string {
  if (name !== null) return name;
  if (path !== null) return `${path}:0`;
  return port === KETAMA_DEFAULT_PORT ? host : `${host}:${port}`;
}
