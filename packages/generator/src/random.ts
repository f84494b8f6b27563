import { xoroshiro128plus, type RandomGenerator } from 'pure-rand';

const TWO_POW_32 = 0x1_0000_0000;

/**
 * The seeded randomness of the simulation: pure-rand's xoroshiro128+, mutated in place (its
 * `unsafeNext`), because the generator draws several numbers per touchpoint and must stay fast.
 * The same seed gives the same sequence on every platform.
 */
export class Random {
  private readonly rng: RandomGenerator;

  constructor(seed: number) {
    // The generator takes a 32-bit seed; fold the high bits of larger integers into it.
    const whole = Math.trunc(seed);
    this.rng = xoroshiro128plus((whole ^ Math.floor(whole / TWO_POW_32)) | 0);
    // The first outputs of a freshly seeded xoroshiro are poorly mixed.
    for (let i = 0; i < 16; i += 1) this.rng.unsafeNext();
  }

  /** Uniform in [0, 1), 32 bits of resolution. */
  next(): number {
    return (this.rng.unsafeNext() >>> 0) / TWO_POW_32;
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  /** Whole number in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** Uniform in [min, max). */
  between(min: number, max: number): number {
    return min + (max - min) * this.next();
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** Exponentially distributed with the given mean (waiting times). */
  exponential(mean: number): number {
    return -Math.log(1 - this.next()) * mean;
  }
}
