/* Text through FreeType: lay the string out (advances from the unhinted
 * outlines, kerning, superscript runs), render each glyph anti-aliased at
 * its subpixel position into a coverage bitmap, then blend that bitmap into
 * the canvas, turned 90° for vertical labels. */
#include "render/text.h"

#include <ft2build.h>
#include FT_FREETYPE_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct bn_font {
    FT_Library lib;
    FT_Face face;
    FT_F26Dot6 size; /* the char size in force, 26.6 px */
    double cap_units; /* height of 'H' in font units */
    char *path;
};

/* Where fonts usually are: Debian/Ubuntu, Fedora, Arch, BSD ports, macOS. */
static const char *const known_fonts[] = {
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/local/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    "/Library/Fonts/Arial.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    NULL,
};

const char *bn_font_find(void)
{
    static _Thread_local char found[4096];
    const char *env = getenv("BNLAB_FONT");
    if (env && *env) {
        if (access(env, R_OK) != 0)
            return bn_fail_null(BN_EIO, "text: BNLAB_FONT=%s is not a readable font file", env);
        snprintf(found, sizeof found, "%s", env);
        return found;
    }
    for (int i = 0; known_fonts[i]; i++) {
        if (access(known_fonts[i], R_OK) == 0) {
            snprintf(found, sizeof found, "%s", known_fonts[i]);
            return found;
        }
    }
    return bn_fail_null(BN_EIO,
                        "text: no font found: install fonts-dejavu-core (make deps) or set BNLAB_FONT to a .ttf file "
                        "(tried %s and %d other places)",
                        known_fonts[0], (int)(sizeof known_fonts / sizeof known_fonts[0]) - 2);
}

bn_font *bn_font_open(const char *path)
{
    bn_font *f = calloc(1, sizeof *f);
    if (!f) return bn_fail_null(BN_ENOMEM, "text: out of memory");
    f->path = strdup(path);
    if (!f->path) {
        free(f);
        return bn_fail_null(BN_ENOMEM, "text: out of memory");
    }
    FT_Error e = FT_Init_FreeType(&f->lib);
    if (e) {
        free(f->path);
        free(f);
        return bn_fail_null(BN_EIO, "text: FreeType could not start (error %d)", e);
    }
    e = FT_New_Face(f->lib, path, 0, &f->face);
    if (e) {
        FT_Done_FreeType(f->lib);
        free(f->path);
        free(f);
        if (access(path, R_OK) != 0) return bn_fail_null(BN_EIO, "text: cannot read font file %s", path);
        return bn_fail_null(BN_EFORMAT, "text: %s is not a font FreeType can load (error %d)", path, e);
    }
    if (!FT_IS_SCALABLE(f->face)) {
        bn_font_free(f);
        return bn_fail_null(BN_EFORMAT, "text: %s is a bitmap font; a scalable (TrueType/OpenType) one is needed",
                            path);
    }
    /* cap height from the outline of 'H' (font units) */
    f->cap_units = 0.7 * f->face->units_per_EM;
    FT_UInt h = FT_Get_Char_Index(f->face, 'H');
    if (h && FT_Load_Glyph(f->face, h, FT_LOAD_NO_SCALE) == 0) f->cap_units = (double)f->face->glyph->metrics.horiBearingY;
    return f;
}

void bn_font_free(bn_font *f)
{
    if (!f) return;
    FT_Done_Face(f->face);
    FT_Done_FreeType(f->lib);
    free(f->path);
    free(f);
}

const char *bn_font_path(const bn_font *f) { return f->path; }

static bn_status set_size(bn_font *f, double px)
{
    FT_F26Dot6 s = (FT_F26Dot6)lround(px * 64.0);
    if (s < 1) s = 1;
    if (s == f->size) return BN_OK;
    FT_Error e = FT_Set_Char_Size(f->face, 0, s, 72, 72);
    if (e) return bn_fail(BN_EARG, "text: cannot set a size of %g px (FreeType error %d)", px, e);
    f->size = s;
    return BN_OK;
}

