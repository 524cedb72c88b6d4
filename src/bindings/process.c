/* Processes and signals for batch runs (`bnlab sweep`: lua/bnlab/sweep.lua),
 * over src/process.c, as the module `require "bnlab.process"` (also bn.process,
 * loaded on first use):
 *   spawn(argv [, {output=, append=, input=}]) -> pid
 *   wait(pid | {pids} [, timeout]) -> pid, exit_code|nil, signal|nil
 *                                   | nil, "timeout" | nil, "interrupted"
 *   kill(pid [, signal]) -> true | false (no such process)
 *   trap_signals([on]), caught_signal() -> "SIGTERM", 15 | nil
 *   sleep(seconds) -> true | false (a signal cut it short)
 *   executable() -> path of the running bnlab
 * They are not in bn itself on purpose: they act on other processes and on
 * time, which the API fuzzer (tests/fuzz/api_fuzz.lua, which drives every
 * function of bn with random arguments) must not do (bn.kill(1), a sleep of
 * 1e9 s). Messages name them "bn.process.<fn>".
 * Also, in bn (harmless with any argument):
 *   bn.listdir(path) -> sorted names,
 *   bn.file_type(path [, follow]) -> "file"|"directory"|"link"|"other"|nil
 * (bn.mkdir, mkdir -p, is in system.c.) */
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "bindings/luatensor.h"
#include "process.h"

#define MAX_ARGV 65536
#define MAX_PIDS 4096
#define DIR_META "bnlab.DirHandle"

/* Raises the core's error as "bn.process.<op>: <reason>": the core says
 * "<op>: <reason>" and knows nothing of the Lua module's name. */
static int process_error(lua_State *L, const char *fn) __attribute__((noreturn));
static int process_error(lua_State *L, const char *fn)
{
    const char *msg = bn_last_error();
    const char *colon = msg ? strstr(msg, ": ") : NULL;
    lt_error(L, fn, "%s", colon ? colon + 2 : (msg && *msg ? msg : "failed"));
}

/* A string argument that is a usable path: no zero byte, not empty. */
static const char *check_path(lua_State *L, int arg, const char *fn, const char *name)
{
    const char *path = lt_checkstr(L, arg, fn, name);
    if (strlen(path) != lua_rawlen(L, arg)) lt_error(L, fn, "argument #%d (%s) must not contain a zero byte", arg, name);
    if (!*path) lt_argerror(L, fn, arg, name, "a non-empty path");
    return path;
}

static const char *opt_path(lua_State *L, int opts, const char *fn, const char *field)
{
    if (!lt_opt_field(L, opts, field)) return NULL;
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    size_t len;
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    if (s == NULL || len == 0 || strlen(s) != len) {
        char what[128];
        lt_describe(L, -1, what, sizeof what);
        lt_error(L, fn, "argument #%d (options) field '%s' expected a non-empty path, got %s", opts, field, what);
    }
    lua_pop(L, 1); /* still anchored by the options table */
    return s;
}

/* bn.spawn(argv [, opts]): starts argv[1] (a path) with arguments argv[2..]. */
static int l_spawn(lua_State *L)
{
    const char *fn = "process.spawn";
    if (lua_type(L, 1) != LUA_TTABLE) lt_argerror(L, fn, 1, "argv", "a list of strings (program path first)");
    static const char *const known[] = { "output", "append", "input", NULL };
    lt_check_opts(L, 2, fn, known);
    lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
    if (n < 1) lt_argerror(L, fn, 1, "argv", "a non-empty list of strings (program path first)");
    if (n > MAX_ARGV) lt_error(L, fn, "argument #1 (argv) expected at most %d words, got %lld", MAX_ARGV, (long long)n);
    const char **argv = lua_newuserdatauv(L, ((size_t)n + 1) * sizeof *argv, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 1, i);
        size_t len;
        const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
        if (s == NULL || strlen(s) != len || (i == 1 && len == 0)) {
            char what[128];
            lt_describe(L, -1, what, sizeof what);
            lt_error(L, fn, "argument #1 (argv) element %lld expected %s, got %s", (long long)i,
                     i == 1 ? "a non-empty program path" : "a string without zero bytes", what);
        }
        argv[i - 1] = s; /* anchored by the argv table */
        lua_pop(L, 1);
    }
    argv[n] = NULL;
    bn_spawn_opts opts = { 0 };
    if (!lua_isnoneornil(L, 2)) {
        opts.output = opt_path(L, 2, fn, "output");
        opts.input = opt_path(L, 2, fn, "input");
        if (lt_opt_field(L, 2, "append")) {
            if (lua_type(L, -1) != LUA_TBOOLEAN) {
                char what[128];
                lt_describe(L, -1, what, sizeof what);
                lt_error(L, fn, "argument #2 (options) field 'append' expected a boolean, got %s", what);
            }
            opts.append = lua_toboolean(L, -1);
            lua_pop(L, 1);
        }
    }
    pid_t pid = bn_process_spawn(argv, &opts);
    if (pid < 0) process_error(L, fn);
    lua_pushinteger(L, (lua_Integer)pid);
    return 1;
}

