/* src/render: canvas primitives, colour maps, heatmap cells, FreeType text
 * and PNG files. PNGs are written and decoded again with libpng itself (not
 * our reader) to check their size, colours at known pixels and provenance
 * text; writes must be atomic (no temporary left, old file kept on failure). */
#include "testutil.h"

#include <dirent.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "render/binning.h"
#include "render/canvas.h"
#include "render/colormap.h"
#include "render/heatmap.h"
#include "render/png.h"
#include "render/text.h"

static char tmpdir[256];

static const char *tmp_path(const char *name)
{
    static char ring[4][512];
    static int next = 0;
    char *p = ring[next];
    next = (next + 1) % 4;
    snprintf(p, sizeof ring[0], "%s/%s", tmpdir, name);
    return p;
}

static int setup_dir(void **state)
{
    (void)state;
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/bnlab-render-XXXXXX", base && *base ? base : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    (void)state;
    DIR *d = opendir(tmpdir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char p[600];
            snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
            remove(p);
        }
        closedir(d);
    }
    rmdir(tmpdir);
    return 0;
}

/* Files in the temporary directory whose name contains `needle`. */
static int count_files(const char *needle)
{
    int n = 0;
    DIR *d = opendir(tmpdir);
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' && strstr(e->d_name, needle)) n++;
    closedir(d);
    return n;
}

#define RGB(r, g, b) (((uint32_t)(r) << 16) | ((uint32_t)(g) << 8) | (uint32_t)(b))

/* ---- decoding with plain libpng --------------------------------------------------- */

typedef struct decoded {
    int w, h;
    uint8_t *rgb;
    int ntext;
    char keys[16][80];
    char values[16][512];
    int compression[16];
} decoded;

static void decode(const char *path, decoded *out)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_non_null(info);
    if (setjmp(png_jmpbuf(png))) fail_msg("libpng could not decode %s", path);
    png_init_io(png, f);
    png_read_info(png, info);
    out->w = (int)png_get_image_width(png, info);
    out->h = (int)png_get_image_height(png, info);
    assert_int_equal(png_get_bit_depth(png, info), 8);
    assert_int_equal(png_get_color_type(png, info), PNG_COLOR_TYPE_RGB);
    out->rgb = malloc((size_t)out->w * out->h * 3);
    assert_non_null(out->rgb);
    for (int y = 0; y < out->h; y++) png_read_row(png, out->rgb + (size_t)y * out->w * 3, NULL);
    png_read_end(png, info);
    png_textp tp;
    int n = png_get_text(png, info, &tp, NULL);
    for (int i = 0; i < n && i < 16; i++) {
        snprintf(out->keys[i], sizeof out->keys[i], "%s", tp[i].key);
        snprintf(out->values[i], sizeof out->values[i], "%s", tp[i].text);
        out->compression[i] = tp[i].compression;
    }
    out->ntext = n;
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
}

static uint32_t px(const decoded *d, int x, int y)
{
    const uint8_t *p = d->rgb + 3 * ((size_t)y * d->w + x);
    return RGB(p[0], p[1], p[2]);
}

static const char *text_of(const decoded *d, const char *key)
{
    for (int i = 0; i < d->ntext; i++)
        if (strcmp(d->keys[i], key) == 0) return d->values[i];
    return NULL;
}

/* ---- canvas ------------------------------------------------------------------------ */