/* Next code point of a UTF-8 string; malformed bytes give U+FFFD. */
static uint32_t utf8_next(const char **sp)
{
    const unsigned char *s = (const unsigned char *)*sp;
    uint32_t c = s[0];
    int n = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
    if (n < 0) {
        *sp += 1;
        return 0xFFFD;
    }
    if (n == 0) {
        *sp += 1;
        return c;
    }
    c &= 0x3Fu >> n;
    for (int i = 1; i <= n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *sp += i;
            return 0xFFFD;
        }
        c = (c << 6) | (s[i] & 0x3F);
    }
    *sp += n + 1;
    return c;
}

typedef struct placed {
    FT_UInt glyph;
    double x;    /* pen position, px from the start */
    double dy;   /* baseline shift, px, down positive */
    double size; /* em size, px */
} placed;

typedef struct layout {
    placed *g;
    int n;
    double width, ascent, descent;
} layout;

static bn_status lay_out(bn_font *f, const char *text, double size, layout *out)
{
    memset(out, 0, sizeof *out);
    if (!(size > 0.0) || !isfinite(size) || size > 2000.0)
        return bn_fail(BN_EARG, "text: size expected a number of px in (0, 2000], got %g", size);
    out->g = malloc(sizeof(placed) * (strlen(text) + 1));
    if (!out->g) return bn_fail(BN_ENOMEM, "text: out of memory");
    FT_Face face = f->face;
    double em = face->units_per_EM;
    double pen = 0.0;
    int script = 0; /* 0 none, 1 superscript, 2 subscript */
    FT_UInt prev = 0;
    out->ascent = face->ascender / em * size;
    out->descent = -face->descender / em * size;
    const char *p = text;
    while (*p) {
        if ((*p == '^' || *p == '_') && p[1] == '{' && !script) {
            script = *p == '^' ? 1 : 2;
            p += 2;
            prev = 0;
            continue;
        }
        if (*p == '}' && script) {
            script = 0;
            p++;
            prev = 0;
            continue;
        }
        uint32_t cp = utf8_next(&p);
        double sz = script ? size * 0.7 : size;
        double dy = script == 1 ? -0.42 * size : script == 2 ? 0.22 * size : 0.0;
        if (set_size(f, sz) != BN_OK) return bn_last_status();
        FT_UInt gi = FT_Get_Char_Index(face, cp);
        if (prev && gi && FT_HAS_KERNING(face)) {
            FT_Vector k;
            if (FT_Get_Kerning(face, prev, gi, FT_KERNING_UNFITTED, &k) == 0) pen += k.x / 64.0;
        }
        FT_Error e = FT_Load_Glyph(face, gi, FT_LOAD_DEFAULT | FT_LOAD_TARGET_LIGHT);
        if (e) return bn_fail(BN_EFORMAT, "text: cannot load glyph U+%04X (FreeType error %d)", (unsigned)cp, e);
        out->g[out->n++] = (placed){gi, pen, dy, sz};
        pen += face->glyph->linearHoriAdvance / 65536.0;
        prev = gi;
        if (script) {
            out->ascent = fmax(out->ascent, face->ascender / em * sz - dy);
            out->descent = fmax(out->descent, -face->descender / em * sz + dy);
        }
    }
    out->width = pen;
    return BN_OK;
}

bn_status bn_text_measure(bn_font *f, const char *text, double size, bn_text_extent *out)
{
    layout lo;
    bn_status st = lay_out(f, text, size, &lo);
    free(lo.g);
    if (st != BN_OK) return st;
    out->width = lo.width;
    out->ascent = lo.ascent;
    out->descent = lo.descent;
    out->cap_height = f->cap_units / f->face->units_per_EM * size;
    return BN_OK;
}

