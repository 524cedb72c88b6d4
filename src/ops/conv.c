/* 2-D convolution (NCHW, zero padding) as im2col + GEMM, one image at a
 * time, images spread over OpenMP threads. Each thread calls sgemm from
 * inside the parallel region, where OpenBLAS runs single-threaded. The
 * alternative, a serial image loop with OpenBLAS threading each GEMM, ran
 * 2-5x slower at 2 threads on the CIFAR ResNet shapes at batch 128: one
 * image's GEMM is too small to split. (A batch of one image makes a team of
 * one, an inactive region, so OpenBLAS then threads that GEMM itself.)
 *
 * Results do not depend on the thread count: every image is computed alone,
 * and the weight gradient is summed over fixed groups of images (not over
 * threads) that are then added in a fixed order. */
#include <limits.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "autograd.h"
#include "blas.h"
#include "ops.h"
#include "profile.h"

typedef struct conv_geom {
    int64_t n, c, h, w;  /* input */
    int64_t o, kh, kw;   /* weight */
    int64_t sh, sw, ph, pw;
    int64_t oh, ow;      /* output */
    int64_t k;           /* rows of the column matrix: c * kh * kw */
    int64_t p;           /* output pixels per image: oh * ow */
} conv_geom;

/* Bounds the memory held by per-group weight-gradient partial sums. */
#define CONV_PARTIAL_BUDGET (INT64_C(16) << 20) /* floats */
#define CONV_MAX_GROUPS 32

static void geom_init(conv_geom *g, const int64_t *xs, const int64_t *ws, int64_t sh, int64_t sw,
                      int64_t ph, int64_t pw)
{
    g->n = xs[0], g->c = xs[1], g->h = xs[2], g->w = xs[3];
    g->o = ws[0], g->kh = ws[2], g->kw = ws[3];
    g->sh = sh, g->sw = sw, g->ph = ph, g->pw = pw;
    g->oh = (g->h + 2 * ph - g->kh) / sh + 1;
    g->ow = (g->w + 2 * pw - g->kw) / sw + 1;
    g->k = g->c * g->kh * g->kw;
    g->p = g->oh * g->ow;
}

/* A 1x1, stride 1, unpadded conv reads the image itself as its columns. */
static bool geom_pointwise(const conv_geom *g)
{
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0;
}

/* Output positions [*lo, *hi) whose input index out*stride + shift lies in
 * [0, in_size). */
static void valid_range(int64_t out_size, int64_t in_size, int64_t stride, int64_t shift, int64_t *lo,
                        int64_t *hi)
{
    int64_t a = shift >= 0 ? 0 : (-shift + stride - 1) / stride;
    int64_t b = in_size - 1 - shift < 0 ? 0 : (in_size - 1 - shift) / stride + 1;
    if (b > out_size) b = out_size;
    if (a > b) a = b;
    *lo = a;
    *hi = b;
}

/* With stride 1 and as many output as input columns (3x3 pad 1, ...), a
 * row of cols is the input plane shifted by a constant: one contiguous run,
 * with the wrapped-around border columns zeroed. */
static bool geom_shifted_plane(const conv_geom *g) { return g->sh == 1 && g->sw == 1 && g->ow == g->w; }

static void zero_border_columns(float *row, int64_t y_lo, int64_t y_hi, int64_t x_lo, int64_t x_hi, int64_t ow)
{
    /* Column by column: usually one or two short columns, where row-wise
     * loops would become two memset calls per row. */
    for (int64_t ox = 0; ox < x_lo; ox++)
        for (int64_t oy = y_lo; oy < y_hi; oy++) row[oy * ow + ox] = 0.0f;
    for (int64_t ox = x_hi; ox < ow; ox++)
        for (int64_t oy = y_lo; oy < y_hi; oy++) row[oy * ow + ox] = 0.0f;
}