static pid_t check_pid(lua_State *L, int idx, int arg, const char *fn, const char *what_is_it)
{
    if (lua_isinteger(L, idx) && lua_tointeger(L, idx) >= 1 && lua_tointeger(L, idx) <= INT_MAX)
        return (pid_t)lua_tointeger(L, idx);
    char what[128];
    lt_describe(L, idx, what, sizeof what);
    lt_error(L, fn, "argument #%d (pid%s) expected a process id (an integer >= 1), got %s", arg, what_is_it, what);
}

/* bn.wait(pid | {pids} [, timeout]) */
static int l_wait(lua_State *L)
{
    const char *fn = "process.wait";
    double timeout = -1;
    if (!lua_isnoneornil(L, 2)) {
        timeout = lt_checknum(L, 2, fn, "timeout", false);
        if (timeout < 0) lt_argerror(L, fn, 2, "timeout", "a number of seconds >= 0 (or nil: no limit)");
    }
    size_t n;
    pid_t *pids;
    if (lua_type(L, 1) == LUA_TTABLE) {
        n = lua_rawlen(L, 1);
        if (n < 1) lt_argerror(L, fn, 1, "pids", "a process id or a non-empty list of them");
        if (n > MAX_PIDS) lt_error(L, fn, "argument #1 (pids) expected at most %d process ids, got %zu", MAX_PIDS, n);
        pids = lua_newuserdatauv(L, n * sizeof *pids, 0);
        for (size_t i = 0; i < n; i++) {
            lua_rawgeti(L, 1, (lua_Integer)i + 1);
            pids[i] = check_pid(L, -1, 1, fn, " list element");
            lua_pop(L, 1);
        }
    } else if (lua_type(L, 1) == LUA_TNUMBER) {
        n = 1;
        pids = lua_newuserdatauv(L, sizeof *pids, 0);
        pids[0] = check_pid(L, 1, 1, fn, "");
    } else {
        lt_argerror(L, fn, 1, "pids", "a process id or a non-empty list of them");
    }
    bn_process_end end;
    int r = bn_process_wait(pids, n, timeout, &end);
    switch (r) {
    case BN_WAIT_ENDED:
        lua_pushinteger(L, (lua_Integer)end.pid);
        if (end.signal) {
            char buf[16];
            lua_pushnil(L);
            lua_pushstring(L, bn_signal_name(end.signal, buf, sizeof buf));
        } else {
            lua_pushinteger(L, end.exit_code);
            lua_pushnil(L);
        }
        return 3;
    case BN_WAIT_TIMEOUT:
        lua_pushnil(L);
        lua_pushliteral(L, "timeout");
        return 2;
    case BN_WAIT_INTERRUPTED:
        lua_pushnil(L);
        lua_pushliteral(L, "interrupted");
        return 2;
    default: process_error(L, fn);
    }
}

/* bn.kill(pid [, signal = "SIGTERM"]) -> true, or false when it is gone. */
static int l_kill(lua_State *L)
{
    const char *fn = "process.kill";
    pid_t pid = check_pid(L, 1, 1, fn, "");
    int sig = SIGTERM;
    if (lua_type(L, 2) == LUA_TSTRING) {
        sig = bn_signal_number(lua_tostring(L, 2));
        if (sig == 0) lt_argerror(L, fn, 2, "signal", "a signal name (\"TERM\", \"SIGINT\", \"KILL\", ...) or number");
    } else if (!lua_isnoneornil(L, 2)) {
        sig = (int)lt_checkint(L, 2, fn, "signal", 0, 64);
    }
    bn_status s = bn_process_kill(pid, sig);
    if (s == BN_ESTATE) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (s != BN_OK) process_error(L, fn);
    lua_pushboolean(L, 1);
    return 1;
}

