/* Argument checks and error raising for the bindings: every message names
 * the function ("bn.zeros"), the argument, what was expected and what came. */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bindings/luatensor.h"

/* Largest element count the core accepts (tensor.c's BN_MAX_NUMEL); checking
 * it here keeps every later size computation far from int64 overflow. */
#define LT_MAX_NUMEL (INT64_C(1) << 40)

#define LT_MSG_MAX 1400

int lt_error(lua_State *L, const char *fn, const char *fmt, ...)
{
    char msg[LT_MSG_MAX];
    int n = snprintf(msg, sizeof msg, "bn.%s: ", fn);
    if (n < 0 || n >= (int)sizeof msg) n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    /* luaL_error adds the script position of the caller. */
    luaL_error(L, "%s", msg);
    __builtin_unreachable(); /* luaL_error longjmps; lua.h just does not say so */
}

int lt_core_error(lua_State *L, const char *fn)
{
    const char *msg = bn_last_error();
    if (!msg || !*msg) msg = "failed (no message from the core)";
    size_t fl = strlen(fn);
    /* The core's messages start with their op ("conv2d: ..."): keep that
     * evidence, just prefix "bn." when it is the same name. */
    if (strncmp(msg, fn, fl) == 0 && msg[fl] == ':') luaL_error(L, "bn.%s", msg);
    else luaL_error(L, "bn.%s: %s", fn, msg);
    __builtin_unreachable();
}

const char *lt_describe(lua_State *L, int idx, char *buf, size_t size)
{
    switch (lua_type(L, idx)) {
    case LUA_TNONE: snprintf(buf, size, "no value"); break;
    case LUA_TNIL: snprintf(buf, size, "nil"); break;
    case LUA_TBOOLEAN: snprintf(buf, size, "boolean %s", lua_toboolean(L, idx) ? "true" : "false"); break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) snprintf(buf, size, "number %lld", (long long)lua_tointeger(L, idx));
        else snprintf(buf, size, "number %.17g", (double)lua_tonumber(L, idx));
        break;
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        /* Long strings are cut: the message is for a human. */
        if (len > 40) snprintf(buf, size, "string '%.37s...'", s);
        else snprintf(buf, size, "string '%s'", s);
        break;
    }
    case LUA_TUSERDATA: {
        lt_box *b = luaL_testudata(L, idx, LT_TENSOR_MT);
        if (b && b->t) snprintf(buf, size, "tensor %s", bn_shape_str(b->t));
        else if (b) snprintf(buf, size, "a closed tensor");
        else snprintf(buf, size, "%s", luaL_typename(L, idx));
        break;
    }
    default: snprintf(buf, size, "%s", luaL_typename(L, idx)); break;
    }
    return buf;
}

int lt_argerror(lua_State *L, const char *fn, int arg, const char *name, const char *expected)
{
    char what[128];
    lt_describe(L, arg, what, sizeof what);
    if (name) lt_error(L, fn, "argument #%d (%s) expected %s, got %s", arg, name, expected, what);
    lt_error(L, fn, "argument #%d expected %s, got %s", arg, expected, what);
}

/* ---- scalars ---------------------------------------------------------------- */

/* An integral value at idx, or false. Floats with an integral value count
 * (sizes often come from arithmetic: n / 2 is a float in Lua 5.4). */
static bool to_int(lua_State *L, int idx, int64_t *out)
{
    if (lua_type(L, idx) != LUA_TNUMBER) return false;
    if (lua_isinteger(L, idx)) {
        *out = (int64_t)lua_tointeger(L, idx);
        return true;
    }
    double d = lua_tonumber(L, idx);
    /* The range check is on doubles; 2^63 itself is excluded. */
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || d != floor(d)) return false;
    *out = (int64_t)d;
    return true;
}

static const char *range_text(int64_t lo, int64_t hi, char *buf, size_t size)
{
    if (lo == INT64_MIN && hi == INT64_MAX) snprintf(buf, size, "an integer");
    else if (hi == INT64_MAX) snprintf(buf, size, "an integer >= %lld", (long long)lo);
    else if (lo == INT64_MIN) snprintf(buf, size, "an integer <= %lld", (long long)hi);
    else snprintf(buf, size, "an integer in [%lld, %lld]", (long long)lo, (long long)hi);
    return buf;
}

int64_t lt_checkint(lua_State *L, int arg, const char *fn, const char *name, int64_t lo, int64_t hi)
{
    int64_t v;
    if (!to_int(L, arg, &v) || v < lo || v > hi) {
        char want[96];
        lt_argerror(L, fn, arg, name, range_text(lo, hi, want, sizeof want));
    }
    return v;
}

int64_t lt_optint(lua_State *L, int arg, const char *fn, const char *name, int64_t lo, int64_t hi, int64_t def)
{
    if (lua_isnoneornil(L, arg)) return def;
    return lt_checkint(L, arg, fn, name, lo, hi);
}

double lt_checknum(lua_State *L, int arg, const char *fn, const char *name, bool nan_ok)
{
    if (lua_type(L, arg) != LUA_TNUMBER) lt_argerror(L, fn, arg, name, "a number");
    double d = lua_tonumber(L, arg);
    if (isnan(d) && !nan_ok) lt_argerror(L, fn, arg, name, "a number (not NaN)");
    return d;
}

