/* Shape ops that copy: cat, stack, pad. Their backward passes copy the
 * matching region of the output gradient back (cat: each input's slice; pad:
 * the inner region). bn_subsample, a pure view, lives in views.c. */
#include <stdlib.h>
#include <string.h>

#include "autograd.h"
#include "ops.h"
#include "profile.h"
#include "tensor.h"

/* dst[i] = src[i] over an n-d box of `shape`, both strided. The last dim is
 * the inner loop (memcpy when both are unit-stride); the rest is flattened
 * into one index so OpenMP can split it. */
static void copy_box(int ndim, const int64_t *shape, float *dst, const int64_t *dst_stride, const float *src,
                     const int64_t *src_stride)
{
    int64_t total = 1;
    for (int d = 0; d < ndim; d++) total *= shape[d];
    if (total == 0) return;
    if (ndim == 0) {
        *dst = *src;
        return;
    }
    int64_t inner = shape[ndim - 1], ds = dst_stride[ndim - 1], ss = src_stride[ndim - 1];
    int64_t rows = total / inner;
#pragma omp parallel for schedule(static) if (total > 65536)
    for (int64_t r = 0; r < rows; r++) {
        int64_t rem = r, doff = 0, soff = 0;
        for (int d = ndim - 2; d >= 0; d--) {
            int64_t i = rem % shape[d];
            rem /= shape[d];
            doff += i * dst_stride[d];
            soff += i * src_stride[d];
        }
        float *dp = dst + doff;
        const float *sp = src + soff;
        if (ds == 1 && ss == 1) {
            memcpy(dp, sp, (size_t)inner * sizeof(float));
        } else {
            for (int64_t j = 0; j < inner; j++) dp[j * ds] = sp[j * ss];
        }
    }
}

/* ---- cat ---------------------------------------------------------------- */

/* A node holds at most BN_NODE_MAX_IN inputs, so a cat of more tensors is a
 * chain: each node takes up to 3 inputs plus one "rest" input that stands
 * for the cat of the inputs after them and is the output of the next node.
 * The rest node is made first, so backward (decreasing sequence) reaches it
 * after its parent has handed it the rest of the gradient.
 *
 * Node integers: i[0] = dim, i[1] = number of real inputs (the last input
 * is the rest when fewer than n_in). */
static bn_status cat_backward(bn_node *n, bn_tensor *gout, bn_tensor **gin)
{
    int dim = (int)n->i[0];
    int64_t start = 0;
    for (int k = 0; k < n->n_in; k++) {
        int64_t len = n->in_shape[k][dim];
        if (!n->needs[k]) {
            start += len;
            continue;
        }
        /* A narrowed view of gout: the caller copies it into its own
         * accumulator, so copying here too would be one copy too many. */
        bn_tensor *v = bn_narrow(gout, dim, start, len);
        if (!v) return bn_last_status();
        gin[k] = v;
        start += len;
    }
    return BN_OK;
}

/* Validates the inputs of cat/stack as a list: n >= 1, none NULL. */
static bn_status check_list(const char *op, int n, bn_tensor *const *ts)
{
    if (n < 1) return bn_fail(BN_EARG, "%s: expected at least 1 tensor, got %d", op, n);
    if (!ts) return bn_fail(BN_EARG, "%s: tensors expected an array, got NULL", op);
    for (int k = 0; k < n; k++)
        if (!ts[k]) return bn_fail(BN_EARG, "%s: tensor #%d expected a tensor, got NULL", op, k + 1);
    return BN_OK;
}

/* Shape check and output shape of a cat along d (already wrapped). */
static bn_status cat_shape(const char *op, int n, bn_tensor *const *ts, int d, int64_t *shape)
{
    const bn_tensor *t0 = ts[0];
    memcpy(shape, t0->shape, sizeof t0->shape);
    shape[d] = 0;
    for (int k = 0; k < n; k++) {
        const bn_tensor *t = ts[k];
        if (t->ndim != t0->ndim)
            return bn_fail(BN_ESHAPE, "%s: tensor #%d expected %d-D like tensor #1 %s, got %s", op, k + 1,
                           t0->ndim, bn_shape_str(t0), bn_shape_str(t));
        for (int e = 0; e < t0->ndim; e++)
            if (e != d && t->shape[e] != t0->shape[e])
                return bn_fail(BN_ESHAPE, "%s: tensor #%d expected %s except along dim %d, got %s (dim %d: %lld vs %lld)",
                               op, k + 1, bn_shape_str(t0), d, bn_shape_str(t), e, (long long)t->shape[e],
                               (long long)t0->shape[e]);
        shape[d] += t->shape[d];
    }
    return BN_OK;
}

/* Records the chain of cat nodes for ts[0..n) whose output is `out`.
 * Returns out, or NULL (out released) on failure. */
