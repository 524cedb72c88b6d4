/* Internal helpers shared by the binding files: the Tensor userdata, argument
 * checks that name the function and the argument, and raising core errors.
 *
 * Conventions every binding follows:
 *  - `fn` is the user-visible name without the "bn." prefix ("zeros",
 *    "conv2d", "sum"); messages read "bn.<fn>: ...".
 *  - Arguments are checked before anything is allocated.
 *  - A result box is pushed *before* the core call (lt_newbox) and the core
 *    result stored in it, so a Lua error raised afterwards (even a memory
 *    error while pushing) can never leak a tensor: the box's __gc owns it.
 *  - Scratch memory goes into Lua userdata, never malloc, for the same
 *    reason.
 *  - Lua-side dims and indices are 1-based (negative counts from the end);
 *    the core's are 0-based. lt_checkdim converts. */
#ifndef BN_LUATENSOR_H
#define BN_LUATENSOR_H

#include <lauxlib.h>
#include <lua.h>

#include "tensor.h"

#define LT_TENSOR_MT "bn.Tensor"

/* The userdata: one reference to a core tensor, NULL once closed. */
typedef struct lt_box {
    bn_tensor *t;
} lt_box;

/* ---- tensors (tensor.c) --------------------------------------------------- */
/* Pushes an empty Tensor userdata; store a +1 reference in ->t. */
lt_box *lt_newbox(lua_State *L);
/* Finishes a binding that stored a core result in `b`: raises the core error
 * (naming fn) when b->t is NULL, else gives the collector its chance (see
 * memory.c) and returns 1. */
int lt_done(lua_State *L, lt_box *b, const char *fn);
/* The tensor at arg, or a Lua error: "bn.<fn>: argument #<arg> (<name>)
 * expected a tensor, got ..." or "... argument #<arg> is a closed tensor". */
bn_tensor *lt_check(lua_State *L, int arg, const char *fn, const char *name);
/* Same, but nil/none gives NULL. */
bn_tensor *lt_opt(lua_State *L, int arg, const char *fn, const char *name);
/* The tensor at idx or NULL when it is not a live tensor (no error). */
bn_tensor *lt_test(lua_State *L, int idx);
/* Registers the Tensor metatable and fills the methods table at `methods`. */
void lt_open_tensor(lua_State *L, int mod, int methods);

/* ---- errors and argument checks (check.c) --------------------------------- */
/* Raises "bn.<fn>: <core message>" (the core's own "op:" prefix is kept and
 * not doubled when it already equals fn). */
int lt_core_error(lua_State *L, const char *fn) __attribute__((noreturn));
/* Raises "bn.<fn>: <formatted message>". */
int lt_error(lua_State *L, const char *fn, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));
/* Raises "bn.<fn>: argument #<arg> [(<name>)] expected <expected>, got <what is there>". */
int lt_argerror(lua_State *L, const char *fn, int arg, const char *name, const char *expected)
    __attribute__((noreturn));
/* A short description of the value at idx ("string 'x'", "number nan",
 * "tensor [2 x 3]", "nil") for messages, in buf. */
const char *lt_describe(lua_State *L, int idx, char *buf, size_t size);

/* An integer (a float with an integral value is accepted) in [lo, hi]. */
int64_t lt_checkint(lua_State *L, int arg, const char *fn, const char *name, int64_t lo, int64_t hi);
int64_t lt_optint(lua_State *L, int arg, const char *fn, const char *name, int64_t lo, int64_t hi, int64_t def);
/* A number (NaN allowed only when nan_ok). */
double lt_checknum(lua_State *L, int arg, const char *fn, const char *name, bool nan_ok);
double lt_optnum(lua_State *L, int arg, const char *fn, const char *name, bool nan_ok, double def);
/* A boolean (strictly: nil/none gives def, other types are errors). */
bool lt_optbool(lua_State *L, int arg, const char *fn, const char *name, bool def);
const char *lt_checkstr(lua_State *L, int arg, const char *fn, const char *name);
void lt_checkfunc(lua_State *L, int arg, const char *fn, const char *name);

/* A 1-based (or negative) Lua dim for a tensor of ndim dims -> 0-based.
 * extra = 1 allows one past the end (unsqueeze, stack). A 0-d tensor is
 * treated as having one dim, like the core and PyTorch. */
int lt_checkdim(lua_State *L, int arg, const char *fn, int ndim, int extra);
int lt_optdim(lua_State *L, int arg, const char *fn, int ndim, int extra, int def0);
/* Converts a Lua dim value already known to be an integer. Returns -1 when
 * out of range (no error raised). */
