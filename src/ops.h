/* The differentiable ops. Each returns a new tensor (+1) or NULL with the
 * error set, and records an autograd node when its inputs require grad.
 * Dimensions are 0-based here (the Lua layer converts); negative dims count
 * from the end. Inputs may be any strided views. */
#ifndef BN_OPS_H
#define BN_OPS_H

#include "tensor.h"

/* ---- elementwise (ops/elementwise.c) ------------------------------------ */
/* Binary ops broadcast like NumPy/PyTorch. */
bn_tensor *bn_add(bn_tensor *a, bn_tensor *b);
bn_tensor *bn_sub(bn_tensor *a, bn_tensor *b);
bn_tensor *bn_mul(bn_tensor *a, bn_tensor *b);
bn_tensor *bn_div(bn_tensor *a, bn_tensor *b);
bn_tensor *bn_add_scalar(bn_tensor *a, float s);
bn_tensor *bn_mul_scalar(bn_tensor *a, float s);
bn_tensor *bn_rsub_scalar(bn_tensor *a, float s); /* s - a */
bn_tensor *bn_rdiv_scalar(bn_tensor *a, float s); /* s / a */
bn_tensor *bn_pow_scalar(bn_tensor *a, float p);  /* a ^ p */
bn_tensor *bn_neg(bn_tensor *a);
bn_tensor *bn_exp(bn_tensor *a);
bn_tensor *bn_log(bn_tensor *a);
bn_tensor *bn_sqrt(bn_tensor *a);
bn_tensor *bn_abs(bn_tensor *a);
bn_tensor *bn_clamp(bn_tensor *a, float lo, float hi); /* use -INFINITY/INFINITY for one side */
bn_tensor *bn_relu(bn_tensor *a);
bn_tensor *bn_tanh(bn_tensor *a);
bn_tensor *bn_sigmoid(bn_tensor *a);

/* acc += g, g broadcast to acc's shape; no autograd (for accumulators). */
bn_status bn_add_into(bn_tensor *acc, const bn_tensor *g);
/* A new contiguous tensor acc + g, g broadcast to acc's shape; no autograd
 * (copy-on-write accumulation into a shared gradient). */
bn_tensor *bn_add_new(const bn_tensor *acc, const bn_tensor *g);
/* Sums g down to `shape` (the reverse of broadcasting); no autograd. When
 * g already has that shape, returns g itself (+1), not a copy. */
bn_tensor *bn_sum_to_shape(bn_tensor *g, int ndim, const int64_t *shape);
/* The broadcast shape of a and b, or an error naming `op`. */
bn_status bn_broadcast_shape(const char *op, const bn_tensor *a, const bn_tensor *b, int *ndim,
                             int64_t *shape);

/* ---- reductions (ops/reduce.c) ------------------------------------------ */
bn_tensor *bn_sum_all(bn_tensor *a);  /* 0-d */
bn_tensor *bn_mean_all(bn_tensor *a); /* 0-d */
bn_tensor *bn_sum(bn_tensor *a, int dim, bool keepdim);
bn_tensor *bn_mean(bn_tensor *a, int dim, bool keepdim);
/* Variance with `correction` (1 = unbiased, 0 = biased). */
bn_tensor *bn_var(bn_tensor *a, int dim, bool keepdim, int correction);
bn_tensor *bn_var_all(bn_tensor *a, int correction);
bn_tensor *bn_std(bn_tensor *a, int dim, bool keepdim, int correction);
bn_tensor *bn_std_all(bn_tensor *a, int correction);
/* max/min over a dim. When `indices` is not NULL it receives a tensor of the
 * same shape holding the 0-based positions as floats (exact below 2^24). The
 * gradient flows to the first maximal element. */
bn_tensor *bn_max(bn_tensor *a, int dim, bool keepdim, bn_tensor **indices);
bn_tensor *bn_min(bn_tensor *a, int dim, bool keepdim, bn_tensor **indices);
bn_tensor *bn_max_all(bn_tensor *a);
bn_tensor *bn_min_all(bn_tensor *a);
bn_tensor *bn_argmax(bn_tensor *a, int dim, bool keepdim); /* no autograd */

