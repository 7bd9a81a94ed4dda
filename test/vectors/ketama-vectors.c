/*
 * Prints the server libmemcached itself picks for each key, so the unit tests
 * can compare memgate's ring (src/upstream/ring.ts) with the real thing.
 *
 * Build: cc -o ketama-vectors ketama-vectors.c -lmemcached
 *
 * stdin (one item per line):
 *   ketama | modula                 distribution (ketama = MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED)
 *   <n>                             number of servers
 *   <host> <port> <weight>          n lines; a host starting with '/' is a unix socket (port ignored)
 *   <key as hex>                    any number of lines, up to EOF
 * stdout: the index (0-based, in server order) of each key's server, one per line.
 *
 * Nothing here connects: memcached_generate_hash() only hashes and searches the
 * continuum that memcached_server_add*() built.
 */
#include <libmemcached/memcached.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hex_value(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static void die(const char *what) {
  fprintf(stderr, "ketama-vectors: %s\n", what);
  exit(2);
}

int main(void) {
  char line[4096];
  char key[2048];
  memcached_st *memc = memcached_create(NULL);
  if (memc == NULL) die("memcached_create failed");

  if (fgets(line, sizeof line, stdin) == NULL) die("missing distribution");
  int is_ketama = strncmp(line, "ketama", 6) == 0;
  if (!is_ketama && strncmp(line, "modula", 6) != 0) die("distribution must be ketama or modula");

  if (fgets(line, sizeof line, stdin) == NULL) die("missing server count");
  int count = atoi(line);
  if (count < 1) die("server count must be at least 1");

  for (int i = 0; i < count; i++) {
    char host[1100];
    unsigned port = 0, weight = 0;
    if (fgets(line, sizeof line, stdin) == NULL) die("missing server line");
    if (sscanf(line, "%1099s %u %u", host, &port, &weight) != 3) die("bad server line");
    memcached_return_t rc = host[0] == '/'
                                ? memcached_server_add_unix_socket_with_weight(memc, host, weight)
                                : memcached_server_add_with_weight(memc, host, (in_port_t) port, weight);
    if (rc != MEMCACHED_SUCCESS) die(memcached_strerror(memc, rc));
  }
  /* As pylibmc does: servers first, then behaviors (the continuum is rebuilt). */
  if (is_ketama && memcached_behavior_set(memc, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1) != MEMCACHED_SUCCESS)
    die("cannot set MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED");

  while (fgets(line, sizeof line, stdin) != NULL) {
    size_t len = strcspn(line, "\r\n");
    if (len % 2 != 0 || len / 2 > sizeof key) die("bad hex key");
    for (size_t i = 0; i < len / 2; i++) {
      int hi = hex_value(line[2 * i]), lo = hex_value(line[2 * i + 1]);
      if (hi < 0 || lo < 0) die("bad hex key");
      key[i] = (char) (hi * 16 + lo);
    }
    printf("%u\n", memcached_generate_hash(memc, key, len / 2));
  }
  memcached_free(memc);
  return 0;
}