static void test_canvas_new_and_fill(void **state)
{
    (void)state;
    TU_FAILS(bn_canvas_new(0, 10, 0), BN_EARG, "size expected");
    TU_FAILS(bn_canvas_new(10, BN_CANVAS_MAX_SIDE + 1, 0), BN_EARG, "size expected");
    bn_canvas *c = bn_canvas_new(20, 10, RGB(1, 2, 3));
    TU_OK(c);
    assert_int_equal(bn_canvas_get(c, 19, 9), RGB(1, 2, 3));
    assert_int_equal(bn_canvas_get(c, 20, 0), 0); /* outside */
    bn_canvas_fill_rect(c, 2, 2, 5, 4, RGB(255, 0, 0), 1.0f);
    assert_int_equal(bn_canvas_get(c, 2, 2), RGB(255, 0, 0));
    assert_int_equal(bn_canvas_get(c, 4, 3), RGB(255, 0, 0));
    assert_int_equal(bn_canvas_get(c, 5, 3), RGB(1, 2, 3));
    assert_int_equal(bn_canvas_get(c, 4, 4), RGB(1, 2, 3));
    /* a half-covered pixel gets half the colour */
    bn_canvas_fill_rect(c, 10, 0, 10.5, 1, RGB(201, 2, 3), 1.0f);
    assert_int_equal(bn_canvas_get(c, 10, 0), RGB(101, 2, 3));
    /* clipping */
    bn_canvas_set_clip(c, 0, 0, 3, 3);
    bn_canvas_fill_rect(c, 0, 5, 20, 10, RGB(0, 255, 0), 1.0f);
    assert_int_equal(bn_canvas_get(c, 1, 6), RGB(1, 2, 3));
    bn_canvas_reset_clip(c);
    /* non-finite rectangles draw nothing */
    bn_canvas_fill_rect(c, NAN, 0, 5, 5, RGB(0, 0, 255), 1.0f);
    bn_canvas_fill_rect(c, -INFINITY, 0, INFINITY, 5, RGB(0, 0, 255), 1.0f);
    assert_int_equal(bn_canvas_get(c, 0, 0), RGB(1, 2, 3));
    bn_canvas_free(c);
}

static void test_polyline(void **state)
{
    (void)state;
    bn_canvas *c = bn_canvas_new(40, 40, 0xFFFFFF);
    TU_OK(c);
    double xs[] = {5, 35}, ys[] = {10.5, 10.5};
    bn_stroke s = {0x000000, 1.0f, 1.0, NULL, 0};
    TU_ST(bn_canvas_polyline(c, xs, ys, 2, &s));
    assert_int_equal(bn_canvas_get(c, 20, 10), 0x000000); /* a 1-px line is one row ... */
    assert_int_equal(bn_canvas_get(c, 20, 9), 0xFFFFFF);  /* ... and no more */
    assert_int_equal(bn_canvas_get(c, 20, 11), 0xFFFFFF);
    /* NaN breaks the line: nothing between the two parts */
    double bx[] = {5, 15, NAN, 25, 35}, by[] = {30.5, 30.5, NAN, 30.5, 30.5};
    TU_ST(bn_canvas_polyline(c, bx, by, 5, &s));
    assert_int_equal(bn_canvas_get(c, 10, 30), 0x000000);
    assert_int_equal(bn_canvas_get(c, 20, 30), 0xFFFFFF);
    assert_int_equal(bn_canvas_get(c, 30, 30), 0x000000);
    /* huge and infinite coordinates (a diverged value) are safe */
    double hx[] = {5, 1e300, -INFINITY}, hy[] = {5, -1e300, 5};
    TU_ST(bn_canvas_polyline(c, hx, hy, 3, &s));
    /* bad widths and dashes are refused */
    bn_stroke bad = {0, 1.0f, -1.0, NULL, 0};
    assert_int_equal(bn_canvas_polyline(c, xs, ys, 2, &bad), BN_EARG);
    double dash[] = {0, 0};
    bn_stroke bad_dash = {0, 1.0f, 1.0, dash, 2};
    assert_int_equal(bn_canvas_polyline(c, xs, ys, 2, &bad_dash), BN_EARG);
    double tiny[] = {1e-300, 1e-300}; /* would take forever to walk */
    bn_stroke tiny_dash = {0, 1.0f, 1.0, tiny, 2};
    assert_int_equal(bn_canvas_polyline(c, xs, ys, 2, &tiny_dash), BN_EARG);
    /* absurd widths are fine (they cover the canvas) */
    bn_stroke wide = {0x00FF00, 1.0f, 1e300, NULL, 0};
    TU_ST(bn_canvas_polyline(c, xs, ys, 2, &wide));
    assert_int_equal(bn_canvas_get(c, 0, 39), 0x00FF00);
    bn_canvas_free(c);
}

