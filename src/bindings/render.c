/* bn.render: the drawing primitives under bn.plot (lua/bnlab/plot/), for
 * scripts that want to draw something the plot functions do not.
 *
 *   local c <close> = bn.render.canvas(800, 600)          -- white
 *   c:fill_rect(10, 10, 110, 60, "#1f77b4", 0.5)
 *   c:polyline({10, 200, 390}, {300, 100, 250}, 0xd62728, 2)
 *   c:text("hello", 400, 40, {size = 16, halign = "center", valign = "top"})
 *   c:heatmap(bn.randn(8, 8), 100, 100, 300, 300, {cmap = "magma"})
 *   c:save_png("out.png", {{"Title", "demo"}})
 *
 * Pixel coordinates: origin top-left, x right, y down, pixel (i, j) covers
 * [i, i+1) x [j, j+1). Colours: 0xRRGGBB integers or "#rrggbb" strings.
 * The canvas lives in C memory, freed by close() / <close> / the collector. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bindings/luatensor.h"
#include "render/binning.h"
#include "render/canvas.h"
#include "render/colormap.h"
#include "render/heatmap.h"
#include "render/png.h"
#include "render/text.h"

#define CANVAS_MT "bn.Canvas"
#define FONT_KEY "bnlab.render.font"

typedef struct lr_canvas {
    bn_canvas *c;
} lr_canvas;

/* Raises "bn.render.<fn>: <core message>", dropping the core's own "op: "
 * prefix (the binding's name says where it came from). */
static int render_core_error(lua_State *L, const char *fn)
{
    const char *msg = bn_last_error();
    if (!msg || !*msg) msg = "failed (no message from the core)";
    const char *colon = strstr(msg, ": ");
    if (colon && colon - msg < 16 && !memchr(msg, ' ', (size_t)(colon - msg))) msg = colon + 2;
    return lt_error(L, fn, "%s", msg);
}

/* ---- argument helpers ---------------------------------------------------------- */

static bn_canvas *check_canvas(lua_State *L, int arg, const char *fn)
{
    lr_canvas *b = luaL_testudata(L, arg, CANVAS_MT);
    if (!b) lt_argerror(L, fn, arg, "canvas", "a canvas");
    if (!b->c) lt_error(L, fn, "argument #%d is a closed canvas", arg);
    return b->c;
}

static uint32_t check_color(lua_State *L, int arg, const char *fn, const char *name)
{
    if (lua_isinteger(L, arg)) {
        lua_Integer v = lua_tointeger(L, arg);
        if (v >= 0 && v <= 0xFFFFFF) return (uint32_t)v;
    } else if (lua_type(L, arg) == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, arg, &n);
        if ((n == 7 || n == 4) && s[0] == '#' && strspn(s + 1, "0123456789abcdefABCDEF") == n - 1) {
            unsigned long v = strtoul(s + 1, NULL, 16);
            if (n == 4) /* #rgb -> #rrggbb */
                v = ((v & 0xF00) << 12 | (v & 0xF00) << 8) | ((v & 0x0F0) << 8 | (v & 0x0F0) << 4) |
                    ((v & 0x00F) << 4 | (v & 0x00F));
            return (uint32_t)v;
        }
    }
    lt_argerror(L, fn, arg, name, "a colour (0xRRGGBB or \"#rrggbb\")");
}

static float opt_alpha(lua_State *L, int arg, const char *fn)
{
    double a = lt_optnum(L, arg, fn, "alpha", false, 1.0);
    if (a < 0.0 || a > 1.0) lt_argerror(L, fn, arg, "alpha", "a number in [0, 1]");
    return (float)a;
}

static double check_coord(lua_State *L, int arg, const char *fn, const char *name)
{
    return lt_checknum(L, arg, fn, name, true); /* NaN/Inf are drawn as nothing */
}

/* The numbers of the array at arg as doubles in a Lua-owned buffer. */
static double *check_numbers(lua_State *L, int arg, const char *fn, const char *name, int *n)
{
    luaL_checktype(L, arg, LUA_TTABLE);
    lua_Integer len = luaL_len(L, arg);
    if (len < 0 || len > 100000000) lt_argerror(L, fn, arg, name, "an array of at most 1e8 numbers");
    double *v = lua_newuserdatauv(L, sizeof(double) * (size_t)(len ? len : 1), 0);
    for (lua_Integer i = 1; i <= len; i++) {
        int t = lua_rawgeti(L, arg, i);
        if (t != LUA_TNUMBER)
            lt_error(L, fn, "argument #%d (%s) expected an array of numbers, entry %lld is a %s", arg, name,
                     (long long)i, lua_typename(L, t));
        v[i - 1] = lua_tonumber(L, -1);
        lua_pop(L, 1);
    }
    *n = (int)len;
    return v;
}

