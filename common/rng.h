/* rng.h - the project's one pseudo-random generator: xoshiro256**
 * (Blackman & Vigna 2018) with its state filled by splitmix64 (Steele, Lea &
 * Flood 2014). Deterministic on every platform, so the demo data and the
 * Isolation Forest give the same bits everywhere for the same seed. No
 * global state: each user owns its struct rng. */
#ifndef ENMS_RNG_H
#define ENMS_RNG_H

#include <stddef.h>
#include <stdint.h>

struct rng {
    uint64_t s[4];
};

/* Advances *x and returns the next splitmix64 output. */
uint64_t rng_splitmix64(uint64_t *x);

/* Fills the state from seed by splitmix64 (never all zero). */
void rng_seed(struct rng *r, uint64_t seed);

/* Next 64 random bits. */
uint64_t rng_next(struct rng *r);

/* Uniform on [0, 1) with 53 random bits: exact in every IEEE double. */
double rng_uniform(struct rng *r);

/* Uniform integer in [0, n), n > 0, by rejection: no modulo bias. */
size_t rng_below(struct rng *r, size_t n);

#endif
