/**
 * Requests memcached itself would refuse in a way that breaks a shared socket,
 * answered by memgate instead of being forwarded.
 *
 * After memcached answers a storage request (set … cas, ms) with CLIENT_ERROR
 * or ERROR it may read the data block as commands, so the connection treats
 * such a reply as the end of the socket (connection.ts, BACKEND_ERROR), and
 * every other tenant's request in flight on it fails. The request parser
 * already refuses what protocol.txt forbids; this module adds what depends on
 * the server behind the socket, from memcached's own parser (proto_text.c,
 * `_meta_flag_preparse` and `process_mset_command`, 1.6.18 … 1.6.30):
 *
 *   meta command sent to a server that does not speak meta → ERROR (the unknown-command reply)
 *   ms token `O…` longer than 32 bytes, letter included     → CLIENT_ERROR opaque token too long
 *   ms flag `E` before memcached 1.6.27                      → CLIENT_ERROR invalid flag
 *   ms mode `M<c>` other than E A P R S                      → CLIENT_ERROR invalid mode for ms M token
 *
 * Each reply is memcached's own words for the same input. mg, md and ma are
 * left to memcached: its CLIENT_ERROR to them is one line, and the socket
 * stays in step.
 */
import { Cmd } from '../protocol/text/commands.js';
import { Replies } from '../protocol/text/replies.js';
import type { Request } from '../protocol/text/request.js';

const UPPER_E = 0x45; // 'E'
const UPPER_M = 0x4d; // 'M'
const UPPER_O = 0x4f; // 'O'

/** memcached's MFLAG_MAX_OPAQUE_LENGTH: it compares the whole token, letter included */
const MAX_OPAQUE_TOKEN_BYTES = 32;
/** the first memcached release whose meta parser knows the E flag */
const E_FLAG_SINCE = versionNumber(1, 6, 27);

const r = (s: string): Buffer => Buffer.from(`${s}\r\n`, 'latin1');
export const GuardReplies = {
  OPAQUE_TOO_LONG: Replies.OPAQUE_TOO_LONG,
  INVALID_FLAG: Replies.INVALID_FLAG,
  INVALID_MS_MODE: r('CLIENT_ERROR invalid mode for ms M token'),
} as const;

/** `major.minor.patch` as one comparable number. */
export function versionNumber(major: number, minor: number, patch: number): number {
  return major * 1_000_000 + minor * 1_000 + patch;
}

const VERSION_REPLY = /^VERSION (\d+)\.(\d+)(?:\.(\d+))?/;

/** The version number of a `VERSION x.y.z` reply; 0 when it names none. */
export function parseVersionReply(reply: string): number {
  const m = VERSION_REPLY.exec(reply);
  if (m === null) return 0;
  return versionNumber(Number(m[1]), Number(m[2]), Number(m[3] ?? 0));
}

/** True for the meta commands (mg ms md ma mn me), which servers before 1.6 do not know. */
export function isMetaCommand(cmd: number): boolean {
  return cmd === Cmd.MG || cmd === Cmd.MS || cmd === Cmd.MD || cmd === Cmd.MA || cmd === Cmd.MN || cmd === Cmd.ME;
}

function isMsMode(c: number | undefined): boolean {
  // E(add) A(ppend) P(repend) R(eplace) S(et)
  return c === 0x45 || c === 0x41 || c === 0x50 || c === 0x52 || c === 0x53;
}

/** The flag checks of an ms request's forwarded flag tokens; null when all pass. */
function msFlagRefusal(req: Request, version: number): Buffer | null {
  const line = req.line;
  const flags = req.metaFlags;
  const oldFlags = version < E_FLAG_SINCE;
  for (let i = 0; i < flags.length; i += 2) {
    const s = flags[i] ?? 0;
    const e = flags[i + 1] ?? 0;
    const letter = line[s];
    if (letter === UPPER_O) {
      if (e - s > MAX_OPAQUE_TOKEN_BYTES) return GuardReplies.OPAQUE_TOO_LONG;
    } else if (letter === UPPER_M) {
      if (!isMsMode(line[s + 1])) return GuardReplies.INVALID_MS_MODE;
    } else if (oldFlags && letter === UPPER_E) {
      return GuardReplies.INVALID_FLAG;
    }
  }
  return null;
}

/**
 * The reply memgate gives in memcached's place, or null when `req` may be
 * forwarded to a server of `version` (parseVersionReply) that does (or does
 * not) speak the meta protocol.
 */
export function backendRefusal(req: Request, speaksMeta: boolean, version: number): Buffer | null {
  const cmd = req.cmd;
  if (!isMetaCommand(cmd)) return null;
  if (!speaksMeta) return Replies.ERROR;
  return cmd === Cmd.MS ? msFlagRefusal(req, version) : null;
}