/* cols[k x p] from one image x[c x h x w]; padding reads as zeros. */
static void im2col(float *restrict cols, const float *restrict x, const conv_geom *g)
{
    const int64_t ow = g->ow, sw = g->sw, p = g->p;
    const bool shifted = geom_shifted_plane(g);
    for (int64_t c = 0; c < g->c; c++) {
        const float *plane = x + c * g->h * g->w;
        for (int64_t ki = 0; ki < g->kh; ki++) {
            int64_t y_lo, y_hi;
            valid_range(g->oh, g->h, g->sh, ki - g->ph, &y_lo, &y_hi);
            for (int64_t kj = 0; kj < g->kw; kj++) {
                float *row = cols + ((c * g->kh + ki) * g->kw + kj) * p;
                int64_t x_lo, x_hi, shift = kj - g->pw;
                valid_range(ow, g->w, sw, shift, &x_lo, &x_hi);
                if (y_lo == y_hi || x_lo == x_hi) {
                    memset(row, 0, (size_t)p * sizeof(float));
                } else if (shifted) {
                    int64_t first = y_lo * ow + x_lo, end = (y_hi - 1) * ow + x_hi;
                    int64_t d = (ki - g->ph) * g->w + shift;
                    memset(row, 0, (size_t)first * sizeof(float));
                    /* omp simd: -O2's cost model leaves these copy and add loops scalar. */
#pragma omp simd
                    for (int64_t j = first; j < end; j++) row[j] = plane[j + d];
                    memset(row + end, 0, (size_t)(p - end) * sizeof(float));
                    zero_border_columns(row, y_lo, y_hi, x_lo, x_hi, ow);
                } else {
                    memset(row, 0, (size_t)(y_lo * ow) * sizeof(float));
                    for (int64_t oy = y_lo; oy < y_hi; oy++) {
                        float *dst = row + oy * ow;
                        const float *src = plane + (oy * g->sh + ki - g->ph) * g->w;
                        for (int64_t ox = 0; ox < x_lo; ox++) dst[ox] = 0.0f;
                        if (sw == 1)
                            memcpy(dst + x_lo, src + x_lo + shift, (size_t)(x_hi - x_lo) * sizeof(float));
                        else
                            for (int64_t ox = x_lo; ox < x_hi; ox++) dst[ox] = src[ox * sw + shift];
                        for (int64_t ox = x_hi; ox < ow; ox++) dst[ox] = 0.0f;
                    }
                    memset(row + y_hi * ow, 0, (size_t)((g->oh - y_hi) * ow) * sizeof(float));
                }
            }
        }
    }
}

/* dx[c x h x w] = the adjoint of im2col applied to dcols[k x p]. Clobbers
 * dcols (it zeroes the entries that belong to padding). */
static void col2im(float *restrict dx, float *restrict dcols, const conv_geom *g)
{
    const int64_t ow = g->ow, sw = g->sw;
    const bool shifted = geom_shifted_plane(g);
    memset(dx, 0, (size_t)(g->c * g->h * g->w) * sizeof(float));
    for (int64_t c = 0; c < g->c; c++) {
        float *plane = dx + c * g->h * g->w;
        for (int64_t ki = 0; ki < g->kh; ki++) {
            int64_t y_lo, y_hi;
            valid_range(g->oh, g->h, g->sh, ki - g->ph, &y_lo, &y_hi);
            for (int64_t kj = 0; kj < g->kw; kj++) {
                float *row = dcols + ((c * g->kh + ki) * g->kw + kj) * g->p;
                int64_t x_lo, x_hi, shift = kj - g->pw;
                valid_range(ow, g->w, sw, shift, &x_lo, &x_hi);
                if (y_lo == y_hi || x_lo == x_hi) continue;
                if (shifted) {
                    /* Zeroed border entries then add nothing where they wrap. */
                    zero_border_columns(row, y_lo, y_hi, x_lo, x_hi, ow);
                    int64_t first = y_lo * ow + x_lo, end = (y_hi - 1) * ow + x_hi;
                    int64_t d = (ki - g->ph) * g->w + shift;
#pragma omp simd
                    for (int64_t j = first; j < end; j++) plane[j + d] += row[j];
                } else {
                    for (int64_t oy = y_lo; oy < y_hi; oy++) {
                        float *dst = plane + (oy * g->sh + ki - g->ph) * g->w;
                        const float *src = row + oy * ow;
                        if (sw == 1) {
#pragma omp simd
                            for (int64_t ox = x_lo; ox < x_hi; ox++) dst[ox + shift] += src[ox];
                        } else {
                            for (int64_t ox = x_lo; ox < x_hi; ox++) dst[ox * sw + shift] += src[ox];
                        }
                    }
                }
            }
        }
    }
}

