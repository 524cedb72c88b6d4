/* Kernels for the probes (lua/bnlab/probe/, docs/probe.md): statistics that
 * would be slow, or lose precision, as chains of differentiable ops. None of
 * them records autograd history; inputs may be any strided views. Sums run
 * in double, each output in one thread in a fixed order, so results do not
 * depend on the thread count. */
#ifndef BN_PROBE_H
#define BN_PROBE_H

#include "ops.h"
#include "tensor.h"

/* ---- activation statistics (ops/chanstats.c) ------------------------------ */
/* Per-channel statistics of x [N x C x ...] (channel = dim 0-based 1, over N
 * and every trailing dim): mean, population variance (divided by the count;
 * two passes) and max |x|, each a new [C] tensor. A channel holding a NaN
 * gets NaN in all three; an Inf gives a mean of +-Inf (or NaN) and an
 * infinite max. On failure nothing is returned (all three NULL). */
bn_status bn_activation_stats(bn_tensor *x, bn_tensor **mean, bn_tensor **var, bn_tensor **absmax);

/* Histogram of every value of x in `bins` equal bins over [lo, hi] (a value
 * equal to hi counts in the last bin); values outside and NaN are not
 * counted (as torch.histc). lo == hi: the range is the finite min and max of
 * x (a constant x, or one with no finite value, uses [v - 1, v + 1] /
 * [-1, 1]); *lo_used, *hi_used (may be NULL) receive the range. Counts are
 * returned as a float [bins] tensor (exact below 2^24 per bin). */
bn_tensor *bn_histc(bn_tensor *x, int64_t bins, double lo, double hi, double *lo_used, double *hi_used);

/* ---- convolution-gradient coherence (ops/coherence.c) --------------------- */
/* A convolution's weight gradient is a sum of terms
 *     d[b, x, y] = dout[b, o, x, y] * in[b, i, x*sh + u - ph, y*sw + v - pw]
 * (in zero outside the image) over the batch b and the output positions
 * (x, y), for each weight entry (o, i, u, v). This computes, with dout
 * [B x O x OH x OW] and in [B x C x H x W] (OH, OW those of the convolution):
 *   sum    [O x C x kh x kw]  Σ_{b,x,y} d            (= the weight gradient)
 *   abssum [O x C x kh x kw]  Σ_{b,x,y} |d|
 *   m      [C x O]            Σ_{u,v} Σ_{x,y} |Σ_b d|
 * Cost: B*O*C*kh*kw*OH*OW multiply-adds, like the weight gradient itself,
 * plus two transposed copies of the inputs. */
bn_status bn_conv_coherence(bn_tensor *dout, bn_tensor *in, int kh, int kw, const bn_conv2d_opts *o,
                            bn_tensor **sum, bn_tensor **abssum, bn_tensor **m);

#endif
