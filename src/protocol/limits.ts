/**
 * Protocol limits. Numbers cite memcached's protocol.txt where it has one.
 */

/** "the length limit of a key is set at 250 characters" (protocol.txt, Keys) */
export const MAX_KEY_BYTES = 250;

/**
 * Most keys in one multi-get by default (limits.maxKeysPerGet). memcached has
 * no such limit; memgate answers a multi-get of any size up to this in pieces
 * bounded by reply bytes (src/server/multiget.ts), so it only bounds the line.
 */
export const MAX_KEYS_PER_GET = 10_000;

/**
 * Longest command line memgate reads from a client before it gives up on
 * resynchronising: the longest get of MAX_KEYS_PER_GET 250-byte keys
 * (`gets` + a space and a key each + CRLF) plus room for extra spaces.
 */
export const MAX_LINE_BYTES = 8 + MAX_KEYS_PER_GET * (MAX_KEY_BYTES + 1) + 64;

/**
 * Longest line memgate writes to memcached, CRLF included, for anything but
 * `get`/`gets`. memcached 1.6 (proto_text.c, try_read_command_ascii) closes a
 * connection when it holds more than 2048 bytes without a line end, unless
 * they start with "get " or "gets " (after at most 100 spaces): a longer gat,
 * stats or admin line would reset the shared socket whenever it arrives in
 * pieces. Meta lines stay far below it (one key, each flag at most once).
 */
export const MAX_UPSTREAM_LINE_BYTES = 2048;

/** memcached's default item size limit (-I 1m). */
export const MAX_VALUE_BYTES = 1024 * 1024;

/** "Opaque tokens may be up to 32 bytes in length" (protocol.txt, Meta Get) */
export const MAX_OPAQUE_BYTES = 32;

/** The longest base64 token that can decode to a MAX_KEY_BYTES key. */
export const MAX_BASE64_KEY_BYTES = Math.ceil(MAX_KEY_BYTES / 3) * 4;
