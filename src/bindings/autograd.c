/* Autograd from Lua: requires_grad, backward, retain_grad, zero_grad, grad
 * mode (no_grad, set_grad_enabled), gradient hooks on one tensor and the
 * pattern hooks (bn.hooks_add) that probes are built on.
 *
 * Calling Lua from inside the core: a hook runs while C frames of the core
 * hold resources, so no Lua error may longjmp through them. Each call goes
 * through lua_pcall of a trampoline that does all the Lua work (even
 * allocating the tensor argument); a Lua error is parked in the registry,
 * the hook returns a failing status, and the binding that entered the core
 * re-raises the parked error once the core has returned and cleaned up. */
#include <stdlib.h>
#include <string.h>

#include "autograd.h"
#include "bindings/luatensor.h"

/* Registry key of the error raised by a hook, waiting to be re-raised. */
static char pending_key;

/* The thread running the binding that entered the core (hooks call Lua
 * there, so a hook fired from a coroutine runs in that coroutine). */
static lua_State *active_L = NULL;
/* How many hook calls are running: removing a pattern hook while one runs
 * is deferred (the core's iteration may still hold it). */
static int hook_depth = 0;

lua_State *lt_enter(lua_State *L)
{
    lua_State *prev = active_L;
    active_L = L;
    return prev;
}

void lt_leave(lua_State *prev) { active_L = prev; }

/* ---- releasing registry references ------------------------------------------------ */

/* The core frees hook data (free_ud) when a tensor or node dies, which can be
 * inside a __gc finalizer or deep in a core call. Touching a Lua state there
 * is not safe, so the references are queued and dropped at the next binding
 * call that checks memory (lt_memory_check calls lt_drain_refs). */
static int *dead_refs = NULL;
static size_t n_dead = 0, cap_dead = 0;

static void queue_unref(int ref)
{
    if (ref == LUA_NOREF || ref == LUA_REFNIL) return;
    if (n_dead == cap_dead) {
        size_t cap = cap_dead ? cap_dead * 2 : 64;
        int *grown = realloc(dead_refs, cap * sizeof *grown);
        if (!grown) return; /* out of memory: leaking one registry slot is the safe choice */
        dead_refs = grown;
        cap_dead = cap;
    }
    dead_refs[n_dead++] = ref;
}

void lt_drain_refs(lua_State *L)
{
    while (n_dead > 0) luaL_unref(L, LUA_REGISTRYINDEX, dead_refs[--n_dead]);
}

/* ---- calling Lua from a hook -------------------------------------------------------- */

typedef struct hook_call {
    int ref;          /* the Lua function */
    const char *name; /* passed first when not NULL (pattern hooks) */
    bn_tensor *t;     /* the value or gradient, passed as a new Tensor */
    bool failed;      /* the Lua function raised; its error is parked */
} hook_call;

static int trampoline(lua_State *L)
{
    hook_call *c = lua_touserdata(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->ref);
    int nargs = 0;
    if (c->name) {
        lua_pushstring(L, c->name);
        nargs++;
    }
    lt_box *b = lt_newbox(L);
    b->t = bn_tensor_retain(c->t);
    nargs++;
    if (lua_pcall(L, nargs, 0, 0) != LUA_OK) {
        c->failed = true;
        lua_rawsetp(L, LUA_REGISTRYINDEX, &pending_key); /* a memory error here is caught by the outer pcall */
    }
    return 0;
}

static bn_status call_lua(int ref, const char *name, bn_tensor *t, const char *what)
{
    lua_State *L = active_L;
    if (!L) return bn_fail(BN_ESTATE, "%s: a Lua hook fired outside a Lua call", what);
    if (!lua_checkstack(L, 4)) return bn_fail(BN_ENOMEM, "%s: Lua stack overflow calling a hook", what);
    hook_call c = {ref, name, t, false};
    lua_pushcfunction(L, trampoline);
    lua_pushlightuserdata(L, &c);
    hook_depth++;
    int rc = lua_pcall(L, 1, 0, 0);
    hook_depth--;
    if (rc != LUA_OK) {
        lua_pop(L, 1);
        return bn_fail(BN_ENOMEM, "%s: out of memory calling a Lua hook", what);
    }
    if (c.failed) return bn_fail(BN_ESTATE, "%s: the Lua hook raised an error", what);
    return BN_OK;
}

