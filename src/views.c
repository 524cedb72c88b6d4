/* View ops: new geometry over the same storage. Each is a geometry function
 * (no autograd) plus a node whose backward replays the same geometry on a
 * zero tensor of the input's shape and writes the gradient through it. */
#include <stdlib.h>
#include <string.h>

#include "autograd.h"
#include "ops.h"
#include "profile.h"
#include "tensor.h"

enum view_kind { VIEW_RESHAPE = 1, VIEW_PERMUTE, VIEW_NARROW, VIEW_SELECT, VIEW_EXPAND, VIEW_SUBSAMPLE };

static bn_tensor *make_view(bn_tensor *t, int ndim, const int64_t *shape, const int64_t *stride,
                            int64_t offset)
{
    bn_tensor *v = bn_tensor_detach(t);
    if (!v) return NULL;
    v->ndim = ndim;
    for (int d = 0; d < ndim; d++) {
        v->shape[d] = shape[d];
        v->stride[d] = stride[d];
    }
    v->offset = offset;
    return v;
}

/* ---- geometry ----------------------------------------------------------- */

/* Resolves a -1 in `shape` and checks the element count. */
static bn_status infer_shape(const char *op, const bn_tensor *t, int ndim, const int64_t *shape,
                             int64_t *out)
{
    if (ndim < 0 || ndim > BN_MAX_DIMS)
        return bn_fail(BN_EARG, "%s: expected 0 to %d dimensions, got %d", op, BN_MAX_DIMS, ndim);
    int infer = -1;
    int64_t known = 1;
    for (int d = 0; d < ndim; d++) {
        out[d] = shape[d];
        if (shape[d] == -1) {
            if (infer >= 0) return bn_fail(BN_EARG, "%s: only one size may be -1, got %s", op, bn_dims_str(ndim, shape));
            infer = d;
        } else if (shape[d] < 0) {
            return bn_fail(BN_EARG, "%s: sizes expected >= 0 or -1, got %s", op, bn_dims_str(ndim, shape));
        } else {
            if (shape[d] > 0 && known > (INT64_C(1) << 40) / shape[d])
                return bn_fail(BN_ESHAPE, "%s: shape %s has too many elements for input %s", op,
                               bn_dims_str(ndim, shape), bn_shape_str(t));
            known *= shape[d];
        }
    }
    int64_t numel = bn_tensor_numel(t);
    if (infer >= 0) {
        if (known == 0 || numel % known != 0)
            return bn_fail(BN_ESHAPE, "%s: shape %s is invalid for input %s (%lld elements)", op,
                           bn_dims_str(ndim, shape), bn_shape_str(t), (long long)numel);
        out[infer] = numel / known;
        known *= out[infer];
    }
    if (known != numel)
        return bn_fail(BN_ESHAPE, "%s: shape %s is invalid for input %s (%lld elements)", op,
                       bn_dims_str(ndim, shape), bn_shape_str(t), (long long)numel);
    return BN_OK;
}

/* Strides for viewing t as `shape` without copying, if its layout allows
 * (the same test as PyTorch's computeStride: split/merge contiguous chunks). */
static bool view_strides(const bn_tensor *t, int ndim, const int64_t *shape, int64_t *stride)
{
    if (bn_tensor_numel(t) == 0 || bn_tensor_is_contiguous(t)) {
        int64_t st = 1;
        for (int d = ndim - 1; d >= 0; d--) {
            stride[d] = st;
            st *= shape[d] > 0 ? shape[d] : 1;
        }
        return true;
    }
    int view_d = ndim - 1;
    int64_t chunk_base_stride = t->ndim ? t->stride[t->ndim - 1] : 1;
    int64_t tensor_numel = 1, view_numel = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        tensor_numel *= t->shape[d];
        if (d == 0 || (t->shape[d - 1] != 1 && t->stride[d - 1] != tensor_numel * chunk_base_stride)) {
            while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
                stride[view_d] = view_numel * chunk_base_stride;
                view_numel *= shape[view_d];
                view_d--;
            }
            if (view_numel != tensor_numel) return false;
            if (d > 0) {
                chunk_base_stride = t->stride[d - 1];
                tensor_numel = 1;
                view_numel = 1;
            }
        }
    }
    return view_d == -1;
}

