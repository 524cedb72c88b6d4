/* The RGB canvas and its primitives. Lines are drawn by coverage: every
 * pixel gets 1 - (distance to the segment - half width), clamped, kept in a
 * float mask (the max over the segments of one call) that is blended once at
 * the end, so joints of a translucent line are not darker. Polygons are
 * filled scanline by scanline with a few sub-scanlines per pixel row and
 * exact horizontal coverage. */
#include "render/canvas.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Segments are cut into pieces this long, so each piece's bounding box is
 * small however the segment is oriented. */
#define PIECE_LEN 24.0
/* Sub-scanlines per pixel row for polygon fills. */
#define SUBSAMPLES 5

typedef struct box {
    int x0, y0, x1, y1; /* touched pixels: [x0, x1) x [y0, y1); empty when x0 >= x1 */
} box;

bn_canvas *bn_canvas_new(int width, int height, uint32_t background)
{
    if (width < 1 || width > BN_CANVAS_MAX_SIDE || height < 1 || height > BN_CANVAS_MAX_SIDE)
        return bn_fail_null(BN_EARG, "canvas: size expected 1..%d x 1..%d px, got %d x %d", BN_CANVAS_MAX_SIDE,
                            BN_CANVAS_MAX_SIDE, width, height);
    bn_canvas *c = calloc(1, sizeof *c);
    if (!c) return bn_fail_null(BN_ENOMEM, "canvas: out of memory");
    size_t n = (size_t)width * (size_t)height;
    c->rgb = malloc(n * 3);
    if (!c->rgb) {
        free(c);
        return bn_fail_null(BN_ENOMEM, "canvas: out of memory for %d x %d px", width, height);
    }
    c->width = width;
    c->height = height;
    uint8_t r = (uint8_t)(background >> 16), g = (uint8_t)(background >> 8), b = (uint8_t)background;
    for (size_t i = 0; i < n; i++) {
        c->rgb[3 * i] = r;
        c->rgb[3 * i + 1] = g;
        c->rgb[3 * i + 2] = b;
    }
    bn_canvas_reset_clip(c);
    return c;
}

