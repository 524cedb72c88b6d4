/* What scripts need from the operating system that Lua's standard library
 * lacks: a monotonic wall clock (progress bars, images/s) and whether an
 * output is a terminal (progress bar or plain lines), and creating output
 * directories without a shell (`mkdir -p` via os.execute breaks on quotes). */
#include <errno.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
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

/* bn.mkdir(path): creates the directory and its missing parents (like
 * mkdir -p); an existing directory is fine. Errors name the path and errno. */
static int l_mkdir(lua_State *L)
{
    size_t len = 0;
    if (lua_type(L, 1) != LUA_TSTRING) lt_argerror(L, "mkdir", 1, "path", "a string");
    const char *path = lua_tolstring(L, 1, &len);
    if (len == 0 || len >= 4096 || strlen(path) != len)
        lt_argerror(L, "mkdir", 1, "path", "a non-empty path without NUL bytes, shorter than 4096");
    char buf[4096];
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char saved = buf[i];
        buf[i] = '\0';
        struct stat st;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return luaL_error(L, "bn.mkdir: cannot create '%s': %s", buf, strerror(errno));
        if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
            return luaL_error(L, "bn.mkdir: '%s' exists and is not a directory", buf);
        buf[i] = saved;
    }
    return 0;
}

void lt_open_system(lua_State *L, int mod, int methods)
{
    (void)methods;
    lt_register(L, mod, 0, "clock", l_clock);
    lt_register(L, mod, 0, "isatty", l_isatty);
    lt_register(L, mod, 0, "mkdir", l_mkdir);
}
