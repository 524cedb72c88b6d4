/* The Tensor userdata: one core reference per userdata, released by __gc or
 * at once by __close; the metatable (indexing, length, printing, fields);
 * and the methods that read or write a tensor's contents and facts. */
#include <math.h>
#include <string.h>

#include "autograd.h"
#include "bindings/luatensor.h"

/* ---- boxes ------------------------------------------------------------------- */

lt_box *lt_newbox(lua_State *L)
{
    /* One user value: the cached userdata of .grad, so that t.grad is the
     * same Lua object every time (and costs one allocation, not one per read). */
    lt_box *b = lua_newuserdatauv(L, sizeof *b, 1);
    b->t = NULL;
    luaL_setmetatable(L, LT_TENSOR_MT);
    return b;
}

int lt_done(lua_State *L, lt_box *b, const char *fn)
{
    if (!b->t) lt_core_error(L, fn);
    lt_memory_check(L);
    return 1;
}

bn_tensor *lt_test(lua_State *L, int idx)
{
    lt_box *b = luaL_testudata(L, idx, LT_TENSOR_MT);
    return b ? b->t : NULL;
}

bn_tensor *lt_check(lua_State *L, int arg, const char *fn, const char *name)
{
    lt_box *b = luaL_testudata(L, arg, LT_TENSOR_MT);
    if (!b) lt_argerror(L, fn, arg, name, "a tensor");
    if (!b->t) lt_error(L, fn, "argument #%d is a closed tensor", arg);
    return b->t;
}

bn_tensor *lt_opt(lua_State *L, int arg, const char *fn, const char *name)
{
    if (lua_isnoneornil(L, arg)) return NULL;
    return lt_check(L, arg, fn, name);
}

/* ---- lifetime ------------------------------------------------------------------ */

static int t_gc(lua_State *L)
{
    /* testudata, not touserdata: the metamethod can be called by hand with
     * any value (getmetatable(t).__close(io.stdout)). */
    lt_box *b = luaL_testudata(L, 1, LT_TENSOR_MT);
    if (b && b->t) {
        bn_tensor *t = b->t;
        b->t = NULL; /* mark first: a release never re-enters this box, but be safe */
        bn_tensor_release(t);
    }
    return 0;
}

/* `local t <close> = ...`: free now instead of at the next collection. Any
 * later use raises "argument #1 is a closed tensor". */
static int t_close(lua_State *L) { return t_gc(L); }

/* ---- facts ----------------------------------------------------------------------- */

static int t_shape(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "shape", "self");
    lua_createtable(L, t->ndim, 0);
    for (int d = 0; d < t->ndim; d++) {
        lua_pushinteger(L, t->shape[d]);
        lua_rawseti(L, -2, d + 1);
    }
    return 1;
}

static int t_size(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "size", "self");
    if (lua_isnoneornil(L, 2)) return t_shape(L);
    if (t->ndim == 0) lt_error(L, "size", "a 0-d tensor has no dims (its shape is {})");
    int d = lt_checkdim(L, 2, "size", t->ndim, 0);
    lua_pushinteger(L, t->shape[d]);
    return 1;
}

static int t_dim(lua_State *L)
{
    lua_pushinteger(L, lt_check(L, 1, "dim", "self")->ndim);
    return 1;
}

static int t_numel(lua_State *L)
{
    lua_pushinteger(L, bn_tensor_numel(lt_check(L, 1, "numel", "self")));
    return 1;
}

static int t_is_contiguous(lua_State *L)
{
    lua_pushboolean(L, bn_tensor_is_contiguous(lt_check(L, 1, "is_contiguous", "self")));
    return 1;
}

static int t_item(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "item", "self");
    if (bn_tensor_numel(t) != 1)
        lt_error(L, "item", "expected a tensor with one element, got %s (use :totable())", bn_shape_str(t));
    lua_pushnumber(L, bn_tensor_get_flat(t, 0));
    return 1;
}

/* Builds the nested table of dims [d, ndim) starting at storage offset off. */
static void totable_rec(lua_State *L, const bn_tensor *t, int d, int64_t off)
{
    const float *base = t->storage->data;
    int64_t n = t->shape[d];
    luaL_checkstack(L, 3, "bn.totable: nesting too deep");
    lua_createtable(L, n < INT32_MAX ? (int)n : 0, 0);
    for (int64_t i = 0; i < n; i++) {
        int64_t o = off + i * t->stride[d];
        if (d == t->ndim - 1) lua_pushnumber(L, base[o]);
        else totable_rec(L, t, d + 1, o);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

static int t_totable(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "totable", "self");
    if (t->ndim == 0) lua_pushnumber(L, bn_tensor_get_flat(t, 0));
    else totable_rec(L, t, 0, t->offset);
    return 1;
}

/* ---- writing ----------------------------------------------------------------------- */

static int t_fill(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "fill", "self");
    float v = (float)lt_checknum(L, 2, "fill", "value", true);
    if (bn_tensor_fill(t, v) != BN_OK) lt_core_error(L, "fill");
    lua_settop(L, 1);
    return 1;
}

