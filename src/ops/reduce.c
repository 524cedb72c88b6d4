/* Reductions over one dim or the whole tensor: sum, mean, var, std, max, min
 * and argmax, with their backward.
 *
 * A strided input is first made dense, so every kernel sees a contiguous
 * [outer x n x inner] block and reduces over n. Sums accumulate in double.
 * How work is split never depends on the thread count: each output is
 * reduced by one thread in index order, and whole-tensor reductions use chunk
 * boundaries fixed by n alone, combined in chunk order. So results are
 * bit-identical for any OMP_NUM_THREADS. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autograd.h"
#include "ops.h"
#include "profile.h"

/* Above this much work a loop is worth splitting over threads. */
#define PAR_MIN 32768
/* Columns reduced together when the reduced dim is not the last: the inner
 * loop then walks memory contiguously. */
#define BLK 256
/* Whole-tensor reductions split n into at most MAX_CHUNKS chunks of at least
 * CHUNK_MIN elements (fixed by n, not by the thread count). */
#define MAX_CHUNKS 256
#define CHUNK_MIN 16384
/* Indices are returned as floats, exact up to here. */
#define FLOAT_EXACT (INT64_C(1) << 24)

enum { K_SUM, K_MEAN, K_VAR, K_STD };

/* The reduction's geometry: input viewed as [outer x n x inner]. */
typedef struct red {
    int64_t outer, n, inner;
    int out_ndim;
    int64_t out_shape[BN_MAX_DIMS];
} red;

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* a / b with IEEE results for b == 0 spelled out (0/0 = NaN, x/0 = +-inf),
 * so the sanitizers never see a division by zero. */
static double div0(double a, double b)
{
    if (b != 0) return a / b;
    if (isnan(a) || a == 0) return NAN;
    return a > 0 ? INFINITY : -INFINITY;
}

static bn_status red_dim(const char *op, const bn_tensor *a, int dim, bool keepdim, red *r)
{
    if (!a) return bn_fail(BN_EARG, "%s: input expected a tensor, got NULL", op);
    int d = bn_dim_wrap(op, dim, a->ndim);
    if (d < 0) return bn_last_status();
    r->outer = r->n = r->inner = 1;
    r->out_ndim = 0;
    if (a->ndim == 0) return BN_OK; /* a scalar reduces over its one element, like PyTorch */
    for (int e = 0; e < a->ndim; e++) {
        if (e < d) r->outer *= a->shape[e];
        if (e > d) r->inner *= a->shape[e];
        if (e != d) r->out_shape[r->out_ndim++] = a->shape[e];
        else if (keepdim) r->out_shape[r->out_ndim++] = 1;
    }
    r->n = a->shape[d];
    return BN_OK;
}

static bn_status red_all(const char *op, const bn_tensor *a, red *r)
{
    if (!a) return bn_fail(BN_EARG, "%s: input expected a tensor, got NULL", op);
    r->outer = r->inner = 1;
    r->n = bn_tensor_numel(a);
    r->out_ndim = 0;
    return BN_OK;
}

static int64_t n_chunks(int64_t n)
{
    int64_t c = (n + CHUNK_MIN - 1) / CHUNK_MIN;
    return c < 1 ? 1 : c > MAX_CHUNKS ? MAX_CHUNKS : c;
}

/* ---- kernels ------------------------------------------------------------ */

/* Σ x[j] (power 1) or Σ (x[j] - shift)^2 (power 2) over x[0..n), in double,
 * in fixed chunks. */
static double chunked_moment(const float *x, int64_t n, double shift, int power)
{
    int64_t nch = n_chunks(n), len = (n + nch - 1) / nch;
    double part[MAX_CHUNKS];
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t c = 0; c < nch; c++) {
        int64_t j1 = min64((c + 1) * len, n);
        double acc = 0;
        if (power == 1)
            for (int64_t j = c * len; j < j1; j++) acc += x[j];
        else
            for (int64_t j = c * len; j < j1; j++) {
                double d = x[j] - shift;
                acc += d * d;
            }
        part[c] = acc;
    }
    double s = 0;
    for (int64_t c = 0; c < nch; c++) s += part[c];
    return s;
}