/* A translucent polyline is blended once: where two segments meet the
 * colour is the same as in the middle of a segment. */
static void test_polyline_translucent_joints(void **state)
{
    (void)state;
    bn_canvas *c = bn_canvas_new(60, 20, 0xFFFFFF);
    TU_OK(c);
    double xs[] = {5, 30, 55}, ys[] = {10.5, 10.5, 10.5};
    bn_stroke s = {0x000000, 0.5f, 3.0, NULL, 0};
    TU_ST(bn_canvas_polyline(c, xs, ys, 3, &s));
    assert_int_equal(bn_canvas_get(c, 30, 10), bn_canvas_get(c, 15, 10));
    assert_int_equal(bn_canvas_get(c, 15, 10), RGB(128, 128, 128));
    /* dashed: some pixels along the line stay white */
    double dx[] = {5, 55}, dy[] = {3.5, 3.5}, dash[] = {4, 4};
    bn_stroke d = {0x000000, 1.0f, 1.0, dash, 2};
    TU_ST(bn_canvas_polyline(c, dx, dy, 2, &d));
    int dark = 0, white = 0;
    for (int x = 8; x < 52; x++) {
        if (bn_canvas_get(c, x, 3) == 0x000000) dark++;
        if (bn_canvas_get(c, x, 3) == 0xFFFFFF) white++;
    }
    assert_true(dark > 10 && white > 10);
    bn_canvas_free(c);
}

static void test_polygon_and_markers(void **state)
{
    (void)state;
    bn_canvas *c = bn_canvas_new(40, 40, 0xFFFFFF);
    TU_OK(c);
    double xs[] = {10, 30, 30, 10}, ys[] = {10, 10, 30.5, 30.5};
    TU_ST(bn_canvas_fill_polygon(c, xs, ys, 4, RGB(0, 0, 200), 1.0f));
    assert_int_equal(bn_canvas_get(c, 20, 20), RGB(0, 0, 200));
    assert_int_equal(bn_canvas_get(c, 9, 20), 0xFFFFFF);
    assert_int_equal(bn_canvas_get(c, 20, 31), 0xFFFFFF);
    uint32_t half = bn_canvas_get(c, 20, 30); /* half covered (vertical sub-samples) */
    assert_true((half & 0xFF) > 60 && (half & 0xFF) < 255 && (half >> 16) > 60 && (half >> 16) < 200);
    /* translucent */
    double tx[] = {0, 5, 5}, ty[] = {0, 0, 5};
    TU_ST(bn_canvas_fill_polygon(c, tx, ty, 3, 0x000000, 0.5f));
    assert_int_equal(bn_canvas_get(c, 4, 1), RGB(128, 128, 128));
    /* NaN points are dropped, fewer than 3 points draw nothing */
    double nx[] = {NAN, 1, 2}, ny[] = {0, 1, NAN};
    TU_ST(bn_canvas_fill_polygon(c, nx, ny, 3, 0, 1.0f));
    /* markers */
    assert_true(bn_canvas_marker_known('o') && !bn_canvas_marker_known('q'));
    assert_int_equal(bn_canvas_marker(c, 5, 35, 'q', 6, 0, 1.0f), BN_EARG);
    TU_ST(bn_canvas_marker(c, 35, 35, 'o', 6, RGB(200, 0, 0), 1.0f));
    assert_int_equal(bn_canvas_get(c, 35, 35), RGB(200, 0, 0));
    TU_ST(bn_canvas_marker(c, 35, 5, 'x', 8, 0, 1.0f));
    assert_int_equal(bn_canvas_get(c, 35, 5), 0x000000);
    bn_canvas_free(c);
}

/* ---- colour maps and heatmaps --------------------------------------------------------- */