int lt_hook_or_core_error(lua_State *L, const char *fn)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &pending_key) == LUA_TNIL) {
        lua_pop(L, 1);
        lt_core_error(L, fn);
    }
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &pending_key);
    /* A string keeps its text (and position) behind our prefix; any other
     * error value (a table, say) is re-raised untouched. */
    if (lua_type(L, -1) == LUA_TSTRING) luaL_error(L, "bn.%s: error in a hook: %s", fn, lua_tostring(L, -1));
    lua_error(L);
    __builtin_unreachable();
}

/* Clears an error parked by a hook that the core did not report (a hook
 * failure is always reported, but be robust to a core that swallows it). */
static void clear_pending(lua_State *L)
{
    lua_pushnil(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &pending_key);
}

/* ---- gradient hooks on one tensor -------------------------------------------------- */

typedef struct grad_hook {
    int ref;
} grad_hook;

static bn_status grad_hook_fn(void *ud, const char *name, bn_tensor *grad)
{
    (void)name;
    return call_lua(((grad_hook *)ud)->ref, NULL, grad, "register_hook");
}

static void grad_hook_free(void *ud)
{
    queue_unref(((grad_hook *)ud)->ref);
    free(ud);
}

static int l_register_hook(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "register_hook", "self");
    lt_checkfunc(L, 2, "register_hook", "fn");
    if (!t->requires_grad)
        lt_error(L, "register_hook", "tensor %s does not require grad (call :requires_grad(true) first)",
                 bn_shape_str(t));
    lua_pushvalue(L, 2);
    int ref = luaL_ref(L, LUA_REGISTRYINDEX);
    grad_hook *h = malloc(sizeof *h);
    if (!h) {
        luaL_unref(L, LUA_REGISTRYINDEX, ref);
        lt_error(L, "register_hook", "out of memory");
    }
    h->ref = ref;
    if (bn_tensor_register_hook(t, grad_hook_fn, h, grad_hook_free) != BN_OK) {
        luaL_unref(L, LUA_REGISTRYINDEX, ref);
        free(h);
        lt_core_error(L, "register_hook");
    }
    lua_settop(L, 1);
    return 1;
}

/* ---- pattern hooks -------------------------------------------------------------------- */

typedef struct pattern_hook {
    int id;
    int fwd_ref, bwd_ref;
    bool removed; /* removed while a hook was running: calls are no-ops until really removed */
    struct pattern_hook *next;
} pattern_hook;

/* Ours, so the lua_close sentinel can remove them all, and hooks_remove can
 * defer. */
static pattern_hook *patterns = NULL;
static int *deferred = NULL;
static size_t n_deferred = 0, cap_deferred = 0;

static bn_status pattern_fwd(void *ud, const char *name, bn_tensor *value)
{
    pattern_hook *h = ud;
    if (h->removed || h->fwd_ref == LUA_NOREF) return BN_OK;
    return call_lua(h->fwd_ref, name, value, "hooks_add");
}

static bn_status pattern_bwd(void *ud, const char *name, bn_tensor *grad)
{
    pattern_hook *h = ud;
    if (h->removed || h->bwd_ref == LUA_NOREF) return BN_OK;
    return call_lua(h->bwd_ref, name, grad, "hooks_add");
}

static void pattern_free(void *ud)
{
    pattern_hook *h = ud;
    for (pattern_hook **pp = &patterns; *pp; pp = &(*pp)->next)
        if (*pp == h) {
            *pp = h->next;
            break;
        }
    queue_unref(h->fwd_ref);
    queue_unref(h->bwd_ref);
    free(h);
}