/* s[o*inner + i] = Σ_j x[o,j,i] (power 1) or Σ_j (x[o,j,i] - shift[o*inner+i])^2. */
static void k_moment(double *s, const float *x, const double *shift, int power, int64_t outer, int64_t n,
                     int64_t inner)
{
    int64_t nout = outer * inner;
    if (nout == 0) return;
    if (nout == 1) {
        s[0] = chunked_moment(x, n, shift ? shift[0] : 0, power);
        return;
    }
    int64_t nblk = (inner + BLK - 1) / BLK, tasks = outer * nblk;
#pragma omp parallel for schedule(static) if (nout * n > PAR_MIN)
    for (int64_t t = 0; t < tasks; t++) {
        int64_t o = t / nblk, i0 = (t % nblk) * BLK, m = min64(BLK, inner - i0);
        double acc[BLK];
        const double *sh = shift ? shift + o * inner + i0 : NULL;
        for (int64_t i = 0; i < m; i++) acc[i] = 0;
        for (int64_t j = 0; j < n; j++) {
            const float *row = x + (o * n + j) * inner + i0;
            if (power == 1)
                for (int64_t i = 0; i < m; i++) acc[i] += row[i];
            else
                for (int64_t i = 0; i < m; i++) {
                    double d = row[i] - sh[i];
                    acc[i] += d * d;
                }
        }
        for (int64_t i = 0; i < m; i++) s[o * inner + i0 + i] = acc[i];
    }
}

/* Per-output means in double (NaN over an empty dim). */
static void k_mean(double *mean, const float *x, int64_t outer, int64_t n, int64_t inner)
{
    k_moment(mean, x, NULL, 1, outer, n, inner);
    for (int64_t k = 0; k < outer * inner; k++) mean[k] = div0(mean[k], (double)n);
}

/* Does v replace best? NaN wins over numbers and the first NaN stays, as in
 * PyTorch; otherwise strict comparison keeps the first extreme. */
static inline bool better(float v, float best, bool is_max)
{
    if (isnan(best)) return false;
    if (isnan(v)) return true;
    return is_max ? v > best : v < best;
}

/* val/idx[o*inner + i] = extreme of x[o, :, i] and its first position; n >= 1;
 * idx may be NULL. */
static void k_extreme(float *val, float *idx, const float *x, int64_t outer, int64_t n, int64_t inner, bool is_max)
{
    int64_t nout = outer * inner;
    if (nout == 0) return;
    if (nout == 1) {
        int64_t nch = n_chunks(n), len = (n + nch - 1) / nch;
        float pv[MAX_CHUNKS];
        int64_t pi[MAX_CHUNKS];
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
        for (int64_t c = 0; c < nch; c++) {
            int64_t j0 = min64(c * len, n - 1), j1 = min64((c + 1) * len, n), bi = j0;
            float b = x[j0];
            for (int64_t j = j0 + 1; j < j1; j++)
                if (better(x[j], b, is_max)) b = x[bi = j];
            pv[c] = b;
            pi[c] = bi;
        }
        float b = pv[0];
        int64_t bi = pi[0];
        for (int64_t c = 1; c < nch; c++) /* in chunk order: ties keep the earlier one */
            if (better(pv[c], b, is_max)) b = pv[c], bi = pi[c];
        val[0] = b;
        if (idx) idx[0] = (float)bi;
        return;
    }
    int64_t nblk = (inner + BLK - 1) / BLK, tasks = outer * nblk;
#pragma omp parallel for schedule(static) if (nout * n > PAR_MIN)
    for (int64_t t = 0; t < tasks; t++) {
        int64_t o = t / nblk, i0 = (t % nblk) * BLK, m = min64(BLK, inner - i0);
        float best[BLK];
        int64_t at[BLK];
        const float *row = x + o * n * inner + i0;
        for (int64_t i = 0; i < m; i++) {
            best[i] = row[i];
            at[i] = 0;
        }
        for (int64_t j = 1; j < n; j++) {
            row = x + (o * n + j) * inner + i0;
            for (int64_t i = 0; i < m; i++)
                if (better(row[i], best[i], is_max)) {
                    best[i] = row[i];
                    at[i] = j;
                }
        }
        for (int64_t i = 0; i < m; i++) {
            val[o * inner + i0 + i] = best[i];
            if (idx) idx[o * inner + i0 + i] = (float)at[i];
        }
    }
}