static bn_tensor *geom_reshape(bn_tensor *t, int ndim, const int64_t *shape, bool copy_ok, const char *op)
{
    int64_t full[BN_MAX_DIMS], stride[BN_MAX_DIMS];
    if (infer_shape(op, t, ndim, shape, full) != BN_OK) return NULL;
    if (view_strides(t, ndim, full, stride)) return make_view(t, ndim, full, stride, t->offset);
    if (!copy_ok)
        return bn_fail_null(BN_ESHAPE,
                            "%s: input %s is not contiguous enough to view as %s; use reshape or "
                            "contiguous first", op, bn_shape_str(t), bn_dims_str(ndim, full));
    bn_tensor *c = bn_tensor_empty(ndim, full);
    if (c) bn_tensor_read(t, bn_tensor_data(c));
    return c;
}

static bn_tensor *geom_permute(bn_tensor *t, const int *dims)
{
    int64_t shape[BN_MAX_DIMS], stride[BN_MAX_DIMS];
    bool seen[BN_MAX_DIMS] = {false};
    for (int d = 0; d < t->ndim; d++) {
        int s = dims[d] < 0 ? dims[d] + t->ndim : dims[d];
        if (s < 0 || s >= t->ndim || seen[s])
            return bn_fail_null(BN_EARG, "permute: dims expected a permutation of 0..%d, got %d at position %d",
                                t->ndim - 1, dims[d], d);
        seen[s] = true;
        shape[d] = t->shape[s];
        stride[d] = t->stride[s];
    }
    return make_view(t, t->ndim, shape, stride, t->offset);
}