/* Each thread's scratch has a page of slack so that its columns can sit
 * half a page (mod 4 KiB) away from the image they are copied from or
 * added into. Otherwise, with power-of-two planes, every load matches a
 * recent store in the low 12 address bits and waits on it ("4K aliasing":
 * measured 4x slower im2col on 32x32 planes). */
#define CONV_SLACK 1024 /* floats */

static float *away_from(float *scratch, const float *image)
{
    uintptr_t want = ((uintptr_t)image + 2048) & 4095, have = (uintptr_t)scratch & 4095;
    return scratch + ((want - have) & 4095) / sizeof(float);
}

static int team_size(int64_t work)
{
    int t = omp_get_max_threads();
    if (work < 1) return 1;
    return work < t ? (int)work : t;
}

/* ---- forward ------------------------------------------------------------ */

static bn_status conv_forward(float *y, const float *x, const float *w, const float *b, const conv_geom *g)
{
    bool pointwise = geom_pointwise(g);
    int nt = team_size(g->n);
    bn_tensor *work = NULL;
    if (!pointwise) {
        int64_t size = (int64_t)nt * (g->k * g->p + CONV_SLACK);
        if (!(work = bn_tensor_empty(1, &size))) return bn_last_status();
    }
    float *scratch_all = work ? bn_tensor_data(work) : NULL;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < g->n; i++) {
        const float *xi = x + i * g->c * g->h * g->w;
        float *yi = y + i * g->o * g->p;
        const float *cols = xi;
        if (!pointwise) {
            float *mine = away_from(scratch_all + omp_get_thread_num() * (g->k * g->p + CONV_SLACK), xi);
            im2col(mine, xi, g);
            cols = mine;
        }
        if (b)
            for (int64_t o = 0; o < g->o; o++)
                for (int64_t q = 0; q < g->p; q++) yi[o * g->p + q] = b[o];
        bn_sgemm(false, false, g->o, g->p, g->k, 1.0f, w, g->k, cols, g->p, b ? 1.0f : 0.0f, yi, g->p);
    }
    bn_tensor_release(work);
    return BN_OK;
}

/* ---- backward ----------------------------------------------------------- */

/* acc += dY_i cols_i^T for one image. */
static void weight_grad_image(float *acc, const float *xi, const float *dyi, float *scratch, const conv_geom *g)
{
    const float *cols = xi;
    if (!geom_pointwise(g)) {
        float *mine = away_from(scratch, xi);
        im2col(mine, xi, g);
        cols = mine;
    }
    bn_sgemm(false, true, g->o, g->k, g->p, 1.0f, dyi, g->p, cols, g->p, 1.0f, acc, g->k);
}

/* How input gradients are computed. With stride 1 the input gradient is
 * itself a convolution: of dY with the kernel flipped and its in/out
 * channels swapped, padded by k-1-p. That is one forward-shaped GEMM per
 * image instead of a thin one (inner size O) plus col2im's scatter:
 * measured 1.2-1.8x faster on the CIFAR ResNet shapes. */
typedef struct dx_plan {
    bool flipped;
    conv_geom flip;  /* that convolution's geometry: dY in, dX out */
    const float *w;  /* W [O x C*kh*kw], or when flipped W' [C x O*kh*kw] */
} dx_plan;

static bool dx_flippable(const conv_geom *g)
{
    return !geom_pointwise(g) && g->sh == 1 && g->sw == 1 && g->ph <= g->kh - 1 && g->pw <= g->kw - 1;
}

/* W'[c][o][kh-1-ki][kw-1-kj] = W[o][c][ki][kj]. */
static void flip_kernel(float *wf, const float *w, const conv_geom *g)
{
    int64_t area = g->kh * g->kw;
    for (int64_t o = 0; o < g->o; o++)
        for (int64_t c = 0; c < g->c; c++)
            for (int64_t k = 0; k < area; k++)
                wf[(c * g->o + o) * area + (area - 1 - k)] = w[(o * g->c + c) * area + k];
}

