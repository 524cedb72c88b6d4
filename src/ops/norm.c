/* Batch normalization over dim 1 of [N x C x ...] (BatchNorm1d on [N x C],
 * BatchNorm2d on [N x C x H x W]), as one node with a hand-written backward.
 *
 * The input is made dense, so channel c is the N runs x[(n*C + c)*S ..][0..S)
 * with S the product of the trailing dims. Work is split over channels and
 * each channel's sums run in one thread, in order, in double: results do not
 * depend on the thread count, and the statistics stay accurate for large
 * N*H*W and for activations whose mean is large next to their spread. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autograd.h"
#include "ops.h"
#include "profile.h"

#define PAR_MIN 32768

/* Rows of the saved per-channel statistics [STATS_ROWS x C]. The mean is
 * kept as a float plus its float remainder so backward recomputes
 * x - mean to double precision; gamma is copied so that an in-place update
 * of the weight between forward and backward cannot change the gradient. */
enum { ST_MEAN_HI, ST_MEAN_LO, ST_INVSTD, ST_GAMMA, STATS_ROWS };

/* Element c of a 1-D tensor of any stride (its storage slot, for writing). */
static float *at1(const bn_tensor *t, int64_t c) { return t->storage->data + t->offset + c * t->stride[0]; }

/* 1 / sqrt(v) with v == 0 giving +inf explicitly (eps may be 0). */
static double rsqrt0(double v) { return v == 0 ? INFINITY : 1.0 / sqrt(v); }

/* Σ x[k] (shift NULL) or Σ (x[k] - shift)^2 over the n runs of channel ch,
 * in double with four partial sums: independent dependency chains run ~4x
 * faster than one, and the lane of each element is fixed, so the result
 * still does not depend on the thread count. */
