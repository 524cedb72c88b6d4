/* Batch gathering with pad + random crop + flip, and per-channel stats. The
 * kernel writes each output row once: per image row it fills the padding
 * part, copies (or reverses) the image part; no padded temporary. */
#include "data/batch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "profile.h"

/* Fixed chunk of images per partial sum: the reduction order depends only
 * on the data, never on the thread count. */
#define STATS_CHUNK 64
/* Parallelize only gathers of this many output floats (4 MB): a batch of
 * 128 CIFAR images (0.4 M floats) takes ~0.2 ms on one core, while waking
 * the OpenMP team cost more than that whenever the cores were busy
 * (measured: 2 threads 10x slower on a loaded 2-core machine). Subsets and
 * splits of whole data sets do run in parallel. */
#define GATHER_PAR_MIN (1 << 20)

static inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

static bool aug_active(const bn_augment *aug) { return aug && (aug->pad > 0 || aug->flip); }

bn_augment_draw bn_augment_draw_at(const bn_augment *aug, const bn_rng *rng, int64_t j)
{
    bn_augment_draw d = {0, 0, false};
    if (!aug_active(aug) || !rng) return d;
    uint32_t w[4];
    bn_philox(rng->offset + (uint64_t)j, BN_AUG_STREAM, rng->seed, w);
    /* Modulo bias for at most 8193 outcomes out of 2^32 is below 2e-6. */
    if (aug->pad > 0) {
        uint32_t span = 2u * (uint32_t)aug->pad + 1u;
        d.dy = (int)(w[0] % span) - aug->pad;
        d.dx = (int)(w[1] % span) - aug->pad;
    }
    if (aug->flip) d.flip = (w[2] >> 31) != 0;
    return d;
}

static inline void fill_run(float *restrict d, int64_t n, float v)
{
    for (int64_t i = 0; i < n; i++) d[i] = v;
}

/* d[x] = s[top - x] for x in [lo, hi): a mirrored row (top = W-1+dx).
 * omp simd: -O2 leaves the reversed load scalar. */
static inline void reverse_run(float *restrict d, const float *restrict s, int64_t top, int64_t lo, int64_t hi)
{
#pragma omp simd
    for (int64_t x = lo; x < hi; x++) d[x] = s[top - x];
}

/* One H x W plane: dst(y, x) = src(y + dy, xx + dx), xx = flip ? W-1-x : x,
 * or fill outside the source. */
static void crop_plane(float *restrict dst, const float *restrict src, int64_t H, int64_t W, int dy, int dx, bool flip,
                       float fill)
{
    /* Output columns whose source column is inside the image: [lo, hi). */
    int64_t lo, hi;
    if (!flip) {
        lo = imax(0, -dx);
        hi = imin(W, W - dx);
    } else {
        lo = imax(0, dx);
        hi = imin(W, W + dx);
    }
    /* A shift of W or more (pad > W: a crop wider than the image) leaves no
     * source column: everything is fill, and lo must not pass the row end. */
    lo = imin(lo, W);
    if (hi < lo) hi = lo;
    for (int64_t y = 0; y < H; y++) {
        float *d = dst + y * W;
        int64_t sy = y + dy;
        if (sy < 0 || sy >= H) {
            fill_run(d, W, fill);
            continue;
        }
        const float *s = src + sy * W;
        fill_run(d, lo, fill);
        if (!flip) {
            if (hi > lo) memcpy(d + lo, s + lo + dx, (size_t)(hi - lo) * sizeof *d);
        } else {
            reverse_run(d, s, W - 1 + dx, lo, hi);
        }
        fill_run(d + hi, W - hi, fill);
    }
}

