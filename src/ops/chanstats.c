/* Activation statistics for the probes: per-channel mean / variance / max|x|
 * and histograms (src/probe.h). Exploding activations of unnormalized
 * networks reach 1e20 and more, and their means can be large next to their
 * spread, so sums run in double and the variance takes a second pass over
 * x - mean instead of E[x^2] - mean^2. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "probe.h"
#include "profile.h"

#define PAR_MIN 32768

static bn_status check_x(const char *op, const bn_tensor *x, int min_dim)
{
    if (!x) return bn_fail(BN_EARG, "%s: input expected a tensor, got NULL", op);
    if (x->ndim < min_dim)
        return bn_fail(BN_ESHAPE, "%s: input expected %s, got %s", op,
                       min_dim == 2 ? "at least 2-D [N x C x ...]" : "a tensor", bn_shape_str(x));
    return BN_OK;
}

static bn_status bn_activation_stats_unprofiled(bn_tensor *x, bn_tensor **mean, bn_tensor **var, bn_tensor **absmax)
{
    if (!mean || !var || !absmax) return bn_fail(BN_EARG, "activation_stats: output pointers expected non-NULL");
    *mean = *var = *absmax = NULL;
    bn_status st = check_x("activation_stats", x, 2);
    if (st != BN_OK) return st;
    int64_t nb = x->shape[0], c = x->shape[1], s = 1;
    for (int d = 2; d < x->ndim; d++) s *= x->shape[d];
    if (nb * s == 0)
        return bn_fail(BN_ESHAPE, "activation_stats: input %s has no values per channel", bn_shape_str(x));
    bn_tensor *xd = bn_tensor_dense(x);
    bn_tensor *tm = bn_tensor_empty(1, &c), *tv = bn_tensor_empty(1, &c), *ta = bn_tensor_empty(1, &c);
    if (!xd || !tm || !tv || !ta) {
        bn_tensor_release(xd), bn_tensor_release(tm), bn_tensor_release(tv), bn_tensor_release(ta);
        return bn_last_status();
    }
    const float *px = bn_tensor_data(xd);
    float *om = bn_tensor_data(tm), *ov = bn_tensor_data(tv), *oa = bn_tensor_data(ta);
    double count = (double)nb * (double)s;
#pragma omp parallel for schedule(static) if (nb * c * s >= PAR_MIN)
    for (int64_t ch = 0; ch < c; ch++) {
        double sum = 0, amax = 0;
        int nan = 0;
        for (int64_t n = 0; n < nb; n++) {
            const float *r = px + (n * c + ch) * s;
            double part = 0;
            float am = 0;
#pragma omp simd reduction(+ : part) reduction(max : am)
            for (int64_t k = 0; k < s; k++) {
                part += r[k];
                am = fmaxf(am, fabsf(r[k])); /* fmaxf ignores NaN; the sum catches it */
            }
            sum += part;
            if (am > amax) amax = am;
        }
        double mu = sum / count;
        if (isnan(mu)) nan = 1;
        double sq = 0;
        if (isfinite(mu)) {
            for (int64_t n = 0; n < nb; n++) {
                const float *r = px + (n * c + ch) * s;
                double part = 0;
#pragma omp simd reduction(+ : part)
                for (int64_t k = 0; k < s; k++) {
                    double d = (double)r[k] - mu;
                    part += d * d;
                }
                sq += part;
            }
        } else {
            sq = NAN;
        }
        om[ch] = (float)mu;
        ov[ch] = (float)(sq / count);
        oa[ch] = nan ? NAN : (float)amax;
        if (isinf(mu)) oa[ch] = INFINITY;
    }
    bn_tensor_release(xd);
    *mean = tm, *var = tv, *absmax = ta;
    return BN_OK;
}

bn_status bn_activation_stats(bn_tensor *x, bn_tensor **mean, bn_tensor **var, bn_tensor **absmax)
{
    BN_PROFILE_BEGIN("activation_stats", false);
    bn_status st = bn_activation_stats_unprofiled(x, mean, var, absmax);
    BN_PROFILE_END();
    return st;
}

static bn_tensor *bn_histc_unprofiled(bn_tensor *x, int64_t bins, double lo, double hi, double *lo_used, double *hi_used)
{
    if (check_x("histc", x, 0) != BN_OK) return NULL;
    if (bins < 1 || bins > (int64_t)1 << 24)
        return bn_fail_null(BN_EARG, "histc: bins expected an integer in [1, 2^24], got %lld", (long long)bins);
    if (!isfinite(lo) || !isfinite(hi) || lo > hi)
        return bn_fail_null(BN_EARG, "histc: range expected finite min <= max, got [%g, %g]", lo, hi);
    bn_tensor *xd = bn_tensor_dense(x);
    if (!xd) return NULL;
    const float *px = bn_tensor_data(xd);
    int64_t n = bn_tensor_numel(xd);
    if (lo == hi) {
        double mn = INFINITY, mx = -INFINITY;
        for (int64_t k = 0; k < n; k++) {
            double v = px[k];
            if (!isfinite(v)) continue;
            if (v < mn) mn = v;
            if (v > mx) mx = v;
        }
        if (mn > mx) mn = -1, mx = 1;              /* no finite value */
        else if (mn == mx) mn = mn - 1, mx = mx + 1; /* a constant */
        lo = mn, hi = mx;
    }
    bn_tensor *out = bn_tensor_zeros(1, &bins);
    int64_t *counts = calloc((size_t)bins, sizeof *counts);
    if (!out || !counts) {
        bool had_out = out != NULL; /* else the allocator already said why */
        bn_tensor_release(xd), bn_tensor_release(out), free(counts);
        return had_out ? bn_fail_null(BN_ENOMEM, "histc: out of memory for %lld bins", (long long)bins) : NULL;
    }
    double scale = (double)bins / (hi - lo);
    for (int64_t k = 0; k < n; k++) {
        double v = px[k];
        if (!(v >= lo && v <= hi)) continue; /* also drops NaN */
        int64_t b = (int64_t)((v - lo) * scale);
        if (b >= bins) b = bins - 1;
        counts[b]++;
    }
    float *po = bn_tensor_data(out);
    for (int64_t b = 0; b < bins; b++) po[b] = (float)counts[b];
    free(counts);
    bn_tensor_release(xd);
    if (lo_used) *lo_used = lo;
    if (hi_used) *hi_used = hi;
    return out;
}

bn_tensor *bn_histc(bn_tensor *x, int64_t bins, double lo, double hi, double *lo_used, double *hi_used)
{
    BN_PROFILE_BEGIN("histc", false);
    bn_tensor *out = bn_histc_unprofiled(x, bins, lo, hi, lo_used, hi_used);
    BN_PROFILE_END();
    return out;
}
