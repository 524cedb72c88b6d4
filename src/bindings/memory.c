/* Driving Lua's collector by tensor bytes.
 *
 * Lua's collector only sees the small userdata, not the tensor storage the
 * core allocates, so on its own it would let a loop of 1 MB temporaries grow
 * without bound (Torch7's long-standing complaint). The core reports every
 * storage allocation and free to an observer; we keep the net bytes since
 * the last collection, and the bindings, after making a tensor, run a full
 * collection once that passes a threshold: max(64 MB, bytes live after the
 * previous collection), so the pause stays proportional to the live set.
 *
 * The observer itself never calls lua_gc: it can fire inside a __gc
 * finalizer (releasing a tensor frees storage), where collecting is not
 * allowed. Net rather than gross bytes: memory that <close> or a view's
 * release already gave back needs no collection. */
#include <stdatomic.h>
#include <stdlib.h>

#include "bindings/luatensor.h"

#define LT_GC_MIN_THRESHOLD (INT64_C(64) << 20)

static _Atomic int64_t since_gc = 0; /* net storage bytes since the last collection */
static int64_t threshold = LT_GC_MIN_THRESHOLD;
static bool observing = false;

static void observer(int64_t delta, void *ud)
{
    (void)ud;
    atomic_fetch_add(&since_gc, delta); /* may run on any thread, and inside finalizers */
}

void lt_memory_init(lua_State *L)
{
    (void)L;
    if (observing) return;
    bn_mem_set_observer(observer, NULL);
    observing = true;
}

static void memory_close(void)
{
    bn_mem_set_observer(NULL, NULL);
    observing = false;
    atomic_store(&since_gc, 0);
    threshold = LT_GC_MIN_THRESHOLD;
}

void lt_memory_check(lua_State *L)
{
    lt_drain_refs(L);
    if (atomic_load(&since_gc) < threshold) return;
    /* A script that stopped the collector (collectgarbage("stop")) keeps
     * control; lua_gc also refuses (returns < 0) inside a finalizer. */
    if (!lua_gc(L, LUA_GCISRUNNING)) return;
    if (lua_gc(L, LUA_GCCOLLECT) < 0) return;
    atomic_store(&since_gc, 0);
    int64_t live = bn_mem_in_use();
    threshold = live > LT_GC_MIN_THRESHOLD ? live : LT_GC_MIN_THRESHOLD;
}

/* Tensors reachable from the stack (arguments, and lists of tensors as
 * cat/stack take), retained into held[] when held is not NULL; returns the
 * count. */
static size_t stack_tensors(lua_State *L, bn_tensor **held)
{
    size_t n = 0;
    int top = lua_gettop(L);
    for (int i = 1; i <= top; i++) {
        bn_tensor *t = lt_test(L, i);
        if (t) {
            if (held) held[n] = bn_tensor_retain(t);
            n++;
        } else if (lua_type(L, i) == LUA_TTABLE) {
            lua_Unsigned len = lua_rawlen(L, i);
            for (lua_Unsigned k = 1; k <= len && k <= (1u << 20); k++) {
                lua_rawgeti(L, i, (lua_Integer)k);
                t = lt_test(L, -1);
                lua_pop(L, 1);
                if (!t) continue;
                if (held) held[n] = bn_tensor_retain(t);
                n++;
            }
        }
    }
    return n;
}

bool lt_collect_for_retry(lua_State *L)
{
    if (bn_last_status() != BN_ENOMEM) return false;
    if (!lua_gc(L, LUA_GCISRUNNING)) return false;
    /* The collection runs finalizers (Lua code) that could close a tensor
     * this binding holds a raw pointer to: hold every tensor on the stack. */
    size_t n = stack_tensors(L, NULL);
    bn_tensor **held = malloc((n ? n : 1) * sizeof *held);
    if (!held) return false;
    stack_tensors(L, held);
    int64_t before = bn_mem_in_use();
    int rc = lua_gc(L, LUA_GCCOLLECT);
    for (size_t i = 0; i < n; i++) bn_tensor_release(held[i]);
    free(held);
    if (rc < 0) return false;
    atomic_store(&since_gc, 0);
    int64_t live = bn_mem_in_use();
    threshold = live > LT_GC_MIN_THRESHOLD ? live : LT_GC_MIN_THRESHOLD;
    return live < before;
}

/* ---- bn.mem_* ------------------------------------------------------------------ */

static int l_mem_in_use(lua_State *L)
{
    lua_pushinteger(L, bn_mem_in_use());
    return 1;
}

static int l_mem_peak(lua_State *L)
{
    lua_pushinteger(L, bn_mem_peak());
    return 1;
}

static int l_mem_reset_peak(lua_State *L)
{
    (void)L;
    bn_mem_reset_peak();
    return 0;
}

/* For tests of out-of-memory paths: refuse allocations past `bytes` (0 or
 * nil = no limit). */
static int l_mem_set_limit(lua_State *L)
{
    int64_t bytes = lt_optint(L, 1, "mem_set_limit", "bytes", 0, INT64_MAX, 0);
    bn_mem_set_limit(bytes);
    return 0;
}

/* Bytes of freed storage kept for reuse (not counted by mem_in_use). */
static int l_mem_cached(lua_State *L)
{
    lua_pushinteger(L, bn_mem_cached());
    return 1;
}

/* bn.mem_cache_limit() returns the cache's limit in bytes;
 * bn.mem_cache_limit(bytes) sets it (0 empties and disables the cache) and
 * returns the previous one. */
static int l_mem_cache_limit(lua_State *L)
{
    int64_t old = bn_mem_cache_limit();
    if (!lua_isnoneornil(L, 1)) bn_mem_set_cache_limit(lt_optint(L, 1, "mem_cache_limit", "bytes", 0, INT64_MAX, 0));
    lua_pushinteger(L, old);
    return 1;
}

/* Sentinel finalizer: the module table's state is closing. */
static int sentinel_gc(lua_State *L)
{
    (void)L;
    lt_autograd_close();
    memory_close();
    return 0;
}

void lt_open_memory(lua_State *L, int mod, int methods)
{
    (void)methods;
    static const luaL_Reg f[] = {
        {"mem_in_use", l_mem_in_use},
        {"mem_peak", l_mem_peak},
        {"mem_reset_peak", l_mem_reset_peak},
        {"mem_set_limit", l_mem_set_limit},
        {"mem_cached", l_mem_cached},
        {"mem_cache_limit", l_mem_cache_limit},
        {NULL, NULL},
    };
    lua_pushvalue(L, mod);
    luaL_setfuncs(L, f, 0);
    lua_pop(L, 1);

    /* A userdata kept in the registry whose __gc runs at lua_close. Made
     * before any tensor of this state, so it is finalized after them. Only
     * once per state: a second one replacing it would be collected early. */
    if (lua_getfield(L, LUA_REGISTRYINDEX, "bn.sentinel") != LUA_TNIL) {
        lua_pop(L, 1);
        lt_memory_init(L);
        return;
    }
    lua_pop(L, 1);
    lua_newuserdatauv(L, 1, 0);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, sentinel_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, "bn.sentinel");
    lt_memory_init(L);
}
