/**
 * Pipelined load for rate-limit tests: each connection keeps `depth` `get`
 * requests in flight for `durationMs`, and the replies are counted as
 * admitted (`END`) or refused (`SERVER_ERROR rate limited`). Bounded in time
 * and in requests.
 */
import net from 'node:net';

export interface LoadResult {
  admitted: number;
  refused: number;
  other: number;
  /** from the first request sent to the last reply counted, ms */
  elapsedMs: number;
}

const END = 'END\r\n';
const LIMITED = 'SERVER_ERROR rate limited\r\n';

/** Runs `get <key>` load on every port in `ports` (one connection each) at once. */
export async function pipelinedGets(ports: readonly number[], durationMs: number, depth = 32): Promise<LoadResult> {
  const result: LoadResult = { admitted: 0, refused: 0, other: 0, elapsedMs: 0 };
  const t0 = performance.now();
  const stopAt = t0 + durationMs;
  let lastReply = t0;
  const request = Buffer.from('get rate-load-key\r\n');
  await Promise.all(
    ports.map(
      (port) =>
        new Promise<void>((resolve, reject) => {
          const s = net.connect({ host: '127.0.0.1', port });
          let inFlight = 0;
          let pending = '';
          const top = (): void => {
            const n = depth - inFlight;
            if (n <= 0 || performance.now() >= stopAt) return;
            s.write(Buffer.concat(Array.from({ length: n }, () => request)));
            inFlight += n;
          };
          s.setNoDelay(true);
          s.on('connect', top);
          s.on('data', (d: Buffer) => {
            pending += d.toString('latin1');
            let i: number;
            while ((i = pending.indexOf('\r\n')) >= 0) {
              const line = pending.slice(0, i + 2);
              pending = pending.slice(i + 2);
              inFlight--;
              lastReply = performance.now();
              if (line === END) result.admitted++;
              else if (line === LIMITED) result.refused++;
              else result.other++;
            }
            if (performance.now() < stopAt) top();
            else if (inFlight === 0) s.end();
          });
          s.on('error', reject);
          s.on('close', () => resolve());
          // bounded: whatever happens, the connection ends a little after the duration
          setTimeout(() => s.destroy(), durationMs + 5000).unref();
        }),
    ),
  );
  result.elapsedMs = lastReply - t0;
  return result;
}