void bn_canvas_free(bn_canvas *c)
{
    if (!c) return;
    free(c->rgb);
    free(c->scratch);
    free(c);
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

void bn_canvas_set_clip(bn_canvas *c, int x0, int y0, int x1, int y1)
{
    c->clip_x0 = clampi(x0 < x1 ? x0 : x1, 0, c->width);
    c->clip_x1 = clampi(x0 < x1 ? x1 : x0, 0, c->width);
    c->clip_y0 = clampi(y0 < y1 ? y0 : y1, 0, c->height);
    c->clip_y1 = clampi(y0 < y1 ? y1 : y0, 0, c->height);
}

void bn_canvas_reset_clip(bn_canvas *c)
{
    c->clip_x0 = c->clip_y0 = 0;
    c->clip_x1 = c->width;
    c->clip_y1 = c->height;
}

uint32_t bn_canvas_get(const bn_canvas *c, int x, int y)
{
    if (x < 0 || y < 0 || x >= c->width || y >= c->height) return 0;
    const uint8_t *p = c->rgb + 3 * ((size_t)y * (size_t)c->width + (size_t)x);
    return ((uint32_t)p[0] << 16) | ((uint32_t)p[1] << 8) | p[2];
}

static inline uint8_t mix(uint8_t bg, uint8_t fg, float a)
{
    float v = (float)bg + ((float)fg - (float)bg) * a;
    return (uint8_t)(v + 0.5f);
}

static inline void blend_unchecked(bn_canvas *c, int x, int y, uint32_t color, float alpha)
{
    uint8_t *p = c->rgb + 3 * ((size_t)y * (size_t)c->width + (size_t)x);
    if (alpha >= 1.0f) {
        p[0] = (uint8_t)(color >> 16);
        p[1] = (uint8_t)(color >> 8);
        p[2] = (uint8_t)color;
        return;
    }
    p[0] = mix(p[0], (uint8_t)(color >> 16), alpha);
    p[1] = mix(p[1], (uint8_t)(color >> 8), alpha);
    p[2] = mix(p[2], (uint8_t)color, alpha);
}

void bn_canvas_blend(bn_canvas *c, int x, int y, uint32_t color, float alpha)
{
    if (x < c->clip_x0 || x >= c->clip_x1 || y < c->clip_y0 || y >= c->clip_y1) return;
    if (!(alpha > 0.0f)) return;
    blend_unchecked(c, x, y, color, alpha > 1.0f ? 1.0f : alpha);
}

/* Length of [a, b) ∩ [i, i + 1). */
static double overlap(double a, double b, int i)
{
    double lo = a > i ? a : i, hi = b < i + 1 ? b : i + 1;
    return hi > lo ? hi - lo : 0.0;
}

void bn_canvas_fill_rect(bn_canvas *c, double x0, double y0, double x1, double y1, uint32_t color, float alpha)
{
    if (!isfinite(x0) || !isfinite(y0) || !isfinite(x1) || !isfinite(y1) || !(alpha > 0.0f)) return;
    if (x1 < x0) { double t = x0; x0 = x1; x1 = t; }
    if (y1 < y0) { double t = y0; y0 = y1; y1 = t; }
    if (x0 < c->clip_x0) x0 = c->clip_x0;
    if (y0 < c->clip_y0) y0 = c->clip_y0;
    if (x1 > c->clip_x1) x1 = c->clip_x1;
    if (y1 > c->clip_y1) y1 = c->clip_y1;
    if (x1 <= x0 || y1 <= y0) return;
    int ix0 = (int)floor(x0), ix1 = (int)ceil(x1), iy0 = (int)floor(y0), iy1 = (int)ceil(y1);
    for (int y = iy0; y < iy1; y++) {
        double fy = overlap(y0, y1, y);
        for (int x = ix0; x < ix1; x++) {
            float a = (float)(fy * overlap(x0, x1, x)) * alpha;
            if (a > 0.0f) blend_unchecked(c, x, y, color, a > 1.0f ? 1.0f : a);
        }
    }
}

static bn_status need_scratch(bn_canvas *c)
{
    if (c->scratch) return BN_OK;
    c->scratch = calloc((size_t)c->width * (size_t)c->height, sizeof(float));
    if (!c->scratch) return bn_fail(BN_ENOMEM, "canvas: out of memory for a %d x %d coverage buffer", c->width,
                                    c->height);
    return BN_OK;
}

/* Blends the mask over `bb` into the canvas and clears it. */
static void composite(bn_canvas *c, const box *bb, uint32_t color, float alpha)
{
    for (int y = bb->y0; y < bb->y1; y++) {
        float *row = c->scratch + (size_t)y * (size_t)c->width;
        for (int x = bb->x0; x < bb->x1; x++) {
            float m = row[x];
            if (m > 0.0f) {
                float a = (m > 1.0f ? 1.0f : m) * alpha;
                blend_unchecked(c, x, y, color, a > 1.0f ? 1.0f : a);
                row[x] = 0.0f;
            }
        }
    }
}

static void grow(box *bb, int x0, int y0, int x1, int y1)
{
    if (bb->x0 >= bb->x1) {
        *bb = (box){x0, y0, x1, y1};
        return;
    }
    if (x0 < bb->x0) bb->x0 = x0;
    if (y0 < bb->y0) bb->y0 = y0;
    if (x1 > bb->x1) bb->x1 = x1;
    if (y1 > bb->y1) bb->y1 = y1;
}

/* Liang–Barsky: clips the segment to the rectangle; false when nothing is left. */
static bool clip_segment(double *ax, double *ay, double *bx, double *by, double x0, double y0, double x1,
                         double y1)
{
    double t0 = 0.0, t1 = 1.0, dx = *bx - *ax, dy = *by - *ay;
    double p[4] = {-dx, dx, -dy, dy};
    double q[4] = {*ax - x0, x1 - *ax, *ay - y0, y1 - *ay};
    for (int i = 0; i < 4; i++) {
        if (p[i] == 0.0) {
            if (q[i] < 0.0) return false;
        } else {
            double t = q[i] / p[i];
            if (p[i] < 0.0) {
                if (t > t1) return false;
                if (t > t0) t0 = t;
            } else {
                if (t < t0) return false;
                if (t < t1) t1 = t;
            }
        }
    }
    double nax = *ax + t0 * dx, nay = *ay + t0 * dy, nbx = *ax + t1 * dx, nby = *ay + t1 * dy;
    *ax = nax;
    *ay = nay;
    *bx = nbx;
    *by = nby;
    return true;
}

/* Coverage of a capsule of radius r around a short segment, max-ed into the mask. */
static void cover_piece(bn_canvas *c, double ax, double ay, double bx, double by, double r, float scale, box *bb)
{
    int x0 = (int)floor(fmin(ax, bx) - r - 1.0), x1 = (int)ceil(fmax(ax, bx) + r + 1.0);
    int y0 = (int)floor(fmin(ay, by) - r - 1.0), y1 = (int)ceil(fmax(ay, by) + r + 1.0);
    x0 = clampi(x0, c->clip_x0, c->clip_x1);
    x1 = clampi(x1, c->clip_x0, c->clip_x1);
    y0 = clampi(y0, c->clip_y0, c->clip_y1);
    y1 = clampi(y1, c->clip_y0, c->clip_y1);
    if (x0 >= x1 || y0 >= y1) return;
    double dx = bx - ax, dy = by - ay, len2 = dx * dx + dy * dy;
    for (int y = y0; y < y1; y++) {
        float *row = c->scratch + (size_t)y * (size_t)c->width;
        double py = y + 0.5 - ay;
        for (int x = x0; x < x1; x++) {
            double px = x + 0.5 - ax;
            double t = len2 > 0.0 ? (px * dx + py * dy) / len2 : 0.0;
            t = t < 0.0 ? 0.0 : t > 1.0 ? 1.0 : t;
            double ex = px - t * dx, ey = py - t * dy;
            double d = sqrt(ex * ex + ey * ey);
            double cov = r + 0.5 - d;
            if (cov <= 0.0) continue;
            float m = (float)(cov > 1.0 ? 1.0 : cov) * scale;
            if (m > row[x]) row[x] = m;
        }
    }
    grow(bb, x0, y0, x1, y1);
}

/* A segment of any length: clipped to the visible area, cut into pieces. */
static void cover_segment(bn_canvas *c, double ax, double ay, double bx, double by, double r, float scale, box *bb)
{
    double m = r + 2.0;
    if (!clip_segment(&ax, &ay, &bx, &by, c->clip_x0 - m, c->clip_y0 - m, c->clip_x1 + m, c->clip_y1 + m)) return;
    double len = hypot(bx - ax, by - ay);
    int pieces = (int)ceil(len / PIECE_LEN);
    if (pieces < 1) pieces = 1;
    for (int i = 0; i < pieces; i++) {
        double t0 = (double)i / pieces, t1 = (double)(i + 1) / pieces;
        cover_piece(c, ax + t0 * (bx - ax), ay + t0 * (by - ay), ax + t1 * (bx - ax), ay + t1 * (by - ay), r, scale,
                    bb);
    }
}

/* Walks a dash pattern along the polyline's length. */
typedef struct dasher {
    const double *dash;
    int n, i;
    double left; /* length left in dash element i */
} dasher;

static void dash_reset(dasher *d)
{
    d->i = 0;
    d->left = d->n ? d->dash[0] : INFINITY;
}

static void stroke_segment(bn_canvas *c, dasher *d, double ax, double ay, double bx, double by, double r, float scale,
                           box *bb)
{
    if (!d->n) {
        cover_segment(c, ax, ay, bx, by, r, scale, bb);
        return;
    }
    double len = hypot(bx - ax, by - ay), pos = 0.0;
    /* A segment far longer than the canvas only happens off-screen: do not walk it dash by dash. */
    if (len > 8.0 * (c->width + c->height)) {
        cover_segment(c, ax, ay, bx, by, r, scale, bb);
        return;
    }
    while (pos < len) {
        double step = fmin(d->left, len - pos);
        if (d->i % 2 == 0 && step > 0.0) {
            double t0 = pos / len, t1 = (pos + step) / len;
            cover_segment(c, ax + t0 * (bx - ax), ay + t0 * (by - ay), ax + t1 * (bx - ax), ay + t1 * (by - ay), r,
                          scale, bb);
        }
        pos += step;
        d->left -= step;
        if (d->left <= 1e-9) {
            d->i = (d->i + 1) % d->n;
            d->left = d->dash[d->i];
        }
    }
}

bn_status bn_canvas_polyline(bn_canvas *c, const double *xs, const double *ys, int n, const bn_stroke *s)
{
    if (n < 1 || !(s->alpha > 0.0f)) return BN_OK;
    if (!(s->width > 0.0) || !isfinite(s->width))
        return bn_fail(BN_EARG, "canvas: line width expected a positive number, got %g", s->width);
    double total = 0.0;
    for (int i = 0; i < s->ndash; i++) {
        if (!(s->dash[i] >= 0.0) || !isfinite(s->dash[i]))
            return bn_fail(BN_EARG, "canvas: dash lengths expected non-negative numbers, got %g", s->dash[i]);
        total += s->dash[i];
    }
    /* a pattern shorter than a pixel would walk a segment in vanishing steps */
    if (s->ndash && !(total >= 1.0))
        return bn_fail(BN_EARG, "canvas: dash pattern expected a total length of at least 1 px, got %g", total);
    if (need_scratch(c) != BN_OK) return bn_last_status();
    double r = s->width < 1.0 ? 0.5 : s->width / 2.0;
    double widest = (double)c->width + c->height; /* wider than this covers everything anyway */
    if (r > widest) r = widest;
    float scale = s->width < 1.0 ? (float)s->width : 1.0f;
    dasher d = {s->dash, s->ndash % 2 ? 2 * s->ndash : s->ndash, 0, 0.0};
    /* An odd pattern repeats with on/off swapped (as in SVG): double it. */
    double doubled[64];
    if (s->ndash % 2) {
        if (s->ndash > 32) return bn_fail(BN_EARG, "canvas: dash pattern expected at most 32 lengths");
        for (int i = 0; i < 2 * s->ndash; i++) doubled[i] = s->dash[i % s->ndash];
        d.dash = doubled;
    } else if (s->ndash > 64) {
        return bn_fail(BN_EARG, "canvas: dash pattern expected at most 64 lengths");
    }
    dash_reset(&d);
    box bb = {0, 0, 0, 0};
    bool prev_ok = false;
    for (int i = 0; i < n; i++) {
        bool ok = isfinite(xs[i]) && isfinite(ys[i]);
        if (ok && prev_ok) {
            stroke_segment(c, &d, xs[i - 1], ys[i - 1], xs[i], ys[i], r, scale, &bb);
        } else if (ok && (i + 1 == n || !(isfinite(xs[i + 1]) && isfinite(ys[i + 1])))) {
            cover_segment(c, xs[i], ys[i], xs[i], ys[i], r, scale, &bb); /* an isolated point: a dot */
        }
        if (!ok) dash_reset(&d);
        prev_ok = ok;
    }
    composite(c, &bb, s->color, s->alpha > 1.0f ? 1.0f : s->alpha);
    return BN_OK;
}

/* Adds coverage w over [xa, xb) of one row (already within the clip columns). */
static void add_span(float *row, double xa, double xb, float w)
{
    if (xb <= xa) return;
    int ia = (int)floor(xa), ib = (int)floor(xb);
    if (ia == ib) {
        row[ia] += (float)(xb - xa) * w;
        return;
    }
    row[ia] += (float)(ia + 1 - xa) * w;
    for (int i = ia + 1; i < ib; i++) row[i] += w;
    if (xb > ib) row[ib] += (float)(xb - ib) * w;
}

typedef struct crossing {
    double x;
    int dir;
} crossing;

typedef struct edge {
    double x0, y0, x1, y1; /* y0 < y1 */
    int dir;               /* +1 when the polygon goes down along it */
} edge;

static int cmp_edge(const void *a, const void *b)
{
    double ya = ((const edge *)a)->y0, yb = ((const edge *)b)->y0;
    return ya < yb ? -1 : ya > yb;
}

static int cmp_crossing(const void *a, const void *b)
{
    double xa = ((const crossing *)a)->x, xb = ((const crossing *)b)->x;
    return xa < xb ? -1 : xa > xb;
}

bn_status bn_canvas_fill_polygon(bn_canvas *c, const double *xs, const double *ys, int n, uint32_t color,
                                 float alpha)
{
    if (n < 3 || !(alpha > 0.0f)) return BN_OK;
    if (need_scratch(c) != BN_OK) return bn_last_status();
    /* the finite points, clamped far outside the canvas (keeps the arithmetic tame) */
    double *px = malloc(sizeof(double) * (size_t)n * 2);
    edge *edges = malloc(sizeof(edge) * (size_t)n);
    edge **active = malloc(sizeof(edge *) * (size_t)n);
    crossing *cr = malloc(sizeof(crossing) * (size_t)n);
    if (!px || !edges || !active || !cr) {
        free(px);
        free(edges);
        free(active);
        free(cr);
        return bn_fail(BN_ENOMEM, "canvas: out of memory for a polygon of %d points", n);
    }
    double *py = px + n;
    double lim = 4.0 * (c->width + c->height);
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(xs[i]) || !isfinite(ys[i])) continue;
        px[m] = fmax(-lim, fmin(lim, xs[i]));
        py[m] = fmax(-lim, fmin(lim, ys[i]));
        m++;
    }
    int ne = 0;
    for (int i = 0; m >= 3 && i < m; i++) {
        int j = i + 1 == m ? 0 : i + 1;
        if (py[i] == py[j]) continue;
        bool down = py[j] > py[i];
        edges[ne++] = down ? (edge){px[i], py[i], px[j], py[j], 1} : (edge){px[j], py[j], px[i], py[i], -1};
    }
    qsort(edges, (size_t)ne, sizeof(edge), cmp_edge);
    box bb = {0, 0, 0, 0};
    double ymin = ne ? edges[0].y0 : 0.0, ymax = -INFINITY;
    for (int i = 0; i < ne; i++) ymax = fmax(ymax, edges[i].y1);
    int r0 = ne ? clampi((int)floor(ymin), c->clip_y0, c->clip_y1) : 0;
    int r1 = ne ? clampi((int)ceil(ymax), c->clip_y0, c->clip_y1) : 0;
    const float w = 1.0f / SUBSAMPLES;
    int next = 0, na = 0;
    for (int y = r0; y < r1; y++) {
        /* the edges that reach into this row: add the new ones, drop the finished ones */
        while (next < ne && edges[next].y0 < y + 1) active[na++] = &edges[next++];
        int keep = 0;
        for (int i = 0; i < na; i++)
            if (active[i]->y1 > y) active[keep++] = active[i];
        na = keep;
        float *row = c->scratch + (size_t)y * (size_t)c->width;
        for (int s = 0; s < SUBSAMPLES; s++) {
            double sy = y + (s + 0.5) / SUBSAMPLES;
            int k = 0;
            for (int i = 0; i < na; i++) {
                const edge *e = active[i];
                if (sy < e->y0 || sy >= e->y1) continue;
                cr[k++] = (crossing){e->x0 + (sy - e->y0) * (e->x1 - e->x0) / (e->y1 - e->y0), e->dir};
            }
            if (k < 2) continue;
            if (k <= 8) { /* the usual few crossings: insertion sort */
                for (int i = 1; i < k; i++) {
                    crossing t = cr[i];
                    int j = i;
                    while (j > 0 && cr[j - 1].x > t.x) {
                        cr[j] = cr[j - 1];
                        j--;
                    }
                    cr[j] = t;
                }
            } else {
                qsort(cr, (size_t)k, sizeof(crossing), cmp_crossing);
            }
            /* non-zero winding: inside from where the count leaves 0 to where it returns */
            int wind = 0;
            double start = 0.0;
            for (int i = 0; i < k; i++) {
                int before = wind;
                wind += cr[i].dir;
                if (before == 0 && wind != 0) start = cr[i].x;
                else if (before != 0 && wind == 0) add_span(row, fmax(start, c->clip_x0), fmin(cr[i].x, c->clip_x1), w);
            }
        }
        grow(&bb, c->clip_x0, y, c->clip_x1, y + 1);
    }
    free(px);
    free(edges);
    free(active);
    free(cr);
    composite(c, &bb, color, alpha > 1.0f ? 1.0f : alpha);
    return BN_OK;
}