static void test_colormaps(void **state)
{
    (void)state;
    bn_colormap cm;
    TU_ST(bn_colormap_find("viridis", &cm));
    assert_int_equal(bn_colormap_at(&cm, 0.0), RGB(68, 1, 84));    /* #440154 */
    assert_int_equal(bn_colormap_at(&cm, 1.0), RGB(253, 231, 37)); /* #fde725 */
    assert_int_equal(bn_colormap_at(&cm, 2.0), RGB(253, 231, 37)); /* clamped */
    assert_int_equal(bn_colormap_at(&cm, NAN), RGB(68, 1, 84));
    TU_ST(bn_colormap_find("viridis_r", &cm));
    assert_int_equal(bn_colormap_at(&cm, 0.0), RGB(253, 231, 37));
    TU_ST(bn_colormap_find("magma", &cm));
    assert_int_equal(bn_colormap_at(&cm, 0.0), RGB(0, 0, 4));
    assert_int_equal(bn_colormap_at(&cm, 1.0), RGB(252, 253, 191));
    TU_ST(bn_colormap_find("gray", &cm));
    assert_int_equal(bn_colormap_at(&cm, 0.5), RGB(128, 128, 128));
    /* Moreland's coolwarm: his end colours and a light grey middle */
    TU_ST(bn_colormap_find("coolwarm", &cm));
    assert_int_equal(bn_colormap_at(&cm, 0.0), RGB(59, 76, 192));
    assert_int_equal(bn_colormap_at(&cm, 1.0), RGB(180, 4, 38));
    uint32_t mid = bn_colormap_at(&cm, 0.5);
    for (int k = 0; k < 3; k++) {
        int v = (int)(mid >> (8 * k)) & 0xFF;
        assert_true(v >= 215 && v <= 225);
    }
    bn_clear_error();
    assert_int_equal(bn_colormap_find("jet", &cm), BN_EARG);
    assert_non_null(strstr(bn_last_error(), "unknown map 'jet'"));
    assert_non_null(strstr(bn_last_error(), "viridis"));
}

static void test_color_scale(void **state)
{
    (void)state;
    bn_color_scale s = {.vmin = 1, .vmax = 1000, .log = true, .nan_color = RGB(1, 2, 3)};
    TU_ST(bn_colormap_find("gray", &s.cmap));
    assert_true(fabs(bn_color_scale_pos(&s, 10) - 1.0 / 3.0) < 1e-12);
    assert_true(isnan(bn_color_scale_pos(&s, 0)));
    assert_true(isnan(bn_color_scale_pos(&s, -5)));
    assert_int_equal(bn_color_scale_map(&s, NAN), RGB(1, 2, 3));
    assert_int_equal(bn_color_scale_map(&s, INFINITY), RGB(255, 255, 255)); /* +Inf: top of the map */
    s.log = false;
    assert_int_equal(bn_color_scale_map(&s, -INFINITY), RGB(0, 0, 0));
    s.vmin = s.vmax;
    assert_int_equal(bn_color_scale_check(&s), BN_EARG);
    s.vmin = -1;
    s.log = true;
    assert_int_equal(bn_color_scale_check(&s), BN_EARG);
}

/* A 2x2 matrix with vmin/vmax: the map's end colours at the cell centres,
 * NaN in nan_color, written as a PNG and decoded by libpng. */
