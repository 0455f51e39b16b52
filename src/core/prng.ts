/**
 * mulberry32: a small deterministic pseudo-random generator (uniform in [0, 1)), for reproducible
 * weights, data and shuffles — never for anything secret. Safe-integer seeds are folded to 32 bits
 * with their high half, so seeds 2^32 apart differ; `salt` separates streams drawn from one seed.
 */
export function mulberry32(seed: number, salt = 0): () => number {
  let state = (seed ^ Math.imul(Math.floor(seed / 4294967296), 0x9e3779b1) ^ salt) | 0;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
