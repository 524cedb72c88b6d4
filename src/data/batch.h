/* Mini-batches: gathering rows of a data set by index, with the standard
 * CIFAR augmentation (He et al. 2016): zero-pad each image by `pad` pixels,
 * crop back to H x W at a random offset, mirror left-right with probability
 * 1/2. Plus the per-channel statistics and normalization of a data set.
 *
 * This runs every training step (60,000 images an epoch), so it is one pass
 * in C, OpenMP over images. Randomness is counter-based: the draw of output
 * image j is Philox block (rng->offset + j, BN_AUG_STREAM) under key
 * rng->seed, and rng->offset advances by n. So results never depend on the
 * thread count, and with offset = the position of the batch in the epoch an
 * image's augmentation depends only on (seed, its position), not on the batch
 * size. */
#ifndef BN_DATA_BATCH_H
#define BN_DATA_BATCH_H

#include "rng.h"
#include "tensor.h"

/* The Philox counter's high word for augmentation draws (other users of
 * bn_philox use 0 and 1). */
#define BN_AUG_STREAM 0xA06u
/* Largest pad accepted: far past any sensible crop, far from overflow. */
#define BN_AUG_MAX_PAD 4096

typedef struct bn_augment {
    int pad;           /* > 0: pad by this many pixels per side, then random crop to H x W */
    bool flip;         /* random horizontal flip, probability 1/2 */
    const float *fill; /* value of padding pixels per channel (C values); NULL: 0 */
} bn_augment;

/* What the augmentation did to one image: output pixel (y, x) of channel c
 * is input pixel (y + dy, xx + dx) with xx = flip ? W-1-x : x, or fill[c]
 * where that lies outside the image. dy, dx are in [-pad, pad]. */
typedef struct bn_augment_draw {
    int dy, dx;
    bool flip;
} bn_augment_draw;

/* The draw of output image j (counter rng->offset + j) under aug. */
bn_augment_draw bn_augment_draw_at(const bn_augment *aug, const bn_rng *rng, int64_t j);

/* out[j] = images[indices[j]] for j < n, indices 0-based.
 * images: contiguous, ndim >= 1, rows = dim 0. out: contiguous, shape
 * [n x (images' other dims)]. With aug (may be NULL; a no-op when pad == 0
 * and !flip) images must be 4-D [N x C x H x W] and rng non-NULL; rng->offset
 * then advances by n. Every argument and index is checked before anything
 * is written. */
bn_status bn_gather_batch(bn_tensor *out, const bn_tensor *images, const int64_t *indices, int64_t n,
                          const bn_augment *aug, bn_rng *rng);

/* Per-channel mean and standard deviation (population, divisor count) of
 * images [N x C x ...] over every dim but dim 1; mean and std receive C
 * values each. Accumulated in double in fixed chunks, so the result does
 * not depend on the thread count. Fails on N == 0 or a 1-D tensor. */
bn_status bn_channel_stats(const bn_tensor *images, double *mean, double *std);

/* In place: x[:, c, ...] = (x[:, c, ...] - mean[c]) / std[c]. images must be
 * contiguous; every std must be finite and > 0, every mean finite. */
bn_status bn_channel_normalize(bn_tensor *images, const double *mean, const double *std);

#endif
