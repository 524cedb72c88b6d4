/* Making tensors from Lua: from nested tables, from sizes (zeros, ones,
 * full, empty, rand, randn), ranges (arange, linspace, logspace), eye, the
 * *_like family, and seeding the global generator. */
#include <string.h>

#include "bindings/luatensor.h"
#include "rng.h"

/* ---- bn.tensor ------------------------------------------------------------------ */

/* A readable path to a nested element: "[2][3]". */
static const char *path_str(const int64_t *path, int depth, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int d = 0; d < depth && len < size; d++)
        len += (size_t)snprintf(buf + len, size - len, "[%lld]", (long long)path[d] + 1);
    return buf;
}

/* Checks that the table at the top of the stack has the shape [d, ndim)
 * and numbers at the leaves. Raw access only: no metamethod can run, so
 * the fill pass that follows sees exactly what was checked. */
static void validate(lua_State *L, int ndim, const int64_t *shape, int d, int64_t *path)
{
    char where[160], got[128];
    luaL_checkstack(L, 2, "bn.tensor: nesting too deep");
    int idx = lua_gettop(L);
    if (lua_type(L, idx) != LUA_TTABLE) {
        lt_error(L, "tensor", "argument #1 element %s expected a table of %lld entries like the first, got %s",
                 path_str(path, d, where, sizeof where), (long long)shape[d], lt_describe(L, idx, got, sizeof got));
    }
    int64_t len = (int64_t)lua_rawlen(L, idx);
    if (len != shape[d])
        lt_error(L, "tensor", "argument #1 is ragged: element %s has %lld entries, expected %lld like the first",
                 d ? path_str(path, d, where, sizeof where) : "#1", (long long)len, (long long)shape[d]);
    for (int64_t i = 0; i < len; i++) {
        path[d] = i;
        lua_rawgeti(L, idx, (lua_Integer)i + 1);
        if (d + 1 < ndim) {
            validate(L, ndim, shape, d + 1, path);
        } else if (lua_type(L, -1) != LUA_TNUMBER) {
            lt_error(L, "tensor", "argument #1 element %s expected a number%s, got %s",
                     path_str(path, d + 1, where, sizeof where),
                     lt_test(L, -1) ? " (to join tensors use bn.stack or bn.cat)" : "",
                     lt_describe(L, -1, got, sizeof got));
        }
        lua_pop(L, 1);
    }
}

static void fill_rec(lua_State *L, int ndim, const int64_t *shape, int d, float **out)
{
    int idx = lua_gettop(L);
    for (int64_t i = 0; i < shape[d]; i++) {
        lua_rawgeti(L, idx, (lua_Integer)i + 1);
        if (d + 1 < ndim) fill_rec(L, ndim, shape, d + 1, out);
        else *(*out)++ = (float)lua_tonumber(L, -1);
        lua_pop(L, 1);
    }
}

static int l_tensor(lua_State *L)
{
    int type = lua_type(L, 1);
    if (type == LUA_TNUMBER) {
        float v = (float)lua_tonumber(L, 1);
        lt_box *b = lt_newbox(L);
        LT_RUN(L, b, bn_tensor_scalar(v));
        return lt_done(L, b, "tensor");
    }
    if (type == LUA_TUSERDATA && lt_test(L, 1)) {
        /* A copy with no history, like torch.tensor(t) (clone().detach()). */
        bn_tensor *src = lt_check(L, 1, "tensor", "data");
        lt_box *b = lt_newbox(L);
        LT_RUN(L, b, bn_tensor_empty(src->ndim, src->shape));
        if (b->t) bn_tensor_read(src, bn_tensor_data(b->t));
        return lt_done(L, b, "tensor");
    }
    if (type != LUA_TTABLE) lt_argerror(L, "tensor", 1, "data", "a number, a (nested) table of numbers or a tensor");
    /* Shape from the first element at each depth. */
    int64_t shape[BN_MAX_DIMS], path[BN_MAX_DIMS];
    int ndim = 0;
    lua_pushvalue(L, 1);
    while (lua_type(L, -1) == LUA_TTABLE) {
        if (ndim == BN_MAX_DIMS)
            lt_error(L, "tensor", "argument #1 is nested deeper than %d levels (at most %d dims)", BN_MAX_DIMS,
                     BN_MAX_DIMS);
        shape[ndim++] = (int64_t)lua_rawlen(L, -1);
        if (shape[ndim - 1] == 0) break;
        lua_rawgeti(L, -1, 1);
        lua_remove(L, -2);
    }
    lua_pop(L, 1);
    lua_pushvalue(L, 1);
    validate(L, ndim, shape, 0, path);
    lt_box *b = lt_newbox(L);
    LT_RUN(L, b, bn_tensor_empty(ndim, shape));
    if (b->t && bn_tensor_numel(b->t) > 0) {
        float *p = bn_tensor_data(b->t);
        lua_pushvalue(L, 1);
        fill_rec(L, ndim, shape, 0, &p);
        lua_pop(L, 1);
    }
    return lt_done(L, b, "tensor");
}

/* ---- from sizes ------------------------------------------------------------------ */

typedef bn_tensor *(*sized_fn)(int ndim, const int64_t *shape);

static int sized(lua_State *L, const char *fn, sized_fn make)
{
    int64_t shape[BN_MAX_DIMS];
    int ndim = lt_checksizes(L, 1, lua_gettop(L), fn, shape, 0);
    lt_box *b = lt_newbox(L);
    LT_RUN(L, b, make(ndim, shape));
    return lt_done(L, b, fn);
}

