/* Counter-based random numbers (Philox-4x32-10). Value i of a draw depends
 * only on (seed, offset + i), never on how the work is split over threads, so
 * a seed gives the same stream for any thread count. */
#ifndef BN_RNG_H
#define BN_RNG_H

#include "tensor.h"

typedef struct bn_rng {
    uint64_t seed;
    uint64_t offset; /* 128-bit blocks consumed so far */
} bn_rng;

bn_rng *bn_rng_global(void);
void bn_manual_seed(uint64_t seed);
void bn_rng_init(bn_rng *g, uint64_t seed);

/* One Philox block: 4 random 32-bit words for counter `ctr` under `key`. */
void bn_philox(uint64_t ctr_lo, uint64_t ctr_hi, uint64_t key, uint32_t out[4]);

/* Fill a tensor (any layout; filled in logical row-major order). */
bn_status bn_rng_uniform(bn_rng *g, bn_tensor *t, float lo, float hi); /* [lo, hi) */
bn_status bn_rng_normal(bn_rng *g, bn_tensor *t, float mean, float std);
bn_status bn_rng_bernoulli(bn_rng *g, bn_tensor *t, float p); /* 1 with probability p */
/* out[0..n-1] = a uniformly random permutation of 0..n-1. */
bn_status bn_rng_randperm(bn_rng *g, int64_t n, int64_t *out);

bn_tensor *bn_rand(int ndim, const int64_t *shape);  /* U[0,1), global generator */
bn_tensor *bn_randn(int ndim, const int64_t *shape); /* N(0,1), global generator */

#endif
