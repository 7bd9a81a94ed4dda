/**
 * The one command table. The request parser, the deny rules, the upstream
 * response parser, metrics and docs/commands.md all derive from it.
 *
 * `syntax` tells the parser how to read the line; `reply` tells the upstream
 * response parser where memcached's answer ends; `klass` groups commands for
 * policy and metrics.
 */

/** How the request line is laid out (protocol.txt, "Commands"). */
export const Syntax = {
  /** get|gets <key>* */
  RETRIEVE: 1,
  /** gat|gats <exptime> <key>* */
  GAT: 2,
  /** set|add|replace|append|prepend <key> <flags> <exptime> <bytes> [noreply] + data block */
  STORE: 3,
  /** cas <key> <flags> <exptime> <bytes> <cas unique> [noreply] + data block */
  CAS: 4,
  /** delete <key> [0] [noreply] */
  DELETE: 5,
  /** incr|decr <key> <value> [noreply] */
  ARITH: 6,
  /** touch <key> <exptime> [noreply] */
  TOUCH: 7,
  /** flush_all [delay] [noreply] */
  FLUSH: 8,
  /** verbosity <level> [noreply] */
  VERBOSITY: 9,
  /** version, quit, mn: no arguments */
  NO_ARGS: 10,
  /** stats [<sub> <args>*] */
  STATS: 11,
  /** mg <key> <flag>* */
  META_GET: 12,
  /** ms <key> <datalen> <flag>* + data block */
  META_SET: 13,
  /** md <key> <flag>* */
  META_DELETE: 14,
  /** ma <key> <flag>* */
  META_ARITH: 15,
  /** me <key> [b] */
  META_DEBUG: 16,
  /** admin families (lru_crawler, slabs, ...): the arguments are kept as one raw range */
  ADMIN_LINE: 17,
} as const;
export type Syntax = (typeof Syntax)[keyof typeof Syntax];

/** Where memcached's reply to the command ends. */
export const ReplyShape = {
  /** zero or more `VALUE <key> <flags> <bytes> [<cas>]` + data, then `END` */
  VALUES: 1,
  /** one line */
  LINE: 2,
  /** lines until `END` (stats and its sub-commands, lru_crawler metadump) */
  UNTIL_END: 3,
  /** `VA <size> <flags>*` + data, or one line (HD, EN, NF, ...) */
  META: 4,
  /** no reply at all from memcached (quit) */
  NONE: 5,
  /** lines until `EN` (lru_crawler mgdump) */
  UNTIL_EN: 6,
} as const;
export type ReplyShape = (typeof ReplyShape)[keyof typeof ReplyShape];

/** Coarse class used by policy (deny rules) and metrics labels. */
export const CommandClass = {
  READ: 1,
  WRITE: 2,
  DELETE: 3,
  ARITH: 4,
  TOUCH: 5,
  FLUSH: 6,
  STATS: 7,
  INFO: 8,
  ADMIN: 9,
} as const;
export type CommandClass = (typeof CommandClass)[keyof typeof CommandClass];

export const Cmd = {
  GET: 1,
  GETS: 2,
  GAT: 3,
  GATS: 4,
  SET: 5,
  ADD: 6,
  REPLACE: 7,
  APPEND: 8,
  PREPEND: 9,
  CAS: 10,
  DELETE: 11,
  INCR: 12,
  DECR: 13,
  TOUCH: 14,
  FLUSH_ALL: 15,
  STATS: 16,
  VERSION: 17,
  VERBOSITY: 18,
  QUIT: 19,
  MG: 20,
  MS: 21,
  MD: 22,
  MA: 23,
  MN: 24,
  ME: 25,
  LRU_CRAWLER: 26,
  WATCH: 27,
  SHUTDOWN: 28,
  SLABS: 29,
  LRU: 30,
  CACHE_MEMLIMIT: 31,
  MISBEHAVE: 32,
  DEBUGTIME: 33,
  EXTSTORE: 34,
  // Binary-protocol-only commands: made by the binary parser, never read from
  // a text line (lookupCommand does not know them), never forwarded.
  BIN_NOOP: 35,
  SASL_LIST_MECHS: 36,
  SASL_AUTH: 37,
  SASL_STEP: 38,
} as const;
export type Cmd = (typeof Cmd)[keyof typeof Cmd];