/* The contents of a tensor, row-major, in a Lua-owned buffer. */
static float *tensor_values(lua_State *L, bn_tensor *t, int64_t *n)
{
    *n = bn_tensor_numel(t);
    float *v = lua_newuserdatauv(L, sizeof(float) * (size_t)(*n ? *n : 1), 0);
    bn_tensor_read(t, v);
    return v;
}

static bool opt_str_field(lua_State *L, int opts, const char *fn, const char *field, const char **out)
{
    if (!lt_opt_field(L, opts, field)) return false;
    if (lua_type(L, -1) != LUA_TSTRING) {
        char buf[96];
        lt_error(L, fn, "option '%s' expected a string, got %s", field, lt_describe(L, -1, buf, sizeof buf));
    }
    *out = lua_tostring(L, -1); /* stays referenced by the options table */
    lua_pop(L, 1);
    return true;
}

static bool opt_num_field(lua_State *L, int opts, const char *fn, const char *field, double *out)
{
    if (!lt_opt_field(L, opts, field)) return false;
    if (lua_type(L, -1) != LUA_TNUMBER) {
        char buf[96];
        lt_error(L, fn, "option '%s' expected a number, got %s", field, lt_describe(L, -1, buf, sizeof buf));
    }
    *out = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return true;
}

static int choose(lua_State *L, const char *fn, const char *field, const char *value, const char *const *names)
{
    char list[128] = "";
    for (int i = 0; names[i]; i++) {
        if (strcmp(value, names[i]) == 0) return i;
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, names[i], sizeof list - strlen(list) - 1);
    }
    return lt_error(L, fn, "option '%s' expected one of %s, got '%s'", field, list, value);
}

/* ---- the font: one per Lua state, loaded on first use --------------------------- */

static int font_gc(lua_State *L)
{
    bn_font **f = lua_touserdata(L, 1);
    bn_font_free(*f);
    *f = NULL;
    return 0;
}

static bn_font *get_font(lua_State *L, const char *fn)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, FONT_KEY) == LUA_TUSERDATA) {
        bn_font *f = *(bn_font **)lua_touserdata(L, -1);
        lua_pop(L, 1);
        return f;
    }
    lua_pop(L, 1);
    const char *path = bn_font_find();
    if (!path) render_core_error(L, fn);
    bn_font **slot = lua_newuserdatauv(L, sizeof *slot, 0);
    *slot = NULL;
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, font_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    *slot = bn_font_open(path);
    if (!*slot) render_core_error(L, fn);
    lua_setfield(L, LUA_REGISTRYINDEX, FONT_KEY);
    return *slot;
}

/* bn.render.font() -> the path of the font in use (loads it; raises when none). */
static int l_font(lua_State *L)
{
    lua_pushstring(L, bn_font_path(get_font(L, "render.font")));
    return 1;
}

/* ---- canvas lifetime ------------------------------------------------------------- */

static lr_canvas *push_canvas(lua_State *L)
{
    lr_canvas *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->c = NULL;
    luaL_setmetatable(L, CANVAS_MT);
    return b;
}

/* bn.render.canvas(width, height [, background]) */
static int l_canvas(lua_State *L)
{
    const char *fn = "render.canvas";
    int w = (int)lt_checkint(L, 1, fn, "width", 1, BN_CANVAS_MAX_SIDE);
    int h = (int)lt_checkint(L, 2, fn, "height", 1, BN_CANVAS_MAX_SIDE);
    uint32_t bg = lua_isnoneornil(L, 3) ? 0xFFFFFF : check_color(L, 3, fn, "background");
    lr_canvas *b = push_canvas(L);
    b->c = bn_canvas_new(w, h, bg);
    if (!b->c) render_core_error(L, fn);
    return 1;
}

static int c_close(lua_State *L)
{
    lr_canvas *b = luaL_checkudata(L, 1, CANVAS_MT);
    bn_canvas_free(b->c);
    b->c = NULL;
    return 0;
}

