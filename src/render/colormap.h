/* Colour maps (256 entries each) and the scale that maps a value to a colour:
 * linear or logarithmic between vmin and vmax, NaN (and, on a log scale,
 * values <= 0) to a separate colour, ±Inf to the ends of the map. */
#ifndef BN_RENDER_COLORMAP_H
#define BN_RENDER_COLORMAP_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

typedef struct bn_colormap {
    const char *name;
    const uint8_t (*rgb)[3]; /* 256 entries, low to high */
    bool reversed;           /* "<name>_r": the same table read backwards */
} bn_colormap;

/* A map by name: viridis, magma, coolwarm, gray, and any of
 * them with "_r" appended (reversed). Fills *out; BN_EARG naming the known
 * maps otherwise. */
bn_status bn_colormap_find(const char *name, bn_colormap *out);
/* "viridis, magma, ..." for messages and docs. */
const char *bn_colormap_names(void);
/* The colour at t in [0, 1] (clamped; NaN gives the low end), picked the way
 * matplotlib does: entry floor(t * 256), the last one for t = 1. */
uint32_t bn_colormap_at(const bn_colormap *cm, double t);

typedef struct bn_color_scale {
    bn_colormap cmap;
    double vmin, vmax; /* data units; on a log scale both > 0 */
    bool log;
    uint32_t nan_color;
} bn_color_scale;

/* Checks the scale (finite vmin < vmax, positive on a log scale). */
bn_status bn_color_scale_check(const bn_color_scale *s);
/* Position of v on the scale: 0 at vmin, 1 at vmax, clamped; NaN for values
 * the scale cannot place (NaN, and v <= 0 on a log scale). */
double bn_color_scale_pos(const bn_color_scale *s, double v);
uint32_t bn_color_scale_map(const bn_color_scale *s, double v);

#endif