double lt_optnum(lua_State *L, int arg, const char *fn, const char *name, bool nan_ok, double def)
{
    if (lua_isnoneornil(L, arg)) return def;
    return lt_checknum(L, arg, fn, name, nan_ok);
}

bool lt_optbool(lua_State *L, int arg, const char *fn, const char *name, bool def)
{
    if (lua_isnoneornil(L, arg)) return def;
    if (lua_type(L, arg) != LUA_TBOOLEAN) lt_argerror(L, fn, arg, name, "a boolean");
    return lua_toboolean(L, arg);
}

const char *lt_checkstr(lua_State *L, int arg, const char *fn, const char *name)
{
    /* Strictly strings: a number where a path belongs is a mistake. */
    if (lua_type(L, arg) != LUA_TSTRING) lt_argerror(L, fn, arg, name, "a string");
    return lua_tostring(L, arg);
}

void lt_checkfunc(lua_State *L, int arg, const char *fn, const char *name)
{
    if (lua_type(L, arg) != LUA_TFUNCTION) lt_argerror(L, fn, arg, name, "a function");
}

/* ---- dims ------------------------------------------------------------------- */

/* How many dims a dim argument ranges over: a 0-d tensor counts as one dim
 * (as in the core), except for unsqueeze/stack where the result has ndim + 1. */
static int dim_count(int ndim, int extra) { return extra ? ndim + extra : ndim > 0 ? ndim : 1; }

int lt_dim_convert(int64_t d, int ndim, int extra)
{
    int n = dim_count(ndim, extra);
    if (d >= 1 && d <= n) return (int)d - 1;
    if (d <= -1 && d >= -n) return (int)(d + n);
    return -1;
}

int lt_checkdim(lua_State *L, int arg, const char *fn, int ndim, int extra)
{
    int n = dim_count(ndim, extra);
    int64_t v;
    int d = to_int(L, arg, &v) ? lt_dim_convert(v, ndim, extra) : -1;
    if (d < 0) {
        char want[96];
        snprintf(want, sizeof want, "a dim in [1, %d] or [-%d, -1] (1-based)", n, n);
        lt_argerror(L, fn, arg, "dim", want);
    }
    return d;
}

int lt_optdim(lua_State *L, int arg, const char *fn, int ndim, int extra, int def0)
{
    if (lua_isnoneornil(L, arg)) return def0;
    return lt_checkdim(L, arg, fn, ndim, extra);
}

/* ---- size lists -------------------------------------------------------------- */

static void size_error(lua_State *L, const char *fn, int arg, int pos, bool in_table, int minus_one, int idx)
{
    char what[128], where[48] = "";
    lt_describe(L, idx, what, sizeof what);
    if (in_table) snprintf(where, sizeof where, " size %d", pos);
    lt_error(L, fn, "argument #%d%s expected a %s integer size, got %s", arg, where,
             minus_one ? "non-negative (or -1)" : "non-negative", what);
}

int lt_checksizes(lua_State *L, int first, int last, const char *fn, int64_t *shape, int minus_one)
{
    bool table = lua_type(L, first) == LUA_TTABLE;
    int n;
    if (table) {
        if (last > first)
            lt_error(L, fn, "expected sizes as one table or as numbers, got a table followed by %d more argument(s)",
                     last - first);
        lua_Unsigned len = lua_rawlen(L, first);
        if (len > BN_MAX_DIMS) lt_error(L, fn, "argument #%d expected at most %d sizes, got %llu", first,
                                        BN_MAX_DIMS, (unsigned long long)len);
        n = (int)len;
    } else {
        n = last >= first ? last - first + 1 : 0;
        if (n > BN_MAX_DIMS) lt_error(L, fn, "expected at most %d sizes, got %d", BN_MAX_DIMS, n);
    }
    int64_t prod = 1;
    bool inferred = false;
    for (int k = 0; k < n; k++) {
        int idx = first + k;
        if (table) {
            lua_rawgeti(L, first, k + 1);
            idx = lua_gettop(L);
        }
        int64_t v;
        bool ok = to_int(L, idx, &v) && (v >= 0 || (minus_one && v == -1));
        if (!ok) size_error(L, fn, table ? first : idx, k + 1, table, minus_one, idx);
        shape[k] = v;
        if (v == -1) {
            if (inferred && minus_one == 1) lt_error(L, fn, "only one size may be -1, got %s", bn_dims_str(k + 1, shape));
            inferred = true;
        } else if (v > LT_MAX_NUMEL || (v > 0 && prod > LT_MAX_NUMEL / v)) {
            /* Zero sizes do not reset the product: strides are products of
             * the other sizes and must not overflow either. */
            lt_error(L, fn, "sizes %s have too many elements (at most 2^40)", bn_dims_str(k + 1, shape));
        } else {
            prod *= v > 0 ? v : 1;
        }
        if (table) lua_pop(L, 1);
    }
    return n;
}

