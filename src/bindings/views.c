/* Views and copies of a tensor's geometry: view/reshape, permute/transpose,
 * narrow, select, expand, flatten, squeeze/unsqueeze, subsample, contiguous,
 * clone, detach. Dims, starts and indices arrive 1-based and are checked
 * here, so the messages speak the Lua user's numbering. */
#include "autograd.h"
#include "bindings/luatensor.h"
#include "ops.h"

static int l_view_like(lua_State *L, const char *fn, bool copy_ok)
{
    bn_tensor *t = lt_check(L, 1, fn, "self");
    int64_t shape[BN_MAX_DIMS];
    int ndim = lt_checksizes(L, 2, lua_gettop(L), fn, shape, 1);
    lt_box *b = lt_newbox(L);
    LT_RUN(L, b, copy_ok ? bn_reshape(t, ndim, shape) : bn_view(t, ndim, shape));
    return lt_done(L, b, fn);
}

static int l_view(lua_State *L) { return l_view_like(L, "view", false); }
static int l_reshape(lua_State *L) { return l_view_like(L, "reshape", true); }

static int l_view_as(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "view_as", "self");
    bn_tensor *o = lt_check(L, 2, "view_as", "other");
    lt_box *b = lt_newbox(L);
    b->t = bn_view(t, o->ndim, o->shape);
    return lt_done(L, b, "view_as");
}

static int l_permute(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "permute", "self");
    int dims[BN_MAX_DIMS];
    lt_checkdims(L, 2, "permute", t->ndim, dims);
    lt_box *b = lt_newbox(L);
    b->t = bn_permute(t, dims);
    return lt_done(L, b, "permute");
}

static int l_transpose(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "transpose", "self");
    int d0 = lt_checkdim(L, 2, "transpose", t->ndim, 0);
    int d1 = lt_checkdim(L, 3, "transpose", t->ndim, 0);
    lt_box *b = lt_newbox(L);
    b->t = bn_transpose(t, d0, d1);
    return lt_done(L, b, "transpose");
}

/* t:t(): the transpose of a matrix (a vector is returned as is), like PyTorch. */
static int l_t(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "t", "self");
    if (t->ndim > 2) lt_error(L, "t", "expected a tensor of at most 2 dims, got %s (use :transpose)", bn_shape_str(t));
    lt_box *b = lt_newbox(L);
    b->t = t->ndim == 2 ? bn_transpose(t, 0, 1) : bn_reshape(t, t->ndim, t->shape);
    return lt_done(L, b, "t");
}

/* A 1-based (or negative) start along a dim of `size` -> 0-based in [0, size]. */
static int64_t check_start(lua_State *L, int arg, const char *fn, int64_t size)
{
    int64_t s = lt_checkint(L, arg, fn, "start", -size, size + 1);
    if (s == 0) lt_argerror(L, fn, arg, "start", "a 1-based start (1 is the first element, -1 the last)");
    return s > 0 ? s - 1 : size + s;
}

static int l_narrow(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "narrow", "self");
    if (t->ndim == 0) lt_error(L, "narrow", "argument #1 expected at least 1-D, got a 0-d tensor");
    int d = lt_checkdim(L, 2, "narrow", t->ndim, 0);
    int64_t size = t->shape[d];
    int64_t start = check_start(L, 3, "narrow", size);
    int64_t length = lt_checkint(L, 4, "narrow", "length", 0, size);
    if (start + length > size)
        lt_error(L, "narrow", "start %lld with length %lld runs past the end of dim %d (size %lld)",
                 (long long)start + 1, (long long)length, d + 1, (long long)size);
    lt_box *b = lt_newbox(L);
    b->t = bn_narrow(t, d, start, length);
    return lt_done(L, b, "narrow");
}

static int l_select(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "select", "self");
    if (t->ndim == 0) lt_error(L, "select", "argument #1 expected at least 1-D, got a 0-d tensor");
    int d = lt_checkdim(L, 2, "select", t->ndim, 0);
    int64_t size = t->shape[d];
    if (size == 0) lt_error(L, "select", "dim %d of %s has size 0: nothing to select", d + 1, bn_shape_str(t));
    int64_t i = lt_checkint(L, 3, "select", "index", -size, size);
    if (i == 0) lt_argerror(L, "select", 3, "index", "a 1-based index (1 is the first, -1 the last)");
    lt_box *b = lt_newbox(L);
    b->t = bn_select(t, d, i > 0 ? i - 1 : size + i);
    return lt_done(L, b, "select");
}

