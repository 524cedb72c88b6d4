/* The functional ops a network is made of: matmul, linear, conv2d,
 * batch_norm, softmax/log_softmax, the losses, pooling, dropout, cat, stack
 * and pad. Options come in a trailing table ({stride = 2, padding = 1}) and
 * misspelt option names are errors, never silently ignored. */
#include <limits.h>
#include <math.h>

#include "bindings/luatensor.h"
#include "ops.h"

/* Largest stride/padding/kernel accepted: the core keeps them in int and
 * computes spans in int64; this bound keeps every such sum exact. */
#define LT_MAX_GEOM (1 << 24)

static int l_matmul(lua_State *L)
{
    bn_tensor *a = lt_check(L, 1, "matmul", "a");
    bn_tensor *b = lt_check(L, 2, "matmul", "b");
    lt_box *r = lt_newbox(L);
    LT_RUN(L, r, bn_matmul(a, b));
    return lt_done(L, r, "matmul");
}

static int l_linear(lua_State *L)
{
    bn_tensor *x = lt_check(L, 1, "linear", "x");
    bn_tensor *w = lt_check(L, 2, "linear", "weight");
    bn_tensor *b = lt_opt(L, 3, "linear", "bias");
    lt_box *r = lt_newbox(L);
    LT_RUN(L, r, bn_linear(x, w, b));
    return lt_done(L, r, "linear");
}

static int l_conv2d(lua_State *L)
{
    static const char *const known[] = {"stride", "padding", NULL};
    bn_tensor *x = lt_check(L, 1, "conv2d", "input");
    bn_tensor *w = lt_check(L, 2, "conv2d", "weight");
    bn_tensor *b = lt_opt(L, 3, "conv2d", "bias");
    lt_check_opts(L, 4, "conv2d", known);
    bn_conv2d_opts o = {1, 1, 0, 0};
    lt_opt_pair(L, 4, "conv2d", "stride", 1, LT_MAX_GEOM, &o.stride_h, &o.stride_w);
    lt_opt_pair(L, 4, "conv2d", "padding", 0, LT_MAX_GEOM, &o.pad_h, &o.pad_w);
    lt_box *r = lt_newbox(L);
    LT_RUN(L, r, bn_conv2d(x, w, b, &o));
    return lt_done(L, r, "conv2d");
}