int lt_checkdims(lua_State *L, int first, const char *fn, int ndim, int *dims)
{
    int last = lua_gettop(L);
    bool table = lua_type(L, first) == LUA_TTABLE;
    int n = table ? (int)(lua_rawlen(L, first) > 64 ? 64 : lua_rawlen(L, first)) : (last >= first ? last - first + 1 : 0);
    if (n != ndim) lt_error(L, fn, "expected %d dims (one per dim of the input), got %d", ndim, n);
    bool seen[BN_MAX_DIMS] = {false};
    for (int k = 0; k < n; k++) {
        int idx = first + k;
        if (table) {
            lua_rawgeti(L, first, k + 1);
            idx = lua_gettop(L);
        }
        int64_t v;
        int d = to_int(L, idx, &v) ? lt_dim_convert(v, ndim, 0) : -1;
        if (d < 0 || seen[d]) {
            char what[128];
            lt_describe(L, idx, what, sizeof what);
            lt_error(L, fn, "dims expected a permutation of 1..%d, got %s at position %d%s", ndim, what, k + 1,
                     d >= 0 ? " (repeated)" : "");
        }
        seen[d] = true;
        dims[k] = d;
        if (table) lua_pop(L, 1);
    }
    return n;
}

/* ---- options tables ------------------------------------------------------------ */

bool lt_opt_field(lua_State *L, int opts, const char *field)
{
    if (lua_type(L, opts) != LUA_TTABLE) return false;
    lua_getfield(L, opts, field);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return false;
    }
    return true;
}

static int pair_entry(lua_State *L, int idx, const char *fn, const char *what, int64_t lo, int64_t hi,
                      int64_t *out)
{
    int64_t v;
    if (!to_int(L, idx, &v) || v < lo || v > hi) {
        char got[128];
        lt_describe(L, idx, got, sizeof got);
        lt_error(L, fn, "%s expected an integer in [%lld, %lld] or a pair {h, w} of them, got %s", what,
                 (long long)lo, (long long)hi, got);
    }
    *out = v;
    return 0;
}

static void read_pair(lua_State *L, int idx, const char *fn, const char *what, int64_t lo, int64_t hi, int64_t *h,
                      int64_t *w)
{
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) == LUA_TTABLE) {
        if (lua_rawlen(L, idx) != 2)
            lt_error(L, fn, "%s expected a number or a pair {h, w}, got a table of %llu entries", what,
                     (unsigned long long)lua_rawlen(L, idx));
        lua_rawgeti(L, idx, 1);
        pair_entry(L, -1, fn, what, lo, hi, h);
        lua_rawgeti(L, idx, 2);
        pair_entry(L, -1, fn, what, lo, hi, w);
        lua_pop(L, 2);
    } else {
        pair_entry(L, idx, fn, what, lo, hi, h);
        *w = *h;
    }
}

void lt_opt_pair(lua_State *L, int opts, const char *fn, const char *field, int lo, int hi, int *h, int *w)
{
    if (!lt_opt_field(L, opts, field)) return; /* keep the defaults */
    char what[64];
    snprintf(what, sizeof what, "option '%s'", field);
    int64_t a, b;
    read_pair(L, -1, fn, what, lo, hi, &a, &b);
    *h = (int)a;
    *w = (int)b;
    lua_pop(L, 1);
}

void lt_check_pair(lua_State *L, int arg, const char *fn, const char *name, int64_t lo, int64_t hi, int64_t *h,
                   int64_t *w)
{
    char what[64];
    snprintf(what, sizeof what, "argument #%d (%s)", arg, name);
    if (lua_isnoneornil(L, arg)) {
        char got[32];
        lt_error(L, fn, "%s expected an integer or a pair {h, w}, got %s", what, lt_describe(L, arg, got, sizeof got));
    }
    read_pair(L, arg, fn, what, lo, hi, h, w);
}

void lt_check_opts(lua_State *L, int opts, const char *fn, const char *const *known)
{
    if (lua_isnoneornil(L, opts)) return;
    if (lua_type(L, opts) != LUA_TTABLE) lt_argerror(L, fn, opts, "options", "a table of options");
    lua_pushnil(L);
    while (lua_next(L, opts)) {
        bool ok = false;
        if (lua_type(L, -2) == LUA_TSTRING) {
            const char *k = lua_tostring(L, -2);
            for (const char *const *p = known; *p; p++)
                if (strcmp(*p, k) == 0) ok = true;
        }
        if (!ok) {
            char list[256] = "", key[128];
            size_t len = 0;
            for (const char *const *p = known; *p && len < sizeof list; p++)
                len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", p == known ? "" : ", ", *p);
            lt_describe(L, -2, key, sizeof key);
            lt_error(L, fn, "argument #%d has an unknown option %s (known: %s)", opts, key, list);
        }
        lua_pop(L, 1);
    }
}

void lt_register(lua_State *L, int mod, int methods, const char *name, lua_CFunction f)
{
    lua_pushcfunction(L, f);
    if (methods) {
        lua_pushvalue(L, -1);
        lua_setfield(L, methods, name);
    }
    if (mod) lua_setfield(L, mod, name);
    else lua_pop(L, 1);
}
