import { randomFillSync } from 'node:crypto';

let lastMs = 0;
let counter = 0;

// Random bytes drawn 4 KiB at a time: one call into the system's generator per 256 ids, not per id.
const POOL = Buffer.alloc(4096);
let poolAt = POOL.length;

function random16(): Buffer {
  if (poolAt + 16 > POOL.length) {
    randomFillSync(POOL);
    poolAt = 0;
  }
  const b = Buffer.from(POOL.subarray(poolAt, poolAt + 16));
  poolAt += 16;
  return b;
}

/**
 * A new prediction id: a UUID version 7 (RFC 9562), assigned when a prediction is answered and
 * written as its log record's primary key. The 48-bit millisecond time comes first, so ids sort by
 * time and the log's index grows at its end; within one millisecond a 12-bit counter keeps the ids
 * of this process in the order they were given out.
 */
export function newPredictionId(now = Date.now()): string {
  if (now > lastMs) {
    lastMs = now;
    counter = 0;
  } else if (++counter > 0xfff) {
    // More than 4,096 ids in one millisecond: borrow the next one, keeping the order.
    lastMs += 1;
    counter = 0;
  }
  const b = random16();
  b.writeUIntBE(lastMs, 0, 6);
  b[6] = 0x70 | (counter >> 8);
  b[7] = counter & 0xff;
  b[8] = 0x80 | (b[8] & 0x3f);
  const hex = b.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
