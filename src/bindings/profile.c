/* bn.profile_start / profile_stop / profile_report / profile_rows: the C
 * core's per-op timing (src/profile.h) for Lua. `bnlab --profile SCRIPT`
 * uses the same core functions from main.c. */
#include <lauxlib.h>
#include <stdlib.h>

#include "bindings/luatensor.h"
#include "profile.h"

/* bn.profile_start(): clears the table and starts timing every op. */
static int l_profile_start(lua_State *L)
{
    (void)L;
    bn_profile_start();
    return 0;
}

/* bn.profile_stop(): stops timing; the table stays for profile_report. */
static int l_profile_stop(lua_State *L)
{
    (void)L;
    bn_profile_stop();
    return 0;
}

/* bn.profile_report() -> string: a summary line and a Markdown table. */
static int l_profile_report(lua_State *L)
{
    char *text = bn_profile_report();
    if (!text) return luaL_error(L, "bn.profile_report: out of memory");
    lua_pushstring(L, text);
    free(text);
    return 1;
}

/* bn.profile_rows() -> { wall = seconds, running = bool, [i] = { op =,
 * backward =, calls =, seconds =, flops = } }, most time first. */
static int l_profile_rows(lua_State *L)
{
    enum { MAX = 256 };
    bn_profile_row *rows = malloc(MAX * sizeof *rows);
    if (!rows) return luaL_error(L, "bn.profile_rows: out of memory");
    double wall;
    int n = bn_profile_rows(rows, MAX, &wall);
    if (n > MAX) n = MAX;
    lua_createtable(L, n, 2);
    lua_pushnumber(L, wall);
    lua_setfield(L, -2, "wall");
    lua_pushboolean(L, bn_profile_on);
    lua_setfield(L, -2, "running");
    for (int i = 0; i < n; i++) {
        lua_createtable(L, 0, 5);
        lua_pushstring(L, rows[i].name);
        lua_setfield(L, -2, "op");
        lua_pushboolean(L, rows[i].backward);
        lua_setfield(L, -2, "backward");
        lua_pushinteger(L, rows[i].calls);
        lua_setfield(L, -2, "calls");
        lua_pushnumber(L, rows[i].seconds);
        lua_setfield(L, -2, "seconds");
        lua_pushnumber(L, rows[i].flops);
        lua_setfield(L, -2, "flops");
        lua_rawseti(L, -2, i + 1);
    }
    free(rows);
    return 1;
}

void lt_open_profile(lua_State *L, int mod, int methods)
{
    (void)methods;
    lt_register(L, mod, 0, "profile_start", l_profile_start);
    lt_register(L, mod, 0, "profile_stop", l_profile_stop);
    lt_register(L, mod, 0, "profile_report", l_profile_report);
    lt_register(L, mod, 0, "profile_rows", l_profile_rows);
}