static bn_status bn_gather_batch_unprofiled(bn_tensor *out, const bn_tensor *images, const int64_t *indices, int64_t n,
                                            const bn_augment *aug, bn_rng *rng)
{
    if (!out || !images) return bn_fail(BN_EARG, "gather_batch: out and images expected, got NULL");
    if (n < 0) return bn_fail(BN_EARG, "gather_batch: n expected >= 0, got %lld", (long long)n);
    if (n > 0 && !indices) return bn_fail(BN_EARG, "gather_batch: indices expected, got NULL");
    if (images->ndim < 1) return bn_fail(BN_ESHAPE, "gather_batch: images expected at least 1-D, got a 0-d tensor");
    if (!bn_tensor_is_contiguous(images))
        return bn_fail(BN_EARG, "gather_batch: images expected contiguous, got a strided %s", bn_shape_str(images));
    if (!bn_tensor_is_contiguous(out))
        return bn_fail(BN_EARG, "gather_batch: out expected contiguous, got a strided %s", bn_shape_str(out));
    bool shape_ok = out->ndim == images->ndim && out->shape[0] == n;
    for (int d = 1; shape_ok && d < images->ndim; d++)
        shape_ok = out->shape[d] == images->shape[d];
    if (!shape_ok) {
        int64_t want[BN_MAX_DIMS];
        memcpy(want, images->shape, sizeof want);
        want[0] = n;
        return bn_fail(BN_ESHAPE, "gather_batch: out expected %s, got %s", bn_dims_str(images->ndim, want),
                       bn_shape_str(out));
    }
    if (aug && (aug->pad < 0 || aug->pad > BN_AUG_MAX_PAD))
        return bn_fail(BN_EARG, "gather_batch: pad expected in [0, %d], got %d", BN_AUG_MAX_PAD, aug->pad);
    const bool augmenting = aug_active(aug);
    if (augmenting) {
        if (images->ndim != 4)
            return bn_fail(BN_ESHAPE, "gather_batch: augmentation expects images [N x C x H x W], got %s",
                           bn_shape_str(images));
        if (!rng) return bn_fail(BN_EARG, "gather_batch: augmentation needs a generator, got NULL");
    }
    const int64_t N = images->shape[0];
    for (int64_t j = 0; j < n; j++)
        if (indices[j] < 0 || indices[j] >= N)
            return bn_fail(BN_EARG, "gather_batch: indices[%lld] = %lld is out of range [0, %lld)", (long long)j,
                           (long long)indices[j], (long long)N);
    if (n == 0) return BN_OK;

    int64_t row = 1; /* floats per image */
    for (int d = 1; d < images->ndim; d++)
        row *= images->shape[d];
    const float *src = bn_tensor_data(images);
    float *dst = bn_tensor_data(out);
    const bool par = n > 1 && n * row >= GATHER_PAR_MIN;

    if (!augmenting) {
#pragma omp parallel for schedule(static) if (par)
        for (int64_t j = 0; j < n; j++)
            memcpy(dst + j * row, src + indices[j] * row, (size_t)row * sizeof *dst);
        return BN_OK;
    }

    const int64_t C = images->shape[1], H = images->shape[2], W = images->shape[3];
    const bn_rng r = *rng;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t j = 0; j < n; j++) {
        bn_augment_draw d = bn_augment_draw_at(aug, &r, j);
        for (int64_t c = 0; c < C; c++)
            crop_plane(dst + (j * C + c) * H * W, src + (indices[j] * C + c) * H * W, H, W, d.dy, d.dx, d.flip,
                       aug->fill ? aug->fill[c] : 0.0f);
    }
    rng->offset += (uint64_t)n;
    return BN_OK;
}

bn_status bn_gather_batch(bn_tensor *out, const bn_tensor *images, const int64_t *indices, int64_t n,
                          const bn_augment *aug, bn_rng *rng)
{
    BN_PROFILE_BEGIN("gather_batch", false);
    bn_status st = bn_gather_batch_unprofiled(out, images, indices, n, aug, rng);
    BN_PROFILE_END();
    return st;
}

/* Validates images for the per-channel functions; *C, *inner (floats per
 * channel per image) and *N out. */
static bn_status channel_geometry(const char *op, const bn_tensor *images, int64_t *N, int64_t *C, int64_t *inner)
{
    if (!images) return bn_fail(BN_EARG, "%s: images expected, got NULL", op);
    if (images->ndim < 2)
        return bn_fail(BN_ESHAPE, "%s: images expected [N x C x ...] (at least 2-D), got %s", op,
                       bn_shape_str(images));
    *N = images->shape[0];
    *C = images->shape[1];
    *inner = 1;
    for (int d = 2; d < images->ndim; d++)
        *inner *= images->shape[d];
    return BN_OK;
}

/* Sums over fixed chunks of images: part[k * C + c] for chunk k, either of
 * x (mean == NULL) or of (x - mean[c])^2. */