static int c_tostring(lua_State *L)
{
    lr_canvas *b = luaL_checkudata(L, 1, CANVAS_MT);
    if (b->c) lua_pushfstring(L, "canvas %d x %d", b->c->width, b->c->height);
    else lua_pushliteral(L, "canvas (closed)");
    return 1;
}

static int c_size(lua_State *L)
{
    bn_canvas *c = check_canvas(L, 1, "render.size");
    lua_pushinteger(L, c->width);
    lua_pushinteger(L, c->height);
    return 2;
}

/* c:pixel(x, y) -> r, g, b (0-based pixel coordinates) */
static int c_pixel(lua_State *L)
{
    const char *fn = "render.pixel";
    bn_canvas *c = check_canvas(L, 1, fn);
    int x = (int)lt_checkint(L, 2, fn, "x", 0, c->width - 1);
    int y = (int)lt_checkint(L, 3, fn, "y", 0, c->height - 1);
    uint32_t v = bn_canvas_get(c, x, y);
    lua_pushinteger(L, v >> 16);
    lua_pushinteger(L, (v >> 8) & 0xFF);
    lua_pushinteger(L, v & 0xFF);
    return 3;
}

/* c:clip(x0, y0, x1, y1) limits drawing; c:clip() draws everywhere again. */
static int c_clip(lua_State *L)
{
    const char *fn = "render.clip";
    bn_canvas *c = check_canvas(L, 1, fn);
    if (lua_isnoneornil(L, 2)) {
        bn_canvas_reset_clip(c);
        return 0;
    }
    double v[4];
    static const char *const names[] = {"x0", "y0", "x1", "y1"};
    for (int i = 0; i < 4; i++) {
        v[i] = lt_checknum(L, 2 + i, fn, names[i], false);
        if (fabs(v[i]) > 1e9) lt_argerror(L, fn, 2 + i, names[i], "a pixel coordinate within 1e9");
    }
    bn_canvas_set_clip(c, (int)floor(v[0]), (int)floor(v[1]), (int)ceil(v[2]), (int)ceil(v[3]));
    return 0;
}

/* ---- drawing ---------------------------------------------------------------------- */

static int c_fill_rect(lua_State *L)
{
    const char *fn = "render.fill_rect";
    bn_canvas *c = check_canvas(L, 1, fn);
    double x0 = check_coord(L, 2, fn, "x0"), y0 = check_coord(L, 3, fn, "y0");
    double x1 = check_coord(L, 4, fn, "x1"), y1 = check_coord(L, 5, fn, "y1");
    uint32_t color = check_color(L, 6, fn, "color");
    bn_canvas_fill_rect(c, x0, y0, x1, y1, color, opt_alpha(L, 7, fn));
    return 0;
}

/* c:polyline(xs, ys, color, width [, alpha [, dash]]): NaN points break the line. */
static int c_polyline(lua_State *L)
{
    const char *fn = "render.polyline";
    lua_settop(L, 7); /* scratch buffers get pushed above the arguments */
    bn_canvas *c = check_canvas(L, 1, fn);
    int nx, ny, nd = 0;
    double *xs = check_numbers(L, 2, fn, "xs", &nx);
    double *ys = check_numbers(L, 3, fn, "ys", &ny);
    if (nx != ny) lt_error(L, fn, "xs and ys expected the same length, got %d and %d", nx, ny);
    uint32_t color = check_color(L, 4, fn, "color");
    double width = lt_checknum(L, 5, fn, "width", false);
    if (!(width > 0.0) || width > 1000.0) lt_argerror(L, fn, 5, "width", "a line width in (0, 1000] px");
    float alpha = opt_alpha(L, 6, fn);
    double *dash = lua_isnoneornil(L, 7) ? NULL : check_numbers(L, 7, fn, "dash", &nd);
    bn_stroke s = {color, alpha, width, dash, nd};
    if (bn_canvas_polyline(c, xs, ys, nx, &s) != BN_OK) render_core_error(L, fn);
    return 0;
}

static int c_polygon(lua_State *L)
{
    const char *fn = "render.polygon";
    lua_settop(L, 5); /* scratch buffers get pushed above the arguments */
    bn_canvas *c = check_canvas(L, 1, fn);
    int nx, ny;
    double *xs = check_numbers(L, 2, fn, "xs", &nx);
    double *ys = check_numbers(L, 3, fn, "ys", &ny);
    if (nx != ny) lt_error(L, fn, "xs and ys expected the same length, got %d and %d", nx, ny);
    uint32_t color = check_color(L, 4, fn, "color");
    if (bn_canvas_fill_polygon(c, xs, ys, nx, color, opt_alpha(L, 5, fn)) != BN_OK) render_core_error(L, fn);
    return 0;
}

