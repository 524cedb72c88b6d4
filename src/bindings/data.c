/* The C half of bn.data (lua/bnlab/data.lua): the IDX and CIFAR readers,
 * the batch gather + augmentation kernel, per-channel statistics, and seeds.
 * They live in one table, bn._data, which bn.data wraps; errors name
 * "bn.data.<fn>".
 *
 * The loaders do not raise on a bad file: they return nil and the reader's
 * message ("idx: <path>: truncated ..."), so bn.data can say which loader
 * the user called ("bn.data.fashion_mnist: idx: <path>: ...") at the user's
 * line. Bad arguments raise as in every binding.
 *
 * Indices and labels cross into Lua as float tensors of 1-based values
 * (exact below 2^24), the form bn.cross_entropy takes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bindings/luatensor.h"
#include "data/batch.h"
#include "data/cifar.h"
#include "data/idx.h"
#include "rng.h"

/* Float tensors hold integers exactly up to 2^24. */
#define LD_MAX_INDEX (INT64_C(1) << 24)
/* Seeds are Lua integers >= 0. */
#define LD_MAX_SEED INT64_MAX

static const char *check_path(lua_State *L, int arg, const char *fn, const char *name)
{
    const char *path = lt_checkstr(L, arg, fn, name);
    if (strlen(path) != lua_rawlen(L, arg))
        lt_error(L, fn, "argument #%d (%s) must not contain a zero byte", arg, name);
    if (!*path) lt_argerror(L, fn, arg, name, "a non-empty file name");
    return path;
}

/* An integer option field in [lo, hi], or def when absent. */
static int64_t opt_int_field(lua_State *L, int opts, const char *fn, const char *field, int64_t lo, int64_t hi,
                             int64_t def)
{
    if (!lt_opt_field(L, opts, field)) return def;
    int isint = 0;
    lua_Integer v = lua_tointegerx(L, -1, &isint); /* integral floats convert too */
    if (lua_type(L, -1) != LUA_TNUMBER || !isint || v < lo || v > hi) {
        char got[128];
        lt_error(L, fn, "option '%s' expected an integer in [%lld, %lld], got %s", field, (long long)lo,
                 (long long)hi, lt_describe(L, -1, got, sizeof got));
    }
    lua_pop(L, 1);
    return (int64_t)v;
}

