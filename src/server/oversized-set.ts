/**
 * A SET refused as too large drops the key's old item, as memcached does
 * ("Avoid stale data persisting in cache because we failed alloc": text
 * `set`, `ms` in any mode, binary SET — proto_text.c, proto_bin.c). Without
 * it a client that was told its new value could not be stored would go on
 * reading the old one.
 *
 * memgate refuses the value before memcached sees it (it is swallowed, never
 * buffered or forwarded), so the request is turned, in place, into a delete
 * of the same key — `delete <key>` for `set`, `md <key> [b]` for `ms` — which
 * then goes through the tenant's policy (rights, budgets, keyspace) and
 * upstream like any delete, in its place in the pipeline. Its reply, whatever
 * memcached answers, is memcached's own for the SET: `SERVER_ERROR object too
 * large for cache` (binary: E2BIG).
 */
import { OpKind, opcodeInfo } from '../protocol/binary/header.js';
import { Cmd } from '../protocol/text/commands.js';
import { Replies } from '../protocol/text/replies.js';
import { ReplyStatus, type Request } from '../protocol/text/request.js';

const BINARY_SET = 0x01;
const LOWER_B = 0x62; // meta `b`: the key is base64

/**
 * When `req` is a too-large SET memcached would drop the old item for (and
 * its key was read), makes it that delete and returns true; else false.
 */
export function deleteInsteadOfOversizedSet(req: Request): boolean {
  if (req.keys.length !== 2) return false;
  if (req.cmd === Cmd.SET && req.binary === null) {
    req.cmd = Cmd.DELETE;
  } else if (req.cmd === Cmd.MS) {
    if (req.binary !== null) {
      const op = opcodeInfo(req.binary.opcode);
      if (op.kind !== OpKind.STORE || op.base !== BINARY_SET) return false;
    }
    req.cmd = Cmd.MD;
    // md takes none of the set's flags but the key's encoding
    const flags = req.metaFlags;
    let n = 0;
    for (let i = 0; i < flags.length; i += 2) {
      if (req.line[flags[i] ?? 0] !== LOWER_B) continue;
      flags[n++] = flags[i] ?? 0;
      flags[n++] = flags[i + 1] ?? 0;
    }
    flags.length = n;
    req.metaQuiet = false;
  } else {
    return false;
  }
  req.error = null;
  req.value = null;
  req.bytes = 0;
  req.noreply = false;
  req.oversizedSet = true;
  return true;
}

/** The reply of a delete made by deleteInsteadOfOversizedSet: the SET's refusal, counted as its error. */
export function answerOversizedSet(req: Request): void {
  req.cmd = req.cmd === Cmd.DELETE ? Cmd.SET : Cmd.MS;
  req.reply = [Replies.TOO_LARGE];
  req.status = ReplyStatus.ERROR;
}