/* c:marker(x, y, shape, size, color [, alpha]) */
static int c_marker(lua_State *L)
{
    const char *fn = "render.marker";
    bn_canvas *c = check_canvas(L, 1, fn);
    double x = check_coord(L, 2, fn, "x"), y = check_coord(L, 3, fn, "y");
    size_t len;
    const char *shape = lt_checkstr(L, 4, fn, "shape");
    len = strlen(shape);
    if (len != 1 || !bn_canvas_marker_known(shape[0]))
        lt_argerror(L, fn, 4, "shape", "one of \"o\", \"s\", \"^\", \"v\", \"D\", \"x\", \"+\", \".\"");
    double size = lt_checknum(L, 5, fn, "size", false);
    if (!(size > 0.0) || size > 1000.0) lt_argerror(L, fn, 5, "size", "a size in (0, 1000] px");
    uint32_t color = check_color(L, 6, fn, "color");
    if (bn_canvas_marker(c, x, y, shape[0], size, color, opt_alpha(L, 7, fn)) != BN_OK) render_core_error(L, fn);
    return 0;
}

static const char *const halign_names[] = {"left", "center", "right", NULL};
static const char *const valign_names[] = {"baseline", "top", "middle", "bottom", NULL};

static double opt_size(lua_State *L, int opts, const char *fn, double def)
{
    double size = def;
    if (opt_num_field(L, opts, fn, "size", &size) && !(size > 0.0 && size <= 2000.0))
        lt_error(L, fn, "option 'size' expected a size in (0, 2000] px, got %g", size);
    return size;
}

/* c:text(str, x, y [, {size = 13, color = 0, halign = "left", valign = "baseline", rotate = 0}]) */
static int c_text(lua_State *L)
{
    const char *fn = "render.text";
    bn_canvas *c = check_canvas(L, 1, fn);
    const char *s = lt_checkstr(L, 2, fn, "text");
    double x = check_coord(L, 3, fn, "x"), y = check_coord(L, 4, fn, "y");
    static const char *const known[] = {"size", "color", "halign", "valign", "rotate", NULL};
    lt_check_opts(L, 5, fn, known);
    double size = opt_size(L, 5, fn, 13.0);
    uint32_t color = 0;
    if (lt_opt_field(L, 5, "color")) {
        color = check_color(L, lua_gettop(L), fn, "color");
        lua_pop(L, 1);
    }
    const char *ha = "left", *va = "baseline";
    opt_str_field(L, 5, fn, "halign", &ha);
    opt_str_field(L, 5, fn, "valign", &va);
    int h = choose(L, fn, "halign", ha, halign_names), v = choose(L, fn, "valign", va, valign_names);
    double rot = 0.0;
    if (opt_num_field(L, 5, fn, "rotate", &rot) && rot != 0.0 && rot != 90.0)
        lt_error(L, fn, "option 'rotate' expected 0 or 90, got %g", rot);
    bn_font *f = get_font(L, fn);
    if (bn_canvas_text(c, f, s, size, x, y, color, h, v, (int)rot) != BN_OK) render_core_error(L, fn);
    return 0;
}

/* c:text_size(str [, size]) -> width, ascent, descent, cap_height (px); also bn.render.text_size */
static int l_text_size(lua_State *L)
{
    const char *fn = "render.text_size";
    int base = luaL_testudata(L, 1, CANVAS_MT) ? 2 : 1;
    const char *s = lt_checkstr(L, base, fn, "text");
    double size = lt_optnum(L, base + 1, fn, "size", false, 13.0);
    if (!(size > 0.0 && size <= 2000.0)) lt_argerror(L, fn, base + 1, "size", "a size in (0, 2000] px");
    bn_text_extent e;
    if (bn_text_measure(get_font(L, fn), s, size, &e) != BN_OK) render_core_error(L, fn);
    lua_pushnumber(L, e.width);
    lua_pushnumber(L, e.ascent);
    lua_pushnumber(L, e.descent);
    lua_pushnumber(L, e.cap_height);
    return 4;
}