static int t_zero(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "zero_", "self");
    if (bn_tensor_fill(t, 0.0f) != BN_OK) lt_core_error(L, "zero_");
    lua_settop(L, 1);
    return 1;
}

static int t_copy(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "copy", "self");
    bn_tensor *src = lt_check(L, 2, "copy", "src");
    if (bn_tensor_copy(t, src) != BN_OK) lt_core_error(L, "copy");
    lua_settop(L, 1);
    return 1;
}

/* ---- indexing ------------------------------------------------------------------------ */

/* The 0-based index of t[i] along the first dim (1-based, negative from the end). */
static int64_t check_index(lua_State *L, bn_tensor *t, int arg, const char *fn)
{
    if (t->ndim == 0) lt_error(L, fn, "cannot index a 0-d tensor (use :item())");
    int64_t n = t->shape[0];
    if (lua_type(L, arg) == LUA_TNUMBER) {
        lua_Integer i;
        int ok = 0;
        if (lua_isinteger(L, arg)) {
            i = lua_tointeger(L, arg);
            ok = 1;
        } else {
            double d = lua_tonumber(L, arg);
            ok = d == floor(d) && fabs(d) < 9.0e15;
            i = ok ? (lua_Integer)d : 0;
        }
        if (ok && i >= 1 && i <= n) return i - 1;
        if (ok && i <= -1 && i >= -n) return n + i;
    }
    char got[128];
    lt_describe(L, arg, got, sizeof got);
    if (n == 0) lt_error(L, fn, "index expected within the first dim, but it has size 0 (tensor %s), got %s",
                         bn_shape_str(t), got);
    lt_error(L, fn, "index expected an integer in [1, %lld] or [-%lld, -1], got %s", (long long)n, (long long)n, got);
    return 0;
}

/* t.grad: the gradient as a (cached) userdata, or nil. */
static int push_grad(lua_State *L, int self, bn_tensor *t)
{
    if (!t->grad) {
        lua_pushnil(L);
        return 1;
    }
    lua_getiuservalue(L, self, 1);
    lt_box *c = luaL_testudata(L, -1, LT_TENSOR_MT);
    if (c && c->t == t->grad) return 1;
    lua_pop(L, 1);
    lt_box *g = lt_newbox(L);
    g->t = bn_tensor_retain(t->grad);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, self, 1);
    return 1;
}

/* __index(t, key): methods first, then the fields grad, is_leaf, grad_fn,
 * then numeric indexing. Unknown names give nil, as for any Lua table. */
static int t_index(lua_State *L)
{
    int kt = lua_type(L, 2);
    if (kt == LUA_TSTRING) {
        lua_pushvalue(L, 2);
        if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
        lua_pop(L, 1);
        const char *k = lua_tostring(L, 2);
        if (strcmp(k, "grad") == 0) return push_grad(L, 1, lt_check(L, 1, "grad", "self"));
        if (strcmp(k, "is_leaf") == 0) {
            lua_pushboolean(L, lt_check(L, 1, "is_leaf", "self")->grad_fn == NULL);
            return 1;
        }
        if (strcmp(k, "grad_fn") == 0) {
            bn_tensor *t = lt_check(L, 1, "grad_fn", "self");
            if (t->grad_fn) lua_pushstring(L, t->grad_fn->op);
            else lua_pushnil(L);
            return 1;
        }
        lua_pushnil(L);
        return 1;
    }
    if (kt != LUA_TNUMBER) {
        lua_pushnil(L);
        return 1;
    }
    bn_tensor *t = lt_check(L, 1, "index", "self");
    int64_t i = check_index(L, t, 2, "index");
    if (t->ndim == 1) {
        lua_pushnumber(L, t->storage->data[t->offset + i * t->stride[0]]);
        return 1;
    }
    lt_box *b = lt_newbox(L);
    b->t = bn_select(t, 0, i);
    return lt_done(L, b, "index");
}

static int set_grad(lua_State *L, bn_tensor *t)
{
    if (lua_isnil(L, 3)) {
        bn_tensor_zero_grad(t);
        lua_pushnil(L);
        lua_setiuservalue(L, 1, 1);
        return 0;
    }
    bn_tensor *g = lt_check(L, 3, "grad", "value");
    if (!bn_shape_equal(g, t))
        lt_error(L, "grad", "value expected the tensor's shape %s, got %s", bn_shape_str(t), bn_shape_str(g));
    /* .grad always owns its buffer (autograd accumulates into it in place):
     * take a private copy, never an alias of the caller's tensor. */
    bn_tensor *own = bn_tensor_empty(g->ndim, g->shape);
    if (!own) lt_core_error(L, "grad");
    bn_tensor_read(g, bn_tensor_data(own));
    bn_tensor_release(t->grad);
    t->grad = own;
    lua_pushnil(L);
    lua_setiuservalue(L, 1, 1);
    return 0;
}