/* ---- linear algebra (ops/matmul.c) -------------------------------------- */
/* 2-D x 2-D, or batched 3-D x 3-D (same batch), or 1-D vectors as in PyTorch. */
bn_tensor *bn_matmul(bn_tensor *a, bn_tensor *b);
/* y = x w^T + b; x [N x in], w [out x in], b [out] or NULL. */
bn_tensor *bn_linear(bn_tensor *x, bn_tensor *w, bn_tensor *b);

/* ---- convolution and pooling (ops/conv.c, ops/pool.c) ------------------- */
typedef struct bn_conv2d_opts {
    int stride_h, stride_w;   /* >= 1 */
    int pad_h, pad_w;         /* >= 0, zero padding */
} bn_conv2d_opts;
/* x [N x C x H x W], w [O x C x kh x kw], b [O] or NULL. */
bn_tensor *bn_conv2d(bn_tensor *x, bn_tensor *w, bn_tensor *b, const bn_conv2d_opts *o);

typedef struct bn_pool2d_opts {
    int kernel_h, kernel_w;
    int stride_h, stride_w;   /* 0 = same as kernel */
    int pad_h, pad_w;
    bool count_include_pad;   /* avg_pool2d only; zero-initialised = false, but PyTorch and the Lua API default to true */
} bn_pool2d_opts;
bn_tensor *bn_max_pool2d(bn_tensor *x, const bn_pool2d_opts *o);
bn_tensor *bn_avg_pool2d(bn_tensor *x, const bn_pool2d_opts *o);
/* Output [N x C x oh x ow] with PyTorch's adaptive bin edges. */
bn_tensor *bn_adaptive_avg_pool2d(bn_tensor *x, int64_t oh, int64_t ow);

/* ---- normalization (ops/norm.c) ----------------------------------------- */
typedef struct bn_batch_norm_opts {
    bool training;
    double momentum; /* running = (1-m) running + m batch; PyTorch's 0.1 */
    double eps;      /* 1e-5 */
} bn_batch_norm_opts;
/* x [N x C] or [N x C x H x W]; running_mean/var [C] (may be NULL only when
 * training: then nothing is tracked); weight/bias [C] or NULL. In training
 * the running stats are updated in place with the unbiased batch variance. */
bn_tensor *bn_batch_norm(bn_tensor *x, bn_tensor *running_mean, bn_tensor *running_var,
                         bn_tensor *weight, bn_tensor *bias, const bn_batch_norm_opts *o);

/* ---- softmax and losses (ops/loss.c) ------------------------------------ */
bn_tensor *bn_softmax(bn_tensor *x, int dim);
bn_tensor *bn_log_softmax(bn_tensor *x, int dim);
/* logits [N x K], labels: N class indices in 0..K-1; mean over N. */
bn_tensor *bn_cross_entropy(bn_tensor *logits, const int64_t *labels, int64_t n_labels);
bn_tensor *bn_mse_loss(bn_tensor *a, bn_tensor *b); /* mean of squared differences */

/* ---- shape ops (ops/shape.c; subsample is a view in views.c) -------------------------------------------- */
bn_tensor *bn_cat(int n, bn_tensor *const *ts, int dim);
bn_tensor *bn_stack(int n, bn_tensor *const *ts, int dim);
/* Zero padding: pads[2*k], pads[2*k+1] = before/after for dim k (all dims
 * given, ndim pairs). Negative pads crop. */
bn_tensor *bn_pad(bn_tensor *x, const int64_t *pads);
/* Every step-th element along dim starting at start (a strided view). */
bn_tensor *bn_subsample(bn_tensor *x, int dim, int64_t start, int64_t step);

/* ---- randomness (ops/dropout.c) ----------------------------------------- */
/* Inverted dropout: zeroes with probability p, scales the rest by 1/(1-p).
 * Identity when !training or p == 0. Uses the global generator. */
bn_tensor *bn_dropout(bn_tensor *x, double p, bool training);

#endif
