/* The C half of bn.linalg and bn.probe (lua/bnlab/linalg.lua,
 * lua/bnlab/probe/, docs/probe.md). Two tables of raw functions, wrapped by
 * the Lua modules, which add defaults and documentation:
 *
 *   bn._linalg.svdvals(m)                        singular values (LAPACK)
 *   bn._probe.channel_stats(x)                   mean, var, absmax per channel
 *   bn._probe.histc(x, bins [, min, max])         counts, lo, hi
 *   bn._probe.conv_coherence(dout, input, kh, kw [, {stride=, padding=}])
 *                                                sum, abssum, m
 *   bn._probe.node_id(t), bn._probe.node_inputs(t)  autograd graph identities
 *
 * (The probe kernels share this file because the core registers one opener
 * for both; see lt_open_linalg.) */
#include <math.h>
#include <string.h>

#include "autograd.h"
#include "bindings/luatensor.h"
#include "blas.h"
#include "probe.h"

#define MAX_GEOM (1 << 24)

/* Raises "bn.<fn>: <core message>" without the core's own short "op: "
 * prefix (the Lua name already says where it came from). */
static int core_error(lua_State *L, const char *fn)
{
    const char *msg = bn_last_error();
    if (!msg || !*msg) msg = "failed (no message from the core)";
    const char *colon = strstr(msg, ": ");
    if (colon && colon - msg < 24 && !memchr(msg, ' ', (size_t)(colon - msg))) msg = colon + 2;
    return lt_error(L, fn, "%s", msg);
}

/* ---- bn._linalg ------------------------------------------------------------------ */

/* svdvals(m): the singular values of a 2-D tensor, descending, as a [min(r, c)]
 * tensor. A matrix holding NaN or Inf gives all-NaN values (LAPACK is not
 * asked: it may not return on such input). */
static int l_svdvals(lua_State *L)
{
    const char *fn = "linalg.svdvals";
    bn_tensor *m = lt_check(L, 1, fn, "m");
    if (m->ndim != 2) lt_error(L, fn, "argument #1 (m) expected a 2-D tensor, got %s", bn_shape_str(m));
    int64_t r = m->shape[0], c = m->shape[1], k = r < c ? r : c;
    if (k == 0) lt_error(L, fn, "argument #1 (m) expected a non-empty matrix, got %s", bn_shape_str(m));
    lt_box *out = lt_newbox(L);
    double *sv = lua_newuserdatauv(L, (size_t)k * sizeof *sv, 0);
    lt_box *dense = lt_newbox(L);
    LT_RUN(L, dense, bn_tensor_dense(m));
    if (!dense->t) core_error(L, fn);
    const float *a = bn_tensor_data(dense->t);
    bool finite = true;
    for (int64_t i = 0; i < r * c && finite; i++) finite = isfinite(a[i]);
    LT_RUN(L, out, bn_tensor_empty(1, &k));
    if (!out->t) core_error(L, fn);
    float *o = bn_tensor_data(out->t);
    if (!finite) {
        for (int64_t i = 0; i < k; i++) o[i] = NAN;
    } else {
        if (bn_singular_values(a, r, c, sv) != BN_OK) core_error(L, fn);
        for (int64_t i = 0; i < k; i++) o[i] = (float)sv[i];
    }
    lua_settop(L, 2);
    return lt_done(L, out, fn);
}

/* ---- bn._probe ------------------------------------------------------------------- */

/* channel_stats(x) -> mean, var, absmax: [C] tensors over dim 2 (1-based) of
 * x [N x C x ...]; var is the population variance. */
static int l_channel_stats(lua_State *L)
{
    const char *fn = "probe.channel_stats";
    bn_tensor *x = lt_check(L, 1, fn, "x");
    if (x->ndim < 2) lt_error(L, fn, "argument #1 (x) expected [N x C x ...] (at least 2-D), got %s", bn_shape_str(x));
    lt_box *bm = lt_newbox(L), *bv = lt_newbox(L), *ba = lt_newbox(L);
    bn_status st = bn_activation_stats(x, &bm->t, &bv->t, &ba->t);
    if (st != BN_OK && lt_collect_for_retry(L)) st = bn_activation_stats(x, &bm->t, &bv->t, &ba->t);
    if (st != BN_OK) core_error(L, fn);
    lt_memory_check(L);
    return 3;
}

/* histc(x, bins [, min, max]) -> counts [bins], lo, hi. Without min/max (or
 * min == max) the range is x's finite min and max. */