/* ---- sum, mean, var, std ------------------------------------------------ */

/* dx[o,j,i] = g[o,i] * coef (sum, mean) or g[o,i] * coef[o,i] * (x[o,j,i] - mean[o,i]). */
static bn_status moment_backward(bn_node *nd, bn_tensor *gout, bn_tensor **gin)
{
    int64_t outer = nd->i[0], n = nd->i[1], inner = nd->i[2], kind = nd->i[3];
    bn_tensor *g = bn_tensor_dense(gout);
    bn_tensor *dx = bn_tensor_empty(nd->in_ndim[0], nd->in_shape[0]);
    double *mean = NULL, *coef = NULL;
    if (!g || !dx) goto fail;
    const float *gv = bn_tensor_data(g);
    float *dv = bn_tensor_data(dx);
    int64_t nout = outer * inner;
    if (kind == K_SUM || kind == K_MEAN) {
        double scale = kind == K_SUM ? 1.0 : div0(1.0, (double)n);
#pragma omp parallel for schedule(static) if (nout * n > PAR_MIN)
        for (int64_t r = 0; r < outer * n; r++) {
            const float *grow = gv + (r / n) * inner;
            float *drow = dv + r * inner;
            for (int64_t i = 0; i < inner; i++) drow[i] = (float)(grow[i] * scale);
        }
    } else {
        /* d var / dx = 2 (x - mean) / (n - correction); d std = d var / (2 std),
         * taken as 0 where std == 0 (PyTorch's choice: no NaN from constant inputs). */
        const bn_tensor *x = nd->saved[0];
        const float *xv = bn_tensor_data(x);
        double div = (double)(n - nd->i[4] > 0 ? n - nd->i[4] : 0);
        mean = malloc((size_t)(nout ? nout : 1) * sizeof *mean);
        coef = malloc((size_t)(nout ? nout : 1) * sizeof *coef);
        if (!mean || !coef) {
            bn_fail(BN_ENOMEM, "%s backward: out of memory", nd->op);
            goto fail;
        }
        k_mean(mean, xv, outer, n, inner);
        for (int64_t k = 0; k < nout; k++) {
            if (kind == K_VAR) {
                coef[k] = gv[k] * div0(2.0, div);
            } else {
                double sd = bn_tensor_data(nd->saved[1])[k];
                coef[k] = sd == 0 ? 0.0 : gv[k] * div0(1.0, div * sd);
            }
        }
#pragma omp parallel for schedule(static) if (nout * n > PAR_MIN)
        for (int64_t r = 0; r < outer * n; r++) {
            int64_t o = r / n;
            const float *xrow = xv + r * inner;
            float *drow = dv + r * inner;
            for (int64_t i = 0; i < inner; i++)
                drow[i] = (float)(coef[o * inner + i] * ((double)xrow[i] - mean[o * inner + i]));
        }
    }
    free(mean);
    free(coef);
    bn_tensor_release(g);
    gin[0] = dx;
    return BN_OK;
fail:
    free(mean);
    free(coef);
    bn_tensor_release(g);
    bn_tensor_release(dx);
    return bn_last_status();
}

