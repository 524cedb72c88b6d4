/* Softmax, log-softmax and the losses: cross-entropy (fused with
 * log-softmax, one node) and mean squared error.
 *
 * Softmax subtracts each row's maximum before exponentiating, and sums the
 * exponentials in double. A strided input is first made dense, so kernels see
 * a contiguous [outer x n x inner] block with the softmax taken over n. Each
 * row is handled by one thread in index order and whole-tensor sums use fixed
 * chunks, so results do not depend on the thread count. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autograd.h"
#include "ops.h"
#include "profile.h"

#define PAR_MIN 32768
#define MAX_CHUNKS 256
#define CHUNK_MIN 16384
/* Class indices are saved as floats for backward, exact up to here. */
#define FLOAT_EXACT (INT64_C(1) << 24)

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* ---- softmax and log_softmax -------------------------------------------- */

/* y[o,:,i] = softmax (or log_softmax) of x[o,:,i]. One row per task; rows of
 * a non-last dim are strided by `inner`. */
static void k_softmax(float *y, const float *x, int64_t outer, int64_t n, int64_t inner, bool log_out)
{
    /* An empty dim leaves nothing to write, but outer * inner alone can be
     * 2^40 rows ([2^20 x 0 x 2^20]): looping over them took hours. */
    int64_t rows = n > 0 ? outer * inner : 0;
#pragma omp parallel for schedule(static) if (rows * n > PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        int64_t o = r / inner, i = r % inner;
        const float *xr = x + o * n * inner + i;
        float *yr = y + o * n * inner + i;
        float m = -INFINITY;
        for (int64_t j = 0; j < n; j++)
            if (xr[j * inner] > m || isnan(xr[j * inner])) m = xr[j * inner];
        /* A row of -inf (or with +inf) has no finite shift: m - m is NaN and
         * so is the row, as in PyTorch. */
        double s = 0;
        for (int64_t j = 0; j < n; j++) s += exp((double)xr[j * inner] - m);
        if (log_out) {
            double ls = log(s);
            for (int64_t j = 0; j < n; j++) yr[j * inner] = (float)((double)xr[j * inner] - m - ls);
        } else {
            for (int64_t j = 0; j < n; j++) yr[j * inner] = (float)(exp((double)xr[j * inner] - m) / s);
        }
    }
}

/* softmax: dx = y (g - Σ g y); log_softmax: dx = g - exp(y) Σ g. */
static bn_status softmax_backward(bn_node *nd, bn_tensor *gout, bn_tensor **gin)
{
    int64_t outer = nd->i[0], n = nd->i[1], inner = nd->i[2];
    bool log_out = nd->i[3] != 0;
    bn_tensor *g = bn_tensor_dense(gout);
    bn_tensor *dx = bn_tensor_empty(nd->in_ndim[0], nd->in_shape[0]);
    if (!g || !dx) {
        bn_tensor_release(g);
        bn_tensor_release(dx);
        return bn_last_status();
    }
    const float *gv = bn_tensor_data(g), *yv = bn_tensor_data(nd->saved[0]);
    float *dv = bn_tensor_data(dx);
    int64_t rows = n > 0 ? outer * inner : 0; /* empty: nothing to do (see k_softmax) */
#pragma omp parallel for schedule(static) if (rows * n > PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        int64_t base = (r / inner) * n * inner + r % inner;
        const float *gr = gv + base, *yr = yv + base;
        float *dr = dv + base;
        double s = 0;
        for (int64_t j = 0; j < n; j++) s += log_out ? (double)gr[j * inner] : (double)gr[j * inner] * yr[j * inner];
        for (int64_t j = 0; j < n; j++) {
            double y = yr[j * inner], gj = gr[j * inner];
            dr[j * inner] = (float)(log_out ? gj - exp(y) * s : y * (gj - s));
        }
    }
    bn_tensor_release(g);
    gin[0] = dx;
    return BN_OK;
}

static bn_tensor *softmax_op_unprofiled(const char *op, bn_tensor *x, int dim, bool log_out)
{
    if (!x) return bn_fail_null(BN_EARG, "%s: input expected a tensor, got NULL", op);
    int d = bn_dim_wrap(op, dim, x->ndim);
    if (d < 0) return NULL;
    int64_t outer = 1, n = 1, inner = 1;
    for (int e = 0; e < x->ndim; e++) {
        if (e < d) outer *= x->shape[e];
        if (e > d) inner *= x->shape[e];
    }
    if (x->ndim > 0) n = x->shape[d];
    bn_tensor *xd = bn_tensor_dense(x);
    if (!xd) return NULL;
    bn_tensor *y = bn_tensor_empty(x->ndim, x->shape);
    if (!y) {
        bn_tensor_release(xd);
        return NULL;
    }
    k_softmax(bn_tensor_data(y), bn_tensor_data(xd), outer, n, inner, log_out);
    bn_tensor_release(xd);
    int64_t iv[4] = {outer, n, inner, log_out};
    return bn_record(y, op, softmax_backward, 1, &x, 1, &y, NULL, 0, iv, 4);
}

