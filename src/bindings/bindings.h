/* The seam between the bnlab program (main.c, repl.c) and the Lua bindings.
 * Together with main.c and repl.c, src/bindings/ is the only C that includes
 * lua.h; the core under src/ knows nothing about Lua. */
#ifndef BN_BINDINGS_H
#define BN_BINDINGS_H

#include <stdbool.h>

#include <lua.h>

/* Opens the C half of the Lua library: returns (+1 on the stack) a table of
 * C functions, with the Tensor metatable registered. main.c installs it as
 * package.preload["bnlab.core"]; lua/bnlab/init.lua copies its fields into
 * the `bn` table that `require "bnlab"` returns. */
int luaopen_bnlab_core(lua_State *L);

/* Deferred interrupts (bindings/interrupt.c, docs/train.md). The command's
 * SIGINT/SIGTERM handler calls lt_interrupt_defer first: true means Lua code
 * holds a bn.defer_interrupts() token and the signal was recorded for it to
 * poll, so the handler must do nothing else (async-signal-safe). False: no
 * token, or a signal is already pending; handle it as usual. */
bool lt_interrupt_defer(int sig);
/* The signal carried by the error object at idx when it is the error that
 * bn.raise_interrupt raised last (exit status 128 + signal), else 0. Does
 * not raise or allocate: safe in a message handler. */
int lt_interrupt_error_signal(lua_State *L, int idx);

#endif