/** Number of command ids (ids are 1..COMMAND_COUNT-1; 0 is "none"). */
export const COMMAND_COUNT = 39;

export interface CommandSpec {
  readonly id: Cmd;
  readonly name: string;
  /** the name as bytes, for recognition without strings */
  readonly nameBytes: Buffer;
  readonly syntax: Syntax;
  readonly reply: ReplyShape;
  readonly klass: CommandClass;
  /** true when the command carries a data block after its line */
  readonly hasValue: boolean;
  /** true for binary-protocol-only commands, which no text line can name */
  readonly binaryOnly: boolean;
}

function spec(
  id: Cmd,
  name: string,
  syntax: Syntax,
  reply: ReplyShape,
  klass: CommandClass,
  binaryOnly = false,
): CommandSpec {
  const hasValue = syntax === Syntax.STORE || syntax === Syntax.CAS || syntax === Syntax.META_SET;
  const nameBytes = Buffer.from(name, 'latin1');
  return Object.freeze({ id, name, nameBytes, syntax, reply, klass, hasValue, binaryOnly });
}

const S = Syntax;
const R = ReplyShape;
const C = CommandClass;

export const COMMANDS: readonly CommandSpec[] = Object.freeze([
  spec(Cmd.GET, 'get', S.RETRIEVE, R.VALUES, C.READ),
  spec(Cmd.GETS, 'gets', S.RETRIEVE, R.VALUES, C.READ),
  spec(Cmd.GAT, 'gat', S.GAT, R.VALUES, C.READ),
  spec(Cmd.GATS, 'gats', S.GAT, R.VALUES, C.READ),
  spec(Cmd.SET, 'set', S.STORE, R.LINE, C.WRITE),
  spec(Cmd.ADD, 'add', S.STORE, R.LINE, C.WRITE),
  spec(Cmd.REPLACE, 'replace', S.STORE, R.LINE, C.WRITE),
  spec(Cmd.APPEND, 'append', S.STORE, R.LINE, C.WRITE),
  spec(Cmd.PREPEND, 'prepend', S.STORE, R.LINE, C.WRITE),
  spec(Cmd.CAS, 'cas', S.CAS, R.LINE, C.WRITE),
  spec(Cmd.DELETE, 'delete', S.DELETE, R.LINE, C.DELETE),
  spec(Cmd.INCR, 'incr', S.ARITH, R.LINE, C.ARITH),
  spec(Cmd.DECR, 'decr', S.ARITH, R.LINE, C.ARITH),
  spec(Cmd.TOUCH, 'touch', S.TOUCH, R.LINE, C.TOUCH),
  spec(Cmd.FLUSH_ALL, 'flush_all', S.FLUSH, R.LINE, C.FLUSH),
  spec(Cmd.STATS, 'stats', S.STATS, R.UNTIL_END, C.STATS),
  spec(Cmd.VERSION, 'version', S.NO_ARGS, R.LINE, C.INFO),
  spec(Cmd.VERBOSITY, 'verbosity', S.VERBOSITY, R.LINE, C.INFO),
  spec(Cmd.QUIT, 'quit', S.NO_ARGS, R.NONE, C.INFO),
  spec(Cmd.MG, 'mg', S.META_GET, R.META, C.READ),
  spec(Cmd.MS, 'ms', S.META_SET, R.META, C.WRITE),
  spec(Cmd.MD, 'md', S.META_DELETE, R.META, C.DELETE),
  spec(Cmd.MA, 'ma', S.META_ARITH, R.META, C.ARITH),
  spec(Cmd.MN, 'mn', S.NO_ARGS, R.LINE, C.INFO),
  spec(Cmd.ME, 'me', S.META_DEBUG, R.LINE, C.READ),
  spec(Cmd.LRU_CRAWLER, 'lru_crawler', S.ADMIN_LINE, R.LINE, C.ADMIN),
  spec(Cmd.WATCH, 'watch', S.ADMIN_LINE, R.LINE, C.ADMIN),
  spec(Cmd.SHUTDOWN, 'shutdown', S.ADMIN_LINE, R.LINE, C.ADMIN),
  spec(Cmd.SLABS, 'slabs', S.ADMIN_LINE, R.LINE, C.ADMIN),
  spec(Cmd.LRU, 'lru', S.ADMIN_LINE, R.LINE, C.ADMIN),
  spec(Cmd.CACHE_MEMLIMIT, 'cache_memlimit', S.ADMIN_LINE, R.LINE, C.ADMIN),
  spec(Cmd.MISBEHAVE, 'misbehave', S.ADMIN_LINE, R.LINE, C.ADMIN),
  spec(Cmd.DEBUGTIME, 'debugtime', S.ADMIN_LINE, R.LINE, C.ADMIN),
  spec(Cmd.EXTSTORE, 'extstore', S.ADMIN_LINE, R.LINE, C.ADMIN),
  // binary protocol only (src/protocol/binary/parser.ts); answered by memgate
  spec(Cmd.BIN_NOOP, 'noop', S.NO_ARGS, R.NONE, C.INFO, true),
  spec(Cmd.SASL_LIST_MECHS, 'sasl_list_mechs', S.NO_ARGS, R.NONE, C.INFO, true),
  spec(Cmd.SASL_AUTH, 'sasl_auth', S.NO_ARGS, R.NONE, C.INFO, true),
  spec(Cmd.SASL_STEP, 'sasl_step', S.NO_ARGS, R.NONE, C.INFO, true),
]);

