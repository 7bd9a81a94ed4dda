/**
 * Ending a client connection so that its descriptor is released.
 *
 * The listeners allow half-open sockets (a client that shuts down its sending
 * side still gets its replies), so `socket.end()` alone only sends our FIN: the
 * socket, and its descriptor, then stay until the client closes its side, which
 * a client that was refused or cut off need never do (FIN-WAIT-2 with the
 * descriptor held). So after the last reply:
 *
 *   end(reply) ──▶ 'finish' (reply handed to the kernel) ──▶ destroy()
 *        └── input is read and dropped meanwhile, so the kernel's receive buffer
 *            stays empty and the close is an orderly FIN, not a reset
 *   bound: CLOSE_BOUND_MS after end(), destroy() whatever is still unwritten
 *   (a client that does not read its replies cannot hold the socket open).
 */
import type net from 'node:net';

/** Longest a closing connection may take to take its last replies. */
export const CLOSE_BOUND_MS = 5_000;

function ignore(): void {}

/** Writes `reply` (if any), ends the connection and releases it once written, or after CLOSE_BOUND_MS. */
export function endAndRelease(socket: net.Socket, reply?: Buffer): void {
  if (socket.destroyed || socket.writableEnded) return; // already closing
  socket.on('error', ignore);
  const timer = setTimeout(() => socket.destroy(), CLOSE_BOUND_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  socket.once('finish', () => socket.destroy());
  // unread input is dropped: data listeners already ignore it once the connection is ending
  socket.resume();
  if (reply === undefined) socket.end();
  else socket.end(reply);
}
