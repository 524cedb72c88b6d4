/* PNG writing and reading with libpng. libpng reports errors by longjmp:
 * every resource a jump could strand is either made before setjmp or held
 * in a volatile variable the error branch frees. */
#include "render/png.h"

#include <errno.h>
#include <png.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "data/atomic_file.h"

typedef struct png_err {
    char msg[256];
} png_err;

static void on_error(png_structp png, png_const_charp msg)
{
    png_err *e = png_get_error_ptr(png);
    snprintf(e->msg, sizeof e->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static bool key_ok(const char *k)
{
    size_t n = strlen(k);
    if (n < 1 || n > 79 || k[0] == ' ' || k[n - 1] == ' ') return false;
    for (size_t i = 0; i < n; i++) {
        if (k[i] < 32 || k[i] > 126) return false;
        if (k[i] == ' ' && k[i + 1] == ' ') return false;
    }
    return true;
}

/* Bytes go through the atomic file, which keeps the errno of the first
 * failed write (ENOSPC, EFBIG) for its commit to report; libpng's own
 * fwrite-based writer would only say "Write Error". After a failure the
 * rest of the image is dropped, and the commit fails with that message. */
static void write_bytes(png_structp png, png_bytep data, size_t n)
{
    bn_atomic_file_write(png_get_io_ptr(png), data, n);
}

static void flush_nothing(png_structp png) { (void)png; } /* the commit flushes */

static bool is_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80) return false;
    return true;
}

bn_status bn_png_write(const char *path, const bn_canvas *c, const bn_png_text *text, int ntext)
{
    if (!path || !*path) return bn_fail(BN_EARG, "png: path expected a non-empty file name");
    if (ntext < 0 || (ntext > 0 && !text)) return bn_fail(BN_EARG, "png: text chunks expected, got %d", ntext);
    for (int i = 0; i < ntext; i++) {
        if (!text[i].key || !key_ok(text[i].key))
            return bn_fail(BN_EARG,
                           "png: text key '%s' is not a PNG keyword (1-79 printable ASCII characters, no "
                           "leading, trailing or double spaces)",
                           text[i].key ? text[i].key : "(null)");
        if (!text[i].value) return bn_fail(BN_EARG, "png: text '%s' has no value", text[i].key);
    }
    png_text *chunks = calloc((size_t)(ntext ? ntext : 1), sizeof *chunks);
    if (!chunks) return bn_fail(BN_ENOMEM, "png: out of memory");
    bn_atomic_file *af = bn_atomic_file_open("png", path);
    if (!af) {
        free(chunks);
        return bn_last_status();
    }
    png_err err = {""};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, &info);
        free(chunks);
        bn_atomic_file_abort(af);
        return bn_fail(BN_ENOMEM, "png: out of memory");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(chunks);
        bn_atomic_file_abort(af);
        return bn_fail(BN_EIO, "png: %s: %s", path, err.msg);
    }
    png_set_write_fn(png, af, write_bytes, flush_nothing);
    png_set_IHDR(png, info, (png_uint_32)c->width, (png_uint_32)c->height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    for (int i = 0; i < ntext; i++) {
        chunks[i].key = (png_charp)text[i].key;
        chunks[i].text = (png_charp)text[i].value;
        chunks[i].text_length = strlen(text[i].value);
        if (is_ascii(text[i].value)) {
            chunks[i].compression = PNG_TEXT_COMPRESSION_NONE;
        } else {
            chunks[i].compression = PNG_ITXT_COMPRESSION_NONE;
            chunks[i].itxt_length = chunks[i].text_length;
            chunks[i].text_length = 0;
            chunks[i].lang = (png_charp) "";
            chunks[i].lang_key = (png_charp) "";
        }
    }
    if (ntext) png_set_text(png, info, chunks, ntext);
    png_write_info(png, info);
    for (int y = 0; y < c->height; y++) png_write_row(png, c->rgb + (size_t)y * (size_t)c->width * 3);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free(chunks);
    return bn_atomic_file_commit(af);
}

void bn_png_text_free(bn_png_text *text, int ntext)
{
    if (!text) return;
    for (int i = 0; i < ntext; i++) {
        free((char *)text[i].key);
        free((char *)text[i].value);
    }
    free(text);
}

bn_canvas *bn_png_read(const char *path, bn_png_text **text, int *ntext)
{
    *text = NULL;
    *ntext = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return bn_fail_null(BN_EIO, "png: cannot open %s: %s", path, strerror(errno));
    unsigned char sig[8];
    if (fread(sig, 1, 8, f) != 8 || png_sig_cmp(sig, 0, 8) != 0) {
        fclose(f);
        return bn_fail_null(BN_EFORMAT, "png: %s is not a PNG file", path);
    }
    png_err err = {""};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &err, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(f);
        return bn_fail_null(BN_ENOMEM, "png: out of memory");
    }
    bn_canvas *volatile canvas = NULL;
    uint8_t *volatile rgba = NULL;
    png_bytep *volatile rows = NULL;
    bn_png_text *volatile tx = NULL;
    volatile int ntx = 0;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        fclose(f);
        bn_canvas_free(canvas);
        free(rgba);
        free(rows);
        bn_png_text_free(tx, ntx);
        return bn_fail_null(BN_EFORMAT, "png: %s: %s", path, err.msg[0] ? err.msg : "out of memory");
    }
    png_init_io(png, f);
    png_set_sig_bytes(png, 8);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if (w < 1 || h < 1 || w > BN_CANVAS_MAX_SIDE || h > BN_CANVAS_MAX_SIDE) {
        snprintf(err.msg, sizeof err.msg, "image of %u x %u px is larger than %d px a side", (unsigned)w, (unsigned)h,
                 BN_CANVAS_MAX_SIDE);
        png_longjmp(png, 1);
    }
    png_set_expand(png);
    png_set_strip_16(png);
    png_set_gray_to_rgb(png);
    png_set_filler(png, 0xFF, PNG_FILLER_AFTER); /* RGB -> RGBA with opaque alpha */
    (void)png_set_interlace_handling(png);
    png_read_update_info(png, info);
    rgba = malloc((size_t)w * h * 4);
    rows = malloc(sizeof(png_bytep) * h);
    canvas = bn_canvas_new((int)w, (int)h, 0xFFFFFF);
    if (!rgba || !rows || !canvas) {
        err.msg[0] = 0;
        png_longjmp(png, 1);
    }
    for (png_uint_32 y = 0; y < h; y++) rows[y] = rgba + (size_t)y * w * 4;
    png_read_image(png, rows);
    png_read_end(png, info);
    png_textp tp = NULL;
    int num = png_get_text(png, info, &tp, NULL);
    if (num > 0) {
        tx = calloc((size_t)num, sizeof(bn_png_text));
        if (!tx) png_longjmp(png, 1);
        for (int i = 0; i < num; i++) {
            const char *v = tp[i].text ? tp[i].text : "";
            ((bn_png_text *)tx)[i].key = strdup(tp[i].key);
            ((bn_png_text *)tx)[i].value = strdup(v);
            ntx = i + 1;
            if (!tx[i].key || !tx[i].value) png_longjmp(png, 1);
        }
    }
    /* alpha over white */
    for (size_t i = 0; i < (size_t)w * h; i++) {
        const uint8_t *s = rgba + 4 * i;
        uint8_t *d = canvas->rgb + 3 * i;
        for (int k = 0; k < 3; k++) d[k] = (uint8_t)((s[k] * s[3] + 255 * (255 - s[3]) + 127) / 255);
    }
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
    free(rgba);
    free(rows);
    *text = tx;
    *ntext = ntx;
    return canvas;
}