static int t_newindex(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "newindex", "self");
    if (lua_type(L, 2) == LUA_TSTRING) {
        if (strcmp(lua_tostring(L, 2), "grad") == 0) return set_grad(L, t);
        lt_error(L, "newindex", "cannot set field '%s' (a tensor has no custom fields; .grad is the only settable "
                              "one, and requires_grad is set with :requires_grad(true))",
                 lua_tostring(L, 2));
    }
    if (lua_type(L, 2) != LUA_TNUMBER) lt_argerror(L, "newindex", 2, "index", "an integer index");
    int64_t i = check_index(L, t, 2, "newindex");
    bool is_num = lua_type(L, 3) == LUA_TNUMBER;
    bn_tensor *src = is_num ? NULL : lt_test(L, 3);
    if (!is_num && !src) lt_argerror(L, "newindex", 3, "value", "a number or a tensor");
    /* Write through a select view so the core's in-place checks apply
     * (refused on tensors in a gradient graph while grad mode is on). */
    bn_tensor *v = bn_select(t, 0, i);
    if (!v) lt_core_error(L, "newindex");
    bn_status st = is_num ? bn_tensor_fill(v, (float)lua_tonumber(L, 3)) : bn_tensor_copy(v, src);
    bn_tensor_release(v);
    if (st != BN_OK) lt_core_error(L, "newindex");
    return 0;
}

static int t_len(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "len", "self");
    if (t->ndim == 0) lt_error(L, "len", "a 0-d tensor has no length (use :item())");
    lua_pushinteger(L, t->shape[0]);
    return 1;
}

static int t_tostring(lua_State *L)
{
    lt_box *b = luaL_checkudata(L, 1, LT_TENSOR_MT);
    /* Printing never raises, so a closed tensor can still be shown in a
     * debugger or a REPL. */
    if (!b->t) {
        lua_pushliteral(L, "tensor (closed)");
        return 1;
    }
    char buf[1024];
    bn_tensor_summary(b->t, buf, sizeof buf);
    lua_pushstring(L, buf);
    return 1;
}

static int t_name(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "name", "self");
    if (lua_isnoneornil(L, 2)) {
        if (t->name) lua_pushstring(L, t->name);
        else lua_pushnil(L);
        return 1;
    }
    const char *name = lt_checkstr(L, 2, "name", "name");
    if (strlen(name) != lua_rawlen(L, 2)) lt_error(L, "name", "argument #2 (name) must not contain a zero byte");
    /* Naming fires the forward hooks (Lua code): hold t in case one closes it. */
    bn_tensor_retain(t);
    lua_State *prev = lt_enter(L);
    bn_status st = bn_tensor_set_name(t, name);
    lt_leave(prev);
    bn_tensor_release(t);
    lt_flush_deferred_hooks();
    if (st != BN_OK) lt_hook_or_core_error(L, "name");
    lua_settop(L, 1);
    return 1;
}

static int l_is_tensor(lua_State *L)
{
    lua_pushboolean(L, luaL_testudata(L, 1, LT_TENSOR_MT) != NULL);
    return 1;
}

/* A closed tensor reports it; anything else is the same as is_tensor. */
static int t_is_closed(lua_State *L)
{
    lt_box *b = luaL_testudata(L, 1, LT_TENSOR_MT);
    if (!b) lt_argerror(L, "is_closed", 1, "self", "a tensor");
    lua_pushboolean(L, b->t == NULL);
    return 1;
}

void lt_open_tensor(lua_State *L, int mod, int methods)
{
    luaL_newmetatable(L, LT_TENSOR_MT); /* also sets __name, used by luaL_typename-style messages */
    int mt = lua_gettop(L);
    lua_pushvalue(L, methods);
    lua_pushcclosure(L, t_index, 1);
    lua_setfield(L, mt, "__index");
    static const luaL_Reg meta[] = {
        {"__newindex", t_newindex}, {"__len", t_len}, {"__tostring", t_tostring},
        {"__gc", t_gc},             {"__close", t_close}, {NULL, NULL},
    };
    luaL_setfuncs(L, meta, 0);
    lua_pop(L, 1);

    static const luaL_Reg m[] = {
        {"shape", t_shape}, {"size", t_size}, {"dim", t_dim}, {"numel", t_numel}, {"item", t_item},
        {"totable", t_totable}, {"fill", t_fill}, {"fill_", t_fill}, {"zero_", t_zero}, {"copy", t_copy},
        {"copy_", t_copy}, {"name", t_name}, {"is_contiguous", t_is_contiguous}, {"is_closed", t_is_closed},
        {NULL, NULL},
    };
    lua_pushvalue(L, methods);
    luaL_setfuncs(L, m, 0);
    lua_pop(L, 1);
    lt_register(L, mod, 0, "is_tensor", l_is_tensor);
}