static int l_expand(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "expand", "self");
    int64_t shape[BN_MAX_DIMS];
    int ndim = lt_checksizes(L, 2, lua_gettop(L), "expand", shape, 2);
    lt_box *b = lt_newbox(L);
    b->t = bn_expand(t, ndim, shape);
    return lt_done(L, b, "expand");
}

static int l_expand_as(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "expand_as", "self");
    bn_tensor *o = lt_check(L, 2, "expand_as", "other");
    lt_box *b = lt_newbox(L);
    b->t = bn_expand(t, o->ndim, o->shape);
    return lt_done(L, b, "expand_as");
}

static int l_flatten(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "flatten", "self");
    int s = lt_optdim(L, 2, "flatten", t->ndim, 0, 0);
    int e = lt_optdim(L, 3, "flatten", t->ndim, 0, t->ndim > 0 ? t->ndim - 1 : 0);
    if (s > e) lt_error(L, "flatten", "start_dim %d expected <= end_dim %d", s + 1, e + 1);
    lt_box *b = lt_newbox(L);
    b->t = bn_flatten(t, s, e);
    return lt_done(L, b, "flatten");
}

static int l_squeeze(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "squeeze", "self");
    if (!lua_isnoneornil(L, 2)) {
        int d = lt_checkdim(L, 2, "squeeze", t->ndim, 0);
        lt_box *b = lt_newbox(L);
        b->t = bn_squeeze(t, d);
        return lt_done(L, b, "squeeze");
    }
    /* No dim: drop every dim of size 1. */
    int64_t shape[BN_MAX_DIMS];
    int k = 0;
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] != 1) shape[k++] = t->shape[d];
    lt_box *b = lt_newbox(L);
    LT_RUN(L, b, bn_reshape(t, k, shape));
    return lt_done(L, b, "squeeze");
}

static int l_unsqueeze(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "unsqueeze", "self");
    if (t->ndim >= BN_MAX_DIMS) lt_error(L, "unsqueeze", "input %s already has %d dims (the most)", bn_shape_str(t), t->ndim);
    /* Dims range over the result: [1, ndim + 1] or [-(ndim + 1), -1]. */
    int d = lt_checkdim(L, 2, "unsqueeze", t->ndim, 1);
    lt_box *b = lt_newbox(L);
    b->t = bn_unsqueeze(t, d);
    return lt_done(L, b, "unsqueeze");
}

static int l_subsample(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "subsample", "x");
    if (t->ndim == 0) lt_error(L, "subsample", "argument #1 expected at least 1-D, got a 0-d tensor");
    int d = lt_checkdim(L, 2, "subsample", t->ndim, 0);
    int64_t size = t->shape[d];
    if (size == 0) lt_error(L, "subsample", "dim %d of %s has size 0: nothing to subsample", d + 1, bn_shape_str(t));
    int64_t s = lt_checkint(L, 3, "subsample", "start", -size, size);
    if (s == 0) lt_argerror(L, "subsample", 3, "start", "a 1-based start (1 is the first, -1 the last)");
    int64_t step = lt_checkint(L, 4, "subsample", "step", 1, INT64_MAX);
    /* A step past the end keeps one element; clamping keeps the core's
     * stride * step product from overflowing. */
    if (step > size) step = size;
    lt_box *b = lt_newbox(L);
    b->t = bn_subsample(t, d, s > 0 ? s - 1 : size + s, step);
    return lt_done(L, b, "subsample");
}

static int l_contiguous(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "contiguous", "self");
    lt_box *b = lt_newbox(L);
    LT_RUN(L, b, bn_contiguous(t));
    return lt_done(L, b, "contiguous");
}

static int l_clone(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "clone", "self");
    lt_box *b = lt_newbox(L);
    LT_RUN(L, b, bn_tensor_clone(t));
    return lt_done(L, b, "clone");
}

static int l_detach(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "detach", "self");
    lt_box *b = lt_newbox(L);
    b->t = bn_tensor_detach(t);
    return lt_done(L, b, "detach");
}

void lt_open_views(lua_State *L, int mod, int methods)
{
    static const luaL_Reg both[] = {
        {"view", l_view},           {"reshape", l_reshape},     {"view_as", l_view_as},
        {"permute", l_permute},     {"transpose", l_transpose}, {"t", l_t},
        {"narrow", l_narrow},       {"select", l_select},       {"expand", l_expand},
        {"expand_as", l_expand_as}, {"flatten", l_flatten},     {"squeeze", l_squeeze},
        {"unsqueeze", l_unsqueeze}, {"subsample", l_subsample}, {"contiguous", l_contiguous},
        {"clone", l_clone},         {"detach", l_detach},       {NULL, NULL},
    };
    for (const luaL_Reg *r = both; r->name; r++) lt_register(L, mod, methods, r->name, r->func);
}