static bn_tensor *softmax_op(const char *op, bn_tensor *x, int dim, bool log_out)
{
    BN_PROFILE_BEGIN(op, false);
    bn_tensor *out = softmax_op_unprofiled(op, x, dim, log_out);
    BN_PROFILE_END();
    return out;
}

bn_tensor *bn_softmax(bn_tensor *x, int dim) { return softmax_op("softmax", x, dim, false); }
bn_tensor *bn_log_softmax(bn_tensor *x, int dim) { return softmax_op("log_softmax", x, dim, true); }

/* ---- cross_entropy ------------------------------------------------------ */

/* Saved for backward: logits, labels as floats [N], and each row's
 * log-sum-exp split into a float and its float remainder [2 x N], so
 * backward's exp(x - lse) sees lse to double precision even for large logits. */
static bn_status cross_entropy_backward(bn_node *nd, bn_tensor *gout, bn_tensor **gin)
{
    const bn_tensor *x = nd->saved[0];
    const float *lab = bn_tensor_data(nd->saved[1]), *lse = bn_tensor_data(nd->saved[2]);
    int64_t n = x->shape[0], k = x->shape[1];
    bn_tensor *dx = bn_tensor_empty(2, x->shape);
    if (!dx) return bn_last_status();
    double scale = n > 0 ? bn_tensor_get_flat(gout, 0) / (double)n : 0;
    const float *xv = bn_tensor_data(x);
    float *dv = bn_tensor_data(dx);
#pragma omp parallel for schedule(static) if (n * k > PAR_MIN)
    for (int64_t r = 0; r < n; r++) {
        double l = (double)lse[r] + lse[n + r];
        int64_t label = (int64_t)lab[r];
        for (int64_t j = 0; j < k; j++) {
            double p = exp((double)xv[r * k + j] - l);
            dv[r * k + j] = (float)(scale * (p - (j == label)));
        }
    }
    gin[0] = dx;
    return BN_OK;
}

static bn_tensor *bn_cross_entropy_unprofiled(bn_tensor *logits, const int64_t *labels, int64_t n_labels)
{
    if (!logits) return bn_fail_null(BN_EARG, "cross_entropy: logits expected a tensor, got NULL");
    if (logits->ndim != 2)
        return bn_fail_null(BN_ESHAPE, "cross_entropy: logits expected [N x K], got %s", bn_shape_str(logits));
    int64_t n = logits->shape[0], k = logits->shape[1];
    if (n_labels != n)
        return bn_fail_null(BN_ESHAPE, "cross_entropy: labels expected %lld (one per row of logits %s), got %lld",
                            (long long)n, bn_shape_str(logits), (long long)n_labels);
    if (!labels && n > 0) return bn_fail_null(BN_EARG, "cross_entropy: labels expected an array, got NULL");
    if (k > FLOAT_EXACT)
        return bn_fail_null(BN_EARG, "cross_entropy: logits have %lld classes; at most 2^24 are supported",
                            (long long)k);
    for (int64_t r = 0; r < n; r++)
        if (labels[r] < 0 || labels[r] >= k)
            return bn_fail_null(BN_EARG, "cross_entropy: labels[%lld] expected in [0, %lld) (0-based), got %lld",
                                (long long)r, (long long)k, (long long)labels[r]);

    bn_tensor *x = bn_tensor_dense(logits);
    bn_tensor *out = x ? bn_tensor_empty(0, NULL) : NULL;
    bn_tensor *lab = out ? bn_tensor_empty(1, &n) : NULL;
    bn_tensor *lse = lab ? bn_tensor_empty(2, (const int64_t[]){2, n}) : NULL;
    double *row = lse ? malloc((size_t)(n ? n : 1) * sizeof *row) : NULL;
    if (!row) {
        if (lse) bn_fail(BN_ENOMEM, "cross_entropy: out of memory");
        bn_tensor_release(x);
        bn_tensor_release(out);
        bn_tensor_release(lab);
        bn_tensor_release(lse);
        return NULL;
    }
    const float *xv = bn_tensor_data(x);
    float *lv = bn_tensor_data(lab), *sv = bn_tensor_data(lse);
#pragma omp parallel for schedule(static) if (n * k > PAR_MIN)
    for (int64_t r = 0; r < n; r++) {
        const float *xr = xv + r * k;
        float m = -INFINITY;
        for (int64_t j = 0; j < k; j++)
            if (xr[j] > m || isnan(xr[j])) m = xr[j];
        double s = 0;
        for (int64_t j = 0; j < k; j++) s += exp((double)xr[j] - m);
        double l = m + log(s);
        float hi = (float)l;
        sv[r] = hi;
        sv[n + r] = (float)(l - hi);
        lv[r] = (float)labels[r];
        row[r] = l - xr[labels[r]];
    }
    double total = 0;
    for (int64_t r = 0; r < n; r++) total += row[r]; /* in row order: deterministic */
    free(row);
    bn_tensor_data(out)[0] = n > 0 ? (float)(total / (double)n) : NAN; /* mean over no rows, like PyTorch */
    bn_tensor *saved[3] = {x, lab, lse};
    out = bn_record(out, "cross_entropy", cross_entropy_backward, 1, &logits, 3, saved, NULL, 0, NULL, 0);
    bn_tensor_release(x);
    bn_tensor_release(lab);
    bn_tensor_release(lse);
    return out;
}