static int l_batch_norm(lua_State *L)
{
    static const char *const known[] = {"training", "momentum", "eps", NULL};
    bn_tensor *x = lt_check(L, 1, "batch_norm", "input");
    bn_tensor *rm = lt_opt(L, 2, "batch_norm", "running_mean");
    bn_tensor *rv = lt_opt(L, 3, "batch_norm", "running_var");
    bn_tensor *w = lt_opt(L, 4, "batch_norm", "weight");
    bn_tensor *b = lt_opt(L, 5, "batch_norm", "bias");
    lt_check_opts(L, 6, "batch_norm", known);
    /* PyTorch's F.batch_norm defaults. */
    bn_batch_norm_opts o = {false, 0.1, 1e-5};
    if (lt_opt_field(L, 6, "training")) {
        if (lua_type(L, -1) != LUA_TBOOLEAN)
            lt_error(L, "batch_norm", "option 'training' expected a boolean, got %s", luaL_typename(L, -1));
        o.training = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    if (lt_opt_field(L, 6, "momentum")) {
        double m = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : NAN;
        if (!(m >= 0 && m <= 1))
            lt_error(L, "batch_norm", "option 'momentum' expected a number in [0, 1], got %s%s",
                     luaL_typename(L, -1), lua_type(L, -1) == LUA_TNUMBER ? " out of range" : "");
        o.momentum = m;
        lua_pop(L, 1);
    }
    if (lt_opt_field(L, 6, "eps")) {
        double e = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : NAN;
        if (!(e >= 0 && isfinite(e)))
            lt_error(L, "batch_norm", "option 'eps' expected a finite number >= 0, got %s%s", luaL_typename(L, -1),
                     lua_type(L, -1) == LUA_TNUMBER ? " out of range" : "");
        o.eps = e;
        lua_pop(L, 1);
    }
    lt_box *r = lt_newbox(L);
    r->t = bn_batch_norm(x, rm, rv, w, b, &o);
    return lt_done(L, r, "batch_norm");
}

static int softmax_like(lua_State *L, const char *fn, bn_tensor *(*f)(bn_tensor *, int))
{
    bn_tensor *x = lt_check(L, 1, fn, "input");
    if (lua_isnoneornil(L, 2))
        lt_error(L, fn, "argument #2 (dim) is required: the dim to normalize over (1-based, -1 = last)");
    int d = lt_checkdim(L, 2, fn, x->ndim, 0);
    lt_box *r = lt_newbox(L);
    LT_RUN(L, r, f(x, d));
    return lt_done(L, r, fn);
}

static int l_softmax(lua_State *L) { return softmax_like(L, "softmax", bn_softmax); }
static int l_log_softmax(lua_State *L) { return softmax_like(L, "log_softmax", bn_log_softmax); }

/* Labels as 0-based int64 in a Lua-owned scratch buffer (freed by the
 * collector even when an error is raised halfway). */
static int64_t *check_labels(lua_State *L, int arg, int64_t k, int64_t *n_out)
{
    const char *fn = "cross_entropy";
    if (lua_type(L, arg) == LUA_TTABLE) {
        int64_t n = (int64_t)lua_rawlen(L, arg);
        int64_t *lab = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof *lab, 0);
        for (int64_t i = 0; i < n; i++) {
            lua_rawgeti(L, arg, (lua_Integer)i + 1);
            double v = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : NAN;
            if (!(v >= 1 && v <= (double)k && v == floor(v))) {
                char got[128];
                lt_error(L, fn, "labels[%lld] expected a class index in [1, %lld] (1-based), got %s",
                         (long long)i + 1, (long long)k, lt_describe(L, -1, got, sizeof got));
            }
            lab[i] = (int64_t)v - 1;
            lua_pop(L, 1);
        }
        *n_out = n;
        return lab;
    }
    bn_tensor *t = lt_test(L, arg);
    if (!t) {
        if (luaL_testudata(L, arg, LT_TENSOR_MT)) lt_check(L, arg, fn, "labels");
        lt_argerror(L, fn, arg, "labels", "a table or a 1-D tensor of 1-based class indices");
    }
    if (t->ndim != 1) lt_error(L, fn, "labels expected a 1-D tensor [N], got %s", bn_shape_str(t));
    int64_t n = t->shape[0];
    int64_t *lab = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof *lab, 0);
    for (int64_t i = 0; i < n; i++) {
        double v = bn_tensor_get_flat(t, i);
        if (!(v >= 1 && v <= (double)k && v == floor(v)))
            lt_error(L, fn, "labels[%lld] expected a class index in [1, %lld] (1-based), got %g", (long long)i + 1,
                     (long long)k, v);
        lab[i] = (int64_t)v - 1;
    }
    *n_out = n;
    return lab;
}

static int l_cross_entropy(lua_State *L)
{
    bn_tensor *x = lt_check(L, 1, "cross_entropy", "logits");
    if (x->ndim != 2) lt_error(L, "cross_entropy", "logits expected [N x K], got %s", bn_shape_str(x));
    if (lua_isnoneornil(L, 2)) lt_argerror(L, "cross_entropy", 2, "labels", "a table or a 1-D tensor of 1-based class indices");
    lua_settop(L, 2);
    int64_t n;
    int64_t *lab = check_labels(L, 2, x->shape[1], &n);
    lt_box *r = lt_newbox(L);
    LT_RUN(L, r, bn_cross_entropy(x, lab, n));
    return lt_done(L, r, "cross_entropy");
}

static int l_mse_loss(lua_State *L)
{
    bn_tensor *a = lt_check(L, 1, "mse_loss", "input");
    bn_tensor *b = lt_check(L, 2, "mse_loss", "target");
    lt_box *r = lt_newbox(L);
    LT_RUN(L, r, bn_mse_loss(a, b));
    return lt_done(L, r, "mse_loss");
}

