/* Inverted dropout: y = x * m with m = keep / (1 - p), keep ~ Bernoulli(1 - p)
 * drawn from the global generator, so one seed fixes every mask. The scaled
 * mask is saved and backward is dx = dy * m: the gradient sees exactly the
 * mask the forward used. Multiplying (rather than writing zeros) keeps NaN
 * and Inf visible in dropped positions, as PyTorch does. */
#include "autograd.h"
#include "ops.h"
#include "profile.h"
#include "rng.h"
#include "tensor.h"

/* out[i] *= m[i], both contiguous. */
static void mul_mask(float *out, const float *m, int64_t n)
{
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) out[i] *= m[i];
}

/* Saved: 0 = the scaled mask. */
static bn_status dropout_backward(bn_node *n, bn_tensor *gout, bn_tensor **gin)
{
    bn_tensor *g = bn_tensor_empty(n->in_ndim[0], n->in_shape[0]);
    if (!g) return bn_last_status();
    bn_tensor_read(gout, bn_tensor_data(g));
    mul_mask(bn_tensor_data(g), bn_tensor_data(n->saved[0]), bn_tensor_numel(g));
    gin[0] = g;
    return BN_OK;
}

static bn_tensor *bn_dropout_unprofiled(bn_tensor *x, double p, bool training)
{
    if (!x) return bn_fail_null(BN_EARG, "dropout: x expected a tensor, got NULL");
    if (!(p >= 0 && p <= 1)) return bn_fail_null(BN_EARG, "dropout: p expected in [0, 1], got %g", p);
    if (!training || p == 0) {
        /* Identity without a copy: a new tensor object over x's storage (so
         * naming the output does not rename x) with a pass-through node. */
        bn_tensor *v = bn_tensor_detach(x);
        return v ? bn_record_identity(v, x, "dropout") : NULL;
    }
    bn_tensor *mask = bn_tensor_empty(x->ndim, x->shape);
    if (!mask) return NULL;
    /* p == 1 drops everything: scale 0 rather than 1/0. */
    float keep = (float)(1.0 - p), scale = p < 1 ? (float)(1.0 / (1.0 - p)) : 0.0f;
    if (bn_rng_bernoulli(bn_rng_global(), mask, keep) != BN_OK) {
        bn_tensor_release(mask);
        return NULL;
    }
    float *m = bn_tensor_data(mask);
    int64_t n = bn_tensor_numel(mask);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) m[i] *= scale;

    bn_tensor *out = bn_tensor_empty(x->ndim, x->shape);
    if (!out) {
        bn_tensor_release(mask);
        return NULL;
    }
    bn_tensor_read(x, bn_tensor_data(out));
    mul_mask(bn_tensor_data(out), m, n);
    out = bn_record(out, "dropout", dropout_backward, 1, &x, 1, &mask, NULL, 0, NULL, 0);
    bn_tensor_release(mask);
    return out;
}

bn_tensor *bn_dropout(bn_tensor *x, double p, bool training)
{
    BN_PROFILE_BEGIN("dropout", false);
    bn_tensor *out = bn_dropout_unprofiled(x, p, training);
    BN_PROFILE_END();
    return out;
}
