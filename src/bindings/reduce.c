/* Reductions: sum, mean, var, std, max, min, argmax. Each takes an optional
 * 1-based dim and keepdim; without a dim the whole tensor reduces to a 0-d
 * tensor (whose :item() is the number). Positions returned by max, min and
 * argmax are 1-based, like every index on the Lua side. */
#include "autograd.h"
#include "bindings/luatensor.h"
#include "ops.h"

/* Reshapes a whole-tensor result r (0-d) to ndim ones for keepdim. Takes
 * over r; returns +1 or NULL. */
static bn_tensor *keep_all(bn_tensor *r, int ndim)
{
    if (!r || ndim == 0) return r;
    int64_t ones[BN_MAX_DIMS];
    for (int d = 0; d < ndim; d++) ones[d] = 1;
    bn_tensor *v = bn_reshape(r, ndim, ones);
    bn_tensor_release(r);
    return v;
}

typedef bn_tensor *(*red_dim_fn)(bn_tensor *, int, bool);
typedef bn_tensor *(*red_all_fn)(bn_tensor *);

static int reduce(lua_State *L, const char *fn, red_all_fn all, red_dim_fn dim)
{
    bn_tensor *t = lt_check(L, 1, fn, "self");
    bool keep = lt_optbool(L, 3, fn, "keepdim", false);
    lt_box *b;
    if (lua_isnoneornil(L, 2)) {
        b = lt_newbox(L);
        LT_RUN(L, b, keep_all(all(t), keep ? t->ndim : 0));
    } else {
        int d = lt_checkdim(L, 2, fn, t->ndim, 0);
        b = lt_newbox(L);
        LT_RUN(L, b, dim(t, d, keep));
    }
    return lt_done(L, b, fn);
}

static int l_sum(lua_State *L) { return reduce(L, "sum", bn_sum_all, bn_sum); }
static int l_mean(lua_State *L) { return reduce(L, "mean", bn_mean_all, bn_mean); }

/* The correction of var/std: an integer >= 0 (1 = unbiased, the default) or
 * a boolean `unbiased` as in older PyTorch. */
static int check_correction(lua_State *L, int arg, const char *fn)
{
    if (lua_isnoneornil(L, arg)) return 1;
    if (lua_type(L, arg) == LUA_TBOOLEAN) return lua_toboolean(L, arg) ? 1 : 0;
    return (int)lt_checkint(L, arg, fn, "correction", 0, 1 << 30);
}

static int var_like(lua_State *L, const char *fn, bool is_std)
{
    bn_tensor *t = lt_check(L, 1, fn, "self");
    bool keep = lt_optbool(L, 3, fn, "keepdim", false);
    int corr = check_correction(L, 4, fn);
    lt_box *b;
    if (lua_isnoneornil(L, 2)) {
        b = lt_newbox(L);
        LT_RUN(L, b, keep_all(is_std ? bn_std_all(t, corr) : bn_var_all(t, corr), keep ? t->ndim : 0));
    } else {
        int d = lt_checkdim(L, 2, fn, t->ndim, 0);
        b = lt_newbox(L);
        LT_RUN(L, b, is_std ? bn_std(t, d, keep, corr) : bn_var(t, d, keep, corr));
    }
    return lt_done(L, b, fn);
}

static int l_var(lua_State *L) { return var_like(L, "var", false); }
static int l_std(lua_State *L) { return var_like(L, "std", true); }

/* 0-based float positions -> 1-based, in place (the tensor is fresh and
 * ours: no one else can see the write). */
static void one_based(bn_tensor *idx)
{
    if (!idx) return;
    float *base = idx->storage->data;
    int64_t n = bn_tensor_numel(idx);
    if (bn_tensor_is_contiguous(idx)) {
        float *p = bn_tensor_data(idx);
        for (int64_t i = 0; i < n; i++) p[i] += 1.0f;
    } else {
        for (int64_t i = 0; i < n; i++) {
            /* Not reached with the current core (results are contiguous);
             * kept so a layout change cannot silently break 1-basing. */
            int64_t off = idx->offset, rest = i;
            for (int d = idx->ndim - 1; d >= 0; d--) {
                off += (rest % idx->shape[d]) * idx->stride[d];
                rest /= idx->shape[d];
            }
            base[off] += 1.0f;
        }
    }
}

typedef bn_tensor *(*extreme_fn)(bn_tensor *, int, bool, bn_tensor **);

/* max/min: no dim -> one 0-d value; with a dim -> values and 1-based indices. */
static int extreme(lua_State *L, const char *fn, red_all_fn all, extreme_fn dim)
{
    bn_tensor *t = lt_check(L, 1, fn, "self");
    bool keep = lt_optbool(L, 3, fn, "keepdim", false);
    if (lua_isnoneornil(L, 2)) {
        lt_box *b = lt_newbox(L);
        LT_RUN(L, b, keep_all(all(t), keep ? t->ndim : 0));
        return lt_done(L, b, fn);
    }
    int d = lt_checkdim(L, 2, fn, t->ndim, 0);
    lt_box *v = lt_newbox(L);
    lt_box *i = lt_newbox(L);
    v->t = dim(t, d, keep, &i->t);
    if (!v->t) {
        bn_tensor_release(i->t);
        i->t = NULL;
        lt_core_error(L, fn);
    }
    if (!i->t) lt_core_error(L, fn);
    one_based(i->t);
    lt_memory_check(L);
    return 2;
}

static int l_max(lua_State *L) { return extreme(L, "max", bn_max_all, bn_max); }
static int l_min(lua_State *L) { return extreme(L, "min", bn_min_all, bn_min); }

static int l_argmax(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "argmax", "self");
    bool keep = lt_optbool(L, 3, "argmax", "keepdim", false);
    lt_box *b;
    if (lua_isnoneornil(L, 2)) {
        /* Like PyTorch: the position in the flattened tensor. */
        int64_t n = bn_tensor_numel(t);
        b = lt_newbox(L);
        bool was = bn_set_grad_enabled(false); /* argmax has no gradient; skip the reshape node */
        bn_tensor *flat = bn_reshape(t, 1, &n);
        bn_set_grad_enabled(was);
        b->t = flat ? keep_all(bn_argmax(flat, 0, false), keep ? t->ndim : 0) : NULL;
        bn_tensor_release(flat);
    } else {
        int d = lt_checkdim(L, 2, "argmax", t->ndim, 0);
        b = lt_newbox(L);
        LT_RUN(L, b, bn_argmax(t, d, keep));
    }
    if (b->t) one_based(b->t);
    return lt_done(L, b, "argmax");
}

void lt_open_reduce(lua_State *L, int mod, int methods)
{
    static const luaL_Reg both[] = {
        {"sum", l_sum}, {"mean", l_mean}, {"var", l_var},       {"std", l_std},
        {"max", l_max}, {"min", l_min},   {"argmax", l_argmax}, {NULL, NULL},
    };
    for (const luaL_Reg *r = both; r->name; r++) lt_register(L, mod, methods, r->name, r->func);
}
