/* An RGB raster that figures are drawn on, and its drawing primitives:
 * rectangles, anti-aliased polylines (solid or dashed), filled polygons with
 * transparency (±std bands), point markers.
 *
 * Coordinates are pixels as doubles, origin at the top-left corner, x to the
 * right, y down; pixel (i, j) covers [i, i+1) x [j, j+1), so a 1-px line at
 * x = i + 0.5 lights exactly column i. Colours are 0xRRGGBB. Everything is
 * clipped to the canvas and to the clip rectangle; coordinates far outside
 * (a diverged value mapped to pixels) and NaN are safe: segments touching a
 * non-finite point are skipped. */
#ifndef BN_RENDER_CANVAS_H
#define BN_RENDER_CANVAS_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

#define BN_CANVAS_MAX_SIDE 16384

typedef struct bn_canvas {
    int width, height;
    uint8_t *rgb;                   /* width * height * 3 bytes, rows from the top */
    int clip_x0, clip_y0, clip_x1, clip_y1; /* drawing is limited to [x0, x1) x [y0, y1) */
    float *scratch;                 /* coverage buffer (width * height), lazily allocated */
} bn_canvas;

/* How a polyline is stroked. dash: lengths in px (on, off, on, ...), NULL or
 * ndash 0 for a solid line. */
typedef struct bn_stroke {
    uint32_t color;
    float alpha;  /* 0..1 */
    double width; /* px; below 1 draws a fainter 1-px line */
    const double *dash;
    int ndash;
} bn_stroke;

/* A canvas filled with `background`. NULL on failure (BN_EARG for a side
 * outside 1..BN_CANVAS_MAX_SIDE, BN_ENOMEM). */
bn_canvas *bn_canvas_new(int width, int height, uint32_t background);
void bn_canvas_free(bn_canvas *c); /* NULL is fine */

/* Limits drawing to [x0, x1) x [y0, y1) (intersected with the canvas). */
void bn_canvas_set_clip(bn_canvas *c, int x0, int y0, int x1, int y1);
void bn_canvas_reset_clip(bn_canvas *c);

/* The colour of pixel (x, y); 0 outside the canvas. */
uint32_t bn_canvas_get(const bn_canvas *c, int x, int y);
/* Blends `color` with weight alpha into pixel (x, y) (clipped). */
void bn_canvas_blend(bn_canvas *c, int x, int y, uint32_t color, float alpha);

/* Fills [x0, x1) x [y0, y1) (any order); fractional edges are anti-aliased. */
void bn_canvas_fill_rect(bn_canvas *c, double x0, double y0, double x1, double y1, uint32_t color, float alpha);

/* Strokes the polyline through n points. Round joins and caps; a point with
 * a non-finite coordinate breaks the line. Overlapping parts of one call are
 * blended once, so translucent lines stay even. */
bn_status bn_canvas_polyline(bn_canvas *c, const double *xs, const double *ys, int n, const bn_stroke *s);

/* Fills the polygon through n points (non-zero winding), anti-aliased.
 * Non-finite points are dropped. */
bn_status bn_canvas_fill_polygon(bn_canvas *c, const double *xs, const double *ys, int n, uint32_t color,
                                 float alpha);

/* Marker shapes: 'o' disc, 's' square, '^' triangle, 'v' triangle down,
 * 'D' diamond, 'x' cross, '+' plus, '.' small disc. size is the diameter. */
bn_status bn_canvas_marker(bn_canvas *c, double x, double y, char shape, double size, uint32_t color,
                           float alpha);

/* Whether `shape` names a marker. */
bool bn_canvas_marker_known(char shape);

#endif