static int l_zeros(lua_State *L) { return sized(L, "zeros", bn_tensor_zeros); }
static int l_ones(lua_State *L) { return sized(L, "ones", bn_tensor_ones); }
static int l_empty(lua_State *L) { return sized(L, "empty", bn_tensor_empty); }
static int l_rand(lua_State *L) { return sized(L, "rand", bn_rand); }
static int l_randn(lua_State *L) { return sized(L, "randn", bn_randn); }

/* bn.full({2, 3}, v) or bn.full(2, 3, v): the value comes last. */
static int l_full(lua_State *L)
{
    int top = lua_gettop(L);
    if (top < 1 || (top == 1 && lua_type(L, 1) != LUA_TTABLE))
        lt_error(L, "full", "expected sizes then a value: bn.full({2, 3}, 7) or bn.full(2, 3, 7)");
    float v = (float)lt_checknum(L, top, "full", "value", true);
    int64_t shape[BN_MAX_DIMS];
    int ndim = lt_checksizes(L, 1, top - 1, "full", shape, 0);
    lt_box *b = lt_newbox(L);
    LT_RUN(L, b, bn_tensor_full(ndim, shape, v));
    return lt_done(L, b, "full");
}

/* ---- *_like ----------------------------------------------------------------------- */

static int like(lua_State *L, const char *fn, sized_fn make)
{
    bn_tensor *t = lt_check(L, 1, fn, "input");
    lt_box *b = lt_newbox(L);
    LT_RUN(L, b, make(t->ndim, t->shape));
    return lt_done(L, b, fn);
}

static int l_zeros_like(lua_State *L) { return like(L, "zeros_like", bn_tensor_zeros); }
static int l_ones_like(lua_State *L) { return like(L, "ones_like", bn_tensor_ones); }
static int l_empty_like(lua_State *L) { return like(L, "empty_like", bn_tensor_empty); }
static int l_rand_like(lua_State *L) { return like(L, "rand_like", bn_rand); }
static int l_randn_like(lua_State *L) { return like(L, "randn_like", bn_randn); }

static int l_full_like(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "full_like", "input");
    float v = (float)lt_checknum(L, 2, "full_like", "value", true);
    lt_box *b = lt_newbox(L);
    LT_RUN(L, b, bn_tensor_full(t->ndim, t->shape, v));
    return lt_done(L, b, "full_like");
}

/* ---- ranges ----------------------------------------------------------------------- */

/* bn.arange(end) or bn.arange(start, end[, step]): [start, end) like PyTorch. */
static int l_arange(lua_State *L)
{
    double start = 0, end, step = 1;
    if (lua_isnoneornil(L, 2)) {
        end = lt_checknum(L, 1, "arange", "end", false);
    } else {
        start = lt_checknum(L, 1, "arange", "start", false);
        end = lt_checknum(L, 2, "arange", "end", false);
        step = lt_optnum(L, 3, "arange", "step", false, 1.0);
    }
    lt_box *b = lt_newbox(L);
    LT_RUN(L, b, bn_tensor_arange(start, end, step));
    return lt_done(L, b, "arange");
}

static int l_linspace(lua_State *L)
{
    double start = lt_checknum(L, 1, "linspace", "start", false);
    double end = lt_checknum(L, 2, "linspace", "end", false);
    int64_t steps = lt_checkint(L, 3, "linspace", "steps", 0, INT64_C(1) << 40);
    lt_box *b = lt_newbox(L);
    LT_RUN(L, b, bn_tensor_linspace(start, end, steps));
    return lt_done(L, b, "linspace");
}

static int l_logspace(lua_State *L)
{
    double start = lt_checknum(L, 1, "logspace", "start", false);
    double end = lt_checknum(L, 2, "logspace", "end", false);
    int64_t steps = lt_checkint(L, 3, "logspace", "steps", 0, INT64_C(1) << 40);
    double base = lt_optnum(L, 4, "logspace", "base", false, 10.0);
    lt_box *b = lt_newbox(L);
    LT_RUN(L, b, bn_tensor_logspace(start, end, steps, base));
    return lt_done(L, b, "logspace");
}

static int l_eye(lua_State *L)
{
    int64_t n = lt_checkint(L, 1, "eye", "n", 0, INT64_C(1) << 40);
    int64_t m = lt_optint(L, 2, "eye", "m", 0, INT64_C(1) << 40, n);
    lt_box *b = lt_newbox(L);
    LT_RUN(L, b, bn_tensor_eye(n, m));
    return lt_done(L, b, "eye");
}

static int l_manual_seed(lua_State *L)
{
    int64_t seed = lt_checkint(L, 1, "manual_seed", "seed", 0, INT64_MAX);
    bn_manual_seed((uint64_t)seed);
    return 0;
}

void lt_open_creation(lua_State *L, int mod, int methods)
{
    (void)methods;
    static const luaL_Reg f[] = {
        {"tensor", l_tensor},         {"zeros", l_zeros},           {"ones", l_ones},
        {"empty", l_empty},           {"full", l_full},             {"rand", l_rand},
        {"randn", l_randn},           {"zeros_like", l_zeros_like}, {"ones_like", l_ones_like},
        {"empty_like", l_empty_like}, {"full_like", l_full_like},   {"rand_like", l_rand_like},
        {"randn_like", l_randn_like}, {"arange", l_arange},         {"linspace", l_linspace},
        {"logspace", l_logspace},     {"eye", l_eye},               {"manual_seed", l_manual_seed},
        {NULL, NULL},
    };
    lua_pushvalue(L, mod);
    luaL_setfuncs(L, f, 0);
    lua_pop(L, 1);
}