/* A colour map by name; `what` names the argument or option in the message. */
static void check_cmap(lua_State *L, const char *fn, const char *what, const char *name, bn_colormap *cm)
{
    if (bn_colormap_find(name, cm) != BN_OK)
        lt_error(L, fn, "%s expected a colour map name (%s), got '%s'", what, bn_colormap_names(), name);
}

static void check_cmap_arg(lua_State *L, int arg, const char *fn, bn_colormap *cm)
{
    char what[32];
    snprintf(what, sizeof what, "argument #%d (cmap)", arg);
    check_cmap(L, fn, what, lt_checkstr(L, arg, fn, "cmap"), cm);
}

/* c:heatmap(t, x0, y0, x1, y1 [, {cmap = "viridis", vmin, vmax, log = false, nan_color = 0xd9d9d9}])
 * vmin/vmax default to the range of the finite (on a log scale: positive) values. */
static int c_heatmap(lua_State *L)
{
    const char *fn = "render.heatmap";
    lua_settop(L, 7); /* scratch buffers get pushed above the arguments */
    bn_canvas *c = check_canvas(L, 1, fn);
    bn_tensor *t = lt_check(L, 2, fn, "matrix");
    if (t->ndim != 2) {
        char buf[96];
        lt_error(L, fn, "argument #2 expected a 2-D tensor, got %s", lt_describe(L, 2, buf, sizeof buf));
    }
    double x0 = lt_checknum(L, 3, fn, "x0", false), y0 = lt_checknum(L, 4, fn, "y0", false);
    double x1 = lt_checknum(L, 5, fn, "x1", false), y1 = lt_checknum(L, 6, fn, "y1", false);
    static const char *const known[] = {"cmap", "vmin", "vmax", "log", "nan_color", NULL};
    lt_check_opts(L, 7, fn, known);
    const char *cmap = "viridis";
    opt_str_field(L, 7, fn, "cmap", &cmap);
    bn_color_scale s = {.nan_color = 0xD9D9D9};
    check_cmap(L, fn, "option 'cmap'", cmap, &s.cmap);
    if (lt_opt_field(L, 7, "log")) {
        if (!lua_isboolean(L, -1)) lt_error(L, fn, "option 'log' expected a boolean");
        s.log = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    if (lt_opt_field(L, 7, "nan_color")) {
        s.nan_color = check_color(L, lua_gettop(L), fn, "nan_color");
        lua_pop(L, 1);
    }
    int64_t n;
    float *v = tensor_values(L, t, &n);
    bn_value_range r;
    bn_value_range_of(v, n, s.log, &r);
    s.vmin = r.used ? r.lo : (s.log ? 1.0 : 0.0);
    s.vmax = r.used ? r.hi : (s.log ? 10.0 : 1.0);
    bool has_vmin = opt_num_field(L, 7, fn, "vmin", &s.vmin);
    bool has_vmax = opt_num_field(L, 7, fn, "vmax", &s.vmax);
    if (!has_vmin && !has_vmax && s.vmin == s.vmax) { /* a constant matrix: its colour mid-map */
        if (s.log) {
            s.vmin /= 10.0;
            s.vmax *= 10.0;
        } else {
            double d = fabs(s.vmin) > 0 ? fabs(s.vmin) * 0.1 : 1.0;
            s.vmin -= d;
            s.vmax += d;
        }
    }
    if (bn_canvas_heatmap(c, v, t->shape[0], t->shape[1], x0, y0, x1, y1, &s) != BN_OK) render_core_error(L, fn);
    return 0;
}

/* c:colorbar(x0, y0, x1, y1, cmap): the map as a vertical gradient, low end at the bottom. */
static int c_colorbar(lua_State *L)
{
    const char *fn = "render.colorbar";
    bn_canvas *c = check_canvas(L, 1, fn);
    double x0 = lt_checknum(L, 2, fn, "x0", false), y0 = lt_checknum(L, 3, fn, "y0", false);
    double x1 = lt_checknum(L, 4, fn, "x1", false), y1 = lt_checknum(L, 5, fn, "y1", false);
    bn_colormap cm;
    if (lua_isnoneornil(L, 6)) check_cmap(L, fn, "cmap", "viridis", &cm);
    else check_cmap_arg(L, 6, fn, &cm);
    if (bn_canvas_colorbar(c, x0, y0, x1, y1, &cm) != BN_OK) render_core_error(L, fn);
    return 0;
}

/* c:save_png(path [, text]): text is a list of {key, value} pairs (written in
 * that order) and/or a table key = value (written sorted by key). */
static int c_save_png(lua_State *L)
{
    const char *fn = "render.save_png";
    bn_canvas *c = check_canvas(L, 1, fn);
    const char *path = lt_checkstr(L, 2, fn, "path");
    if (!*path || strlen(path) != lua_rawlen(L, 2)) lt_argerror(L, fn, 2, "path", "a non-empty file name");
    int has = !lua_isnoneornil(L, 3);
    if (has) luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);
    /* collect keys and values on a list at 4: pairs first, then sorted named keys */
    lua_newtable(L);
    int list = 4, n = 0;
    if (has) {
        lua_Integer len = luaL_len(L, 3);
        for (lua_Integer i = 1; i <= len; i++) {
            lua_rawgeti(L, 3, i);
            if (!lua_istable(L, -1)) lt_error(L, fn, "text entry %lld expected a {key, value} pair", (long long)i);
            lua_rawgeti(L, -1, 1);
            lua_rawgeti(L, -2, 2);
            if (lua_type(L, -2) != LUA_TSTRING || (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER))
                lt_error(L, fn, "text entry %lld expected a {key, value} pair of strings", (long long)i);
            lua_tostring(L, -1);
            lua_rawseti(L, list, ++n * 2);
            lua_rawseti(L, list, n * 2 - 1);
            lua_pop(L, 1);
        }
        lua_newtable(L); /* named keys, sorted */
        int names = lua_gettop(L), m = 0;
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            lua_pop(L, 1);
            if (lua_type(L, -1) == LUA_TSTRING) {
                lua_pushvalue(L, -1);
                lua_rawseti(L, names, ++m);
            } else if (!lua_isinteger(L, -1)) {
                lt_error(L, fn, "text keys expected strings");
            }
        }
        lua_getglobal(L, "table");
        lua_getfield(L, -1, "sort");
        lua_pushvalue(L, names);
        lua_call(L, 1, 0);
        lua_pop(L, 1);
        for (int i = 1; i <= m; i++) {
            lua_rawgeti(L, names, i);
            lua_pushvalue(L, -1);
            lua_gettable(L, 3);
            if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
                lt_error(L, fn, "text '%s' expected a string value", lua_tostring(L, -2));
            lua_tostring(L, -1);
            lua_rawseti(L, list, ++n * 2);
            lua_rawseti(L, list, n * 2 - 1);
        }
        lua_pop(L, 1);
    }
    bn_png_text *text = lua_newuserdatauv(L, sizeof(bn_png_text) * (size_t)(n ? n : 1), 0);
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, list, 2 * i + 1);
        text[i].key = lua_tostring(L, -1);
        lua_rawgeti(L, list, 2 * i + 2);
        text[i].value = lua_tostring(L, -1);
        if (strlen(text[i].value) != lua_rawlen(L, -1))
            lt_error(L, fn, "text '%s' must not contain a zero byte", text[i].key);
        lua_pop(L, 2); /* both strings stay referenced by the list */
    }
    if (bn_png_write(path, c, text, n) != BN_OK) render_core_error(L, fn);
    return 0;
}