bool bn_canvas_marker_known(char shape) { return shape && strchr("os^vDx+.", shape) != NULL; }

bn_status bn_canvas_marker(bn_canvas *c, double x, double y, char shape, double size, uint32_t color, float alpha)
{
    if (!bn_canvas_marker_known(shape))
        return bn_fail(BN_EARG, "canvas: marker expected one of o s ^ v D x + ., got '%c'", shape ? shape : '?');
    if (!isfinite(x) || !isfinite(y) || !(size > 0.0) || !isfinite(size)) return BN_OK;
    if (size > 2.0 * (c->width + c->height)) size = 2.0 * (c->width + c->height);
    double h = size / 2.0;
    switch (shape) {
    case '.':
        h = size / 4.0;
        /* fall through */
    case 'o': {
        if (need_scratch(c) != BN_OK) return bn_last_status();
        box bb = {0, 0, 0, 0};
        cover_segment(c, x, y, x, y, h - 0.5 > 0.0 ? h - 0.5 : 0.0, 1.0f, &bb);
        composite(c, &bb, color, alpha);
        return BN_OK;
    }
    case 's': bn_canvas_fill_rect(c, x - h, y - h, x + h, y + h, color, alpha); return BN_OK;
    case '^': {
        double ax[3] = {x, x + h, x - h}, ay[3] = {y - h, y + h * 0.8, y + h * 0.8};
        return bn_canvas_fill_polygon(c, ax, ay, 3, color, alpha);
    }
    case 'v': {
        double ax[3] = {x, x + h, x - h}, ay[3] = {y + h, y - h * 0.8, y - h * 0.8};
        return bn_canvas_fill_polygon(c, ax, ay, 3, color, alpha);
    }
    case 'D': {
        double ax[4] = {x, x + h, x, x - h}, ay[4] = {y - h, y, y + h, y};
        return bn_canvas_fill_polygon(c, ax, ay, 4, color, alpha);
    }
    default: { /* 'x' and '+': two strokes in one call, blended once */
        double w = fmax(1.5, size / 5.0);
        double q = h - w / 2.0;
        double ax[5], ay[5];
        if (shape == 'x') {
            double ax_[5] = {x - q, x + q, NAN, x - q, x + q}, ay_[5] = {y - q, y + q, NAN, y + q, y - q};
            memcpy(ax, ax_, sizeof ax);
            memcpy(ay, ay_, sizeof ay);
        } else {
            double ax_[5] = {x - h, x + h, NAN, x, x}, ay_[5] = {y, y, NAN, y - h, y + h};
            memcpy(ax, ax_, sizeof ax);
            memcpy(ay, ay_, sizeof ay);
        }
        bn_stroke s = {color, alpha, w, NULL, 0};
        return bn_canvas_polyline(c, ax, ay, 5, &s);
    }
    }
}
