/* What scripts need from the operating system that Lua's standard library
 * lacks: a monotonic wall clock (progress bars, images/s) and whether an
 * output is a terminal (progress bar or plain lines). */
#include <lualib.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "bindings/luatensor.h"

/* bn.clock(): seconds from an arbitrary start, monotonic, sub-microsecond. */
static int l_clock(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec * 1e-9);
    return 1;
}

/* bn.isatty([file]): is this Lua file handle (default io.stdout) a terminal? */
static int l_isatty(lua_State *L)
{
    FILE *f = stdout;
    if (!lua_isnoneornil(L, 1)) {
        luaL_Stream *s = luaL_testudata(L, 1, LUA_FILEHANDLE);
        if (!s || !s->closef) lt_argerror(L, "isatty", 1, "file", "an open Lua file handle");
        f = s->f;
    }
    lua_pushboolean(L, isatty(fileno(f)));
    return 1;
}

void lt_open_system(lua_State *L, int mod, int methods)
{
    (void)methods;
    lt_register(L, mod, 0, "clock", l_clock);
    lt_register(L, mod, 0, "isatty", l_isatty);
}