/* ---- reading and numbers ------------------------------------------------------------ */

/* bn.render.read_png(path) -> canvas, {key = value} of its text chunks */
static int l_read_png(lua_State *L)
{
    const char *fn = "render.read_png";
    const char *path = lt_checkstr(L, 1, fn, "path");
    lr_canvas *b = push_canvas(L);
    bn_png_text *text;
    int n;
    b->c = bn_png_read(path, &text, &n);
    if (!b->c) render_core_error(L, fn);
    lua_createtable(L, 0, n);
    for (int i = 0; i < n; i++) {
        lua_pushstring(L, text[i].value);
        lua_setfield(L, -2, text[i].key);
    }
    bn_png_text_free(text, n);
    return 2;
}

/* bn.render.colormap(name, t) -> r, g, b: the map's colour at t in [0, 1]. */
static int l_colormap(lua_State *L)
{
    const char *fn = "render.colormap";
    bn_colormap cm;
    check_cmap_arg(L, 1, fn, &cm);
    double t = lt_checknum(L, 2, fn, "t", true);
    uint32_t v = bn_colormap_at(&cm, t);
    lua_pushinteger(L, v >> 16);
    lua_pushinteger(L, (v >> 8) & 0xFF);
    lua_pushinteger(L, v & 0xFF);
    return 3;
}