static int l_hooks_add(lua_State *L)
{
    const char *pattern = lt_checkstr(L, 1, "hooks_add", "pattern");
    if (strlen(pattern) != lua_rawlen(L, 1)) lt_error(L, "hooks_add", "argument #1 (pattern) must not contain a zero byte");
    if (!lua_isnoneornil(L, 2)) lt_checkfunc(L, 2, "hooks_add", "fwd_fn");
    if (!lua_isnoneornil(L, 3)) lt_checkfunc(L, 3, "hooks_add", "bwd_fn");
    if (lua_isnoneornil(L, 2) && lua_isnoneornil(L, 3))
        lt_error(L, "hooks_add", "expected a forward hook (argument #2) or a backward hook (argument #3), got neither");
    /* References first: luaL_ref can raise, and nothing is allocated yet. */
    int fwd = LUA_NOREF, bwd = LUA_NOREF;
    if (!lua_isnoneornil(L, 2)) {
        lua_pushvalue(L, 2);
        fwd = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    if (!lua_isnoneornil(L, 3)) {
        lua_pushvalue(L, 3);
        bwd = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    pattern_hook *h = calloc(1, sizeof *h);
    if (!h) {
        luaL_unref(L, LUA_REGISTRYINDEX, fwd);
        luaL_unref(L, LUA_REGISTRYINDEX, bwd);
        lt_error(L, "hooks_add", "out of memory");
    }
    h->fwd_ref = fwd;
    h->bwd_ref = bwd;
    int id = bn_hooks_add(pattern, fwd != LUA_NOREF ? pattern_fwd : NULL, bwd != LUA_NOREF ? pattern_bwd : NULL, h,
                          pattern_free);
    if (id < 0) {
        luaL_unref(L, LUA_REGISTRYINDEX, fwd);
        luaL_unref(L, LUA_REGISTRYINDEX, bwd);
        free(h);
        lt_core_error(L, "hooks_add");
    }
    h->id = id;
    h->next = patterns;
    patterns = h;
    lua_pushinteger(L, id);
    return 1;
}

static int l_hooks_remove(lua_State *L)
{
    int64_t id = lt_checkint(L, 1, "hooks_remove", "id", 1, INT32_MAX);
    pattern_hook *h = patterns;
    while (h && h->id != id) h = h->next;
    if (!h || h->removed) lt_error(L, "hooks_remove", "no hook with id %lld", (long long)id);
    if (hook_depth > 0) {
        /* The core may be iterating its hook list right now: mute the hook
         * and remove it once no hook is running. */
        if (n_deferred == cap_deferred) {
            size_t cap = cap_deferred ? cap_deferred * 2 : 16;
            int *grown = realloc(deferred, cap * sizeof *grown);
            if (!grown) lt_error(L, "hooks_remove", "out of memory");
            deferred = grown;
            cap_deferred = cap;
        }
        h->removed = true;
        deferred[n_deferred++] = (int)id;
        return 0;
    }
    if (bn_hooks_remove((int)id) != BN_OK) lt_core_error(L, "hooks_remove");
    return 0;
}

/* Removes hooks whose removal was deferred, once no hook runs. */
void lt_flush_deferred_hooks(void)
{
    if (hook_depth > 0) return;
    while (n_deferred > 0) bn_hooks_remove(deferred[--n_deferred]);
}

/* At lua_close: every pattern hook of this state goes (their Lua functions
 * die with the state). */
void lt_autograd_close(void)
{
    while (patterns) {
        int id = patterns->id;
        if (bn_hooks_remove(id) != BN_OK) { /* not in the core's registry: drop ours */
            pattern_hook *h = patterns;
            patterns = h->next;
            free(h);
        }
    }
    free(deferred);
    deferred = NULL;
    n_deferred = cap_deferred = 0;
    free(dead_refs);
    dead_refs = NULL;
    n_dead = cap_dead = 0;
}

/* ---- tensor methods ---------------------------------------------------------------------- */

/* t:requires_grad() asks; t:requires_grad(flag) sets and returns t. */
static int l_requires_grad(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "requires_grad", "self");
    if (lua_isnone(L, 2)) {
        lua_pushboolean(L, t->requires_grad);
        return 1;
    }
    bool on = lt_optbool(L, 2, "requires_grad", "flag", true);
    if (bn_tensor_set_requires_grad(t, on) != BN_OK) lt_core_error(L, "requires_grad");
    lua_settop(L, 1);
    return 1;
}

/* PyTorch's spelling: sets (default true) and returns t. */
static int l_requires_grad_(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "requires_grad_", "self");
    bool on = lt_optbool(L, 2, "requires_grad_", "flag", true);
    if (bn_tensor_set_requires_grad(t, on) != BN_OK) lt_core_error(L, "requires_grad_");
    lua_settop(L, 1);
    return 1;
}

