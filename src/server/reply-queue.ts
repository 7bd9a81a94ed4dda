/**
 * Ordered reply slots of one client session.
 *
 *    head                                   tail
 *     │                                      │
 *   [ done ][ done ][ waiting ][ done ][ waiting ]
 *     └─ flushed ──┘  └─ nothing past an unfilled head is written
 *
 * Every request gets a slot in arrival order (noreply ones too, so an error
 * they provoke is written in its place). Upstream replies and memgate's own
 * replies fill their slots in any order; the session writes from the head
 * while the head is filled.
 */
import { Cmd } from '../protocol/text/commands.js';
import { ReplyStatus, type Request } from '../protocol/text/request.js';

const COMPACT_AT = 1024;

export class ReplyQueue {
  private items: (Request | undefined)[];
  private head: number;

  constructor() {
    this.items = [];
    this.head = 0;
  }

  get length(): number {
    return this.items.length - this.head;
  }

  push(req: Request): void {
    this.items.push(req);
  }

  /** The oldest slot, or undefined when empty. */
  peek(): Request | undefined {
    return this.items[this.head];
  }

  /** Removes the oldest slot. */
  shift(): void {
    if (this.head >= this.items.length) return;
    this.items[this.head] = undefined;
    this.head++;
    if (this.head === this.items.length) {
      this.items.length = 0;
      this.head = 0;
    } else if (this.head >= COMPACT_AT && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }

  /** Drops every slot (the connection is gone). */
  clear(): void {
    this.items = [];
    this.head = 0;
  }
}

/** Fills `req`'s slot with memgate's own reply (null: nothing is written for it). */
export function fillSlot(req: Request, reply: Buffer | null, status: ReplyStatus): void {
  req.reply = reply === null ? null : [reply];
  req.status = status;
  req.done = true;
}

/** What a filled slot does not write: noreply hides everything but errors; meta q hides EN on mg and HD on ms, md, ma. */
export function isReplyHidden(req: Request): boolean {
  if (req.noreply) return req.status !== ReplyStatus.ERROR;
  if (!req.metaQuiet) return false;
  if (req.cmd === Cmd.MG) return req.status === ReplyStatus.MISS;
  return req.status === ReplyStatus.HD;
}