static bn_tensor *moment_unprofiled(const char *op, int kind, bn_tensor *a, const red *r, int correction)
{
    bn_tensor *x = bn_tensor_dense(a);
    if (!x) return NULL;
    int64_t nout = r->outer * r->inner;
    bn_tensor *out = bn_tensor_empty(r->out_ndim, r->out_shape);
    double *s = malloc((size_t)(nout ? nout : 1) * sizeof *s);
    double *ss = kind >= K_VAR ? malloc((size_t)(nout ? nout : 1) * sizeof *ss) : NULL;
    if (!out || !s || (kind >= K_VAR && !ss)) {
        if (out) bn_fail(BN_ENOMEM, "%s: out of memory", op);
        goto fail;
    }
    const float *xv = bn_tensor_data(x);
    float *ov = bn_tensor_data(out);
    if (kind == K_SUM) {
        k_moment(s, xv, NULL, 1, r->outer, r->n, r->inner);
        for (int64_t k = 0; k < nout; k++) ov[k] = (float)s[k];
    } else {
        k_mean(s, xv, r->outer, r->n, r->inner);
        if (kind == K_MEAN) {
            for (int64_t k = 0; k < nout; k++) ov[k] = (float)s[k];
        } else {
            /* Two passes (mean, then squared deviations) rather than Σx² - nμ²,
             * which cancels catastrophically when |mean| >> std. */
            k_moment(ss, xv, s, 2, r->outer, r->n, r->inner);
            /* PyTorch's divisor: max(0, n - correction), so n <= correction gives NaN (or inf). */
            double div = (double)(r->n - correction > 0 ? r->n - correction : 0);
            for (int64_t k = 0; k < nout; k++) {
                double v = div0(ss[k], div);
                ov[k] = (float)(kind == K_STD ? sqrt(v) : v);
            }
        }
    }
    free(s);
    free(ss);
    bn_tensor *saved[2] = {x, out};
    int64_t iv[5] = {r->outer, r->n, r->inner, kind, correction};
    out = bn_record(out, op, moment_backward, 1, &a, kind >= K_VAR ? (kind == K_STD ? 2 : 1) : 0, saved, NULL, 0,
                    iv, 5);
    bn_tensor_release(x);
    return out;
fail:
    free(s);
    free(ss);
    bn_tensor_release(out);
    bn_tensor_release(x);
    return NULL;
}

static bn_tensor *moment(const char *op, int kind, bn_tensor *a, const red *r, int correction)
{
    BN_PROFILE_BEGIN(op, false);
    bn_tensor *out = moment_unprofiled(op, kind, a, r, correction);
    BN_PROFILE_END();
    return out;
}

static bn_status check_correction(const char *op, int correction)
{
    if (correction < 0) return bn_fail(BN_EARG, "%s: correction expected >= 0, got %d", op, correction);
    return BN_OK;
}

bn_tensor *bn_sum_all(bn_tensor *a)
{
    red r = {0};
    if (red_all("sum_all", a, &r) != BN_OK) return NULL;
    return moment("sum", K_SUM, a, &r, 0);
}

bn_tensor *bn_mean_all(bn_tensor *a)
{
    red r = {0};
    if (red_all("mean_all", a, &r) != BN_OK) return NULL;
    return moment("mean", K_MEAN, a, &r, 0);
}

bn_tensor *bn_sum(bn_tensor *a, int dim, bool keepdim)
{
    red r = {0};
    if (red_dim("sum", a, dim, keepdim, &r) != BN_OK) return NULL;
    return moment("sum", K_SUM, a, &r, 0);
}

bn_tensor *bn_mean(bn_tensor *a, int dim, bool keepdim)
{
    red r = {0};
    if (red_dim("mean", a, dim, keepdim, &r) != BN_OK) return NULL;
    return moment("mean", K_MEAN, a, &r, 0);
}

bn_tensor *bn_var(bn_tensor *a, int dim, bool keepdim, int correction)
{
    red r = {0};
    if (red_dim("var", a, dim, keepdim, &r) != BN_OK || check_correction("var", correction) != BN_OK) return NULL;
    return moment("var", K_VAR, a, &r, correction);
}

bn_tensor *bn_var_all(bn_tensor *a, int correction)
{
    red r = {0};
    if (red_all("var_all", a, &r) != BN_OK || check_correction("var_all", correction) != BN_OK) return NULL;
    return moment("var", K_VAR, a, &r, correction);
}

bn_tensor *bn_std(bn_tensor *a, int dim, bool keepdim, int correction)
{
    red r = {0};
    if (red_dim("std", a, dim, keepdim, &r) != BN_OK || check_correction("std", correction) != BN_OK) return NULL;
    return moment("std", K_STD, a, &r, correction);
}

