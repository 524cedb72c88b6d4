/* luaopen_bnlab_core: the C core as a Lua module. Returns a table of
 * functions (bn.zeros, bn.conv2d, ...) plus `Tensor`, the methods table
 * shared by every tensor, which lua/bnlab can extend with Lua methods. */
#include "bindings/bindings.h"
#include "bindings/luatensor.h"
#include "blas.h"

void lt_open_optim(lua_State *L, int mod, int methods); /* bindings/optim.c */
void lt_open_data(lua_State *L, int mod, int methods);  /* bindings/data.c */
void lt_open_process(lua_State *L, int mod, int methods); /* bindings/process.c */
void lt_open_interrupt(lua_State *L, int mod, int methods); /* bindings/interrupt.c */
void lt_open_profile(lua_State *L, int mod, int methods);   /* bindings/profile.c */

/* bn.num_threads([n]): sets the thread count (OpenBLAS and our kernels
 * share it) when n is given; returns the count in force. */
static int l_num_threads(lua_State *L)
{
    if (!lua_isnoneornil(L, 1)) bn_set_num_threads((int)lt_checkint(L, 1, "num_threads", "n", 1, 4096));
    lua_pushinteger(L, bn_get_num_threads());
    return 1;
}

static int l_blas_version(lua_State *L)
{
    lua_pushstring(L, bn_blas_version());
    return 1;
}

int luaopen_bnlab_core(lua_State *L)
{
    lua_newtable(L);
    int mod = lua_gettop(L);
    lua_newtable(L);
    int methods = lua_gettop(L);

    lt_open_tensor(L, mod, methods); /* first: the others add metamethods to its metatable */
    lt_open_creation(L, mod, methods);
    lt_open_views(L, mod, methods);
    lt_open_reduce(L, mod, methods);
    lt_open_arith(L, mod, methods);
    lt_open_ops(L, mod, methods);
    lt_open_autograd(L, mod, methods);
    lt_open_memory(L, mod, methods);
    lt_open_io(L, mod, methods);
    lt_open_system(L, mod, methods);
    lt_open_optim(L, mod, methods);
    lt_open_data(L, mod, methods);
    lt_open_process(L, mod, methods);
    lt_open_interrupt(L, mod, methods);
    lt_open_profile(L, mod, methods);
    lt_open_render(L, mod, methods);
    lt_open_linalg(L, mod, methods);
    lt_register(L, mod, 0, "num_threads", l_num_threads);
    lt_register(L, mod, 0, "blas_version", l_blas_version);

    lua_pushvalue(L, methods);
    lua_setfield(L, mod, "Tensor");
    lua_settop(L, mod);
    return 1;
}