bn_status bn_canvas_text(bn_canvas *c, bn_font *f, const char *text, double size, double x, double y, uint32_t color,
                         int halign, int valign, int rotation)
{
    if (rotation != 0 && rotation != 90) return bn_fail(BN_EARG, "text: rotation expected 0 or 90, got %d", rotation);
    if (halign < BN_TEXT_LEFT || halign > BN_TEXT_RIGHT || valign < BN_TEXT_BASELINE || valign > BN_TEXT_BOTTOM)
        return bn_fail(BN_EARG, "text: unknown alignment %d/%d", halign, valign);
    if (!isfinite(x) || !isfinite(y) || fabs(x) > 1e7 || fabs(y) > 1e7) return BN_OK;
    layout lo;
    if (lay_out(f, text, size, &lo) != BN_OK) {
        free(lo.g);
        return bn_last_status();
    }
    if (lo.width > 1e6) {
        free(lo.g);
        return bn_fail(BN_EARG, "text: a line of %.0f px is too long to draw", lo.width);
    }
    double cap = f->cap_units / f->face->units_per_EM * size;
    double ax = halign == BN_TEXT_LEFT ? 0.0 : halign == BN_TEXT_CENTER ? lo.width / 2.0 : lo.width;
    double ay = valign == BN_TEXT_BASELINE ? 0.0
                : valign == BN_TEXT_TOP    ? -lo.ascent
                : valign == BN_TEXT_MIDDLE ? -cap / 2.0
                                           : lo.descent;
    /* the coverage bitmap, with room for glyphs that overhang their advance */
    int pad = (int)ceil(size * 0.5) + 2;
    int asc = (int)ceil(lo.ascent), desc = (int)ceil(lo.descent);
    int W = (int)ceil(lo.width) + 2 * pad, H = asc + desc + 2 * pad;
    int ox = pad, oy = pad + asc;
    uint8_t *bm = calloc((size_t)W * (size_t)H, 1);
    if (!bm) {
        free(lo.g);
        return bn_fail(BN_ENOMEM, "text: out of memory");
    }
    double start = x - ax;
    double frac = rotation == 0 ? start - floor(start) : 0.0;
    FT_Face face = f->face;
    bn_status st = BN_OK;
    for (int k = 0; k < lo.n && st == BN_OK; k++) {
        const placed *g = &lo.g[k];
        if ((st = set_size(f, g->size)) != BN_OK) break;
        double gx = frac + g->x;
        double whole = floor(gx);
        FT_Vector delta = {(FT_Pos)lround((gx - whole) * 64.0), 0};
        FT_Set_Transform(face, NULL, &delta);
        FT_Error e = FT_Load_Glyph(face, g->glyph, FT_LOAD_RENDER | FT_LOAD_TARGET_LIGHT);
        if (e) {
            st = bn_fail(BN_EFORMAT, "text: cannot render a glyph (FreeType error %d)", e);
            break;
        }
        FT_Bitmap *b = &face->glyph->bitmap;
        int bx = ox + (int)whole + face->glyph->bitmap_left;
        int by = oy + (int)lround(g->dy) - face->glyph->bitmap_top;
        for (unsigned r = 0; r < b->rows; r++) {
            int yy = by + (int)r;
            if (yy < 0 || yy >= H) continue;
            const unsigned char *src = b->buffer + (ptrdiff_t)r * b->pitch;
            for (unsigned col = 0; col < b->width; col++) {
                int xx = bx + (int)col;
                if (xx < 0 || xx >= W) continue;
                unsigned v;
                if (b->pixel_mode == FT_PIXEL_MODE_GRAY) v = src[col] * 255u / (b->num_grays > 1 ? b->num_grays - 1 : 1);
                else if (b->pixel_mode == FT_PIXEL_MODE_MONO) v = (src[col >> 3] >> (7 - (col & 7)) & 1) ? 255u : 0u;
                else continue;
                uint8_t *d = &bm[(size_t)yy * (size_t)W + (size_t)xx];
                if (v > *d) *d = (uint8_t)(v > 255 ? 255 : v);
            }
        }
    }
    FT_Set_Transform(face, NULL, NULL);
    if (st == BN_OK) {
        float alpha = 1.0f / 255.0f;
        if (rotation == 0) {
            int tx = (int)floor(start) - ox, ty = (int)lround(y - ay) - oy;
            for (int j = 0; j < H; j++)
                for (int i = 0; i < W; i++) {
                    uint8_t a = bm[(size_t)j * (size_t)W + (size_t)i];
                    if (a) bn_canvas_blend(c, tx + i, ty + j, color, a * alpha);
                }
        } else {
            int cx = (int)lround(x - ay), cy = (int)lround(y + ax);
            for (int j = 0; j < H; j++)
                for (int i = 0; i < W; i++) {
                    uint8_t a = bm[(size_t)j * (size_t)W + (size_t)i];
                    if (a) bn_canvas_blend(c, cx + j - oy, cy - (i - ox) - 1, color, a * alpha);
                }
        }
    }
    free(bm);
    free(lo.g);
    return st;
}
