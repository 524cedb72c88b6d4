/* Text on a canvas, rendered by FreeType from a TrueType font: anti-aliased
 * glyphs with subpixel horizontal placement and kerning, horizontal or
 * rotated 90° (a y-axis label reads bottom to top).
 *
 * A tiny markup gives exponents: "10^{-3}" draws -3 as a superscript,
 * "x_{i}" i as a subscript. A ^ or _ not followed by { is drawn as is.
 *
 * Sizes are in pixels (the em size). The font is found by bn_font_find:
 * $BNLAB_FONT, else a list of known places of DejaVu Sans (Debian:
 * fonts-dejavu-core) and a few common sans-serif fonts. */
#ifndef BN_RENDER_TEXT_H
#define BN_RENDER_TEXT_H

#include <stdint.h>

#include "render/canvas.h"

typedef struct bn_font bn_font;

enum { BN_TEXT_LEFT = 0, BN_TEXT_CENTER = 1, BN_TEXT_RIGHT = 2 };
/* middle centres the height of a capital letter on the anchor: digits and
 * capitals look centred, whatever the font's line spacing. */
enum { BN_TEXT_BASELINE = 0, BN_TEXT_TOP = 1, BN_TEXT_MIDDLE = 2, BN_TEXT_BOTTOM = 3 };

/* The font file to use, or NULL with BN_EIO naming what was tried. A
 * BNLAB_FONT that is set but unreadable is an error, not a fallback. The
 * string stays valid until the next call. */
const char *bn_font_find(void);

/* Loads a TrueType/OpenType font. NULL on failure (BN_EIO, BN_EFORMAT). */
bn_font *bn_font_open(const char *path);
void bn_font_free(bn_font *f); /* NULL is fine */
const char *bn_font_path(const bn_font *f);

typedef struct bn_text_extent {
    double width;      /* advance of the whole string */
    double ascent;     /* above the baseline (font line metrics, not the glyphs) */
    double descent;    /* below the baseline, positive */
    double cap_height; /* height of a capital letter */
} bn_text_extent;

/* Size of `text` (UTF-8, with the markup) at `size` px. */
bn_status bn_text_measure(bn_font *f, const char *text, double size, bn_text_extent *out);

/* Draws `text` anchored at (x, y). halign and valign place the anchor in the
 * text's own frame (along and across the writing direction), so a rotated
 * label anchored BN_TEXT_CENTER/BN_TEXT_TOP has its middle at y and its top
 * (which faces left) at x. rotation: 0 or 90 (counter-clockwise). */
bn_status bn_canvas_text(bn_canvas *c, bn_font *f, const char *text, double size, double x, double y, uint32_t color,
                         int halign, int valign, int rotation);

#endif