/* bn.trap_signals([on = true]) */
static int l_trap_signals(lua_State *L)
{
    bool on = lt_optbool(L, 1, "process.trap_signals", "on", true);
    if (bn_trap_signals(on) != BN_OK) process_error(L, "process.trap_signals");
    return 0;
}

/* bn.caught_signal() -> name, number | nil (and forgets it) */
static int l_caught_signal(lua_State *L)
{
    int sig = bn_take_signal();
    if (sig == 0) {
        lua_pushnil(L);
        return 1;
    }
    char buf[16];
    lua_pushstring(L, bn_signal_name(sig, buf, sizeof buf));
    lua_pushinteger(L, sig);
    return 2;
}

static int l_sleep(lua_State *L)
{
    double s = lt_checknum(L, 1, "process.sleep", "seconds", false);
    if (s < 0) lt_argerror(L, "process.sleep", 1, "seconds", "a number of seconds >= 0");
    lua_pushboolean(L, bn_sleep(s));
    return 1;
}

static int l_executable(lua_State *L)
{
    char path[PATH_MAX];
    if (bn_executable_path(path, sizeof path) != BN_OK) process_error(L, "process.executable");
    lua_pushstring(L, path);
    return 1;
}

typedef struct dir_box {
    bn_dir *d;
} dir_box;

static int dir_gc(lua_State *L)
{
    dir_box *b = luaL_checkudata(L, 1, DIR_META);
    bn_dir_close(b->d);
    b->d = NULL;
    return 0;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* bn.listdir(path) -> names sorted bytewise, without "." and "..". The
 * handle lives in a userdata so a memory error while filling the table
 * cannot leak it. */
static int l_listdir(lua_State *L)
{
    const char *fn = "listdir";
    const char *path = check_path(L, 1, fn, "path");
    lua_settop(L, 1);
    dir_box *b = lua_newuserdatauv(L, sizeof *b, 0); /* 2 */
    b->d = NULL;
    luaL_setmetatable(L, DIR_META);
    b->d = bn_dir_open(path);
    if (!b->d) lt_core_error(L, fn);
    lua_newtable(L); /* 3: unsorted */
    lua_Integer n = 0;
    const char *name;
    while ((name = bn_dir_next(b->d)) != NULL) {
        lua_pushstring(L, name);
        lua_rawseti(L, 3, ++n);
    }
    if (bn_last_status() != BN_OK) lt_core_error(L, fn);
    bn_dir_close(b->d);
    b->d = NULL;
    const char **names = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof *names, 0); /* 4 */
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 3, i);
        names[i - 1] = lua_tostring(L, -1); /* anchored by table 3 */
        lua_pop(L, 1);
    }
    qsort(names, (size_t)n, sizeof *names, compare_names);
    lua_createtable(L, (int)n, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_pushstring(L, names[i - 1]);
        lua_rawseti(L, -2, i);
    }
    return 1;
}

static int l_file_type(lua_State *L)
{
    const char *path = check_path(L, 1, "file_type", "path");
    bool follow = lt_optbool(L, 2, "file_type", "follow", false);
    const char *t = bn_file_type(path, follow);
    if (t == NULL && bn_last_status() != BN_OK) lt_core_error(L, "file_type");
    if (t) lua_pushstring(L, t);
    else lua_pushnil(L);
    return 1;
}

static const luaL_Reg process_functions[] = {
    { "spawn", l_spawn },
    { "wait", l_wait },
    { "kill", l_kill },
    { "trap_signals", l_trap_signals },
    { "caught_signal", l_caught_signal },
    { "sleep", l_sleep },
    { "executable", l_executable },
    { NULL, NULL },
};

/* package.preload["bnlab.process"] */
static int open_process_module(lua_State *L)
{
    luaL_newlib(L, process_functions);
    return 1;
}

void lt_open_process(lua_State *L, int mod, int methods)
{
    (void)methods;
    if (luaL_newmetatable(L, DIR_META)) {
        lua_pushcfunction(L, dir_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
    lt_register(L, mod, 0, "listdir", l_listdir);
    lt_register(L, mod, 0, "file_type", l_file_type);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, open_process_module);
    lua_setfield(L, -2, "bnlab.process");
    lua_pop(L, 1);
}
