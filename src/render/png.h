/* PNG files through libpng: a canvas written (atomically, via
 * data/atomic_file.h) with text chunks saying how the figure was made, and
 * PNGs read back as canvases with their text (tests, checks).
 *
 * Text goes into tEXt chunks; a value that is not plain ASCII goes into an
 * iTXt chunk (UTF-8), since tEXt is Latin-1. Keys follow the PNG rules:
 * 1-79 printable ASCII characters, no leading, trailing or double spaces. */
#ifndef BN_RENDER_PNG_H
#define BN_RENDER_PNG_H

#include "render/canvas.h"

typedef struct bn_png_text {
    const char *key;
    const char *value;
} bn_png_text;

/* Writes the canvas as an 8-bit RGB PNG, with ntext text chunks in the
 * given order. On failure nothing is left on disk and the old file (if any)
 * is untouched. */
bn_status bn_png_write(const char *path, const bn_canvas *c, const bn_png_text *text, int ntext);

/* Reads any PNG (palette, grey, alpha and 16-bit images are converted to
 * 8-bit RGB; alpha is composited over white). *text gets the text chunks
 * (free with bn_png_text_free). NULL on failure (BN_EIO, BN_EFORMAT). */
bn_canvas *bn_png_read(const char *path, bn_png_text **text, int *ntext);
void bn_png_text_free(bn_png_text *text, int ntext);

#endif
