/* 2-D pooling over NCHW planes: max, average and adaptive average, with
 * PyTorch's geometry (floor output sizes, implicit padding). Planes are
 * independent, so each op runs its planes in parallel and the backward
 * scatter never races. */
#include <math.h>
#include <stdint.h>
#include <omp.h>
#include <string.h>

#include "autograd.h"
#include "ops.h"
#include "profile.h"

typedef struct pool_geom {
    int64_t planes, h, w; /* input: N*C planes of h x w */
    int64_t oh, ow;
    int64_t kh, kw, sh, sw, ph, pw;
    bool include_pad;
} pool_geom;

/* Window indices are saved as floats, exact up to 2^24. */
#define POOL_MAX_WINDOW (INT64_C(1) << 24)

static int team_size(int64_t work)
{
    int t = omp_get_max_threads();
    if (work < 1) return 1;
    return work < t ? (int)work : t;
}

/* Input tensor of a pooling op as a contiguous buffer, without a node: the
 * pooling node itself records the caller's tensor. */
static bn_tensor *packed(bn_tensor *x)
{
    bool was = bn_set_grad_enabled(false);
    bn_tensor *c = bn_contiguous(x);
    bn_set_grad_enabled(was);
    return c;
}

static bn_status check_input(const char *op, const bn_tensor *x)
{
    if (!x) return bn_fail(BN_EARG, "%s: input expected a tensor, got NULL", op);
    if (x->ndim != 4)
        return bn_fail(BN_ESHAPE, "%s: input expected 4-D [N x C x H x W], got %s", op, bn_shape_str(x));
    if (x->shape[2] < 1 || x->shape[3] < 1)
        return bn_fail(BN_ESHAPE, "%s: input expected non-empty spatial dims [N x C x H x W], got %s", op,
                       bn_shape_str(x));
    return BN_OK;
}

static bn_status pool_check(const char *op, const bn_tensor *x, const bn_pool2d_opts *o, pool_geom *g)
{
    bn_status st = check_input(op, x);
    if (st != BN_OK) return st;
    if (!o) return bn_fail(BN_EARG, "%s: options expected (the kernel size is required), got NULL", op);
    if (o->kernel_h < 1 || o->kernel_w < 1)
        return bn_fail(BN_EARG, "%s: kernel size expected >= 1, got %d x %d", op, o->kernel_h, o->kernel_w);
    if (o->stride_h < 0 || o->stride_w < 0)
        return bn_fail(BN_EARG, "%s: stride expected >= 1 (or 0 for the kernel size), got %d x %d", op,
                       o->stride_h, o->stride_w);
    /* PyTorch's rule; it also guarantees every window overlaps the input. */
    if (o->pad_h < 0 || o->pad_w < 0 || o->pad_h > o->kernel_h / 2 || o->pad_w > o->kernel_w / 2)
        return bn_fail(BN_EARG, "%s: padding expected between 0 and half the kernel (%d x %d), got %d x %d", op,
                       o->kernel_h / 2, o->kernel_w / 2, o->pad_h, o->pad_w);
    if ((int64_t)o->kernel_h * o->kernel_w > POOL_MAX_WINDOW)
        return bn_fail(BN_EARG, "%s: kernel %d x %d expected at most 2^24 elements", op, o->kernel_h,
                       o->kernel_w);
    g->planes = x->shape[0] * x->shape[1];
    g->h = x->shape[2];
    g->w = x->shape[3];
    g->kh = o->kernel_h;
    g->kw = o->kernel_w;
    g->sh = o->stride_h ? o->stride_h : o->kernel_h;
    g->sw = o->stride_w ? o->stride_w : o->kernel_w;
    g->ph = o->pad_h;
    g->pw = o->pad_w;
    g->include_pad = o->count_include_pad;
    int64_t span_h = g->h + 2 * g->ph, span_w = g->w + 2 * g->pw;
    if (span_h < g->kh || span_w < g->kw)
        return bn_fail(BN_ESHAPE,
                       "%s: kernel %lld x %lld expected to fit the padded input %lld x %lld (input %s, padding "
                       "%lld x %lld)",
                       op, (long long)g->kh, (long long)g->kw, (long long)span_h, (long long)span_w,
                       bn_shape_str(x), (long long)g->ph, (long long)g->pw);
    g->oh = (span_h - g->kh) / g->sh + 1;
    g->ow = (span_w - g->kw) / g->sw + 1;
    return BN_OK;
}