static double channel_sum(const float *x, int64_t nb, int64_t c, int64_t s, int64_t ch, const double *shift)
{
    double acc[4] = {0, 0, 0, 0};
    double sh = shift ? *shift : 0;
    for (int64_t n = 0; n < nb; n++) {
        const float *xr = x + (n * c + ch) * s;
        int64_t k = 0;
        if (!shift) {
            for (; k + 4 <= s; k += 4)
                for (int l = 0; l < 4; l++) acc[l] += xr[k + l];
            for (; k < s; k++) acc[0] += xr[k];
        } else {
            for (; k + 4 <= s; k += 4)
                for (int l = 0; l < 4; l++) {
                    double d = xr[k + l] - sh;
                    acc[l] += d * d;
                }
            for (; k < s; k++) acc[0] += (xr[k] - sh) * (xr[k] - sh);
        }
    }
    return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

static bn_status check_vec(const char *name, const bn_tensor *t, int64_t c)
{
    if (t && (t->ndim != 1 || t->shape[0] != c))
        return bn_fail(BN_ESHAPE, "batch_norm: %s expected [%lld], got %s", name, (long long)c, bn_shape_str(t));
    return BN_OK;
}

static bn_status check_buffer(const char *name, const bn_tensor *t)
{
    if (t && (t->requires_grad || t->grad_fn))
        return bn_fail(BN_EARG,
                       "batch_norm: %s expected a buffer that does not require grad (it is updated in place), "
                       "got a tensor that requires grad",
                       name);
    return BN_OK;
}

static bn_status check_args(bn_tensor *x, bn_tensor *rm, bn_tensor *rv, bn_tensor *w, bn_tensor *b,
                            const bn_batch_norm_opts *o)
{
    if (!x) return bn_fail(BN_EARG, "batch_norm: input expected a tensor, got NULL");
    if (!o) return bn_fail(BN_EARG, "batch_norm: opts expected non-NULL (training, momentum, eps)");
    if (x->ndim < 2)
        return bn_fail(BN_ESHAPE, "batch_norm: input expected [N x C] or [N x C x H x W], got %s", bn_shape_str(x));
    int64_t c = x->shape[1];
    if (check_vec("running_mean", rm, c) != BN_OK || check_vec("running_var", rv, c) != BN_OK ||
        check_vec("weight", w, c) != BN_OK || check_vec("bias", b, c) != BN_OK)
        return bn_last_status();
    if (check_buffer("running_mean", rm) != BN_OK || check_buffer("running_var", rv) != BN_OK)
        return bn_last_status();
    if (!rm != !rv)
        return bn_fail(BN_EARG, "batch_norm: running_mean and running_var expected both or neither, got only %s",
                       rm ? "running_mean" : "running_var");
    if (!o->training && !rm)
        return bn_fail(BN_EARG, "batch_norm: running_mean and running_var are required in eval mode "
                                "(training = false), got NULL");
    if (!(o->momentum >= 0 && o->momentum <= 1))
        return bn_fail(BN_EARG, "batch_norm: momentum expected in [0, 1], got %g", o->momentum);
    if (!(o->eps >= 0 && isfinite(o->eps)))
        return bn_fail(BN_EARG, "batch_norm: eps expected finite and >= 0, got %g", o->eps);
    int64_t per_channel = bn_tensor_numel(x) / (c > 0 ? c : 1);
    if (o->training && c > 0 && per_channel == 1)
        return bn_fail(BN_EARG, "batch_norm: expected more than 1 value per channel when training, got input %s",
                       bn_shape_str(x));
    return BN_OK;
}

/* Training: dx = gamma invstd (dy - mean(dy) - xhat mean(dy xhat)), the
 * gradient through the batch mean and variance. Eval: the statistics are
 * constants, dx = gamma invstd dy. Both: dgamma = Σ dy xhat, dbeta = Σ dy. */
static bn_status batch_norm_backward(bn_node *nd, bn_tensor *gout, bn_tensor **gin)
{
    bool training = nd->i[0] != 0;
    int64_t nb = nd->i[1], c = nd->i[2], s = nd->i[3], m = nb * s;
    const bn_tensor *x = nd->saved[0];
    const float *st = bn_tensor_data(nd->saved[1]);
    bn_tensor *g = bn_tensor_dense(gout);
    bn_tensor *dx = nd->needs[0] ? bn_tensor_empty(x->ndim, x->shape) : NULL;
    bn_tensor *dw = nd->needs[1] ? bn_tensor_empty(1, &c) : NULL;
    bn_tensor *db = nd->needs[2] ? bn_tensor_empty(1, &c) : NULL;
    if (!g || (nd->needs[0] && !dx) || (nd->needs[1] && !dw) || (nd->needs[2] && !db)) {
        bn_tensor_release(g);
        bn_tensor_release(dx);
        bn_tensor_release(dw);
        bn_tensor_release(db);
        return bn_last_status();
    }
    const float *xv = bn_tensor_data(x), *gv = bn_tensor_data(g);
    float *dxv = dx ? bn_tensor_data(dx) : NULL, *dwv = dw ? bn_tensor_data(dw) : NULL;
    float *dbv = db ? bn_tensor_data(db) : NULL;
    bool need_sums = training || dw || db;
#pragma omp parallel for schedule(static) if (m * c > PAR_MIN)
    for (int64_t ch = 0; ch < c; ch++) {
        double mean = (double)st[ST_MEAN_HI * c + ch] + st[ST_MEAN_LO * c + ch];
        double invstd = st[ST_INVSTD * c + ch], gamma = st[ST_GAMMA * c + ch];
        /* Four partial sums each, fixed lanes: see channel_sum. */
        double a_dy[4] = {0, 0, 0, 0}, a_dyx[4] = {0, 0, 0, 0};
        if (need_sums)
            for (int64_t n = 0; n < nb; n++) {
                const float *xr = xv + (n * c + ch) * s, *gr = gv + (n * c + ch) * s;
                int64_t k = 0;
                for (; k + 4 <= s; k += 4)
                    for (int l = 0; l < 4; l++) {
                        a_dy[l] += gr[k + l];
                        a_dyx[l] += gr[k + l] * ((double)xr[k + l] - mean);
                    }
                for (; k < s; k++) {
                    a_dy[0] += gr[k];
                    a_dyx[0] += gr[k] * ((double)xr[k] - mean);
                }
            }
        double sdy = (a_dy[0] + a_dy[1]) + (a_dy[2] + a_dy[3]);
        double sdyx = ((a_dyx[0] + a_dyx[1]) + (a_dyx[2] + a_dyx[3])) * invstd;
        if (dwv) dwv[ch] = (float)sdyx;
        if (dbv) dbv[ch] = (float)sdy;
        if (!dxv) continue;
        double a = gamma * invstd;
        double mdy = training && m > 0 ? sdy / (double)m : 0, mdyx = training && m > 0 ? sdyx / (double)m : 0;
        for (int64_t n = 0; n < nb; n++) {
            const float *xr = xv + (n * c + ch) * s, *gr = gv + (n * c + ch) * s;
            float *dr = dxv + (n * c + ch) * s;
#pragma omp simd
            for (int64_t k = 0; k < s; k++) {
                double xhat = ((double)xr[k] - mean) * invstd;
                dr[k] = (float)(a * (gr[k] - mdy - xhat * mdyx));
            }
        }
    }
    bn_tensor_release(g);
    gin[0] = dx;
    gin[1] = dw;
    gin[2] = db;
    return BN_OK;
}

static bn_tensor *bn_batch_norm_unprofiled(bn_tensor *x, bn_tensor *running_mean, bn_tensor *running_var, bn_tensor *weight,
                         bn_tensor *bias, const bn_batch_norm_opts *o)
{
    if (check_args(x, running_mean, running_var, weight, bias, o) != BN_OK) return NULL;
    int64_t nb = x->shape[0], c = x->shape[1], s = 1;
    for (int d = 2; d < x->ndim; d++) s *= x->shape[d];
    int64_t m = nb * s;
    bool training = o->training;
    /* PyTorch leaves the running statistics alone for an empty batch. */
    bool update = training && running_mean && m > 0;

    bn_tensor *xd = bn_tensor_dense(x);
    bn_tensor *y = xd ? bn_tensor_empty(x->ndim, x->shape) : NULL;
    bn_tensor *stats = y ? bn_tensor_empty(2, (const int64_t[]){STATS_ROWS, c}) : NULL;
    double *bstat = stats && update ? malloc((size_t)(2 * c) * sizeof *bstat) : NULL; /* batch mean, var */
    if (!stats || (update && !bstat)) {
        if (stats) bn_fail(BN_ENOMEM, "batch_norm: out of memory");
        bn_tensor_release(xd);
        bn_tensor_release(y);
        bn_tensor_release(stats);
        return NULL;
    }
    const float *xv = bn_tensor_data(xd);
    float *yv = bn_tensor_data(y), *st = bn_tensor_data(stats);
    double eps = o->eps;
#pragma omp parallel for schedule(static) if (m * c > PAR_MIN)
    for (int64_t ch = 0; ch < c; ch++) {
        double mean, var;
        if (training) {
            /* Two passes (mean, then squared deviations): Σx² - nμ² cancels
             * catastrophically when |mean| >> std. Biased variance normalizes. */
            mean = m > 0 ? channel_sum(xv, nb, c, s, ch, NULL) / (double)m : 0;
            var = m > 0 ? channel_sum(xv, nb, c, s, ch, &mean) / (double)m : 0;
            if (bstat) {
                bstat[ch] = mean;
                bstat[c + ch] = var;
            }
        } else {
            mean = *at1(running_mean, ch);
            var = *at1(running_var, ch);
        }
        double invstd = rsqrt0(var + eps);
        double gamma = weight ? *at1(weight, ch) : 1.0, beta = bias ? *at1(bias, ch) : 0.0;
        double a = gamma * invstd;
        for (int64_t n = 0; n < nb; n++) {
            const float *xr = xv + (n * c + ch) * s;
            float *yr = yv + (n * c + ch) * s;
#pragma omp simd
            for (int64_t k = 0; k < s; k++) yr[k] = (float)(((double)xr[k] - mean) * a + beta);
        }
        float hi = (float)mean;
        st[ST_MEAN_HI * c + ch] = hi;
        st[ST_MEAN_LO * c + ch] = (float)(mean - hi);
        st[ST_INVSTD * c + ch] = (float)invstd;
        st[ST_GAMMA * c + ch] = (float)gamma;
    }
    bn_tensor *inputs[3] = {x, weight, bias}, *saved[2] = {xd, stats};
    int64_t iv[4] = {training, nb, c, s};
    y = bn_record(y, "batch_norm", batch_norm_backward, 3, inputs, 2, saved, NULL, 0, iv, 4);
    bn_tensor_release(xd);
    bn_tensor_release(stats);
    /* Running statistics change only once nothing can fail any more, and
     * directly in their storage: they are buffers, not graph tensors, and
     * PyTorch updates them whenever training, whatever the grad mode. The
     * running variance takes the unbiased batch variance (n / (n - 1)). */
    if (y && update) {
        double mom = o->momentum, unbias = (double)m / (double)(m - 1);
        for (int64_t ch = 0; ch < c; ch++) {
            float *pm = at1(running_mean, ch), *pv = at1(running_var, ch);
            *pm = (float)((1 - mom) * *pm + mom * bstat[ch]);
            *pv = (float)((1 - mom) * *pv + mom * bstat[c + ch] * unbias);
        }
    }
    free(bstat);
    return y;
}

bn_tensor *bn_batch_norm(bn_tensor *x, bn_tensor *running_mean, bn_tensor *running_var, bn_tensor *weight,
                         bn_tensor *bias, const bn_batch_norm_opts *o)
{
    BN_PROFILE_BEGIN("batch_norm", false);
    bn_tensor *out = bn_batch_norm_unprofiled(x, running_mean, running_var, weight, bias, o);
    BN_PROFILE_END();
    return out;
}