static void test_heatmap_png_colours(void **state)
{
    (void)state;
    bn_canvas *c = bn_canvas_new(100, 80, 0xFFFFFF);
    TU_OK(c);
    float m[4] = {0.0f, 1.0f, 7.0f, NAN};
    bn_color_scale s = {.vmin = 0, .vmax = 1, .nan_color = RGB(200, 100, 50)};
    TU_ST(bn_colormap_find("viridis", &s.cmap));
    TU_ST(bn_canvas_heatmap(c, m, 2, 2, 10, 10, 90, 70, &s));
    const char *path = tmp_path("heat.png");
    TU_ST(bn_png_write(path, c, NULL, 0));
    decoded d;
    decode(path, &d);
    assert_int_equal(d.w, 100);
    assert_int_equal(d.h, 80);
    assert_int_equal(px(&d, 30, 25), RGB(68, 1, 84));    /* cell (1,1) = vmin */
    assert_int_equal(px(&d, 70, 25), RGB(253, 231, 37)); /* cell (1,2) = vmax */
    assert_int_equal(px(&d, 30, 55), RGB(253, 231, 37)); /* above vmax: clipped */
    assert_int_equal(px(&d, 70, 55), RGB(200, 100, 50)); /* NaN */
    assert_int_equal(px(&d, 5, 5), 0xFFFFFF);            /* outside the cells */
    assert_int_equal(px(&d, 9, 25), 0xFFFFFF);
    assert_int_equal(px(&d, 10, 25), RGB(68, 1, 84));
    assert_int_equal(d.ntext, 0);
    free(d.rgb);
    /* bad arguments */
    assert_int_equal(bn_canvas_heatmap(c, m, 0, 2, 10, 10, 90, 70, &s), BN_ESHAPE);
    assert_int_equal(bn_canvas_heatmap(c, m, 2, 2, 90, 10, 10, 70, &s), BN_EARG);
    s.vmax = 0;
    assert_int_equal(bn_canvas_heatmap(c, m, 2, 2, 10, 10, 90, 70, &s), BN_EARG);
    /* colour bar: low end at the bottom */
    TU_ST(bn_canvas_colorbar(c, 0, 0, 5, 80, &s.cmap));
    assert_int_equal(bn_canvas_get(c, 2, 79), RGB(68, 1, 84));
    assert_int_equal(bn_canvas_get(c, 2, 0), RGB(253, 231, 37));
    bn_canvas_free(c);
}

/* ---- PNG text chunks and atomic writes ------------------------------------------------------ */

static void test_png_provenance_chunks(void **state)
{
    (void)state;
    bn_canvas *c = bn_canvas_new(8, 6, RGB(10, 20, 30));
    TU_OK(c);
    bn_png_text text[] = {
        {"Title", "Relative loss"},
        {"Software", "bnlab 0.1.0-dev"},
        {"bnlab:script", "experiments/e2_divergence.lua"},
        {"bnlab:args", "--depth 56 --lr 0.1"},
        {"bnlab:seed", "42"},
        {"bnlab:note", "\xcf\x83 > 10\xc2\xb3"}, /* UTF-8: an iTXt chunk */
    };
    const char *path = tmp_path("prov.png");
    TU_ST(bn_png_write(path, c, text, 6));
    decoded d;
    decode(path, &d);
    assert_int_equal(d.ntext, 6);
    assert_string_equal(text_of(&d, "Title"), "Relative loss");
    assert_string_equal(text_of(&d, "Software"), "bnlab 0.1.0-dev");
    assert_string_equal(text_of(&d, "bnlab:script"), "experiments/e2_divergence.lua");
    assert_string_equal(text_of(&d, "bnlab:args"), "--depth 56 --lr 0.1");
    assert_string_equal(text_of(&d, "bnlab:seed"), "42");
    assert_string_equal(text_of(&d, "bnlab:note"), "\xcf\x83 > 10\xc2\xb3");
    assert_int_equal(d.compression[0], PNG_TEXT_COMPRESSION_NONE); /* tEXt */
    assert_int_equal(d.compression[5], PNG_ITXT_COMPRESSION_NONE); /* iTXt */
    assert_int_equal(px(&d, 7, 5), RGB(10, 20, 30));
    free(d.rgb);
    /* our reader agrees */
    bn_png_text *rt;
    int nrt;
    bn_canvas *back = bn_png_read(path, &rt, &nrt);
    TU_OK(back);
    assert_int_equal(back->width, 8);
    assert_int_equal(bn_canvas_get(back, 3, 3), RGB(10, 20, 30));
    assert_int_equal(nrt, 6);
    assert_string_equal(rt[4].key, "bnlab:seed");
    assert_string_equal(rt[4].value, "42");
    bn_png_text_free(rt, nrt);
    bn_canvas_free(back);
    /* keys must be PNG keywords */
    bn_png_text bad[] = {{"", "x"}};
    assert_int_equal(bn_png_write(tmp_path("bad.png"), c, bad, 1), BN_EARG);
    bn_png_text bad2[] = {{" lead", "x"}};
    assert_int_equal(bn_png_write(tmp_path("bad.png"), c, bad2, 1), BN_EARG);
    assert_int_equal(count_files("bad.png"), 0);
    bn_canvas_free(c);
}