static void geom_from_node(pool_geom *g, const bn_node *n)
{
    g->planes = n->in_shape[0][0] * n->in_shape[0][1];
    g->h = n->in_shape[0][2];
    g->w = n->in_shape[0][3];
    g->oh = n->out_shape[2];
    g->ow = n->out_shape[3];
    g->kh = n->i[0], g->kw = n->i[1], g->sh = n->i[2], g->sw = n->i[3], g->ph = n->i[4], g->pw = n->i[5];
    g->include_pad = n->i[6] != 0;
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

static bn_tensor *output_of(const bn_tensor *x, const pool_geom *g)
{
    int64_t shape[4] = {x->shape[0], x->shape[1], g->oh, g->ow};
    return bn_tensor_empty(4, shape);
}

/* ---- max ---------------------------------------------------------------- */

/* `where` (may be NULL) receives each maximum's position inside its window,
 * ki * kw + kj: the first maximal element, or the first NaN, which wins as
 * in PyTorch so that divergence shows up in the output. */
static void max_forward(float *y, float *where, const float *x, const pool_geom *g)
{
#pragma omp parallel for num_threads(team_size(g->planes)) schedule(static)
    for (int64_t pl = 0; pl < g->planes; pl++) {
        const float *xp = x + pl * g->h * g->w;
        for (int64_t oy = 0; oy < g->oh; oy++) {
            int64_t y0 = oy * g->sh - g->ph, ylo = max64(y0, 0), yhi = min64(y0 + g->kh, g->h);
            for (int64_t ox = 0; ox < g->ow; ox++) {
                int64_t x0 = ox * g->sw - g->pw, xlo = max64(x0, 0), xhi = min64(x0 + g->kw, g->w);
                int64_t by = ylo, bx = xlo;
                float best = xp[ylo * g->w + xlo];
                for (int64_t iy = ylo; iy < yhi && !isnan(best); iy++)
                    for (int64_t ix = xlo; ix < xhi; ix++) {
                        float v = xp[iy * g->w + ix];
                        if (v > best || isnan(v)) {
                            best = v, by = iy, bx = ix;
                            if (isnan(v)) break;
                        }
                    }
                int64_t q = (pl * g->oh + oy) * g->ow + ox;
                y[q] = best;
                if (where) where[q] = (float)((by - y0) * g->kw + (bx - x0));
            }
        }
    }
}

static bn_status max_backward(bn_node *n, bn_tensor *gout, bn_tensor **gin)
{
    pool_geom g;
    geom_from_node(&g, n);
    bn_tensor *dy_t = bn_contiguous(gout);
    if (!dy_t) return bn_last_status();
    bn_tensor *dx = bn_tensor_zeros(4, n->in_shape[0]);
    if (!dx) {
        bn_tensor_release(dy_t);
        return bn_last_status();
    }
    const float *dy = bn_tensor_data(dy_t), *where = bn_tensor_data(n->saved[0]);
    float *dxd = bn_tensor_data(dx);
#pragma omp parallel for num_threads(team_size(g.planes)) schedule(static)
    for (int64_t pl = 0; pl < g.planes; pl++) {
        float *dxp = dxd + pl * g.h * g.w;
        for (int64_t oy = 0; oy < g.oh; oy++)
            for (int64_t ox = 0; ox < g.ow; ox++) {
                int64_t q = (pl * g.oh + oy) * g.ow + ox, k = (int64_t)where[q];
                int64_t iy = oy * g.sh - g.ph + k / g.kw, ix = ox * g.sw - g.pw + k % g.kw;
                dxp[iy * g.w + ix] += dy[q];
            }
    }
    bn_tensor_release(dy_t);
    gin[0] = dx;
    return BN_OK;
}

static bn_tensor *bn_max_pool2d_unprofiled(bn_tensor *x, const bn_pool2d_opts *o)
{
    pool_geom g;
    if (pool_check("max_pool2d", x, o, &g) != BN_OK) return NULL;
    bool need_grad = bn_grad_needed(1, &x);
    bn_tensor *xc = packed(x), *out = NULL, *where = NULL;
    if (!xc || !(out = output_of(x, &g)) || (need_grad && !(where = output_of(x, &g)))) {
        bn_tensor_release(xc);
        bn_tensor_release(out);
        return NULL;
    }
    max_forward(bn_tensor_data(out), where ? bn_tensor_data(where) : NULL, bn_tensor_data(xc), &g);
    int64_t iv[6] = {g.kh, g.kw, g.sh, g.sw, g.ph, g.pw};
    out = bn_record(out, "max_pool2d", max_backward, 1, &x, 1, &where, NULL, 0, iv, 6);
    bn_tensor_release(where);
    bn_tensor_release(xc);
    return out;
}

bn_tensor *bn_max_pool2d(bn_tensor *x, const bn_pool2d_opts *o)
{
    BN_PROFILE_BEGIN("max_pool2d", false);
    bn_tensor *out = bn_max_pool2d_unprofiled(x, o);
    BN_PROFILE_END();
    return out;
}

/* ---- average ------------------------------------------------------------ */

/* Visits each output of a plane with its input window clipped to the
 * input, and its divisor. Without ceil_mode a window never reaches past the
 * padding, so counting padding means dividing by the full kernel area. */
#define FOR_EACH_AVG_WINDOW(g, body)                                                             \
    for (int64_t oy = 0; oy < (g)->oh; oy++) {                                                   \
        int64_t y0 = oy * (g)->sh - (g)->ph, ylo = max64(y0, 0), yhi = min64(y0 + (g)->kh, (g)->h); \
        for (int64_t ox = 0; ox < (g)->ow; ox++) {                                               \
            int64_t x0 = ox * (g)->sw - (g)->pw, xlo = max64(x0, 0), xhi = min64(x0 + (g)->kw, (g)->w); \
            int64_t count = (g)->include_pad ? (g)->kh * (g)->kw : (yhi - ylo) * (xhi - xlo);   \
            int64_t q = oy * (g)->ow + ox;                                                       \
            body;                                                                                \
        }                                                                                        \
    }

static bn_status avg_backward(bn_node *n, bn_tensor *gout, bn_tensor **gin)
{
    pool_geom g;
    geom_from_node(&g, n);
    bn_tensor *dy_t = bn_contiguous(gout);
    if (!dy_t) return bn_last_status();
    bn_tensor *dx = bn_tensor_zeros(4, n->in_shape[0]);
    if (!dx) {
        bn_tensor_release(dy_t);
        return bn_last_status();
    }
    const float *dy = bn_tensor_data(dy_t);
    float *dxd = bn_tensor_data(dx);
#pragma omp parallel for num_threads(team_size(g.planes)) schedule(static)
    for (int64_t pl = 0; pl < g.planes; pl++) {
        float *dxp = dxd + pl * g.h * g.w;
        const float *dyp = dy + pl * g.oh * g.ow;
        FOR_EACH_AVG_WINDOW(&g, {
            float share = dyp[q] / (float)count;
            for (int64_t iy = ylo; iy < yhi; iy++)
                for (int64_t ix = xlo; ix < xhi; ix++) dxp[iy * g.w + ix] += share;
        });
    }
    bn_tensor_release(dy_t);
    gin[0] = dx;
    return BN_OK;
}

static bn_tensor *bn_avg_pool2d_unprofiled(bn_tensor *x, const bn_pool2d_opts *o)
{
    pool_geom g;
    if (pool_check("avg_pool2d", x, o, &g) != BN_OK) return NULL;
    bn_tensor *xc = packed(x), *out = xc ? output_of(x, &g) : NULL;
    if (!out) {
        bn_tensor_release(xc);
        return NULL;
    }
    const float *xd = bn_tensor_data(xc);
    float *yd = bn_tensor_data(out);
    const pool_geom *gp = &g;
#pragma omp parallel for num_threads(team_size(g.planes)) schedule(static)
    for (int64_t pl = 0; pl < g.planes; pl++) {
        const float *xp = xd + pl * g.h * g.w;
        float *yp = yd + pl * g.oh * g.ow;
        FOR_EACH_AVG_WINDOW(gp, {
            float s = 0.0f;
            for (int64_t iy = ylo; iy < yhi; iy++)
                for (int64_t ix = xlo; ix < xhi; ix++) s += xp[iy * g.w + ix];
            yp[q] = s / (float)count;
        });
    }
    bn_tensor_release(xc);
    int64_t iv[7] = {g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.include_pad};
    return bn_record(out, "avg_pool2d", avg_backward, 1, &x, 0, NULL, NULL, 0, iv, 7);
}

bn_tensor *bn_avg_pool2d(bn_tensor *x, const bn_pool2d_opts *o)
{
    BN_PROFILE_BEGIN("avg_pool2d", false);
    bn_tensor *out = bn_avg_pool2d_unprofiled(x, o);
    BN_PROFILE_END();
    return out;
}

/* ---- adaptive average --------------------------------------------------- */

/* Bin i of `out` bins over `in` elements: [floor(i*in/out), ceil((i+1)*in/out)). */
static int64_t bin_start(int64_t i, int64_t in, int64_t out) { return i * in / out; }
static int64_t bin_end(int64_t i, int64_t in, int64_t out) { return ((i + 1) * in + out - 1) / out; }

static bn_status adaptive_backward(bn_node *n, bn_tensor *gout, bn_tensor **gin)
{
    int64_t planes = n->in_shape[0][0] * n->in_shape[0][1], h = n->in_shape[0][2], w = n->in_shape[0][3];
    int64_t oh = n->out_shape[2], ow = n->out_shape[3];
    bn_tensor *dy_t = bn_contiguous(gout);
    if (!dy_t) return bn_last_status();
    bn_tensor *dx = bn_tensor_zeros(4, n->in_shape[0]);
    if (!dx) {
        bn_tensor_release(dy_t);
        return bn_last_status();
    }
    const float *dy = bn_tensor_data(dy_t);
    float *dxd = bn_tensor_data(dx);
#pragma omp parallel for num_threads(team_size(planes)) schedule(static)
    for (int64_t pl = 0; pl < planes; pl++) {
        float *dxp = dxd + pl * h * w;
        const float *dyp = dy + pl * oh * ow;
        for (int64_t i = 0; i < oh; i++) {
            int64_t ylo = bin_start(i, h, oh), yhi = bin_end(i, h, oh);
            for (int64_t j = 0; j < ow; j++) {
                int64_t xlo = bin_start(j, w, ow), xhi = bin_end(j, w, ow);
                float share = dyp[i * ow + j] / (float)((yhi - ylo) * (xhi - xlo));
                for (int64_t iy = ylo; iy < yhi; iy++)
                    for (int64_t ix = xlo; ix < xhi; ix++) dxp[iy * w + ix] += share;
            }
        }
    }
    bn_tensor_release(dy_t);
    gin[0] = dx;
    return BN_OK;
}

static bn_tensor *bn_adaptive_avg_pool2d_unprofiled(bn_tensor *x, int64_t oh, int64_t ow)
{
    if (check_input("adaptive_avg_pool2d", x) != BN_OK) return NULL;
    if (oh < 1 || ow < 1)
        return bn_fail_null(BN_EARG, "adaptive_avg_pool2d: output size expected >= 1, got %lld x %lld",
                            (long long)oh, (long long)ow);
    int64_t planes = x->shape[0] * x->shape[1], h = x->shape[2], w = x->shape[3];
    /* Bin edges compute (i + 1) * h in int64. */
    if (oh > INT64_MAX / h - 1 || ow > INT64_MAX / w - 1)
        return bn_fail_null(BN_EARG, "adaptive_avg_pool2d: output size %lld x %lld too large for input %s",
                            (long long)oh, (long long)ow, bn_shape_str(x));
    int64_t shape[4] = {x->shape[0], x->shape[1], oh, ow};
    bn_tensor *xc = packed(x), *out = xc ? bn_tensor_empty(4, shape) : NULL;
    if (!out) {
        bn_tensor_release(xc);
        return NULL;
    }
    const float *xd = bn_tensor_data(xc);
    float *yd = bn_tensor_data(out);
#pragma omp parallel for num_threads(team_size(planes)) schedule(static)
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *xp = xd + pl * h * w;
        float *yp = yd + pl * oh * ow;
        for (int64_t i = 0; i < oh; i++) {
            int64_t ylo = bin_start(i, h, oh), yhi = bin_end(i, h, oh);
            for (int64_t j = 0; j < ow; j++) {
                int64_t xlo = bin_start(j, w, ow), xhi = bin_end(j, w, ow);
                float s = 0.0f;
                for (int64_t iy = ylo; iy < yhi; iy++)
                    for (int64_t ix = xlo; ix < xhi; ix++) s += xp[iy * w + ix];
                yp[i * ow + j] = s / (float)((yhi - ylo) * (xhi - xlo));
            }
        }
    }
    bn_tensor_release(xc);
    return bn_record(out, "adaptive_avg_pool2d", adaptive_backward, 1, &x, 0, NULL, NULL, 0, NULL, 0);
}

bn_tensor *bn_adaptive_avg_pool2d(bn_tensor *x, int64_t oh, int64_t ow)
{
    BN_PROFILE_BEGIN("adaptive_avg_pool2d", false);
    bn_tensor *out = bn_adaptive_avg_pool2d_unprofiled(x, oh, ow);
    BN_PROFILE_END();
    return out;
}
