/* Coherence of a convolution's weight gradient (paper E6, src/probe.h): for
 * every weight entry (o, i, u, v) the sum and the absolute sum of the terms
 * d = dout[b,o,x,y] * in[b,i,x*sh+u-ph,y*sw+v-pw], and per (i, o) the sum
 * over offsets and positions of |Σ_b d|.
 *
 * Both inputs are first copied batch-innermost (dout as [O][OH][OW][B], the
 * zero-padded input as [C][HP][WP][B]), so the innermost loop over b is a
 * contiguous, vectorizable dot product, and |Σ_b d| is available per
 * position. Work is split over (o, i) pairs; each output is computed by one
 * thread in a fixed order, so results do not depend on the thread count. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "probe.h"
#include "profile.h"

#define OP "conv_coherence"

static bn_status bn_conv_coherence_unprofiled(bn_tensor *dout, bn_tensor *in, int kh, int kw, const bn_conv2d_opts *o,
                                              bn_tensor **sum, bn_tensor **abssum, bn_tensor **m)
{
    if (!sum || !abssum || !m) return bn_fail(BN_EARG, OP ": output pointers expected non-NULL");
    *sum = *abssum = *m = NULL;
    if (!dout || !in || !o) return bn_fail(BN_EARG, OP ": dout, input and opts expected non-NULL");
    if (dout->ndim != 4) return bn_fail(BN_ESHAPE, OP ": dout expected 4-D [B x O x OH x OW], got %s", bn_shape_str(dout));
    if (in->ndim != 4) return bn_fail(BN_ESHAPE, OP ": input expected 4-D [B x C x H x W], got %s", bn_shape_str(in));
    if (kh < 1 || kw < 1) return bn_fail(BN_EARG, OP ": kernel expected >= 1, got %d x %d", kh, kw);
    if (o->stride_h < 1 || o->stride_w < 1 || o->pad_h < 0 || o->pad_w < 0)
        return bn_fail(BN_EARG, OP ": stride expected >= 1 and padding >= 0, got stride %d x %d, padding %d x %d",
                       o->stride_h, o->stride_w, o->pad_h, o->pad_w);
    int64_t nb = in->shape[0], c = in->shape[1], h = in->shape[2], w = in->shape[3];
    int64_t oc = dout->shape[1], oh = dout->shape[2], ow = dout->shape[3];
    int64_t hp = h + 2 * (int64_t)o->pad_h, wp = w + 2 * (int64_t)o->pad_w;
    if (dout->shape[0] != nb)
        return bn_fail(BN_ESHAPE, OP ": dout %s and input %s expected the same batch size", bn_shape_str(dout),
                       bn_shape_str(in));
    if (hp < kh || wp < kw)
        return bn_fail(BN_ESHAPE, OP ": kernel %d x %d larger than the padded input %s", kh, kw, bn_shape_str(in));
    int64_t want_h = (hp - kh) / o->stride_h + 1, want_w = (wp - kw) / o->stride_w + 1;
    if (oh != want_h || ow != want_w)
        return bn_fail(BN_ESHAPE,
                       OP ": dout expected [%lld x %lld x %lld x %lld] (the output of a %d x %d convolution of %s), "
                       "got %s",
                       (long long)nb, (long long)oc, (long long)want_h, (long long)want_w, kh, kw, bn_shape_str(in),
                       bn_shape_str(dout));

    int64_t wshape[4] = {oc, c, kh, kw}, mshape[2] = {c, oc};
    int64_t tshape[1] = {oc * oh * ow * nb}, pshape[1] = {c * hp * wp * nb};
    bn_tensor *gd = bn_tensor_dense(dout), *xd = bn_tensor_dense(in);
    bn_tensor *gt = bn_tensor_empty(1, tshape), *xt = bn_tensor_zeros(1, pshape);
    bn_tensor *ts = bn_tensor_empty(4, wshape), *ta = bn_tensor_empty(4, wshape), *tm = bn_tensor_empty(2, mshape);
    if (!gd || !xd || !gt || !xt || !ts || !ta || !tm) {
        bn_tensor_release(gd), bn_tensor_release(xd), bn_tensor_release(gt), bn_tensor_release(xt);
        bn_tensor_release(ts), bn_tensor_release(ta), bn_tensor_release(tm);
        return bn_last_status();
    }
    const float *pg = bn_tensor_data(gd), *px = bn_tensor_data(xd);
    float *g = bn_tensor_data(gt), *xpad = bn_tensor_data(xt);
    int64_t ohw = oh * ow;

#pragma omp parallel for schedule(static)
    for (int64_t q = 0; q < oc; q++)
        for (int64_t b = 0; b < nb; b++) {
            const float *src = pg + (b * oc + q) * ohw;
            float *dst = g + q * ohw * nb + b;
            for (int64_t k = 0; k < ohw; k++) dst[k * nb] = src[k];
        }
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < c; i++)
        for (int64_t b = 0; b < nb; b++)
            for (int64_t y = 0; y < h; y++) {
                const float *src = px + ((b * c + i) * h + y) * w;
                float *dst = xpad + ((i * hp + y + o->pad_h) * wp + o->pad_w) * nb + b;
                for (int64_t x = 0; x < w; x++) dst[x * nb] = src[x];
            }

    float *os = bn_tensor_data(ts), *oa = bn_tensor_data(ta), *om = bn_tensor_data(tm);
    int64_t sh = o->stride_h, sw = o->stride_w;
#pragma omp parallel for collapse(2) schedule(dynamic, 4)
    for (int64_t q = 0; q < oc; q++)
        for (int64_t i = 0; i < c; i++) {
            double mq = 0;
            for (int u = 0; u < kh; u++)
                for (int v = 0; v < kw; v++) {
                    double s = 0, a = 0, mm = 0;
                    for (int64_t y = 0; y < oh; y++)
                        for (int64_t x = 0; x < ow; x++) {
                            const float *gr = g + ((q * oh + y) * ow + x) * nb;
                            const float *xr = xpad + ((i * hp + y * sh + u) * wp + x * sw + v) * nb;
                            double sb = 0, ab = 0;
#pragma omp simd reduction(+ : sb, ab)
                            for (int64_t b = 0; b < nb; b++) {
                                double d = (double)gr[b] * (double)xr[b];
                                sb += d;
                                ab += fabs(d);
                            }
                            s += sb;
                            a += ab;
                            mm += fabs(sb);
                        }
                    int64_t e = ((q * c + i) * kh + u) * kw + v;
                    os[e] = (float)s;
                    oa[e] = (float)a;
                    mq += mm;
                }
            om[i * oc + q] = (float)mq;
        }

    bn_tensor_release(gd), bn_tensor_release(xd), bn_tensor_release(gt), bn_tensor_release(xt);
    *sum = ts, *abssum = ta, *m = tm;
    return BN_OK;
}

bn_status bn_conv_coherence(bn_tensor *dout, bn_tensor *in, int kh, int kw, const bn_conv2d_opts *o,
                            bn_tensor **sum, bn_tensor **abssum, bn_tensor **m)
{
    BN_PROFILE_BEGIN("conv_coherence", false);
    bn_status st = bn_conv_coherence_unprofiled(dout, in, kh, kw, o, sum, abssum, m);
    BN_PROFILE_END();
    return st;
}