/* dx_i for one image. */
static void input_grad_image(float *dxi, const float *dyi, const dx_plan *plan, float *scratch, const conv_geom *g)
{
    if (geom_pointwise(g)) {
        bn_sgemm(true, false, g->k, g->p, g->o, 1.0f, plan->w, g->k, dyi, g->p, 0.0f, dxi, g->p);
    } else if (plan->flipped) {
        const conv_geom *f = &plan->flip;
        float *cols = away_from(scratch, dyi);
        im2col(cols, dyi, f);
        bn_sgemm(false, false, f->o, f->p, f->k, 1.0f, plan->w, f->k, cols, f->p, 0.0f, dxi, f->p);
    } else {
        float *dcols = away_from(scratch, dxi);
        bn_sgemm(true, false, g->k, g->p, g->o, 1.0f, plan->w, g->k, dyi, g->p, 0.0f, dcols, g->p);
        col2im(dxi, dcols, g);
    }
}

static bn_status conv_backward(bn_node *n, bn_tensor *gout, bn_tensor **gin)
{
    conv_geom g;
    geom_init(&g, n->in_shape[0], n->in_shape[1], n->i[0], n->i[1], n->i[2], n->i[3]);
    bool need_dx = n->needs[0], need_dw = n->needs[1], need_db = n->n_in > 2 && n->needs[2];
    const float *x = bn_tensor_data(n->saved[0]), *w = bn_tensor_data(n->saved[1]);

    /* The group count depends only on shapes, so the summation order of the
     * weight gradient (hence its rounding) is the same for any thread count. */
    int64_t groups = g.n < CONV_MAX_GROUPS ? g.n : CONV_MAX_GROUPS;
    int64_t wsize = g.o * g.k;
    if (wsize > 0 && groups > CONV_PARTIAL_BUDGET / wsize) groups = CONV_PARTIAL_BUDGET / wsize;
    if (groups < 1) groups = 1;
    int nt = team_size(need_dw ? groups : g.n);

    dx_plan plan = {need_dx && dx_flippable(&g), {0}, w};
    int64_t scratch_size = g.k * g.p;
    int64_t wf_shape[4] = {g.c, g.o, g.kh, g.kw};
    if (plan.flipped) {
        int64_t dy_shape[4] = {g.n, g.o, g.oh, g.ow};
        geom_init(&plan.flip, dy_shape, wf_shape, 1, 1, g.kh - 1 - g.ph, g.kw - 1 - g.pw);
        if (plan.flip.k * plan.flip.p > scratch_size) scratch_size = plan.flip.k * plan.flip.p;
    }
    scratch_size += CONV_SLACK;

    bn_tensor *dy_t = bn_contiguous(gout), *dx = NULL, *dw = NULL, *db = NULL, *cols_t = NULL,
              *partial_t = NULL, *wf = NULL;
    if (!dy_t) return bn_last_status();
    if (need_dx && !(dx = bn_tensor_empty(4, n->in_shape[0]))) goto fail;
    if (need_dw && !(dw = bn_tensor_empty(4, n->in_shape[1]))) goto fail;
    if (need_db && !(db = bn_tensor_empty(1, n->in_shape[2]))) goto fail;
    if (!geom_pointwise(&g) && (need_dx || need_dw)) {
        int64_t size = (int64_t)nt * scratch_size;
        if (!(cols_t = bn_tensor_empty(1, &size))) goto fail;
    }
    if (plan.flipped) {
        if (!(wf = bn_tensor_empty(4, wf_shape))) goto fail;
        flip_kernel(bn_tensor_data(wf), w, &g);
        plan.w = bn_tensor_data(wf);
    }
    if (need_dw && groups > 1) {
        int64_t size = (groups - 1) * wsize;
        if (!(partial_t = bn_tensor_empty(1, &size))) goto fail;
    }
    const float *dy = bn_tensor_data(dy_t);
    float *scratch_all = cols_t ? bn_tensor_data(cols_t) : NULL;
    float *partials = partial_t ? bn_tensor_data(partial_t) : NULL;
    float *dw_data = dw ? bn_tensor_data(dw) : NULL, *dx_data = dx ? bn_tensor_data(dx) : NULL;
    int64_t image_in = g.c * g.h * g.w, image_out = g.o * g.p;

    if (need_dw) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t grp = 0; grp < groups; grp++) {
            float *acc = grp == 0 ? dw_data : partials + (grp - 1) * wsize;
            float *scratch = scratch_all ? scratch_all + omp_get_thread_num() * scratch_size : NULL;
            memset(acc, 0, (size_t)wsize * sizeof(float));
            for (int64_t i = grp * g.n / groups; i < (grp + 1) * g.n / groups; i++) {
                weight_grad_image(acc, x + i * image_in, dy + i * image_out, scratch, &g);
                if (need_dx) input_grad_image(dx_data + i * image_in, dy + i * image_out, &plan, scratch, &g);
            }
        }
        /* dw[j] + p1[j] + p2[j] + ..., in group order, over blocks of j:
         * each partial is streamed once (vectorized) instead of the groups
         * being gathered element by element; the same sums in the same order. */
        int64_t blocks = (wsize + 4095) / 4096;
