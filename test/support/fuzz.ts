/** The fuzz suites' seed: FUZZ_SEED, or a fixed default so that every run is the same. */
export const SEED = Number(process.env.FUZZ_SEED ?? 20240611);

/** mulberry32: a tiny seeded PRNG, with the helpers the fuzz suites draw from. */
export function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    chance: (p: number) => next() < p,
    pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)],
    bytes: (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(next() * 256))),
  };
}

export type Rng = ReturnType<typeof prng>;