static void chunk_sums(double *part, const float *x, int64_t N, int64_t C, int64_t inner, const double *mean)
{
    const int64_t chunks = (N + STATS_CHUNK - 1) / STATS_CHUNK;
#pragma omp parallel for schedule(static) if (N * C * inner > 65536)
    for (int64_t k = 0; k < chunks; k++) {
        for (int64_t c = 0; c < C; c++) {
            double s = 0;
            for (int64_t i = k * STATS_CHUNK; i < imin(N, (k + 1) * STATS_CHUNK); i++) {
                const float *p = x + (i * C + c) * inner;
                if (!mean) {
                    for (int64_t e = 0; e < inner; e++) s += p[e];
                } else {
                    const double m = mean[c];
                    for (int64_t e = 0; e < inner; e++) s += (p[e] - m) * (p[e] - m);
                }
            }
            part[k * C + c] = s;
        }
    }
}

bn_status bn_channel_stats(const bn_tensor *images, double *mean, double *std)
{
    int64_t N, C, inner;
    if (channel_geometry("channel_stats", images, &N, &C, &inner) != BN_OK) return bn_last_status();
    if (!mean || !std) return bn_fail(BN_EARG, "channel_stats: mean and std expected, got NULL");
    if (N == 0 || C == 0 || inner == 0)
        return bn_fail(BN_ESHAPE, "channel_stats: images expected at least one value per channel, got %s",
                       bn_shape_str(images));
    bn_tensor *dense = bn_tensor_dense((bn_tensor *)images); /* +1; images itself when contiguous */
    if (!dense) return bn_last_status();
    const int64_t chunks = (N + STATS_CHUNK - 1) / STATS_CHUNK;
    double *part = malloc((size_t)(chunks * C) * sizeof *part);
    if (!part) {
        bn_tensor_release(dense);
        return bn_fail(BN_ENOMEM, "channel_stats: out of memory");
    }
    const float *x = bn_tensor_data(dense);
    const double count = (double)N * (double)inner;
    chunk_sums(part, x, N, C, inner, NULL);
    for (int64_t c = 0; c < C; c++) {
        double s = 0;
        for (int64_t k = 0; k < chunks; k++) s += part[k * C + c];
        mean[c] = s / count;
    }
    /* Two passes: exact for data far from zero mean, unlike E[x^2] - E[x]^2. */
    chunk_sums(part, x, N, C, inner, mean);
    for (int64_t c = 0; c < C; c++) {
        double s = 0;
        for (int64_t k = 0; k < chunks; k++) s += part[k * C + c];
        std[c] = sqrt(s / count);
    }
    free(part);
    bn_tensor_release(dense);
    return BN_OK;
}

static bn_status bn_channel_normalize_unprofiled(bn_tensor *images, const double *mean, const double *std)
{
    int64_t N, C, inner;
    if (channel_geometry("channel_normalize", images, &N, &C, &inner) != BN_OK) return bn_last_status();
    if (!mean || !std) return bn_fail(BN_EARG, "channel_normalize: mean and std expected, got NULL");
    if (!bn_tensor_is_contiguous(images))
        return bn_fail(BN_EARG, "channel_normalize: images expected contiguous, got a strided %s",
                       bn_shape_str(images));
    for (int64_t c = 0; c < C; c++) {
        if (!isfinite(mean[c]))
            return bn_fail(BN_EARG, "channel_normalize: mean[%lld] expected finite, got %g", (long long)c + 1, mean[c]);
        if (!(isfinite(std[c]) && std[c] > 0))
            return bn_fail(BN_EARG, "channel_normalize: std[%lld] expected finite and > 0, got %g%s", (long long)c + 1,
                           std[c], std[c] == 0 ? " (a constant channel)" : "");
    }
    float *x = bn_tensor_data(images);
    const int64_t planes = N * C;
#pragma omp parallel for schedule(static) if (planes * inner > 65536)
    for (int64_t p = 0; p < planes; p++) {
        const float m = (float)mean[p % C], s = (float)std[p % C];
        float *q = x + p * inner;
        for (int64_t e = 0; e < inner; e++) q[e] = (q[e] - m) / s;
    }
    return BN_OK;
}

bn_status bn_channel_normalize(bn_tensor *images, const double *mean, const double *std)
{
    BN_PROFILE_BEGIN("channel_normalize", false);
    bn_status st = bn_channel_normalize_unprofiled(images, mean, std);
    BN_PROFILE_END();
    return st;
}
