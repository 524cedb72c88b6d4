/* Tensors in and out of files: NumPy .npy (bn.save, bn.load), so a Python
 * user can read what a script wrote and the other way round. */
#include <string.h>

#include "bindings/luatensor.h"
#include "data/npy.h"

static const char *check_path(lua_State *L, int arg, const char *fn)
{
    const char *path = lt_checkstr(L, arg, fn, "path");
    if (strlen(path) != lua_rawlen(L, arg)) lt_error(L, fn, "argument #%d (path) must not contain a zero byte", arg);
    if (!*path) lt_argerror(L, fn, arg, "path", "a non-empty file name");
    return path;
}

static int l_save(lua_State *L)
{
    bn_tensor *t = lt_check(L, 1, "save", "tensor");
    const char *path = check_path(L, 2, "save");
    if (bn_npy_save(t, path) != BN_OK) lt_core_error(L, "save");
    return 0;
}

static int l_load(lua_State *L)
{
    const char *path = check_path(L, 1, "load");
    lt_box *b = lt_newbox(L);
    LT_RUN(L, b, bn_npy_load(path));
    return lt_done(L, b, "load");
}

void lt_open_io(lua_State *L, int mod, int methods)
{
    (void)methods;
    lt_register(L, mod, 0, "save", l_save);
    lt_register(L, mod, 0, "load", l_load);
}