static bn_tensor *cat_record(bn_tensor *out, int n, bn_tensor *const *ts, int d)
{
    if (!bn_grad_needed(n, ts)) return out;
    /* Groups: [0,3), [3,6), ... and a last group of up to 4. */
    int n_groups = n <= BN_NODE_MAX_IN ? 1 : 1 + (n - 2) / (BN_NODE_MAX_IN - 1);
    bn_tensor *rest = NULL; /* the output of the node made last, standing for the inputs after this group */
    int64_t rest_len = 0;
    for (int gi = n_groups - 1; gi >= 0; gi--) {
        int first = gi * (BN_NODE_MAX_IN - 1);
        int count = gi == n_groups - 1 ? n - first : BN_NODE_MAX_IN - 1;
        bn_tensor *in[BN_NODE_MAX_IN] = {NULL};
        for (int k = 0; k < count; k++) in[k] = ts[first + k];
        int n_in = count;
        if (gi < n_groups - 1) in[n_in++] = rest; /* NULL when nothing after needs grad */
        int64_t len = 0;
        for (int k = 0; k < count; k++) len += ts[first + k]->shape[d];
        len += rest_len;
        bn_tensor *target = NULL;
        if (bn_grad_needed(n_in, in)) {
            if (gi == 0) {
                target = bn_tensor_retain(out);
            } else { /* a stand-in with this group's shape; only its node survives */
                target = bn_narrow(out, d, out->shape[d] - len, len);
                if (!target) goto fail;
            }
            bn_node *node = bn_node_new("cat", cat_backward, n_in, in);
            if (!node) {
                bn_tensor_release(target);
                goto fail;
            }
            node->i[0] = d;
            node->i[1] = count;
            bn_node_attach(node, target);
        }
        bn_tensor_release(rest);
        rest = target;
        rest_len = len;
    }
    bn_tensor_release(rest); /* out's own reference stays with the caller */
    return out;
fail:
    bn_tensor_release(rest);
    bn_tensor_release(out);
    return NULL;
}

/* Copies ts[k] into its slice of out (contiguous) along d. */
static void cat_fill(bn_tensor *out, int n, bn_tensor *const *ts, int d)
{
    int64_t start = 0;
    for (int k = 0; k < n; k++) {
        const bn_tensor *t = ts[k];
        copy_box(t->ndim, t->shape, bn_tensor_data(out) + start * out->stride[d], out->stride, bn_tensor_data(t),
                 t->stride);
        start += t->shape[d];
    }
}

static bn_tensor *bn_cat_unprofiled(int n, bn_tensor *const *ts, int dim)
{
    if (check_list("cat", n, ts) != BN_OK) return NULL;
    if (ts[0]->ndim == 0) return bn_fail_null(BN_ESHAPE, "cat: tensor #1 expected at least 1-D, got a 0-d tensor");
    int d = bn_dim_wrap("cat", dim, ts[0]->ndim);
    if (d < 0) return NULL;
    int64_t shape[BN_MAX_DIMS];
    if (cat_shape("cat", n, ts, d, shape) != BN_OK) return NULL;
    bn_tensor *out = bn_tensor_empty(ts[0]->ndim, shape);
    if (!out) return NULL;
    cat_fill(out, n, ts, d);
    return cat_record(out, n, ts, d);
}

bn_tensor *bn_cat(int n, bn_tensor *const *ts, int dim)
{
    BN_PROFILE_BEGIN("cat", false);
    bn_tensor *out = bn_cat_unprofiled(n, ts, dim);
    BN_PROFILE_END();
    return out;
}

static bn_tensor *bn_stack_unprofiled(int n, bn_tensor *const *ts, int dim)
{
    if (check_list("stack", n, ts) != BN_OK) return NULL;
    const bn_tensor *t0 = ts[0];
    if (t0->ndim >= BN_MAX_DIMS)
        return bn_fail_null(BN_ESHAPE, "stack: tensors expected at most %d-D, got %s", BN_MAX_DIMS - 1,
                            bn_shape_str(t0));
    int d = bn_dim_wrap("stack", dim, t0->ndim + 1);
    if (d < 0) return NULL;
    for (int k = 1; k < n; k++)
        if (!bn_shape_equal(ts[k], t0))
            return bn_fail_null(BN_ESHAPE, "stack: tensor #%d expected shape %s like tensor #1, got %s", k + 1,
                                bn_shape_str(t0), bn_shape_str(ts[k]));
    /* A stack is a cat of unsqueezed views: the views carry the autograd
     * reshaping, cat the copy. */
    bn_tensor **views = calloc((size_t)n, sizeof *views);
    if (!views) return bn_fail_null(BN_ENOMEM, "stack: out of memory for %d tensors", n);
    bn_tensor *out = NULL;
    int made = 0;
    for (; made < n; made++) {
        views[made] = bn_unsqueeze(ts[made], d);
        if (!views[made]) goto done;
    }
    out = bn_cat(n, views, d);
done:
    if (!out) bn_error_prefix("stack: ");
    for (int k = 0; k < made; k++) bn_tensor_release(views[k]);
    free(views);
    return out;
}

