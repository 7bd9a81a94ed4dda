/**
 * Protocol limits. Numbers cite memcached's protocol.txt where it has one.
 */

/** "the length limit of a key is set at 250 characters" (protocol.txt, Keys) */
export const MAX_KEY_BYTES = 250;

/**
 * Longest command line memgate reads before it gives up on resynchronising.
 * memcached closes a connection whose non-get line passes 2048 bytes; a
 * multi-get of many 250-byte keys is legitimately long, so the bound is the
 * largest multi-get we accept plus room for the command name.
 */
export const MAX_KEYS_PER_GET = 256;
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
