/* The seam between the bnlab program (main.c, repl.c) and the Lua bindings.
 * Together with main.c and repl.c, src/bindings/ is the only C that includes
 * lua.h; the core under src/ knows nothing about Lua. */
#ifndef BN_BINDINGS_H
#define BN_BINDINGS_H

#include <lua.h>

/* Opens the C half of the Lua library: returns (+1 on the stack) a table of
 * C functions, with the Tensor metatable registered. main.c installs it as
 * package.preload["bnlab.core"]; lua/bnlab/init.lua copies its fields into
 * the `bn` table that `require "bnlab"` returns. */
int luaopen_bnlab_core(lua_State *L);

#endif