#pragma omp parallel for num_threads(team_size(blocks)) schedule(static)
        for (int64_t blk = 0; blk < blocks; blk++) {
            int64_t lo = blk * 4096, hi = lo + 4096 < wsize ? lo + 4096 : wsize;
            float *d = dw_data + lo;
            for (int64_t grp = 1; grp < groups; grp++) {
                const float *p = partials + (grp - 1) * wsize + lo;
#pragma omp simd
                for (int64_t j = 0; j < hi - lo; j++) d[j] += p[j];
            }
        }
    } else if (need_dx) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t i = 0; i < g.n; i++) {
            float *scratch = scratch_all ? scratch_all + omp_get_thread_num() * scratch_size : NULL;
            input_grad_image(dx_data + i * image_in, dy + i * image_out, &plan, scratch, &g);
        }
    }
    if (need_db) {
        float *db_data = bn_tensor_data(db);
#pragma omp parallel for num_threads(team_size(g.o)) schedule(static)
        for (int64_t o = 0; o < g.o; o++) {
            double s = 0;
            for (int64_t i = 0; i < g.n; i++) {
                const float *row = dy + i * image_out + o * g.p;
                float row_sum = 0.0f;
#pragma omp simd reduction(+ : row_sum)
                for (int64_t q = 0; q < g.p; q++) row_sum += row[q];
                s += row_sum;
            }
            db_data[o] = (float)s;
        }
    }
    bn_tensor_release(wf);
    bn_tensor_release(cols_t);
    bn_tensor_release(partial_t);
    bn_tensor_release(dy_t);
    gin[0] = dx;
    gin[1] = dw;
    if (n->n_in > 2) gin[2] = db;
    return BN_OK;
fail:
    bn_tensor_release(wf);
    bn_tensor_release(cols_t);
    bn_tensor_release(partial_t);
    bn_tensor_release(dx);
    bn_tensor_release(dw);
    bn_tensor_release(db);
    bn_tensor_release(dy_t);
    return bn_last_status();
}

/* ---- public ------------------------------------------------------------- */