static void test_png_atomic(void **state)
{
    (void)state;
    bn_canvas *c = bn_canvas_new(4, 4, 0x000000);
    TU_OK(c);
    const char *path = tmp_path("atomic.png");
    TU_ST(bn_png_write(path, c, NULL, 0));
    TU_ST(bn_png_write(path, c, NULL, 0)); /* replacing works too */
    assert_int_equal(count_files(".tmp."), 0);
    assert_int_equal(count_files("atomic.png"), 1);
    /* a failed write leaves the old file as it was and no temporary */
    struct stat before, after;
    assert_int_equal(stat(path, &before), 0);
    bn_png_text bad[] = {{"Title", NULL}};
    assert_int_equal(bn_png_write(path, c, bad, 1), BN_EARG);
    assert_int_equal(stat(path, &after), 0);
    assert_int_equal(before.st_ino, after.st_ino);
    assert_int_equal(count_files(".tmp."), 0);
    /* a directory that does not exist */
    char missing[600];
    snprintf(missing, sizeof missing, "%s/no/such/dir/x.png", tmpdir);
    bn_clear_error();
    assert_int_equal(bn_png_write(missing, c, NULL, 0), BN_EIO);
    assert_non_null(strstr(bn_last_error(), "no/such/dir"));
    bn_canvas_free(c);
}

static void test_png_read_errors(void **state)
{
    (void)state;
    bn_png_text *t;
    int n;
    TU_FAILS(bn_png_read(tmp_path("nothing.png"), &t, &n), BN_EIO, "cannot open");
    const char *p = tmp_path("not.png");
    FILE *f = fopen(p, "wb");
    fputs("GIF89a not a png at all", f);
    fclose(f);
    TU_FAILS(bn_png_read(p, &t, &n), BN_EFORMAT, "not a PNG file");
    /* a truncated PNG */
    bn_canvas *c = bn_canvas_new(50, 50, 0x123456);
    TU_OK(c);
    const char *full = tmp_path("full.png");
    TU_ST(bn_png_write(full, c, NULL, 0));
    bn_canvas_free(c);
    FILE *in = fopen(full, "rb");
    char buf[4096];
    size_t got = fread(buf, 1, sizeof buf, in);
    fclose(in);
    const char *cut = tmp_path("cut.png");
    FILE *out = fopen(cut, "wb");
    fwrite(buf, 1, got / 2, out);
    fclose(out);
    TU_FAILS(bn_png_read(cut, &t, &n), BN_EFORMAT, "cut.png");
}

/* ---- text ------------------------------------------------------------------------------- */

static bn_font *open_default_font(void)
{
    const char *path = bn_font_find();
    if (!path) return NULL;
    return bn_font_open(path);
}

/* Counts pixels darker than mid grey in [x0, x1) x [y0, y1). */
static int dark_in(const bn_canvas *c, int x0, int y0, int x1, int y1)
{
    int n = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            if ((bn_canvas_get(c, x, y) & 0xFF) < 128) n++;
    return n;
}

