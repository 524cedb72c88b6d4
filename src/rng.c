#include "rng.h"

#include <math.h>
#include <stdlib.h>

#include "strided.h"

static bn_rng global_rng = {0x5eed, 0};

bn_rng *bn_rng_global(void) { return &global_rng; }
void bn_rng_init(bn_rng *g, uint64_t seed) { g->seed = seed; g->offset = 0; }
void bn_manual_seed(uint64_t seed) { bn_rng_init(&global_rng, seed); }

/* Philox-4x32-10 (Salmon et al., SC'11). */
void bn_philox(uint64_t ctr_lo, uint64_t ctr_hi, uint64_t key, uint32_t out[4])
{
    uint32_t c0 = (uint32_t)ctr_lo, c1 = (uint32_t)(ctr_lo >> 32), c2 = (uint32_t)ctr_hi,
             c3 = (uint32_t)(ctr_hi >> 32);
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

/* Uniform in [0, 1) from the top 24 bits: exactly representable floats. */
static inline float u01(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

/* Fills n values v[i] = f(word i of the stream) from block offset g->offset.
 * Element i uses block offset + i/4, word i%4: any split of i over threads
 * reads the same words. */
#define FILL_STREAM(g, n, i, words, ...)                                               \
    do {                                                                                \
        uint64_t base_ = (g)->offset;                                                   \
        _Pragma("omp parallel for schedule(static) if (n > 65536)")                    \
        for (int64_t blk_ = 0; blk_ < ((n) + 3) / 4; blk_++) {                           \
            uint32_t words[4];                                                          \
            bn_philox(base_ + (uint64_t)blk_, 0, (g)->seed, words);                       \
            for (int64_t i = blk_ * 4; i < blk_ * 4 + 4 && i < (n); i++) { __VA_ARGS__; }      \
        }                                                                               \
        (g)->offset += (uint64_t)(((n) + 3) / 4);                                       \
    } while (0)

static bn_status scatter(bn_tensor *t, float *buf)
{
    if (bn_tensor_is_contiguous(t)) return BN_OK; /* buf was t's own data */
    float *base = t->storage->data;
    int64_t i = 0;
    FOR_EACH_OFFSET(t, off, base[off] = buf[i++]);
    free(buf);
    return BN_OK;
}

static float *target(bn_tensor *t)
{
    if (bn_tensor_is_contiguous(t)) return bn_tensor_data(t);
    int64_t n = bn_tensor_numel(t);
    float *buf = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (!buf) bn_fail(BN_ENOMEM, "rng: out of memory");
    return buf;
}

bn_status bn_rng_uniform(bn_rng *g, bn_tensor *t, float lo, float hi)
{
    if (!isfinite(lo) || !isfinite(hi) || lo > hi)
        return bn_fail(BN_EARG, "uniform: bounds expected finite with lo <= hi, got [%g, %g)", lo, hi);
    int64_t n = bn_tensor_numel(t);
    float *v = target(t);
    if (!v) return BN_ENOMEM;
    FILL_STREAM(g, n, i, w, v[i] = lo + (hi - lo) * u01(w[i & 3]));
    return scatter(t, v);
}

bn_status bn_rng_normal(bn_rng *g, bn_tensor *t, float mean, float std)
{
    if (!isfinite(mean) || !isfinite(std) || std < 0)
        return bn_fail(BN_EARG, "normal: mean expected finite and std >= 0, got mean %g, std %g", mean, std);
    int64_t n = bn_tensor_numel(t);
    float *v = target(t);
    if (!v) return BN_ENOMEM;
    /* Box-Muller on word pairs (0,1) and (2,3) of each block. */
    FILL_STREAM(g, n, i, w, {
        uint32_t a = w[i & 2], b = w[(i & 2) + 1];
        double u1 = ((double)(a >> 8) + 1.0) / 16777217.0; /* (0, 1]: log is finite */
        double u2 = (double)(b >> 8) / 16777216.0;
        double r = sqrt(-2.0 * log(u1));
        double z = (i & 1) ? r * sin(2.0 * M_PI * u2) : r * cos(2.0 * M_PI * u2);
        v[i] = (float)(mean + std * z);
    });
    return scatter(t, v);
}

bn_status bn_rng_bernoulli(bn_rng *g, bn_tensor *t, float p)
{
    if (!(p >= 0 && p <= 1)) return bn_fail(BN_EARG, "bernoulli: p expected in [0, 1], got %g", p);
    int64_t n = bn_tensor_numel(t);
    float *v = target(t);
    if (!v) return BN_ENOMEM;
    FILL_STREAM(g, n, i, w, v[i] = u01(w[i & 3]) < p ? 1.0f : 0.0f);
    return scatter(t, v);
}

bn_status bn_rng_randperm(bn_rng *g, int64_t n, int64_t *out)
{
    if (n < 0) return bn_fail(BN_EARG, "randperm: n expected >= 0, got %lld", (long long)n);
    for (int64_t i = 0; i < n; i++) out[i] = i;
    /* Fisher-Yates, one 64-bit draw per swap (two words), bias < 2^-40. */
    for (int64_t i = n - 1; i > 0; i--) {
        uint32_t w[4];
        bn_philox(g->offset++, 1, g->seed, w);
        uint64_t r = ((uint64_t)w[0] << 32) | w[1];
        int64_t j = (int64_t)(r % (uint64_t)(i + 1));
        int64_t tmp = out[i];
        out[i] = out[j];
        out[j] = tmp;
    }
    return BN_OK;
}

bn_tensor *bn_rand(int ndim, const int64_t *shape)
{
    bn_tensor *t = bn_tensor_empty(ndim, shape);
    if (t && bn_rng_uniform(&global_rng, t, 0.0f, 1.0f) != BN_OK) {
        bn_tensor_release(t);
        return NULL;
    }
    return t;
}

bn_tensor *bn_randn(int ndim, const int64_t *shape)
{
    bn_tensor *t = bn_tensor_empty(ndim, shape);
    if (t && bn_rng_normal(&global_rng, t, 0.0f, 1.0f) != BN_OK) {
        bn_tensor_release(t);
        return NULL;
    }
    return t;
}