static bool opt_bool_field(lua_State *L, int opts, const char *fn, const char *field, bool def)
{
    if (!lt_opt_field(L, opts, field)) return def;
    if (lua_type(L, -1) != LUA_TBOOLEAN) {
        char got[128];
        lt_error(L, fn, "option '%s' expected a boolean, got %s", field, lt_describe(L, -1, got, sizeof got));
    }
    bool v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* A number, or a table of exactly n numbers, at idx -> out[n]. */
static void read_numbers(lua_State *L, int idx, const char *fn, const char *what, int64_t n, double *out, bool finite)
{
    idx = lua_absindex(L, idx);
    char got[128];
    if (lua_type(L, idx) == LUA_TNUMBER) {
        double v = lua_tonumber(L, idx);
        if (finite && !isfinite(v)) lt_error(L, fn, "%s expected finite numbers, got %g", what, v);
        for (int64_t i = 0; i < n; i++) out[i] = v;
        return;
    }
    if (lua_type(L, idx) != LUA_TTABLE)
        lt_error(L, fn, "%s expected a number or a table of %lld numbers (one per channel), got %s", what,
                 (long long)n, lt_describe(L, idx, got, sizeof got));
    if ((int64_t)lua_rawlen(L, idx) != n)
        lt_error(L, fn, "%s expected %lld numbers (one per channel), got a table of %llu", what, (long long)n,
                 (unsigned long long)lua_rawlen(L, idx));
    for (int64_t i = 0; i < n; i++) {
        lua_rawgeti(L, idx, (lua_Integer)i + 1);
        if (lua_type(L, -1) != LUA_TNUMBER || (finite && !isfinite(lua_tonumber(L, -1))))
            lt_error(L, fn, "%s[%lld] expected a %snumber, got %s", what, (long long)i + 1, finite ? "finite " : "",
                     lt_describe(L, -1, got, sizeof got));
        out[i] = lua_tonumber(L, -1);
        lua_pop(L, 1);
    }
}

/* Class indices 0..K-1 -> a new float tensor [n] of 1-based labels (NULL
 * on failure, core error set). */
static bn_tensor *labels_tensor(const int64_t *labels, int64_t n)
{
    bn_tensor *t = bn_tensor_empty(1, &n);
    if (!t) return NULL;
    float *d = bn_tensor_data(t);
    for (int64_t i = 0; i < n; i++) d[i] = (float)(labels[i] + 1);
    return t;
}

/* ---- loaders ----------------------------------------------------------------- */

/* _data.load_idx(images_path, labels_path) -> images [N x 1 x H x W],
 * labels [N] (1-based) | nil, message */
static int l_load_idx(lua_State *L)
{
    const char *fn = "data.load_idx";
    const char *ip = check_path(L, 1, fn, "images");
    const char *lp = check_path(L, 2, fn, "labels");
    lua_settop(L, 2);
    lt_box *bx = lt_newbox(L);
    lt_box *by = lt_newbox(L);
    bn_tensor *x = NULL;
    int64_t *y = NULL, n = 0;
    bn_status st = bn_idx_load_pair(ip, lp, &x, &y, &n);
    if (st == BN_ENOMEM && lt_collect_for_retry(L)) st = bn_idx_load_pair(ip, lp, &x, &y, &n);
    if (st != BN_OK) {
        lua_pushnil(L);
        lua_pushstring(L, bn_last_error());
        return 2;
    }
    bx->t = x;
    by->t = labels_tensor(y, n);
    free(y);
    if (!by->t) lt_core_error(L, fn);
    lt_memory_check(L);
    return 2;
}

/* _data.load_cifar({paths...}, label_bytes) -> images [N x 3 x 32 x 32],
 * labels [N] (1-based; CIFAR-100: fine), coarse labels [N] or nil
 * | nil, message */
static int l_load_cifar(lua_State *L)
{
    const char *fn = "data.load_cifar";
    if (lua_type(L, 1) != LUA_TTABLE) lt_argerror(L, fn, 1, "paths", "a table of file names");
    int64_t nf = (int64_t)lua_rawlen(L, 1);
    if (nf < 1 || nf > 64) lt_error(L, fn, "argument #1 (paths) expected 1 to 64 file names, got %lld", (long long)nf);
    int label_bytes = (int)lt_checkint(L, 2, fn, "label_bytes", 1, 2);
    lua_settop(L, 2);
    const char **paths = lua_newuserdatauv(L, (size_t)nf * sizeof *paths, 0);
    for (int64_t i = 0; i < nf; i++) {
        lua_rawgeti(L, 1, (lua_Integer)i + 1);
        if (lua_type(L, -1) != LUA_TSTRING || !*lua_tostring(L, -1) || strlen(lua_tostring(L, -1)) != lua_rawlen(L, -1))
            lt_error(L, fn, "paths[%lld] expected a non-empty file name", (long long)i + 1);
        paths[i] = lua_tostring(L, -1); /* anchored by the table at 1 */
        lua_pop(L, 1);
    }
    lt_box *bx = lt_newbox(L);
    lt_box *by = lt_newbox(L);
    lt_box *bc = lt_newbox(L);
    bn_tensor *x = NULL;
    int64_t *y = NULL, *coarse = NULL, n = 0;
    bn_status st = bn_cifar_load_files((int)nf, paths, label_bytes, &x, &y, &coarse, &n);
    if (st == BN_ENOMEM && lt_collect_for_retry(L))
        st = bn_cifar_load_files((int)nf, paths, label_bytes, &x, &y, &coarse, &n);
    if (st != BN_OK) {
        lua_pushnil(L);
        lua_pushstring(L, bn_last_error());
        return 2;
    }
    bx->t = x;
    by->t = labels_tensor(y, n);
    if (coarse) bc->t = labels_tensor(coarse, n);
    bool failed = !by->t || (coarse && !bc->t);
    free(y);
    free(coarse);
    if (failed) lt_core_error(L, fn);
    if (!bc->t) {
        lua_pop(L, 1);
        lua_pushnil(L);
    }
    lt_memory_check(L);
    return 3;
}

/* ---- gather -------------------------------------------------------------------- */

/* Indices at arg (a 1-D tensor or a table of 1-based integers in [1, N]) ->
 * 0-based int64 scratch (a userdata left on the stack); *n gets the count. */
static int64_t *check_indices(lua_State *L, int arg, const char *fn, int64_t N, int64_t *n)
{
    char got[128];
    if (lua_type(L, arg) == LUA_TTABLE) {
        int64_t k = (int64_t)lua_rawlen(L, arg);
        int64_t *idx = lua_newuserdatauv(L, (size_t)(k > 0 ? k : 1) * sizeof *idx, 0);
        for (int64_t i = 0; i < k; i++) {
            lua_rawgeti(L, arg, (lua_Integer)i + 1);
            double v = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : NAN;
            if (!(v >= 1 && v <= (double)N && v == floor(v)))
                lt_error(L, fn, "indices[%lld] expected an index in [1, %lld], got %s", (long long)i + 1,
                         (long long)N, lt_describe(L, -1, got, sizeof got));
            idx[i] = (int64_t)v - 1;
            lua_pop(L, 1);
        }
        *n = k;
        return idx;
    }
    bn_tensor *t = lt_test(L, arg);
    if (!t) {
        if (luaL_testudata(L, arg, LT_TENSOR_MT)) lt_check(L, arg, fn, "indices");
        lt_argerror(L, fn, arg, "indices", "a 1-D tensor or a table of 1-based indices");
    }
    if (t->ndim != 1) lt_error(L, fn, "indices expected a 1-D tensor [n], got %s", bn_shape_str(t));
    int64_t k = t->shape[0];
    int64_t *idx = lua_newuserdatauv(L, (size_t)(k > 0 ? k : 1) * sizeof *idx, 0);
    const float *d = bn_tensor_data(t);
    const int64_t s = t->stride[0];
    for (int64_t i = 0; i < k; i++) {
        double v = d[i * s];
        if (!(v >= 1 && v <= (double)N && v == floor(v)))
            lt_error(L, fn, "indices[%lld] expected an index in [1, %lld], got %g", (long long)i + 1, (long long)N, v);
        idx[i] = (int64_t)v - 1;
    }
    *n = k;
    return idx;
}

/* _data.gather(src, indices [, {crop =, flip =, fill =, seed =, offset =}])
 * -> a new tensor [n x ...]: rows of src (rows = dim 1), with crop (pad +
 * random crop) and flip applied to 4-D images. The draws for row j use the
 * Philox counter offset + j-1 under seed (see src/data/batch.h). */
static int l_gather(lua_State *L)
{
    static const char *const known[] = {"crop", "flip", "fill", "seed", "offset", NULL};
    const char *fn = "data.gather";
    bn_tensor *src = lt_check(L, 1, fn, "src");
    if (src->ndim < 1) lt_error(L, fn, "src expected at least 1-D [N x ...], got a 0-d tensor");
    lt_check_opts(L, 3, fn, known);
    bn_augment aug = {0, false, NULL};
    aug.pad = (int)opt_int_field(L, 3, fn, "crop", 0, BN_AUG_MAX_PAD, 0);
    aug.flip = opt_bool_field(L, 3, fn, "flip", false);
    bn_rng rng = {0, 0};
    rng.seed = (uint64_t)opt_int_field(L, 3, fn, "seed", 0, LD_MAX_SEED, 0);
    rng.offset = (uint64_t)opt_int_field(L, 3, fn, "offset", 0, LD_MAX_SEED, 0);
    const bool augmenting = aug.pad > 0 || aug.flip;
    if (augmenting && src->ndim != 4)
        lt_error(L, fn, "crop and flip expect images [N x C x H x W], got %s", bn_shape_str(src));
    lua_settop(L, 3);
    int64_t n;
    int64_t *idx = check_indices(L, 2, fn, src->shape[0], &n);
    if (lt_opt_field(L, 3, "fill")) {
        int64_t C = src->ndim >= 2 ? src->shape[1] : 1;
        double *tmp = lua_newuserdatauv(L, (size_t)C * sizeof *tmp, 0);
        float *fill = lua_newuserdatauv(L, (size_t)C * sizeof *fill, 0);
        read_numbers(L, -3, fn, "option 'fill'", C, tmp, false);
        for (int64_t c = 0; c < C; c++) fill[c] = (float)tmp[c];
        aug.fill = fill; /* anchored on the stack until we return */
    }
    /* Strided sources (rare: data sets are dense) are read through a copy. */
    bn_tensor *dense = bn_tensor_dense(src);
    if (!dense) lt_core_error(L, fn);
    int64_t shape[BN_MAX_DIMS];
    memcpy(shape, src->shape, sizeof shape);
    shape[0] = n;
    lt_box *b = lt_newbox(L); /* may collect: dense is ours, src is on the stack */
    b->t = bn_tensor_empty(src->ndim, shape);
    if (!b->t && lt_collect_for_retry(L)) b->t = bn_tensor_empty(src->ndim, shape);
    if (!b->t) {
        bn_tensor_release(dense);
        lt_core_error(L, fn);
    }
    bn_status st = bn_gather_batch(b->t, dense, idx, n, augmenting ? &aug : NULL, &rng);
    bn_tensor_release(dense);
    if (st != BN_OK) lt_core_error(L, fn);
    return lt_done(L, b, fn);
}

/* ---- permutations, seeds ------------------------------------------------------------ */

/* _data.randperm(n, seed) -> float tensor [n]: a permutation of 1..n
 * depending only on the seed. */
static int l_randperm(lua_State *L)
{
    const char *fn = "data.randperm";
    int64_t n = lt_checkint(L, 1, fn, "n", 0, LD_MAX_INDEX);
    uint64_t seed = (uint64_t)lt_checkint(L, 2, fn, "seed", 0, LD_MAX_SEED);
    int64_t *perm = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof *perm, 0);
    bn_rng rng = {seed, 0};
    if (bn_rng_randperm(&rng, n, perm) != BN_OK) lt_core_error(L, fn);
    lt_box *b = lt_newbox(L);
    LT_RUN(L, b, labels_tensor(perm, n));
    return lt_done(L, b, fn);
}