static void test_text_renders_where_expected(void **state)
{
    (void)state;
    bn_font *f = open_default_font();
    if (!f) {
        print_message("no font installed (%s): skipping text tests\n", bn_last_error());
        skip();
    }
    bn_text_extent e;
    TU_ST(bn_text_measure(f, "Hello", 20, &e));
    assert_true(e.width > 30 && e.width < 80);
    assert_true(e.ascent > 14 && e.ascent < 22 && e.descent > 2 && e.descent < 8);
    assert_true(e.cap_height > 12 && e.cap_height < 17);
    bn_canvas *c = bn_canvas_new(200, 100, 0xFFFFFF);
    TU_OK(c);
    /* left/baseline at (20, 50): ink in [20, 20 + width) x [50 - ascent, 50 + descent) */
    TU_ST(bn_canvas_text(c, f, "Hello", 20, 20, 50, 0x000000, BN_TEXT_LEFT, BN_TEXT_BASELINE, 0));
    int inside = dark_in(c, 20, (int)(50 - e.ascent), (int)(20 + e.width) + 1, (int)(50 + e.descent) + 1);
    int total = dark_in(c, 0, 0, 200, 100);
    assert_true(inside > 40);
    assert_int_equal(inside, total);
    /* nothing below the baseline for "Hello" (no descenders) */
    assert_int_equal(dark_in(c, 0, 51, 200, 100), 0);
    bn_canvas_free(c);

    /* centred / middle around (100, 50) */
    c = bn_canvas_new(200, 100, 0xFFFFFF);
    TU_ST(bn_canvas_text(c, f, "HHHH", 20, 100, 50, 0x000000, BN_TEXT_CENTER, BN_TEXT_MIDDLE, 0));
    int left = dark_in(c, 0, 0, 100, 100), right = dark_in(c, 100, 0, 200, 100);
    int up = dark_in(c, 0, 0, 200, 50), down = dark_in(c, 0, 50, 200, 100);
    assert_true(abs(left - right) <= (left + right) / 10);
    assert_true(abs(up - down) <= (up + down) / 5);
    bn_canvas_free(c);

    /* rotated 90°: a tall narrow ink box reading upwards */
    c = bn_canvas_new(100, 200, 0xFFFFFF);
    TU_ST(bn_canvas_text(c, f, "Hello world", 16, 50, 100, 0x000000, BN_TEXT_CENTER, BN_TEXT_TOP, 90));
    int x0 = 100, x1 = -1, y0 = 200, y1 = -1;
    for (int y = 0; y < 200; y++)
        for (int x = 0; x < 100; x++)
            if ((bn_canvas_get(c, x, y) & 0xFF) < 128) {
                if (x < x0) x0 = x;
                if (x > x1) x1 = x;
                if (y < y0) y0 = y;
                if (y > y1) y1 = y;
            }
    assert_true(x1 - x0 < 20);
    assert_true(y1 - y0 > 60);
    assert_true(x0 >= 50);                    /* its top faces left, at x */
    assert_true(abs((y0 + y1) / 2 - 100) < 6); /* centred on y */
    bn_canvas_free(c);

    /* superscript markup: the exponent sits higher than the base */
    c = bn_canvas_new(200, 100, 0xFFFFFF);
    TU_ST(bn_text_measure(f, "10^{-3}", 20, &e));
    bn_text_extent plain;
    TU_ST(bn_text_measure(f, "10", 20, &plain));
    assert_true(e.width > plain.width && e.ascent > plain.ascent);
    TU_ST(bn_canvas_text(c, f, "10^{-3}", 20, 20, 60, 0x000000, BN_TEXT_LEFT, BN_TEXT_BASELINE, 0));
    int sup_top = 100;
    for (int y = 0; y < 100 && sup_top == 100; y++)
        for (int x = (int)(20 + plain.width) + 1; x < 200; x++)
            if ((bn_canvas_get(c, x, y) & 0xFF) < 128) {
                sup_top = y;
                break;
            }
    assert_true(sup_top < 60 - (int)plain.ascent + 4);
    bn_canvas_free(c);

    assert_int_equal(bn_canvas_text(c = bn_canvas_new(10, 10, 0), f, "x", 10, 5, 5, 0, 0, 0, 45), BN_EARG);
    assert_int_equal(bn_text_measure(f, "x", -1, &e), BN_EARG);
    /* malformed UTF-8 does not crash */
    TU_ST(bn_canvas_text(c, f, "\xff\xfe\xc3", 10, 1, 8, 0, 0, 0, 0));
    bn_canvas_free(c);
    bn_font_free(f);
}

