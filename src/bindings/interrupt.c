/* Deferred interrupts: how a training loop survives Ctrl-C and SIGTERM.
 *
 * Outside these functions the bnlab command stops running Lua code at the
 * next instruction on SIGINT (main.c's hook) and dies on SIGTERM. A loop
 * that must not be cut mid-step (bn.train.fit) holds a token from
 * bn.defer_interrupts(); while any token is open, the command's handler
 * calls lt_interrupt_defer, which only records the signal. The loop polls
 * bn.interrupted() after each step, writes its checkpoint, and ends with
 * bn.raise_interrupt(message): an error that main.c recognises
 * (lt_interrupt_error_signal) and turns into exit status 128 + signal
 * (130 for SIGINT, 143 for SIGTERM), printing the message without a
 * traceback. A second signal while one is pending is not deferred: the
 * command's usual handling applies (the way out of a stuck step).
 *
 * The signal state is process-wide (one command, one main Lua state);
 * handlers may run on any thread (OpenMP workers), hence lock-free atomics. */
#include <signal.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "bindings/bindings.h"
#include "bindings/luatensor.h"

static atomic_int defer_depth;    /* open tokens */
static atomic_int pending_signal; /* recorded while deferred, 0 when none */
static int raised_signal;         /* the signal of the last bn.raise_interrupt error */
static const char raised_key = 0; /* registry[&raised_key]: that error's message */

#define TOKEN_META "bnlab.InterruptDeferral"

bool lt_interrupt_defer(int sig)
{
    if (atomic_load(&defer_depth) <= 0) return false;
    int none = 0;
    return atomic_compare_exchange_strong(&pending_signal, &none, sig);
}

int lt_interrupt_error_signal(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) != LUA_TSTRING) return 0;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &raised_key);
    bool same = lua_rawequal(L, -1, idx);
    lua_pop(L, 1);
    return same ? raised_signal : 0;
}

static const char *signal_name(int sig, char *buf, size_t size)
{
    if (sig == SIGINT) return "SIGINT";
    if (sig == SIGTERM) return "SIGTERM";
    snprintf(buf, size, "signal %d", sig);
    return buf;
}

/* Raises msg as the interrupt error of sig (the caller cleared pending). */
static int raise_as_interrupt(lua_State *L, int sig, int msg_idx)
{
    lua_pushvalue(L, msg_idx);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &raised_key);
    raised_signal = sig;
    lua_pushvalue(L, msg_idx);
    return lua_error(L);
}

typedef struct token {
    bool open;
} token;

/* Closes a token; returns true when it was the last open one. */
static bool token_release(token *t)
{
    if (!t->open) return false;
    t->open = false;
    return atomic_fetch_sub(&defer_depth, 1) == 1;
}

/* __close(token, err): a signal that came after the holder's last poll is
 * not lost: on a normal exit it becomes the interrupt error here. When the
 * block is left by an error, that error goes on and the signal is dropped
 * (the run is stopping anyway). */
static int token_close(lua_State *L)
{
    token *t = luaL_checkudata(L, 1, TOKEN_META);
    bool erroring = !lua_isnoneornil(L, 2);
    if (!token_release(t)) return 0;
    int sig = atomic_exchange(&pending_signal, 0);
    if (sig == 0 || erroring) return 0;
    char buf[32];
    lua_pushfstring(L, "bn.defer_interrupts: interrupted by %s (it came after the last bn.interrupted() check)",
                    signal_name(sig, buf, sizeof buf));
    return raise_as_interrupt(L, sig, lua_gettop(L));
}

/* __gc: a token dropped without <close> (a coroutine abandoned, a script
 * that forgot it) stops deferring; never raises. */
static int token_gc(lua_State *L)
{
    token *t = luaL_checkudata(L, 1, TOKEN_META);
    if (token_release(t)) atomic_store(&pending_signal, 0);
    return 0;
}

static int token_tostring(lua_State *L)
{
    token *t = luaL_checkudata(L, 1, TOKEN_META);
    lua_pushstring(L, t->open ? "interrupt deferral (open)" : "interrupt deferral (closed)");
    return 1;
}

/* bn.defer_interrupts() -> token: until the token is closed (use
 * `local d <close> = bn.defer_interrupts()`), SIGINT and SIGTERM only set
 * what bn.interrupted() returns. Tokens nest. */
static int l_defer_interrupts(lua_State *L)
{
    token *t = lua_newuserdatauv(L, sizeof *t, 0);
    t->open = false;
    luaL_setmetatable(L, TOKEN_META);
    t->open = true;
    atomic_fetch_add(&defer_depth, 1);
    return 1;
}

/* bn.interrupted() -> "SIGINT" | "SIGTERM" | nil: the signal waiting for
 * the holder of a deferral token (it stays pending until raised). */
static int l_interrupted(lua_State *L)
{
    int sig = atomic_load(&pending_signal);
    if (sig == 0) {
        lua_pushnil(L);
    } else {
        char buf[32];
        lua_pushstring(L, signal_name(sig, buf, sizeof buf));
    }
    return 1;
}

/* bn.raise_interrupt(message): raises `message` (as is, no position) as the
 * error that ends the script with status 128 + the pending signal. */
static int l_raise_interrupt(lua_State *L)
{
    const char *fn = "raise_interrupt";
    if (lua_type(L, 1) != LUA_TSTRING) lt_argerror(L, fn, 1, "message", "a string");
    lua_settop(L, 1);
    int sig = atomic_exchange(&pending_signal, 0);
    if (sig == 0) lt_error(L, fn, "no interrupt is pending (bn.interrupted() returns nil)");
    return raise_as_interrupt(L, sig, 1);
}

void lt_open_interrupt(lua_State *L, int mod, int methods)
{
    (void)methods;
    if (luaL_newmetatable(L, TOKEN_META)) {
        lua_pushcfunction(L, token_close);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, token_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, token_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
    }
    lua_pop(L, 1);
    lt_register(L, mod, 0, "defer_interrupts", l_defer_interrupts);
    lt_register(L, mod, 0, "interrupted", l_interrupted);
    lt_register(L, mod, 0, "raise_interrupt", l_raise_interrupt);
}