/* _data.seed() -> an integer in [0, 2^53) drawn from the global generator
 * (bn.manual_seed fixes it): the default seed of shuffling and augmentation. */
static int l_seed(lua_State *L)
{
    bn_rng *g = bn_rng_global();
    uint32_t w[4];
    bn_philox(g->offset++, 0, g->seed, w);
    uint64_t r = ((uint64_t)w[0] << 32 | w[1]) >> 11;
    lua_pushinteger(L, (lua_Integer)r);
    return 1;
}

/* _data.uniform(sizes, seed [, lo, hi]) and _data.normal(sizes, seed [, mean,
 * std]): tensors from a private generator seeded by `seed`, leaving the
 * global one untouched (synthetic data sets have their own seeds). */
static int random_fill(lua_State *L, const char *fn, bool normal)
{
    int64_t shape[BN_MAX_DIMS];
    if (lua_type(L, 1) != LUA_TTABLE) lt_argerror(L, fn, 1, "sizes", "a table of sizes");
    int ndim = lt_checksizes(L, 1, 1, fn, shape, 0);
    uint64_t seed = (uint64_t)lt_checkint(L, 2, fn, "seed", 0, LD_MAX_SEED);
    double a = lt_optnum(L, 3, fn, normal ? "mean" : "lo", false, 0);
    double b = lt_optnum(L, 4, fn, normal ? "std" : "hi", false, 1);
    lt_box *r = lt_newbox(L);
    LT_RUN(L, r, bn_tensor_empty(ndim, shape));
    if (!r->t) lt_core_error(L, fn);
    bn_rng rng = {seed, 0};
    bn_status st =
        normal ? bn_rng_normal(&rng, r->t, (float)a, (float)b) : bn_rng_uniform(&rng, r->t, (float)a, (float)b);
    if (st != BN_OK) lt_core_error(L, fn);
    return lt_done(L, r, fn);
}