static int l_histc(lua_State *L)
{
    const char *fn = "probe.histc";
    bn_tensor *x = lt_check(L, 1, fn, "x");
    int64_t bins = lt_checkint(L, 2, fn, "bins", 1, (int64_t)1 << 24);
    double lo = lt_optnum(L, 3, fn, "min", false, 0), hi = lt_optnum(L, 4, fn, "max", false, 0);
    if (!isfinite(lo) || !isfinite(hi) || lo > hi)
        lt_error(L, fn, "arguments #3, #4 (min, max) expected finite numbers with min <= max, got %g, %g", lo, hi);
    lt_box *b = lt_newbox(L);
    double lo_used = lo, hi_used = hi;
    LT_RUN(L, b, bn_histc(x, bins, lo, hi, &lo_used, &hi_used));
    if (!b->t) core_error(L, fn);
    lua_pushnumber(L, lo_used);
    lua_pushnumber(L, hi_used);
    lt_memory_check(L);
    return 3;
}

/* conv_coherence(dout, input, kh, kw [, {stride =, padding =}]) -> sum
 * [O x C x kh x kw], abssum (same), m [C x O]; see src/probe.h. */
static int l_conv_coherence(lua_State *L)
{
    static const char *const known[] = {"stride", "padding", NULL};
    const char *fn = "probe.conv_coherence";
    bn_tensor *g = lt_check(L, 1, fn, "dout");
    bn_tensor *x = lt_check(L, 2, fn, "input");
    int kh = (int)lt_checkint(L, 3, fn, "kh", 1, MAX_GEOM);
    int kw = (int)lt_checkint(L, 4, fn, "kw", 1, MAX_GEOM);
    if (!lua_isnoneornil(L, 5) && lua_type(L, 5) != LUA_TTABLE) lt_argerror(L, fn, 5, "opts", "a table or nil");
    lt_check_opts(L, 5, fn, known);
    bn_conv2d_opts o = {1, 1, 0, 0};
    lt_opt_pair(L, 5, fn, "stride", 1, MAX_GEOM, &o.stride_h, &o.stride_w);
    lt_opt_pair(L, 5, fn, "padding", 0, MAX_GEOM, &o.pad_h, &o.pad_w);
    lt_box *bs = lt_newbox(L), *ba = lt_newbox(L), *bm = lt_newbox(L);
    bn_status st = bn_conv_coherence(g, x, kh, kw, &o, &bs->t, &ba->t, &bm->t);
    if (st != BN_OK && lt_collect_for_retry(L)) st = bn_conv_coherence(g, x, kh, kw, &o, &bs->t, &ba->t, &bm->t);
    if (st != BN_OK) core_error(L, fn);
    lt_memory_check(L);
    return 3;
}

/* node_id(t): an opaque value (a light userdata) naming where t's gradient
 * goes: its grad_fn node, or t itself for a leaf that requires grad; nil
 * when t has no gradient path. Equal for two tensors only while both are
 * alive, which is how the probes find a layer's input among the named
 * tensors of a forward pass (node_inputs of the layer's output). */
static int l_node_id(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "probe.node_id", "t");
    if (t->grad_fn) lua_pushlightuserdata(L, t->grad_fn);
    else if (t->requires_grad) lua_pushlightuserdata(L, t);
    else lua_pushnil(L);
    return 1;
}

/* node_inputs(t): for a tensor made by a recorded op, a list with one entry
 * per input of that op (node_id of the input, or false for an input that
 * needs no gradient) and the op's name; nil for other tensors. */
static int l_node_inputs(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "probe.node_inputs", "t");
    bn_node *n = t->grad_fn;
    if (!n) {
        lua_pushnil(L);
        return 1;
    }
    lua_createtable(L, n->n_in, 0);
    for (int i = 0; i < n->n_in; i++) {
        if (n->next[i]) lua_pushlightuserdata(L, n->next[i]);
        else if (n->leaf[i]) lua_pushlightuserdata(L, n->leaf[i]);
        else lua_pushboolean(L, 0);
        lua_rawseti(L, -2, i + 1);
    }
    lua_pushstring(L, n->op);
    return 2;
}

static void open_table(lua_State *L, int mod, const char *name, const luaL_Reg *fns)
{
    lua_newtable(L);
    for (; fns->name; fns++) {
        lua_pushcfunction(L, fns->func);
        lua_setfield(L, -2, fns->name);
    }
    lua_setfield(L, mod, name);
}

void lt_open_linalg(lua_State *L, int mod, int methods)
{
    (void)methods;
    static const luaL_Reg linalg[] = {{"svdvals", l_svdvals}, {NULL, NULL}};
    static const luaL_Reg probe[] = {
        {"channel_stats", l_channel_stats}, {"histc", l_histc},       {"conv_coherence", l_conv_coherence},
        {"node_id", l_node_id},             {"node_inputs", l_node_inputs}, {NULL, NULL},
    };
    open_table(L, mod, "_linalg", linalg);
    open_table(L, mod, "_probe", probe);
}
