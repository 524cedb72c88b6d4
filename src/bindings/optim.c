/* bn.sgd_step(params, bufs, opts): the optimizer's hot loop from Lua. The
 * Lua optimizer (lua/bnlab/optim/) keeps the state and calls this once per
 * parameter group; a script can also call it directly. Arguments are checked
 * here with Lua's 1-based numbering before the core sees them. */
#include <limits.h>
#include <math.h>
#include <string.h>

#include "autograd.h"
#include "bindings/luatensor.h"
#include "optim.h"

#define FN "sgd_step"

static double opt_number(lua_State *L, int opts, const char *field, bool required, double def, bool nonneg)
{
    if (!lt_opt_field(L, opts, field)) {
        if (required) lt_error(L, FN, "argument #%d (opts) needs field '%s' (a finite number >= 0)", opts, field);
        return def;
    }
    double v = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : NAN;
    if (!(isfinite(v) && (!nonneg || v >= 0))) {
        char what[128];
        lt_describe(L, -1, what, sizeof what);
        lt_error(L, FN, "option '%s' expected a finite number%s, got %s", field, nonneg ? " >= 0" : "", what);
    }
    lua_pop(L, 1);
    return v;
}

static bool opt_bool(lua_State *L, int opts, const char *field)
{
    if (!lt_opt_field(L, opts, field)) return false;
    if (lua_type(L, -1) != LUA_TBOOLEAN) {
        char what[128];
        lt_describe(L, -1, what, sizeof what);
        lt_error(L, FN, "option '%s' expected a boolean, got %s", field, what);
    }
    bool v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

static void element_error(lua_State *L, int arg, const char *name, lua_Integer i, const char *expected)
{
    char what[128];
    lt_describe(L, -1, what, sizeof what);
    lt_error(L, FN, "argument #%d (%s) element %lld expected %s, got %s", arg, name, (long long)i, expected, what);
}

/* bn.sgd_step(params, bufs, {lr=, momentum=0, dampening=0, weight_decay=0,
 * nesterov=false, maximize=false}): one torch.optim.SGD update of every
 * tensor in the list params that has a .grad. bufs[i] is params[i]'s
 * momentum buffer: nil before its first update, then set here (a new
 * tensor); bufs may be nil when momentum is 0. */
static int l_sgd_step(lua_State *L)
{
    static const char *const known[] = {"lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize", NULL};
    if (lua_type(L, 1) != LUA_TTABLE) lt_argerror(L, FN, 1, "params", "a table of tensors");
    if (lua_type(L, 3) != LUA_TTABLE) lt_argerror(L, FN, 3, "opts", "a table of options with at least lr");
    lt_check_opts(L, 3, FN, known);
    bn_sgd_opts o;
    o.lr = opt_number(L, 3, "lr", true, 0, true);
    o.momentum = opt_number(L, 3, "momentum", false, 0, true);
    o.dampening = opt_number(L, 3, "dampening", false, 0, false);
    o.weight_decay = opt_number(L, 3, "weight_decay", false, 0, true);
    o.nesterov = opt_bool(L, 3, "nesterov");
    o.maximize = opt_bool(L, 3, "maximize");
    if (o.nesterov && !(o.momentum > 0 && o.dampening == 0))
        lt_error(L, FN, "option 'nesterov' requires momentum > 0 and dampening == 0, got momentum %g, dampening %g",
                 o.momentum, o.dampening);
    bool mom = o.momentum != 0;
    if (mom && lua_type(L, 2) != LUA_TTABLE)
        lt_argerror(L, FN, 2, "bufs", "a table (the momentum buffers, filled in here)");
    if (!lua_isnoneornil(L, 2) && lua_type(L, 2) != LUA_TTABLE) lt_argerror(L, FN, 2, "bufs", "a table or nil");

    lua_Unsigned len = lua_rawlen(L, 1);
    if (len > (lua_Unsigned)(INT_MAX / 2)) lt_error(L, FN, "argument #1 (params) has too many elements (%llu)",
                                                   (unsigned long long)len);
    int n = (int)len;
    /* Scratch in userdata (never malloc): a Lua error cannot leak it. */
    bn_tensor **ps = lua_newuserdatauv(L, (size_t)(2 * n + 1) * sizeof *ps, 0);
    bn_tensor **bs = ps + n;
    int missing = 0;
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, 1, i + 1);
        bn_tensor *p = lt_test(L, -1);
        if (!p) element_error(L, 1, "params", i + 1, "a tensor");
        if (p->grad && p->grad_fn)
            lt_error(L, FN, "argument #1 (params) element %d is not a leaf (made by %s); only leaves can be optimized",
                     i + 1, p->grad_fn->op);
        lua_pop(L, 1);
        ps[i] = p;
        bs[i] = NULL;
        if (!mom) continue;
        lua_rawgeti(L, 2, i + 1);
        if (!lua_isnil(L, -1)) {
            bn_tensor *b = lt_test(L, -1);
            if (!b) element_error(L, 2, "bufs", i + 1, "a tensor or nil");
            if (p->grad && !bn_shape_equal(b, p))
                lt_error(L, FN, "argument #2 (bufs) element %d expected shape %s (its parameter's), got %s", i + 1,
                         bn_shape_str(p), bn_shape_str(b));
            bs[i] = b;
        } else if (p->grad) {
            missing++;
        }
        lua_pop(L, 1);
    }

    /* Boxes for the buffers the core will create, made first so that no
     * Lua error after the call can leak one. */
    lua_createtable(L, missing, 0);
    int boxes = lua_gettop(L);
    for (int k = 1; k <= missing; k++) {
        lt_newbox(L);
        lua_rawseti(L, boxes, k);
    }

    bn_status st = bn_sgd_step(n, ps, mom ? bs : NULL, &o);
    /* The core changes nothing when it fails, so one retry is safe. */
    if (st != BN_OK && lt_collect_for_retry(L)) st = bn_sgd_step(n, ps, mom ? bs : NULL, &o);
    if (st != BN_OK) lt_core_error(L, FN);

    if (missing > 0) {
        /* Hand every new buffer to a box before anything can raise... */
        int k = 0;
        for (int i = 0; i < n; i++) {
            if (!ps[i]->grad || !bs[i]) continue;
            lua_rawgeti(L, 2, i + 1);
            bool was_nil = lua_isnil(L, -1);
            lua_pop(L, 1);
            if (!was_nil) continue;
            lua_rawgeti(L, boxes, ++k);
            ((lt_box *)lua_touserdata(L, -1))->t = bs[i];
            lua_pop(L, 1);
        }
        /* ...then store them (table growth may raise; the boxes own them). */
        k = 0;
        for (int i = 0; i < n; i++) {
            if (!ps[i]->grad || !bs[i]) continue;
            lua_rawgeti(L, 2, i + 1);
            bool was_nil = lua_isnil(L, -1);
            lua_pop(L, 1);
            if (!was_nil) continue;
            lua_rawgeti(L, boxes, ++k);
            lua_rawseti(L, 2, i + 1);
        }
    }
    lt_memory_check(L);
    return 0;
}

void lt_open_optim(lua_State *L, int mod, int methods)
{
    (void)methods;
    lt_register(L, mod, 0, "sgd_step", l_sgd_step);
}