static bn_status conv_check(const bn_tensor *x, const bn_tensor *w, const bn_tensor *b, const bn_conv2d_opts *o,
                            conv_geom *g)
{
    if (!x) return bn_fail(BN_EARG, "conv2d: input expected a tensor, got NULL");
    if (!w) return bn_fail(BN_EARG, "conv2d: weight expected a tensor, got NULL");
    if (x->ndim != 4)
        return bn_fail(BN_ESHAPE, "conv2d: input expected 4-D [N x C x H x W], got %s", bn_shape_str(x));
    if (w->ndim != 4)
        return bn_fail(BN_ESHAPE, "conv2d: weight expected 4-D [out x in x kh x kw], got %s", bn_shape_str(w));
    if (w->shape[1] != x->shape[1])
        return bn_fail(BN_ESHAPE, "conv2d: input expected [N x %lld x H x W] (the in-channels of weight %s), got %s",
                       (long long)w->shape[1], bn_shape_str(w), bn_shape_str(x));
    if (w->shape[2] < 1 || w->shape[3] < 1)
        return bn_fail(BN_ESHAPE, "conv2d: weight kernel expected at least 1 x 1, got %s", bn_shape_str(w));
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
        return bn_fail(BN_ESHAPE, "conv2d: bias expected [%lld] (one per output channel of weight %s), got %s",
                       (long long)w->shape[0], bn_shape_str(w), bn_shape_str(b));
    bn_conv2d_opts d = {1, 1, 0, 0};
    if (o) d = *o;
    if (d.stride_h < 1 || d.stride_w < 1)
        return bn_fail(BN_EARG, "conv2d: stride expected >= 1, got %d x %d", d.stride_h, d.stride_w);
    if (d.pad_h < 0 || d.pad_w < 0)
        return bn_fail(BN_EARG, "conv2d: padding expected >= 0, got %d x %d", d.pad_h, d.pad_w);
    int64_t span_h = x->shape[2] + 2 * (int64_t)d.pad_h, span_w = x->shape[3] + 2 * (int64_t)d.pad_w;
    if (span_h < w->shape[2] || span_w < w->shape[3])
        return bn_fail(BN_ESHAPE,
                       "conv2d: kernel %lld x %lld expected to fit the padded input %lld x %lld "
                       "(input %s, padding %d x %d)",
                       (long long)w->shape[2], (long long)w->shape[3], (long long)span_h, (long long)span_w,
                       bn_shape_str(x), d.pad_h, d.pad_w);
    geom_init(g, x->shape, w->shape, d.stride_h, d.stride_w, d.pad_h, d.pad_w);
    /* bn_sgemm hands sizes to a 32-bit BLAS interface (the backward's
     * flipped convolution multiplies O*kh*kw by H*W). */
    if (g->k > INT_MAX || g->p > INT_MAX || g->o > INT_MAX || g->o * g->kh * g->kw > INT_MAX ||
        g->h * g->w > INT_MAX)
        return bn_fail(BN_EARG, "conv2d: input %s with weight %s is too large (GEMM sizes above 2^31)",
                       bn_shape_str(x), bn_shape_str(w));
    return BN_OK;
}

static bn_tensor *bn_conv2d_unprofiled(bn_tensor *x, bn_tensor *w, bn_tensor *b, const bn_conv2d_opts *o)
{
    conv_geom g;
    if (conv_check(x, w, b, o, &g) != BN_OK) return NULL;

    /* Packed copies are our workspace, not graph nodes: the node below
     * records the caller's tensors and saves these. */
    bool was = bn_set_grad_enabled(false);
    bn_tensor *xc = bn_contiguous(x), *wc = xc ? bn_contiguous(w) : NULL;
    bn_tensor *bc = wc && b ? bn_contiguous(b) : NULL;
    bn_set_grad_enabled(was);
    bn_tensor *out = NULL;
    if (!xc || !wc || (b && !bc)) goto done;

    int64_t shape[4] = {g.n, g.o, g.oh, g.ow};
    if (!(out = bn_tensor_empty(4, shape))) goto done;
    if (conv_forward(bn_tensor_data(out), bn_tensor_data(xc), bn_tensor_data(wc), bc ? bn_tensor_data(bc) : NULL,
                     &g) != BN_OK) {
        bn_tensor_release(out);
        out = NULL;
        goto done;
    }
    bn_tensor *inputs[3] = {x, w, b}, *saved[2] = {xc, wc};
    int64_t iv[4] = {g.sh, g.sw, g.ph, g.pw};
    out = bn_record(out, "conv2d", conv_backward, b ? 3 : 2, inputs, 2, saved, NULL, 0, iv, 4);
done:
    bn_tensor_release(xc);
    bn_tensor_release(wc);
    bn_tensor_release(bc);
    return out;
}

bn_tensor *bn_conv2d(bn_tensor *x, bn_tensor *w, bn_tensor *b, const bn_conv2d_opts *o)
{
    BN_PROFILE_BEGIN("conv2d", false);
    bn_tensor *out = bn_conv2d_unprofiled(x, w, b, o);
    BN_PROFILE_END();
    return out;
}
