/* Tensors in and out of files: NumPy .npy (bn.save, bn.load) and
 * safetensors (bn.save_safetensors, bn.load_safetensors: the checkpoint
 * format), so a Python user can read what a script wrote and the other way
 * round. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bindings/luatensor.h"
#include "data/atomic_file.h"
#include "data/npy.h"
#include "data/safetensors.h"
#include "rng.h"

static const char *check_path(lua_State *L, int arg, const char *fn)
{
    const char *path = lt_checkstr(L, arg, fn, "path");
    if (strlen(path) != lua_rawlen(L, arg)) lt_error(L, fn, "argument #%d (path) must not contain a zero byte", arg);
    if (!*path) lt_argerror(L, fn, arg, "path", "a non-empty file name");
    return path;
}

static int l_save(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "save", "tensor");
    const char *path = check_path(L, 2, "save");
    if (bn_npy_save(t, path) != BN_OK) lt_core_error(L, "save");
    return 0;
}

static int l_load(lua_State *L)
{
    const char *path = check_path(L, 1, "load");
    lt_box *b = lt_newbox(L);
    LT_RUN(L, b, bn_npy_load(path));
    return lt_done(L, b, "load");
}

/* Sorted keys of the table at idx whose values pass `want` (names give a
 * stable order in the file, whatever the table's hash order). */
static int sorted_keys(lua_State *L, int idx, const char *fn, const char *what, bool tensors)
{
    lua_newtable(L);
    int keys = lua_gettop(L), n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            lt_error(L, fn, "%s keys expected strings, got a %s", what, luaL_typename(L, -2));
        if (tensors && !lt_test(L, -1))
            lt_error(L, fn, "%s '%s' expected a tensor, got %s", what, lua_tostring(L, -2), luaL_typename(L, -1));
        if (!tensors && lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER &&
            lua_type(L, -1) != LUA_TBOOLEAN)
            lt_error(L, fn, "%s '%s' expected a string, number or boolean, got %s", what, lua_tostring(L, -2),
                     luaL_typename(L, -1));
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_rawseti(L, keys, ++n);
    }
    lua_getglobal(L, "table");
    lua_getfield(L, -1, "sort");
    lua_remove(L, -2);
    lua_pushvalue(L, keys);
    lua_call(L, 1, 0);
    return n;
}

/* bn.save_safetensors(path, {name = tensor, ...}[, {key = value, ...}]):
 * written atomically; metadata values are stored as strings (numbers with
 * %.17g so they read back exactly). */
static int l_save_safetensors(lua_State *L)
{
    const char *fn = "save_safetensors";
    const char *path = check_path(L, 1, fn);
    luaL_checktype(L, 2, LUA_TTABLE);
    bool has_meta = !lua_isnoneornil(L, 3);
    if (has_meta) luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);
    int n = sorted_keys(L, 2, fn, "tensor", true); /* at 4 */
    int m = has_meta ? sorted_keys(L, 3, fn, "metadata", false) : 0; /* at 5 */
    /* Scratch arrays live in Lua userdata so an error cannot leak them. */
    const char **names = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
    bn_tensor **tensors = lua_newuserdatauv(L, sizeof(bn_tensor *) * (size_t)(n + 1), 0);
    const char **keys = lua_newuserdatauv(L, sizeof(char *) * (size_t)(m + 1), 0);
    const char **values = lua_newuserdatauv(L, sizeof(char *) * (size_t)(m + 1), 0);
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, 4, i + 1);
        names[i] = lua_tostring(L, -1);
        lua_gettable(L, 2);
        tensors[i] = lt_test(L, -1);
        lua_pop(L, 1); /* still referenced by the table at 2 */
    }
    for (int i = 0; i < m; i++) {
        lua_rawgeti(L, 5, i + 1);
        keys[i] = lua_tostring(L, -1);
        lua_gettable(L, 3);
        if (lua_isboolean(L, -1)) lua_pushstring(L, lua_toboolean(L, -1) ? "true" : "false");
        else if (lua_isinteger(L, -1)) lua_pushfstring(L, "%I", (LUA_INTEGER)lua_tointeger(L, -1));
        else if (lua_type(L, -1) == LUA_TNUMBER) {
            char buf[64];
            snprintf(buf, sizeof buf, "%.17g", lua_tonumber(L, -1));
            lua_pushstring(L, buf);
        } else lua_pushvalue(L, -1);
        values[i] = lua_tostring(L, -1);
        lua_rawseti(L, 5, m + i + 1); /* keep the string alive */
        lua_pop(L, 1);
    }
    if (bn_safetensors_save(path, n, names, tensors, m, keys, values) != BN_OK) lt_core_error(L, fn);
    return 0;
}