/** Spec by id; index 0 is unused. */
export const COMMAND_BY_ID: readonly (CommandSpec | undefined)[] = (() => {
  const byId: (CommandSpec | undefined)[] = new Array<CommandSpec | undefined>(COMMAND_COUNT).fill(undefined);
  for (const c of COMMANDS) byId[c.id] = c;
  return Object.freeze(byId);
})();

/**
 * Text commands grouped by name length, so recognition compares a handful of
 * candidates byte by byte instead of building a string. Binary-only commands
 * are left out: `noop` typed as a text line is an unknown command.
 */
const BY_LENGTH: readonly (readonly CommandSpec[])[] = (() => {
  const text = COMMANDS.filter((c) => !c.binaryOnly);
  const max = Math.max(...text.map((c) => c.nameBytes.length));
  const out: CommandSpec[][] = [];
  for (let n = 0; n <= max; n++) out.push([]);
  for (const c of text) out[c.nameBytes.length]?.push(c);
  return out;
})();

/** Finds the command whose name is `buf[start, end)`, or undefined. */
export function lookupCommand(buf: Buffer, start: number, end: number): CommandSpec | undefined {
  const candidates = BY_LENGTH[end - start];
  if (candidates === undefined) return undefined;
  // NOTE: a byte loop: for names of 2..14 bytes it is several times cheaper than Buffer#compare
  const n = end - start;
  for (let i = 0; i < candidates.length; i++) {
    const c = candidates[i];
    if (c === undefined) continue;
    const name = c.nameBytes;
    let j = 0;
    while (j < n && buf[start + j] === name[j]) j++;
    if (j === n) return c;
  }
  return undefined;
}

export function commandSpec(id: number): CommandSpec {
  const c = COMMAND_BY_ID[id];
  if (c === undefined) throw new RangeError(`no command with id ${id}`);
  return c;
}