bn_tensor *bn_std_all(bn_tensor *a, int correction)
{
    red r = {0};
    if (red_all("std_all", a, &r) != BN_OK || check_correction("std_all", correction) != BN_OK) return NULL;
    return moment("std", K_STD, a, &r, correction);
}

/* ---- max, min, argmax --------------------------------------------------- */

/* The gradient goes to the recorded (first extreme) position along the dim. */
static bn_status extreme_backward(bn_node *nd, bn_tensor *gout, bn_tensor **gin)
{
    int64_t outer = nd->i[0], n = nd->i[1], inner = nd->i[2];
    bn_tensor *g = bn_tensor_dense(gout);
    bn_tensor *dx = bn_tensor_zeros(nd->in_ndim[0], nd->in_shape[0]);
    if (!g || !dx) {
        bn_tensor_release(g);
        bn_tensor_release(dx);
        return bn_last_status();
    }
    const float *gv = bn_tensor_data(g), *iv = bn_tensor_data(nd->saved[0]);
    float *dv = bn_tensor_data(dx);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t j = (int64_t)iv[o * inner + i];
            dv[(o * n + j) * inner + i] = gv[o * inner + i];
        }
    bn_tensor_release(g);
    gin[0] = dx;
    return BN_OK;
}

static bn_status check_extreme(const char *op, const bn_tensor *a, const red *r, bool want_index)
{
    if (r->n == 0)
        return bn_fail(BN_EARG, "%s: cannot reduce over a dim of size 0 (input %s); the result has no identity",
                       op, bn_shape_str(a));
    if (want_index && r->n > FLOAT_EXACT)
        return bn_fail(BN_EARG, "%s: reduced dim has %lld elements; indices above 2^24 are not exact as float", op,
                       (long long)r->n);
    return BN_OK;
}

static bn_tensor *extreme_dim_unprofiled(const char *op, bool is_max, bn_tensor *a, int dim, bool keepdim, bn_tensor **indices)
{
    if (indices) *indices = NULL;
    red r = {0};
    if (red_dim(op, a, dim, keepdim, &r) != BN_OK) return NULL;
    bool need = bn_grad_needed(1, &a);
    if (check_extreme(op, a, &r, need || indices) != BN_OK) return NULL;
    bn_tensor *x = bn_tensor_dense(a);
    if (!x) return NULL;
    bn_tensor *out = bn_tensor_empty(r.out_ndim, r.out_shape);
    bn_tensor *idx = out && (need || indices) ? bn_tensor_empty(r.out_ndim, r.out_shape) : NULL;
    bn_tensor *user_idx = idx && indices ? bn_tensor_empty(r.out_ndim, r.out_shape) : NULL;
    if (!out || ((need || indices) && !idx) || (indices && !user_idx)) {
        bn_tensor_release(x);
        bn_tensor_release(out);
        bn_tensor_release(idx);
        return NULL;
    }
    k_extreme(bn_tensor_data(out), idx ? bn_tensor_data(idx) : NULL, bn_tensor_data(x), r.outer, r.n, r.inner,
              is_max);
    bn_tensor_release(x);
    /* The caller gets its own copy of the indices, so writing into it cannot
     * change what backward scatters to. */
    if (user_idx)
        memcpy(bn_tensor_data(user_idx), bn_tensor_data(idx), (size_t)bn_tensor_numel(idx) * sizeof(float));
    int64_t iv[3] = {r.outer, r.n, r.inner};
    out = bn_record(out, op, extreme_backward, 1, &a, 1, &idx, NULL, 0, iv, 3);
    bn_tensor_release(idx);
    if (!out) {
        bn_tensor_release(user_idx);
        return NULL;
    }
    if (indices) *indices = user_idx;
    return out;
}

static bn_tensor *extreme_dim(const char *op, bool is_max, bn_tensor *a, int dim, bool keepdim, bn_tensor **indices)
{
    BN_PROFILE_BEGIN(op, false);
    bn_tensor *out = extreme_dim_unprofiled(op, is_max, a, dim, keepdim, indices);
    BN_PROFILE_END();
    return out;
}

bn_tensor *bn_max(bn_tensor *a, int dim, bool keepdim, bn_tensor **indices)
{
    return extreme_dim("max", true, a, dim, keepdim, indices);
}