/* max_pool2d(x, k, {stride=, padding=}) and avg_pool2d (+ count_include_pad). */
static int pool(lua_State *L, const char *fn, bool avg)
{
    static const char *const known_max[] = {"stride", "padding", NULL};
    static const char *const known_avg[] = {"stride", "padding", "count_include_pad", NULL};
    bn_tensor *x = lt_check(L, 1, fn, "input");
    int64_t kh, kw;
    lt_check_pair(L, 2, fn, "kernel_size", 1, LT_MAX_GEOM, &kh, &kw);
    lt_check_opts(L, 3, fn, avg ? known_avg : known_max);
    bn_pool2d_opts o = {(int)kh, (int)kw, 0, 0, 0, 0, true};
    o.stride_h = o.kernel_h;
    o.stride_w = o.kernel_w;
    lt_opt_pair(L, 3, fn, "stride", 1, LT_MAX_GEOM, &o.stride_h, &o.stride_w);
    lt_opt_pair(L, 3, fn, "padding", 0, LT_MAX_GEOM, &o.pad_h, &o.pad_w);
    if (avg && lt_opt_field(L, 3, "count_include_pad")) {
        if (lua_type(L, -1) != LUA_TBOOLEAN)
            lt_error(L, fn, "option 'count_include_pad' expected a boolean, got %s", luaL_typename(L, -1));
        o.count_include_pad = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    lt_box *r = lt_newbox(L);
    LT_RUN(L, r, avg ? bn_avg_pool2d(x, &o) : bn_max_pool2d(x, &o));
    return lt_done(L, r, fn);
}

static int l_max_pool2d(lua_State *L) { return pool(L, "max_pool2d", false); }
static int l_avg_pool2d(lua_State *L) { return pool(L, "avg_pool2d", true); }

static int l_adaptive_avg_pool2d(lua_State *L)
{
    bn_tensor *x = lt_check(L, 1, "adaptive_avg_pool2d", "input");
    int64_t oh, ow;
    lt_check_pair(L, 2, "adaptive_avg_pool2d", "output_size", 1, INT64_C(1) << 40, &oh, &ow);
    lt_box *r = lt_newbox(L);
    LT_RUN(L, r, bn_adaptive_avg_pool2d(x, oh, ow));
    return lt_done(L, r, "adaptive_avg_pool2d");
}

static int l_dropout(lua_State *L)
{
    bn_tensor *x = lt_check(L, 1, "dropout", "input");
    double p = lt_optnum(L, 2, "dropout", "p", false, 0.5);
    if (!(p >= 0 && p <= 1)) lt_argerror(L, "dropout", 2, "p", "a probability in [0, 1]");
    bool training = lt_optbool(L, 3, "dropout", "training", true);
    lt_box *r = lt_newbox(L);
    r->t = bn_dropout(x, p, training);
    return lt_done(L, r, "dropout");
}

/* The tensors of a Lua list, as borrowed pointers in a Lua-owned array. */
static bn_tensor **check_list(lua_State *L, int arg, const char *fn, int *n_out)
{
    if (lua_type(L, arg) != LUA_TTABLE) lt_argerror(L, fn, arg, "tensors", "a table (list) of tensors");
    lua_Unsigned n = lua_rawlen(L, arg);
    if (n == 0) lt_error(L, fn, "argument #%d (tensors) expected at least 1 tensor, got an empty table", arg);
    if (n > (1u << 20)) lt_error(L, fn, "argument #%d (tensors) has %llu tensors; at most 2^20 are supported", arg,
                                 (unsigned long long)n);
    bn_tensor **ts = lua_newuserdatauv(L, (size_t)n * sizeof *ts, 0);
    for (lua_Unsigned i = 0; i < n; i++) {
        lua_rawgeti(L, arg, (lua_Integer)i + 1);
        lt_box *b = luaL_testudata(L, -1, LT_TENSOR_MT);
        if (!b || !b->t) {
            char got[128];
            lt_error(L, fn, "argument #%d (tensors) entry %llu expected a tensor, got %s", arg,
                     (unsigned long long)i + 1, b ? "a closed tensor" : lt_describe(L, -1, got, sizeof got));
        }
        ts[i] = b->t; /* kept alive by the table, which is on the stack */
        lua_pop(L, 1);
    }
    *n_out = (int)n;
    return ts;
}

static int cat_like(lua_State *L, const char *fn, bool stack)
{
    lua_settop(L, 2); /* check_list pushes its scratch array above the arguments */
    int n;
    bn_tensor **ts = check_list(L, 1, fn, &n);
    int d = lt_optdim(L, 2, fn, ts[0]->ndim, stack ? 1 : 0, 0);
    lt_box *r = lt_newbox(L);
    LT_RUN(L, r, stack ? bn_stack(n, ts, d) : bn_cat(n, ts, d));
    return lt_done(L, r, fn);
}

static int l_cat(lua_State *L) { return cat_like(L, "cat", false); }
static int l_stack(lua_State *L) { return cat_like(L, "stack", true); }

/* bn.pad(x, {left, right, top, bottom, ...}): pairs from the last dim
 * backwards, as PyTorch's F.pad; converted to the core's per-dim pairs. */
static int l_pad(lua_State *L)
{
    bn_tensor *x = lt_check(L, 1, "pad", "input");
    if (lua_type(L, 2) != LUA_TTABLE) lt_argerror(L, "pad", 2, "pads", "a table {left, right, top, bottom, ...}");
    lua_Unsigned len = lua_rawlen(L, 2);
    if (len % 2 != 0 || len == 0 || len > 2 * (lua_Unsigned)x->ndim)
        lt_error(L, "pad", "pads expected an even number of entries, 2 to %d (pairs for the last dims of input %s), got %llu",
                 2 * x->ndim, bn_shape_str(x), (unsigned long long)len);
    if (!lua_isnoneornil(L, 3)) {
        double v = lt_checknum(L, 3, "pad", "value", true);
        if (v != 0) lt_error(L, "pad", "only zero padding is supported, got value %g", v);
    }
    int64_t pads[2 * BN_MAX_DIMS] = {0};
    for (lua_Unsigned j = 0; j < len / 2; j++) {
        int k = x->ndim - 1 - (int)j; /* pair j pads dim k, counted from the end */
        for (int side = 0; side < 2; side++) {
            lua_rawgeti(L, 2, (lua_Integer)(2 * j + (lua_Unsigned)side) + 1);
            int64_t v;
            double dv = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : NAN;
            if (!(dv == floor(dv) && fabs(dv) <= (double)(INT64_C(1) << 40))) {
                char got[128];
                lt_error(L, "pad", "pads[%llu] expected an integer in [-2^40, 2^40], got %s",
                         (unsigned long long)(2 * j + (lua_Unsigned)side) + 1, lt_describe(L, -1, got, sizeof got));
            }
            v = (int64_t)dv;
            pads[2 * k + side] = v;
            lua_pop(L, 1);
        }
    }
    lt_box *r = lt_newbox(L);
    LT_RUN(L, r, bn_pad(x, pads));
    return lt_done(L, r, "pad");
}

void lt_open_ops(lua_State *L, int mod, int methods)
{
    static const luaL_Reg both[] = {
        {"matmul", l_matmul}, {"softmax", l_softmax}, {"log_softmax", l_log_softmax}, {NULL, NULL},
    };
    for (const luaL_Reg *r = both; r->name; r++) lt_register(L, mod, methods, r->name, r->func);
    static const luaL_Reg f[] = {
        {"linear", l_linear},
        {"conv2d", l_conv2d},
        {"batch_norm", l_batch_norm},
        {"cross_entropy", l_cross_entropy},
        {"mse_loss", l_mse_loss},
        {"max_pool2d", l_max_pool2d},
        {"avg_pool2d", l_avg_pool2d},
        {"adaptive_avg_pool2d", l_adaptive_avg_pool2d},
        {"dropout", l_dropout},
        {"cat", l_cat},
        {"stack", l_stack},
        {"pad", l_pad},
        {NULL, NULL},
    };
    lua_pushvalue(L, mod);
    luaL_setfuncs(L, f, 0);
    lua_pop(L, 1);
}