static bn_tensor *geom_narrow(bn_tensor *t, int dim, int64_t start, int64_t length)
{
    if (t->ndim == 0) return bn_fail_null(BN_EARG, "narrow: input expected at least 1-D, got a 0-d tensor");
    int d = bn_dim_wrap("narrow", dim, t->ndim);
    if (d < 0) return NULL;
    if (start < 0 || length < 0 || start + length > t->shape[d])
        return bn_fail_null(BN_EARG, "narrow: start %lld and length %lld expected within size %lld of dim %d",
                            (long long)start, (long long)length, (long long)t->shape[d], d);
    int64_t shape[BN_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    shape[d] = length;
    return make_view(t, t->ndim, shape, t->stride, t->offset + start * t->stride[d]);
}

static bn_tensor *geom_select(bn_tensor *t, int dim, int64_t index)
{
    if (t->ndim == 0) return bn_fail_null(BN_EARG, "select: input expected at least 1-D, got a 0-d tensor");
    int d = bn_dim_wrap("select", dim, t->ndim);
    if (d < 0) return NULL;
    if (index < 0 || index >= t->shape[d])
        return bn_fail_null(BN_EARG, "select: index expected in [0, %lld) for dim %d of %s, got %lld",
                            (long long)t->shape[d], d, bn_shape_str(t), (long long)index);
    int64_t shape[BN_MAX_DIMS], stride[BN_MAX_DIMS];
    int k = 0;
    for (int e = 0; e < t->ndim; e++) {
        if (e == d) continue;
        shape[k] = t->shape[e];
        stride[k++] = t->stride[e];
    }
    return make_view(t, t->ndim - 1, shape, stride, t->offset + index * t->stride[d]);
}

static bn_tensor *geom_expand(bn_tensor *t, int ndim, const int64_t *shape)
{
    if (ndim < t->ndim || ndim > BN_MAX_DIMS)
        return bn_fail_null(BN_ESHAPE, "expand: cannot expand %s to %s (fewer dims)", bn_shape_str(t),
                            bn_dims_str(ndim, shape));
    int64_t out[BN_MAX_DIMS], stride[BN_MAX_DIMS];
    int lead = ndim - t->ndim;
    for (int d = 0; d < ndim; d++) {
        int64_t size = d < lead ? 1 : t->shape[d - lead];
        int64_t st = d < lead ? 0 : t->stride[d - lead];
        int64_t want = shape[d] == -1 && d >= lead ? size : shape[d];
        if (want < 0 || (size != want && size != 1))
            return bn_fail_null(BN_ESHAPE, "expand: cannot expand %s to %s (dim %d: %lld to %lld)",
                                bn_shape_str(t), bn_dims_str(ndim, shape), d, (long long)size, (long long)want);
        out[d] = want;
        stride[d] = size == want ? st : 0;
    }
    int64_t total = 1;
    for (int d = 0; d < ndim; d++) {
        if (out[d] > 0 && total > (INT64_C(1) << 40) / out[d])
            return bn_fail_null(BN_ESHAPE, "expand: %s has too many elements", bn_dims_str(ndim, out));
        total *= out[d] > 0 ? out[d] : 1;
    }
    return make_view(t, ndim, out, stride, t->offset);
}

static bn_tensor *geom_subsample(bn_tensor *t, int dim, int64_t start, int64_t step)
{
    if (t->ndim == 0) return bn_fail_null(BN_EARG, "subsample: input expected at least 1-D, got a 0-d tensor");
    int d = bn_dim_wrap("subsample", dim, t->ndim);
    if (d < 0) return NULL;
    if (step < 1) return bn_fail_null(BN_EARG, "subsample: step expected >= 1, got %lld", (long long)step);
    if (start < 0 || (start >= t->shape[d] && t->shape[d] > 0))
        return bn_fail_null(BN_EARG, "subsample: start expected in [0, %lld), got %lld", (long long)t->shape[d],
                            (long long)start);
    int64_t shape[BN_MAX_DIMS], stride[BN_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    memcpy(stride, t->stride, sizeof stride);
    shape[d] = t->shape[d] == 0 ? 0 : (t->shape[d] - start + step - 1) / step;
    /* With one element left the stride is never used: don't overflow it. */
    stride[d] = shape[d] <= 1 ? t->stride[d] : t->stride[d] * step;
    return make_view(t, t->ndim, shape, stride, t->offset + start * t->stride[d]);
}

/* Replays the node's view on `base` (which has the input's shape). */
static bn_tensor *replay(bn_node *n, bn_tensor *base)
{
    switch (n->i[0]) {
    case VIEW_PERMUTE: {
        int dims[BN_MAX_DIMS];
        for (int d = 0; d < base->ndim; d++) dims[d] = (int)((n->i[1] >> (4 * d)) & 15);
        return geom_permute(base, dims);
    }
    case VIEW_NARROW: return geom_narrow(base, (int)n->i[1], n->i[2], n->i[3]);
    case VIEW_SELECT: return geom_select(base, (int)n->i[1], n->i[2]);
    case VIEW_SUBSAMPLE: return geom_subsample(base, (int)n->i[1], n->i[2], n->i[3]);
    }
    return bn_fail_null(BN_ESTATE, "view: unknown view kind %lld", (long long)n->i[0]);
}

static bn_status view_backward(bn_node *n, bn_tensor *gout, bn_tensor **gin)
{
    if (n->i[0] == VIEW_EXPAND) {
        gin[0] = bn_sum_to_shape(gout, n->in_ndim[0], n->in_shape[0]);
        return gin[0] ? BN_OK : bn_last_status();
    }
    if (n->i[0] == VIEW_RESHAPE) {
        gin[0] = geom_reshape(gout, n->in_ndim[0], n->in_shape[0], true, "reshape");
        return gin[0] ? BN_OK : bn_last_status();
    }
    bn_tensor *g = bn_tensor_zeros(n->in_ndim[0], n->in_shape[0]);
    if (!g) return bn_last_status();
    bn_tensor *v = replay(n, g);
    bn_status st = v ? bn_tensor_copy(v, gout) : bn_last_status();
    bn_tensor_release(v);
    if (st != BN_OK) {
        bn_tensor_release(g);
        return st;
    }
    gin[0] = g;
    return BN_OK;
}

static bn_tensor *record(bn_tensor *t, bn_tensor *v, int kind, int64_t a, int64_t b, int64_t c)
{
    int64_t iv[4] = {kind, a, b, c};
    return bn_record(v, "view", view_backward, 1, &t, 0, NULL, NULL, 0, iv, 4);
}

/* ---- public ------------------------------------------------------------- */

static bn_tensor *bn_view_unprofiled(bn_tensor *t, int ndim, const int64_t *shape)
{
    return record(t, geom_reshape(t, ndim, shape, false, "view"), VIEW_RESHAPE, 0, 0, 0);
}

bn_tensor *bn_view(bn_tensor *t, int ndim, const int64_t *shape)
{
    BN_PROFILE_BEGIN("view", false);
    bn_tensor *out = bn_view_unprofiled(t, ndim, shape);
    BN_PROFILE_END();
    return out;
}

static bn_tensor *bn_reshape_unprofiled(bn_tensor *t, int ndim, const int64_t *shape)
{
    return record(t, geom_reshape(t, ndim, shape, true, "reshape"), VIEW_RESHAPE, 0, 0, 0);
}

bn_tensor *bn_reshape(bn_tensor *t, int ndim, const int64_t *shape)
{
    BN_PROFILE_BEGIN("reshape", false);
    bn_tensor *out = bn_reshape_unprofiled(t, ndim, shape);
    BN_PROFILE_END();
    return out;
}

static bn_tensor *bn_permute_unprofiled(bn_tensor *t, const int *dims)
{
    bn_tensor *v = geom_permute(t, dims);
    if (!v) return NULL;
    /* Backward replays the forward permutation on a zero base of the
     * input's shape, packed 4 bits per dim. */
    int64_t fwd = 0;
    for (int d = 0; d < t->ndim; d++) fwd |= (int64_t)(dims[d] < 0 ? dims[d] + t->ndim : dims[d]) << (4 * d);
    return record(t, v, VIEW_PERMUTE, fwd, 0, 0);
}

bn_tensor *bn_permute(bn_tensor *t, const int *dims)
{
    BN_PROFILE_BEGIN("permute", false);
    bn_tensor *out = bn_permute_unprofiled(t, dims);
    BN_PROFILE_END();
    return out;
}

static bn_tensor *bn_transpose_unprofiled(bn_tensor *t, int d0, int d1)
{
    int a = bn_dim_wrap("transpose", d0, t->ndim), b = bn_dim_wrap("transpose", d1, t->ndim);
    if (a < 0 || b < 0) return NULL;
    int dims[BN_MAX_DIMS] = {0};
    for (int d = 0; d < t->ndim; d++) dims[d] = d;
    dims[a] = b;
    dims[b] = a;
    return bn_permute(t, dims);
}

bn_tensor *bn_transpose(bn_tensor *t, int d0, int d1)
{
    BN_PROFILE_BEGIN("transpose", false);
    bn_tensor *out = bn_transpose_unprofiled(t, d0, d1);
    BN_PROFILE_END();
    return out;
}

static bn_tensor *bn_narrow_unprofiled(bn_tensor *t, int dim, int64_t start, int64_t length)
{
    bn_tensor *v = geom_narrow(t, dim, start, length);
    return v ? record(t, v, VIEW_NARROW, dim, start, length) : NULL;
}

bn_tensor *bn_narrow(bn_tensor *t, int dim, int64_t start, int64_t length)
{
    BN_PROFILE_BEGIN("narrow", false);
    bn_tensor *out = bn_narrow_unprofiled(t, dim, start, length);
    BN_PROFILE_END();
    return out;
}

static bn_tensor *bn_select_unprofiled(bn_tensor *t, int dim, int64_t index)
{
    bn_tensor *v = geom_select(t, dim, index);
    return v ? record(t, v, VIEW_SELECT, dim, index, 0) : NULL;
}

bn_tensor *bn_select(bn_tensor *t, int dim, int64_t index)
{
    BN_PROFILE_BEGIN("select", false);
    bn_tensor *out = bn_select_unprofiled(t, dim, index);
    BN_PROFILE_END();
    return out;
}

static bn_tensor *bn_expand_unprofiled(bn_tensor *t, int ndim, const int64_t *shape)
{
    bn_tensor *v = geom_expand(t, ndim, shape);
    return v ? record(t, v, VIEW_EXPAND, 0, 0, 0) : NULL;
}

bn_tensor *bn_expand(bn_tensor *t, int ndim, const int64_t *shape)
{
    BN_PROFILE_BEGIN("expand", false);
    bn_tensor *out = bn_expand_unprofiled(t, ndim, shape);
    BN_PROFILE_END();
    return out;
}

static bn_tensor *bn_subsample_unprofiled(bn_tensor *x, int dim, int64_t start, int64_t step)
{
    bn_tensor *v = geom_subsample(x, dim, start, step);
    return v ? record(x, v, VIEW_SUBSAMPLE, dim, start, step) : NULL;
}

bn_tensor *bn_subsample(bn_tensor *x, int dim, int64_t start, int64_t step)
{
    BN_PROFILE_BEGIN("subsample", false);
    bn_tensor *out = bn_subsample_unprofiled(x, dim, start, step);
    BN_PROFILE_END();
    return out;
}

static bn_tensor *bn_contiguous_unprofiled(bn_tensor *t)
{
    if (bn_tensor_is_contiguous(t)) return bn_tensor_retain(t);
    return bn_tensor_clone(t);
}

bn_tensor *bn_contiguous(bn_tensor *t)
{
    BN_PROFILE_BEGIN("contiguous", false);
    bn_tensor *out = bn_contiguous_unprofiled(t);
    BN_PROFILE_END();
    return out;
}

static bn_tensor *bn_flatten_unprofiled(bn_tensor *t, int start_dim, int end_dim)
{
    if (t->ndim == 0) {
        int64_t one = 1;
        return bn_reshape(t, 1, &one);
    }
    int s = bn_dim_wrap("flatten", start_dim, t->ndim), e = bn_dim_wrap("flatten", end_dim, t->ndim);
    if (s < 0 || e < 0) return NULL;
    if (s > e) return bn_fail_null(BN_EARG, "flatten: start_dim %d expected <= end_dim %d", s, e);
    int64_t shape[BN_MAX_DIMS];
    int k = 0;
    for (int d = 0; d < s; d++) shape[k++] = t->shape[d];
    int64_t m = 1;
    for (int d = s; d <= e; d++) m *= t->shape[d];
    shape[k++] = m;
    for (int d = e + 1; d < t->ndim; d++) shape[k++] = t->shape[d];
    return bn_reshape(t, k, shape);
}

bn_tensor *bn_flatten(bn_tensor *t, int start_dim, int end_dim)
{
    BN_PROFILE_BEGIN("flatten", false);
    bn_tensor *out = bn_flatten_unprofiled(t, start_dim, end_dim);
    BN_PROFILE_END();
    return out;
}

static bn_tensor *bn_squeeze_unprofiled(bn_tensor *t, int dim)
{
    int d = bn_dim_wrap("squeeze", dim, t->ndim);
    if (d < 0) return NULL;
    if (t->ndim == 0 || t->shape[d] != 1) return bn_reshape(t, t->ndim, t->shape);
    int64_t shape[BN_MAX_DIMS];
    int k = 0;
    for (int e = 0; e < t->ndim; e++)
        if (e != d) shape[k++] = t->shape[e];
    return bn_reshape(t, k, shape);
}

bn_tensor *bn_squeeze(bn_tensor *t, int dim)
{
    BN_PROFILE_BEGIN("squeeze", false);
    bn_tensor *out = bn_squeeze_unprofiled(t, dim);
    BN_PROFILE_END();
    return out;
}

static bn_tensor *bn_unsqueeze_unprofiled(bn_tensor *t, int dim)
{
    if (t->ndim >= BN_MAX_DIMS) return bn_fail_null(BN_EARG, "unsqueeze: input already has %d dims", t->ndim);
    int d = bn_dim_wrap("unsqueeze", dim, t->ndim + 1);
    if (d < 0) return NULL;
    int64_t shape[BN_MAX_DIMS];
    int k = 0;
    for (int e = 0; e < t->ndim; e++) {
        if (e == d) shape[k++] = 1;
        shape[k++] = t->shape[e];
    }
    if (d == t->ndim) shape[k++] = 1;
    return bn_reshape(t, k, shape);
}

bn_tensor *bn_unsqueeze(bn_tensor *t, int dim)
{
    BN_PROFILE_BEGIN("unsqueeze", false);
    bn_tensor *out = bn_unsqueeze_unprofiled(t, dim);
    BN_PROFILE_END();
    return out;
}