bn_tensor *bn_min(bn_tensor *a, int dim, bool keepdim, bn_tensor **indices)
{
    return extreme_dim("min", false, a, dim, keepdim, indices);
}

/* Like PyTorch's max()/min() over everything: the gradient is shared evenly
 * among all elements equal to the result (NaN results: among the NaNs). */
static bn_status extreme_all_backward(bn_node *nd, bn_tensor *gout, bn_tensor **gin)
{
    const bn_tensor *x = nd->saved[0];
    int64_t n = bn_tensor_numel(x);
    float res = bn_tensor_data(nd->saved[1])[0];
    bn_tensor *dx = bn_tensor_empty(x->ndim, x->shape);
    if (!dx) return bn_last_status();
    const float *xv = bn_tensor_data(x);
    float *dv = bn_tensor_data(dx);
    bool nan = isnan(res);
    int64_t count = 0;
    for (int64_t k = 0; k < n; k++) count += nan ? isnan(xv[k]) : xv[k] == res;
    float share = (float)div0(bn_tensor_get_flat(gout, 0), (double)count);
    for (int64_t k = 0; k < n; k++) dv[k] = (nan ? isnan(xv[k]) : xv[k] == res) ? share : 0.0f;
    gin[0] = dx;
    return BN_OK;
}

static bn_tensor *extreme_all_unprofiled(const char *op, bool is_max, bn_tensor *a)
{
    red r = {0};
    if (red_all(op, a, &r) != BN_OK) return NULL;
    if (r.n == 0)
        return bn_fail_null(BN_EARG, "%s: cannot reduce an empty tensor %s; the result has no identity", op,
                            bn_shape_str(a));
    bn_tensor *x = bn_tensor_dense(a);
    if (!x) return NULL;
    bn_tensor *out = bn_tensor_empty(0, NULL);
    if (!out) {
        bn_tensor_release(x);
        return NULL;
    }
    k_extreme(bn_tensor_data(out), NULL, bn_tensor_data(x), 1, r.n, 1, is_max);
    bn_tensor *saved[2] = {x, out};
    out = bn_record(out, is_max ? "max" : "min", extreme_all_backward, 1, &a, 2, saved, NULL, 0, NULL, 0);
    bn_tensor_release(x);
    return out;
}

static bn_tensor *extreme_all(const char *op, bool is_max, bn_tensor *a)
{
    BN_PROFILE_BEGIN(op, false);
    bn_tensor *out = extreme_all_unprofiled(op, is_max, a);
    BN_PROFILE_END();
    return out;
}

bn_tensor *bn_max_all(bn_tensor *a) { return extreme_all("max_all", true, a); }
bn_tensor *bn_min_all(bn_tensor *a) { return extreme_all("min_all", false, a); }

static bn_tensor *bn_argmax_unprofiled(bn_tensor *a, int dim, bool keepdim)
{
    red r = {0};
    if (red_dim("argmax", a, dim, keepdim, &r) != BN_OK) return NULL;
    if (check_extreme("argmax", a, &r, true) != BN_OK) return NULL;
    bn_tensor *x = bn_tensor_dense(a);
    if (!x) return NULL;
    bn_tensor *idx = bn_tensor_empty(r.out_ndim, r.out_shape);
    int64_t nout = r.outer * r.inner;
    float *val = idx ? malloc((size_t)(nout > 0 ? nout : 1) * sizeof *val) : NULL;
    if (!idx || !val) {
        if (idx) bn_fail(BN_ENOMEM, "argmax: out of memory");
        bn_tensor_release(x);
        bn_tensor_release(idx);
        return NULL;
    }
    k_extreme(val, bn_tensor_data(idx), bn_tensor_data(x), r.outer, r.n, r.inner, true);
    free(val);
    bn_tensor_release(x);
    return idx;
}

bn_tensor *bn_argmax(bn_tensor *a, int dim, bool keepdim)
{
    BN_PROFILE_BEGIN("argmax", false);
    bn_tensor *out = bn_argmax_unprofiled(a, dim, keepdim);
    BN_PROFILE_END();
    return out;
}