static void test_font_lookup(void **state)
{
    (void)state;
    const char *old = getenv("BNLAB_FONT");
    char saved[1024] = "";
    if (old) snprintf(saved, sizeof saved, "%s", old);
    setenv("BNLAB_FONT", "/no/such/font.ttf", 1);
    TU_FAILS(bn_font_find(), BN_EIO, "BNLAB_FONT=/no/such/font.ttf");
    /* a file that is not a font */
    const char *p = tmp_path("fake.ttf");
    FILE *f = fopen(p, "wb");
    fputs("not a font", f);
    fclose(f);
    TU_FAILS(bn_font_open(p), BN_EFORMAT, "fake.ttf");
    TU_FAILS(bn_font_open(tmp_path("missing.ttf")), BN_EIO, "cannot read font file");
    if (old) setenv("BNLAB_FONT", saved, 1);
    else unsetenv("BNLAB_FONT");
}

/* ---- binning ------------------------------------------------------------------------------ */

static void test_histogram_and_range(void **state)
{
    (void)state;
    float v[] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, NAN, INFINITY, -INFINITY, 5.0f, -1.0f};
    bn_value_range r;
    bn_value_range_of(v, 10, false, &r);
    assert_true(r.lo == -1.0 && r.hi == 5.0);
    assert_int_equal(r.used, 7);
    assert_int_equal(r.nan, 1);
    assert_int_equal(r.posinf, 1);
    assert_int_equal(r.neginf, 1);
    bn_value_range_of(v, 10, true, &r);
    assert_true(r.lo == 0.5 && r.hi == 5.0);
    assert_int_equal(r.nonpositive, 2);
    bn_value_range_of(v + 5, 3, false, &r);
    assert_int_equal(r.used, 0);
    assert_true(isnan(r.lo));

    int64_t counts[4];
    double edges[5];
    bn_hist_info info;
    TU_ST(bn_histogram(v, 10, 0.0, 2.0, 4, false, counts, edges, &info));
    assert_true(edges[0] == 0.0 && edges[1] == 0.5 && edges[4] == 2.0);
    assert_int_equal(counts[0], 1); /* 0 */
    assert_int_equal(counts[1], 1); /* 0.5 */
    assert_int_equal(counts[2], 1); /* 1.0 */
    assert_int_equal(counts[3], 2); /* 1.5 and 2.0: the last bin includes hi */
    assert_int_equal(info.in_range, 5);
    assert_int_equal(info.nonfinite, 3);
    assert_int_equal(info.outside, 2);
    /* log-spaced bins */
    float w[] = {1.0f, 10.0f, 99.0f, 100.0f, 0.0f, -3.0f};
    int64_t lc[2];
    double le[3];
    TU_ST(bn_histogram(w, 6, 1.0, 100.0, 2, true, lc, le, &info));
    assert_true(fabs(le[1] - 10.0) < 1e-9);
    assert_int_equal(lc[0], 1);
    assert_int_equal(lc[1], 3);
    assert_int_equal(info.nonpositive, 2);
    assert_int_equal(bn_histogram(w, 6, 0.0, 100.0, 2, true, lc, le, &info), BN_EARG);
    assert_int_equal(bn_histogram(w, 6, 1.0, 1.0, 2, false, lc, le, &info), BN_EARG);
    assert_int_equal(bn_histogram(w, 6, 1.0, 2.0, 0, false, lc, le, &info), BN_EARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canvas_new_and_fill),
        cmocka_unit_test(test_polyline),
        cmocka_unit_test(test_polyline_translucent_joints),
        cmocka_unit_test(test_polygon_and_markers),
        cmocka_unit_test(test_colormaps),
        cmocka_unit_test(test_color_scale),
        cmocka_unit_test(test_heatmap_png_colours),
        cmocka_unit_test(test_png_provenance_chunks),
        cmocka_unit_test(test_png_atomic),
        cmocka_unit_test(test_png_read_errors),
        cmocka_unit_test(test_text_renders_where_expected),
        cmocka_unit_test(test_font_lookup),
        cmocka_unit_test(test_histogram_and_range),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