static int st_gc(lua_State *L)
{
    bn_safetensors **st = lua_touserdata(L, 1);
    bn_safetensors_free(*st);
    *st = NULL;
    return 0;
}

/* bn.load_safetensors(path) -> {name = tensor, ...}, {key = string, ...} */
static int l_load_safetensors(lua_State *L)
{
    const char *fn = "load_safetensors";
    const char *path = check_path(L, 1, fn);
    bn_safetensors **st = lua_newuserdatauv(L, sizeof *st, 0); /* freed by __gc even on error */
    *st = NULL;
    lua_newtable(L);
    lua_pushcfunction(L, st_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    if (bn_safetensors_load(path, st) != BN_OK) {
        if (lt_collect_for_retry(L) && bn_safetensors_load(path, st) == BN_OK) {
        } else {
            lt_core_error(L, fn);
        }
    }
    lua_newtable(L);
    int out = lua_gettop(L);
    for (int i = 0; i < bn_safetensors_count(*st); i++) {
        lt_box *b = lt_newbox(L);
        b->t = bn_safetensors_tensor(*st, i);
        if (!b->t) lt_core_error(L, fn);
        lua_setfield(L, out, bn_safetensors_name(*st, i));
    }
    lua_newtable(L);
    for (int i = 0; i < bn_safetensors_meta_count(*st); i++) {
        lua_pushstring(L, bn_safetensors_meta_value(*st, i));
        lua_setfield(L, -2, bn_safetensors_meta_key(*st, i));
    }
    lt_memory_check(L);
    return 2;
}

/* bn.rng_state() -> {seed =, offset =}; bn.set_rng_state(s): the global
 * generator's whole state, so a resumed run draws the same numbers. */
static int l_rng_state(lua_State *L)
{
    bn_rng *g = bn_rng_global();
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, (lua_Integer)g->seed);
    lua_setfield(L, -2, "seed");
    lua_pushinteger(L, (lua_Integer)g->offset);
    lua_setfield(L, -2, "offset");
    return 1;
}

static int l_set_rng_state(lua_State *L)
{
    const char *fn = "set_rng_state";
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "seed");
    lua_getfield(L, 1, "offset");
    if (!lua_isinteger(L, -2) || !lua_isinteger(L, -1))
        lt_error(L, fn, "argument #1 expected {seed = integer, offset = integer}, got seed %s, offset %s",
                 luaL_typename(L, -2), luaL_typename(L, -1));
    bn_rng *g = bn_rng_global();
    g->seed = (uint64_t)lua_tointeger(L, -2);
    g->offset = (uint64_t)lua_tointeger(L, -1);
    return 0;
}

/* bn.write_file(path, text): replaces the file atomically (temp file,
 * fsync, rename): a reader or a crash sees the old or the new contents,
 * never a mix. Logs, CSVs and JSON summaries go through here. */
static int l_write_file(lua_State *L)
{
    const char *fn = "write_file";
    const char *path = check_path(L, 1, fn);
    size_t n;
    const char *text = lua_tolstring(L, 2, &n);
    if (lua_type(L, 2) != LUA_TSTRING) lt_argerror(L, fn, 2, "text", "a string");
    bn_atomic_file *af = bn_atomic_file_open("write_file", path);
    if (!af) lt_core_error(L, fn);
    bn_atomic_file_write(af, text, n);
    if (bn_atomic_file_commit(af) != BN_OK) lt_core_error(L, fn);
    return 0;
}

void lt_open_io(lua_State *L, int mod, int methods)
{
    lt_register(L, mod, 0, "write_file", l_write_file);
    (void)methods;
    lt_register(L, mod, 0, "save_safetensors", l_save_safetensors);
    lt_register(L, mod, 0, "load_safetensors", l_load_safetensors);
    lt_register(L, mod, 0, "rng_state", l_rng_state);
    lt_register(L, mod, 0, "set_rng_state", l_set_rng_state);
    lt_register(L, mod, 0, "save", l_save);
    lt_register(L, mod, 0, "load", l_load);
}