int lt_dim_convert(int64_t d, int ndim, int extra);

/* Sizes given as varargs from `first` to the top, or as one table at
 * `first`. `minus_one`: 0 no -1 entries, 1 at most one (view, reshape: it
 * is inferred), 2 any number (expand: -1 keeps a size). Fills
 * shape[BN_MAX_DIMS], returns ndim. Checks each entry and that the product
 * stays within the core's element limit, so nothing later can overflow. */
int lt_checksizes(lua_State *L, int first, int last, const char *fn, int64_t *shape, int minus_one);
/* Dims (a permutation) as varargs or a table, converted to 0-based. */
int lt_checkdims(lua_State *L, int first, const char *fn, int ndim, int *dims);

/* Options tables: a field of the table at `opts` (may be nil/none). */
bool lt_opt_field(lua_State *L, int opts, const char *field); /* pushes it; false (and nothing pushed) when absent */
/* A field holding a number or a pair {h, w}, each an integer in [lo, hi]. */
void lt_opt_pair(lua_State *L, int opts, const char *fn, const char *field, int lo, int hi, int *h, int *w);
/* An argument holding a number or a pair {h, w} (kernel sizes). */
void lt_check_pair(lua_State *L, int arg, const char *fn, const char *name, int64_t lo, int64_t hi, int64_t *h,
                   int64_t *w);
/* Rejects keys of an options table that are not in `known` (NULL-ended):
 * a misspelt option (strid = 2) must not be silently ignored. */
void lt_check_opts(lua_State *L, int opts, const char *fn, const char *const *known);

/* ---- memory (memory.c) ----------------------------------------------------- */
/* Starts observing core allocations (idempotent). */
void lt_memory_init(lua_State *L);
/* Runs the collector when tensor allocations since the last collection
 * passed the threshold. Safe to call anywhere a Lua API call is allowed. */
void lt_memory_check(lua_State *L);

/* After a core call failed: when it failed for lack of memory and a full
 * collection freed some (dead tensors the collector had not reached yet),
 * returns true so the caller tries once more. */
bool lt_collect_for_retry(lua_State *L);
/* box->t = expr, retried once after a collection when memory ran out. Only
 * for core calls that change nothing when they fail (not batch_norm, which
 * updates running stats, nor dropout, which draws random numbers). */
#define LT_RUN(L, box, expr)                                                  \
    do {                                                                      \
        (box)->t = (expr);                                                    \
        if (!(box)->t && lt_collect_for_retry(L)) (box)->t = (expr);          \
    } while (0)

/* ---- callbacks into Lua (autograd.c) --------------------------------------- */
/* The lua_State that core callbacks (hooks) run Lua code in: the thread
 * (coroutine) of the binding call that entered the core. */
lua_State *lt_enter(lua_State *L); /* returns the previous one, for lt_leave */
void lt_leave(lua_State *prev);
/* After a core call that may have run Lua hooks failed: re-raises the hook's
 * own error (prefixed with bn.<fn>) when one is pending, else the core error. */
int lt_hook_or_core_error(lua_State *L, const char *fn) __attribute__((noreturn));
/* Removes pattern hooks whose removal was asked while a hook ran. */
void lt_flush_deferred_hooks(void);
/* Drops registry references of hooks the core has freed (queued, because
 * the core frees them where touching Lua is unsafe). */
void lt_drain_refs(lua_State *L);
/* At lua_close: removes this state's pattern hooks, frees queues. */
void lt_autograd_close(void);

/* ---- registration ------------------------------------------------------------ */
/* Each file adds its functions to the module table at `mod` and, where
 * they make sense as methods, to the methods table at `methods`. */
void lt_open_creation(lua_State *L, int mod, int methods);
void lt_open_views(lua_State *L, int mod, int methods);
void lt_open_reduce(lua_State *L, int mod, int methods);
void lt_open_arith(lua_State *L, int mod, int methods);
void lt_open_ops(lua_State *L, int mod, int methods);
void lt_open_autograd(lua_State *L, int mod, int methods);
void lt_open_memory(lua_State *L, int mod, int methods);
void lt_open_io(lua_State *L, int mod, int methods);
void lt_open_system(lua_State *L, int mod, int methods);
void lt_open_render(lua_State *L, int mod, int methods);
void lt_open_linalg(lua_State *L, int mod, int methods);

/* Sets t[name] = f at both tables (methods may be 0 to skip it). */
void lt_register(lua_State *L, int mod, int methods, const char *name, lua_CFunction f);

#endif