static int l_backward(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "backward", "self");
    bn_tensor *g = lt_opt(L, 2, "backward", "grad");
    bool retain = lt_optbool(L, 3, "backward", "retain_graph", false);
    clear_pending(L);
    /* Hooks run Lua code that may close these userdata: hold them. */
    bn_tensor_retain(t);
    bn_tensor_retain(g);
    lua_State *prev = lt_enter(L);
    bn_status st = bn_backward(t, g, retain);
    lt_leave(prev);
    bn_tensor_release(t);
    bn_tensor_release(g);
    lt_flush_deferred_hooks();
    if (st != BN_OK) lt_hook_or_core_error(L, "backward");
    clear_pending(L);
    lt_memory_check(L); /* backward allocates gradients: count them like any tensor */
    return 0;
}

static int l_retain_grad(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "retain_grad", "self");
    if (bn_tensor_retain_grad(t) != BN_OK) lt_core_error(L, "retain_grad");
    lua_settop(L, 1);
    return 1;
}

static int l_zero_grad(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "zero_grad", "self");
    bn_tensor_zero_grad(t);
    lua_pushnil(L);
    lua_setiuservalue(L, 1, 1); /* drop the cached .grad userdata (and its reference) */
    lua_settop(L, 1);
    return 1;
}

/* ---- grad mode ------------------------------------------------------------------------------- */

/* bn.no_grad(fn, ...): fn(...) with grad mode off; the mode is restored even
 * when fn raises, and fn's results are returned. */
static int l_no_grad(lua_State *L)
{
    lt_checkfunc(L, 1, "no_grad", "fn");
    bool was = bn_set_grad_enabled(false);
    int rc = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, 0);
    bn_set_grad_enabled(was);
    if (rc != LUA_OK) return lua_error(L);
    return lua_gettop(L);
}

static int l_set_grad_enabled(lua_State *L)
{
    if (lua_type(L, 1) != LUA_TBOOLEAN) lt_argerror(L, "set_grad_enabled", 1, "mode", "a boolean");
    lua_pushboolean(L, bn_set_grad_enabled(lua_toboolean(L, 1)));
    return 1;
}

static int l_is_grad_enabled(lua_State *L)
{
    lua_pushboolean(L, bn_grad_enabled());
    return 1;
}

static int l_nodes_alive(lua_State *L)
{
    lua_pushinteger(L, bn_nodes_alive());
    return 1;
}

void lt_open_autograd(lua_State *L, int mod, int methods)
{
    static const luaL_Reg m[] = {
        {"requires_grad", l_requires_grad}, {"requires_grad_", l_requires_grad_}, {"backward", l_backward},
        {"retain_grad", l_retain_grad},     {"register_hook", l_register_hook},   {"zero_grad", l_zero_grad},
        {NULL, NULL},
    };
    for (const luaL_Reg *r = m; r->name; r++) lt_register(L, 0, methods, r->name, r->func);
    static const luaL_Reg f[] = {
        {"backward", l_backward},
        {"no_grad", l_no_grad},
        {"set_grad_enabled", l_set_grad_enabled},
        {"is_grad_enabled", l_is_grad_enabled},
        {"hooks_add", l_hooks_add},
        {"hooks_remove", l_hooks_remove},
        {"nodes_alive", l_nodes_alive},
        {NULL, NULL},
    };
    lua_pushvalue(L, mod);
    luaL_setfuncs(L, f, 0);
    lua_pop(L, 1);
}