static int l_colormaps(lua_State *L)
{
    lua_pushstring(L, bn_colormap_names());
    return 1;
}

/* bn.render.range(t [, positive_only]) -> {lo =, hi =, used =, nan =, posinf =,
 * neginf =, nonpositive =}: lo and hi over the finite (and, when
 * positive_only, positive) values; nil when there are none. */
static int l_range(lua_State *L)
{
    const char *fn = "render.range";
    lua_settop(L, 2); /* scratch buffers get pushed above the arguments */
    bn_tensor *t = lt_check(L, 1, fn, "values");
    bool pos = lt_optbool(L, 2, fn, "positive_only", false);
    int64_t n;
    float *v = tensor_values(L, t, &n);
    bn_value_range r;
    bn_value_range_of(v, n, pos, &r);
    lua_createtable(L, 0, 7);
    if (r.used) {
        lua_pushnumber(L, r.lo);
        lua_setfield(L, -2, "lo");
        lua_pushnumber(L, r.hi);
        lua_setfield(L, -2, "hi");
    }
    const struct {
        const char *name;
        int64_t v;
    } counts[] = {{"used", r.used}, {"nan", r.nan}, {"posinf", r.posinf}, {"neginf", r.neginf},
                  {"nonpositive", r.nonpositive}};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        lua_pushinteger(L, counts[i].v);
        lua_setfield(L, -2, counts[i].name);
    }
    return 1;
}

/* bn.render.histogram(t, lo, hi, bins [, logbins]) -> counts, edges,
 * {in_range, outside, nonfinite, nonpositive} */
static int l_histogram(lua_State *L)
{
    const char *fn = "render.histogram";
    lua_settop(L, 5); /* scratch buffers get pushed above the arguments */
    bn_tensor *t = lt_check(L, 1, fn, "values");
    double lo = lt_checknum(L, 2, fn, "lo", false), hi = lt_checknum(L, 3, fn, "hi", false);
    int bins = (int)lt_checkint(L, 4, fn, "bins", 1, 1000000);
    bool logbins = lt_optbool(L, 5, fn, "logbins", false);
    int64_t n;
    float *v = tensor_values(L, t, &n);
    int64_t *counts = lua_newuserdatauv(L, sizeof(int64_t) * (size_t)bins, 0);
    double *edges = lua_newuserdatauv(L, sizeof(double) * (size_t)(bins + 1), 0);
    bn_hist_info info;
    if (bn_histogram(v, n, lo, hi, bins, logbins, counts, edges, &info) != BN_OK) render_core_error(L, fn);
    lua_createtable(L, bins, 0);
    for (int i = 0; i < bins; i++) {
        lua_pushinteger(L, counts[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_createtable(L, bins + 1, 0);
    for (int i = 0; i <= bins; i++) {
        lua_pushnumber(L, edges[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, info.in_range);
    lua_setfield(L, -2, "in_range");
    lua_pushinteger(L, info.outside);
    lua_setfield(L, -2, "outside");
    lua_pushinteger(L, info.nonfinite);
    lua_setfield(L, -2, "nonfinite");
    lua_pushinteger(L, info.nonpositive);
    lua_setfield(L, -2, "nonpositive");
    return 3;
}

void lt_open_render(lua_State *L, int mod, int methods)
{
    (void)methods;
    static const luaL_Reg canvas_methods[] = {
        {"size", c_size},         {"pixel", c_pixel},       {"clip", c_clip},         {"fill_rect", c_fill_rect},
        {"polyline", c_polyline}, {"polygon", c_polygon},   {"marker", c_marker},     {"text", c_text},
        {"text_size", l_text_size}, {"heatmap", c_heatmap}, {"colorbar", c_colorbar}, {"save_png", c_save_png},
        {"close", c_close},       {NULL, NULL},
    };
    luaL_newmetatable(L, CANVAS_MT);
    lua_newtable(L);
    luaL_setfuncs(L, canvas_methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, c_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, c_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, c_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);

    static const luaL_Reg funcs[] = {
        {"canvas", l_canvas}, {"read_png", l_read_png}, {"colormap", l_colormap}, {"colormaps", l_colormaps},
        {"font", l_font},     {"text_size", l_text_size}, {"range", l_range},     {"histogram", l_histogram},
        {NULL, NULL},
    };
    lua_newtable(L);
    luaL_setfuncs(L, funcs, 0);
    lua_setfield(L, mod, "render");
}