bn_tensor *bn_stack(int n, bn_tensor *const *ts, int dim)
{
    BN_PROFILE_BEGIN("stack", false);
    bn_tensor *out = bn_stack_unprofiled(n, ts, dim);
    BN_PROFILE_END();
    return out;
}

/* ---- pad ---------------------------------------------------------------- */

/* The box that survives padding/cropping: for dim k it starts at src_off[k]
 * in the input and dst_off[k] in the output and has len[k] entries. */
static bool pad_overlap(int ndim, const int64_t *in_shape, const int64_t *out_shape, const int64_t *before,
                        int64_t *in_off, int64_t *out_off, int64_t *len)
{
    for (int k = 0; k < ndim; k++) {
        in_off[k] = before[k] < 0 ? -before[k] : 0;
        out_off[k] = before[k] > 0 ? before[k] : 0;
        int64_t a = in_shape[k] - in_off[k], b = out_shape[k] - out_off[k];
        len[k] = a < b ? a : b;
        if (len[k] <= 0) return false;
    }
    return true;
}

static int64_t box_offset(int ndim, const int64_t *off, const int64_t *stride)
{
    int64_t o = 0;
    for (int k = 0; k < ndim; k++) o += off[k] * stride[k];
    return o;
}

/* Node integers: i[k] = pad before dim k (the after pad follows from the
 * shapes), so 8 dims fit. */
static bn_status pad_backward(bn_node *n, bn_tensor *gout, bn_tensor **gin)
{
    int nd = n->in_ndim[0];
    bn_tensor *g = bn_tensor_zeros(nd, n->in_shape[0]);
    if (!g) return bn_last_status();
    int64_t in_off[BN_MAX_DIMS], out_off[BN_MAX_DIMS], len[BN_MAX_DIMS];
    if (pad_overlap(nd, n->in_shape[0], gout->shape, n->i, in_off, out_off, len))
        copy_box(nd, len, bn_tensor_data(g) + box_offset(nd, in_off, g->stride), g->stride,
                 bn_tensor_data(gout) + box_offset(nd, out_off, gout->stride), gout->stride);
    gin[0] = g;
    return BN_OK;
}

#define PAD_MAX (INT64_C(1) << 40)

static bn_tensor *bn_pad_unprofiled(bn_tensor *x, const int64_t *pads)
{
    if (!x) return bn_fail_null(BN_EARG, "pad: x expected a tensor, got NULL");
    if (!pads && x->ndim > 0)
        return bn_fail_null(BN_EARG, "pad: pads expected %d before/after pairs, got NULL", x->ndim);
    int nd = x->ndim;
    int64_t shape[BN_MAX_DIMS], before[BN_MAX_DIMS] = {0};
    for (int k = 0; k < nd; k++) {
        before[k] = pads[2 * k];
        int64_t after = pads[2 * k + 1], size = x->shape[k];
        /* Sizes are below 2^40, so within these bounds the sum cannot overflow. */
        if (before[k] < -PAD_MAX || before[k] > PAD_MAX || after < -PAD_MAX || after > PAD_MAX)
            return bn_fail_null(BN_EARG, "pad: pads for dim %d expected within +-2^40, got %lld and %lld", k,
                                (long long)before[k], (long long)after);
        shape[k] = size + before[k] + after;
        if (shape[k] < 0)
            return bn_fail_null(BN_EARG,
                                "pad: dim %d of x %s (size %lld) with pads %lld and %lld expected size >= 0, got %lld",
                                k, bn_shape_str(x), (long long)size, (long long)before[k], (long long)after,
                                (long long)shape[k]);
    }
    bn_tensor *out = bn_tensor_zeros(nd, shape);
    if (!out) return NULL;
    int64_t in_off[BN_MAX_DIMS], out_off[BN_MAX_DIMS], len[BN_MAX_DIMS];
    if (pad_overlap(nd, x->shape, shape, before, in_off, out_off, len))
        copy_box(nd, len, bn_tensor_data(out) + box_offset(nd, out_off, out->stride), out->stride,
                 bn_tensor_data(x) + box_offset(nd, in_off, x->stride), x->stride);
    return bn_record(out, "pad", pad_backward, 1, &x, 0, NULL, NULL, 0, before, nd);
}

bn_tensor *bn_pad(bn_tensor *x, const int64_t *pads)
{
    BN_PROFILE_BEGIN("pad", false);
    bn_tensor *out = bn_pad_unprofiled(x, pads);
    BN_PROFILE_END();
    return out;
}
