/* Heatmap cells and colour bars. */
#include "render/heatmap.h"

#include <math.h>
#include <stdlib.h>

/* The pixel range [*a, *b) whose centres fall inside [lo, hi), within [clo, chi). */
static void pixel_span(double lo, double hi, int clo, int chi, int *a, int *b)
{
    double fa = ceil(lo - 0.5), fb = ceil(hi - 0.5);
    *a = fa < clo ? clo : fa > chi ? chi : (int)fa;
    *b = fb < clo ? clo : fb > chi ? chi : (int)fb;
}

bn_status bn_canvas_heatmap(bn_canvas *c, const float *m, int64_t rows, int64_t cols, double x0, double y0, double x1,
                            double y1, const bn_color_scale *s)
{
    if (rows < 1 || cols < 1) return bn_fail(BN_ESHAPE, "heatmap: matrix expected at least 1 x 1, got %lld x %lld",
                                             (long long)rows, (long long)cols);
    if (!isfinite(x0) || !isfinite(x1) || !isfinite(y0) || !isfinite(y1) || !(x1 > x0) || !(y1 > y0))
        return bn_fail(BN_EARG, "heatmap: rectangle expected x0 < x1 and y0 < y1, got (%g, %g) - (%g, %g)", x0, y0, x1,
                       y1);
    if (bn_color_scale_check(s) != BN_OK) return bn_last_status();
    int px0, px1, py0, py1;
    pixel_span(x0, x1, c->clip_x0, c->clip_x1, &px0, &px1);
    pixel_span(y0, y1, c->clip_y0, c->clip_y1, &py0, &py1);
    if (px0 >= px1 || py0 >= py1) return BN_OK;
    int64_t *col_of = malloc(sizeof(int64_t) * (size_t)(px1 - px0));
    if (!col_of) return bn_fail(BN_ENOMEM, "heatmap: out of memory");
    for (int x = px0; x < px1; x++) {
        int64_t j = (int64_t)floor((x + 0.5 - x0) / (x1 - x0) * (double)cols);
        col_of[x - px0] = j < 0 ? 0 : j >= cols ? cols - 1 : j;
    }
    int64_t last_row = -1;
    for (int y = py0; y < py1; y++) {
        int64_t i = (int64_t)floor((y + 0.5 - y0) / (y1 - y0) * (double)rows);
        i = i < 0 ? 0 : i >= rows ? rows - 1 : i;
        uint8_t *dst = c->rgb + 3 * ((size_t)y * (size_t)c->width + (size_t)px0);
        if (i == last_row) { /* same cells as the row above: copy it */
            const uint8_t *prev = dst - 3 * (size_t)c->width;
            for (int k = 0; k < 3 * (px1 - px0); k++) dst[k] = prev[k];
            continue;
        }
        last_row = i;
        const float *row = m + i * cols;
        for (int x = px0; x < px1; x++, dst += 3) {
            uint32_t rgb = bn_color_scale_map(s, (double)row[col_of[x - px0]]);
            dst[0] = (uint8_t)(rgb >> 16);
            dst[1] = (uint8_t)(rgb >> 8);
            dst[2] = (uint8_t)rgb;
        }
    }
    free(col_of);
    return BN_OK;
}

bn_status bn_canvas_colorbar(bn_canvas *c, double x0, double y0, double x1, double y1, const bn_colormap *cm)
{
    if (!isfinite(x0) || !isfinite(x1) || !isfinite(y0) || !isfinite(y1) || !(x1 > x0) || !(y1 > y0))
        return bn_fail(BN_EARG, "colorbar: rectangle expected x0 < x1 and y0 < y1, got (%g, %g) - (%g, %g)", x0, y0,
                       x1, y1);
    int px0, px1, py0, py1;
    pixel_span(x0, x1, c->clip_x0, c->clip_x1, &px0, &px1);
    pixel_span(y0, y1, c->clip_y0, c->clip_y1, &py0, &py1);
    int rows = py1 - py0;
    for (int y = py0; y < py1; y++) {
        double t = rows > 1 ? (double)(py1 - 1 - y) / (rows - 1) : 0.5; /* the end colours at the end rows */
        uint32_t rgb = bn_colormap_at(cm, t);
        for (int x = px0; x < px1; x++) bn_canvas_blend(c, x, y, rgb, 1.0f);
    }
    return BN_OK;
}