static int l_uniform(lua_State *L) { return random_fill(L, "data.uniform", false); }
static int l_normal(lua_State *L) { return random_fill(L, "data.normal", true); }

/* ---- per-channel statistics ----------------------------------------------------------- */

static void push_numbers(lua_State *L, const double *v, int64_t n)
{
    lua_createtable(L, (int)n, 0);
    for (int64_t i = 0; i < n; i++) {
        lua_pushnumber(L, v[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

/* _data.channel_stats(images) -> {mean per channel}, {std per channel}
 * over every dim but dim 2 (population std). */
static int l_channel_stats(lua_State *L)
{
    const char *fn = "data.channel_stats";
    bn_tensor *x = lt_check(L, 1, fn, "images");
    if (x->ndim < 2) lt_error(L, fn, "images expected [N x C x ...], got %s", bn_shape_str(x));
    int64_t C = x->shape[1];
    /* The core fails on an empty batch; say so before allocating 2 C doubles
     * (an empty [0 x 2^31] has a huge C and no data: "not enough memory"). */
    if (bn_tensor_numel(x) == 0 && C > 0)
        lt_error(L, fn, "images expected at least one value per channel, got %s", bn_shape_str(x));
    double *ms = lua_newuserdatauv(L, (size_t)(2 * C > 0 ? 2 * C : 1) * sizeof *ms, 0);
    if (bn_channel_stats(x, ms, ms + C) != BN_OK) lt_core_error(L, fn);
    push_numbers(L, ms, C);
    push_numbers(L, ms + C, C);
    return 2;
}

/* _data.normalize(images, mean, std) -> images, normalized in place per
 * channel; mean and std are numbers or tables of C numbers. */
static int l_normalize(lua_State *L)
{
    const char *fn = "data.normalize";
    bn_tensor *x = lt_check(L, 1, fn, "images");
    if (x->ndim < 2) lt_error(L, fn, "images expected [N x C x ...], got %s", bn_shape_str(x));
    if (x->requires_grad || x->grad_fn)
        lt_error(L, fn, "images expected a data tensor (no autograd), got one that %s",
                 x->grad_fn ? "has history" : "requires grad");
    if (!bn_tensor_is_contiguous(x)) lt_error(L, fn, "images expected contiguous, got a strided %s", bn_shape_str(x));
    int64_t C = x->shape[1];
    lua_settop(L, 3);
    if (bn_tensor_numel(x) == 0) {
        /* Nothing to normalize, and C may be huge with no data behind it:
         * check the arguments' types only, allocate nothing. */
        for (int a = 2; a <= 3; a++)
            if (lua_type(L, a) != LUA_TNUMBER && lua_type(L, a) != LUA_TTABLE)
                lt_argerror(L, fn, a, a == 2 ? "mean" : "std", "a number or a table of numbers (one per channel)");
        lua_settop(L, 1);
        return 1;
    }
    double *ms = lua_newuserdatauv(L, (size_t)(2 * C > 0 ? 2 * C : 1) * sizeof *ms, 0);
    read_numbers(L, 2, fn, "mean", C, ms, true);
    read_numbers(L, 3, fn, "std", C, ms + C, true);
    if (bn_channel_normalize(x, ms, ms + C) != BN_OK) lt_core_error(L, fn);
    lua_settop(L, 1);
    return 1;
}

void lt_open_data(lua_State *L, int mod, int methods)
{
    (void)methods;
    static const luaL_Reg fns[] = {
        {"load_idx", l_load_idx},   {"load_cifar", l_load_cifar},       {"gather", l_gather},
        {"randperm", l_randperm},   {"seed", l_seed},                   {"channel_stats", l_channel_stats},
        {"normalize", l_normalize}, {"uniform", l_uniform},         {"normal", l_normal},
        {NULL, NULL},
    };
    luaL_newlib(L, fns);
    lua_setfield(L, mod, "_data");
}