bn_tensor *bn_cross_entropy(bn_tensor *logits, const int64_t *labels, int64_t n_labels)
{
    BN_PROFILE_BEGIN("cross_entropy", false);
    bn_tensor *out = bn_cross_entropy_unprofiled(logits, labels, n_labels);
    BN_PROFILE_END();
    return out;
}

/* ---- mse_loss ----------------------------------------------------------- */

/* Σ (a - b)^2 in double, in fixed chunks (independent of the thread count). */
static double sum_sq_diff(const float *a, const float *b, int64_t n)
{
    int64_t nch = (n + CHUNK_MIN - 1) / CHUNK_MIN;
    nch = nch < 1 ? 1 : nch > MAX_CHUNKS ? MAX_CHUNKS : nch;
    int64_t len = (n + nch - 1) / nch;
    double part[MAX_CHUNKS];
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t c = 0; c < nch; c++) {
        double acc = 0;
        for (int64_t j = c * len; j < min64((c + 1) * len, n); j++) {
            double d = (double)a[j] - b[j];
            acc += d * d;
        }
        part[c] = acc;
    }
    double s = 0;
    for (int64_t c = 0; c < nch; c++) s += part[c];
    return s;
}

/* d/da = 2 (a - b) g / n, d/db = -d/da. */
static bn_status mse_backward(bn_node *nd, bn_tensor *gout, bn_tensor **gin)
{
    const bn_tensor *a = nd->saved[0], *b = nd->saved[1];
    int64_t n = bn_tensor_numel(a);
    double scale = n > 0 ? 2.0 * bn_tensor_get_flat(gout, 0) / (double)n : 0;
    bn_tensor *da = nd->needs[0] ? bn_tensor_empty(a->ndim, a->shape) : NULL;
    bn_tensor *db = nd->needs[1] ? bn_tensor_empty(a->ndim, a->shape) : NULL;
    if ((nd->needs[0] && !da) || (nd->needs[1] && !db)) {
        bn_tensor_release(da);
        bn_tensor_release(db);
        return bn_last_status();
    }
    const float *av = bn_tensor_data(a), *bv = bn_tensor_data(b);
    float *pa = da ? bn_tensor_data(da) : NULL, *pb = db ? bn_tensor_data(db) : NULL;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t j = 0; j < n; j++) {
        double v = scale * ((double)av[j] - bv[j]);
        if (pa) pa[j] = (float)v;
        if (pb) pb[j] = (float)-v;
    }
    gin[0] = da;
    gin[1] = db;
    return BN_OK;
}

static bn_tensor *bn_mse_loss_unprofiled(bn_tensor *a, bn_tensor *b)
{
    if (!a || !b) return bn_fail_null(BN_EARG, "mse_loss: %s expected a tensor, got NULL", a ? "target" : "input");
    if (!bn_shape_equal(a, b))
        return bn_fail_null(BN_ESHAPE, "mse_loss: input and target expected the same shape, got %s and %s",
                            bn_shape_str(a), bn_shape_str(b));
    bn_tensor *ad = bn_tensor_dense(a), *bd = ad ? bn_tensor_dense(b) : NULL;
    bn_tensor *out = bd ? bn_tensor_empty(0, NULL) : NULL;
    if (!out) {
        bn_tensor_release(ad);
        bn_tensor_release(bd);
        return NULL;
    }
    int64_t n = bn_tensor_numel(a);
    double s = sum_sq_diff(bn_tensor_data(ad), bn_tensor_data(bd), n);
    bn_tensor_data(out)[0] = n > 0 ? (float)(s / (double)n) : NAN; /* mean of nothing, like PyTorch */
    bn_tensor *inputs[2] = {a, b}, *saved[2] = {ad, bd};
    out = bn_record(out, "mse_loss", mse_backward, 2, inputs, 2, saved, NULL, 0, NULL, 0);
    bn_tensor_release(ad);
    bn_tensor_release(bd);
    return out;
}

bn_tensor *bn_mse_loss(bn_tensor *a, bn_tensor *b)
{
    BN_PROFILE_BEGIN("mse_loss", false);
    bn_tensor *out = bn_mse_loss_unprofiled(a, b);
    BN_PROFILE_END();
    return out;
}
