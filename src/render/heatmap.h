/* Colour-mapped matrices: heatmap cells and colour-bar gradients. */
#ifndef BN_RENDER_HEATMAP_H
#define BN_RENDER_HEATMAP_H

#include <stdint.h>

#include "render/canvas.h"
#include "render/colormap.h"

/* Draws a rows x cols matrix (row-major, row 0 at the top) into the
 * rectangle [x0, x1) x [y0, y1): each pixel takes the colour of the cell
 * under its centre (no smoothing: a cell is a cell). */
bn_status bn_canvas_heatmap(bn_canvas *c, const float *m, int64_t rows, int64_t cols, double x0, double y0, double x1,
                            double y1, const bn_color_scale *s);

/* A vertical gradient of the map, its low end at the bottom. */
bn_status bn_canvas_colorbar(bn_canvas *c, double x0, double y0, double x1, double y1, const bn_colormap *cm);

#endif
