/* Batch normalization: forward and running statistics against a naive
 * double reference (training and eval, with and without affine parameters,
 * odd channel counts, batch 1, strided inputs and buffers), finite-difference
 * gradients for x, weight and bias in both modes, thread-count determinism,
 * and every argument error. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static const bn_batch_norm_opts TRAIN = {true, 0.1, 1e-5};
static const bn_batch_norm_opts EVAL = {false, 0.1, 1e-5};

/* x's logical element (n, c, k) with k the flat index over the trailing dims. */
static double elem(const bn_tensor *x, int64_t n, int64_t c, int64_t k)
{
    int64_t s = bn_tensor_numel(x) / (x->shape[0] * x->shape[1]);
    return bn_tensor_get_flat(x, (n * x->shape[1] + c) * s + k);
}

static double vec(const bn_tensor *t, int64_t c, double dflt) { return t ? bn_tensor_get_flat(t, c) : dflt; }

/* The expected output, and running stats after one step (rm/rv updated in
 * the arrays given, which start as the current values). */
static void reference(const bn_tensor *x, const bn_tensor *w, const bn_tensor *b, const bn_batch_norm_opts *o,
                      double *rm, double *rv, float *want)
{
    int64_t nb = x->shape[0], c = x->shape[1], s = bn_tensor_numel(x) / (nb * c), m = nb * s;
    for (int64_t ch = 0; ch < c; ch++) {
        double mean, var;
        if (o->training) {
            double sum = 0, ss = 0;
            for (int64_t n = 0; n < nb; n++)
                for (int64_t k = 0; k < s; k++) sum += elem(x, n, ch, k);
            mean = sum / (double)m;
            for (int64_t n = 0; n < nb; n++)
                for (int64_t k = 0; k < s; k++) ss += (elem(x, n, ch, k) - mean) * (elem(x, n, ch, k) - mean);
            var = ss / (double)m;
            if (rm) {
                rm[ch] = (1 - o->momentum) * rm[ch] + o->momentum * mean;
                rv[ch] = (1 - o->momentum) * rv[ch] + o->momentum * ss / (double)(m - 1);
            }
        } else {
            mean = rm[ch];
            var = rv[ch];
        }
        for (int64_t n = 0; n < nb; n++)
            for (int64_t k = 0; k < s; k++)
                want[(n * c + ch) * s + k] = (float)((elem(x, n, ch, k) - mean) / sqrt(var + o->eps) * vec(w, ch, 1) +
                                                     vec(b, ch, 0));
    }
}

/* One forward of batch_norm on x (any view) checked against the reference,
 * running stats included. */
static void check_forward(bn_tensor *x, bool affine, bool track, const bn_batch_norm_opts *o, const char *what)
{
    int64_t c = x->shape[1], numel = bn_tensor_numel(x);
    bn_tensor *w = affine ? tu_uniform(501, 0.5f, 1.5f, 1, &c) : NULL;
    bn_tensor *b = affine ? tu_randn(502, 1, &c) : NULL;
    bn_tensor *rm = track ? tu_randn(503, 1, &c) : NULL;
    bn_tensor *rv = track ? tu_uniform(504, 0.5f, 2.0f, 1, &c) : NULL;
    double *erm = malloc((size_t)c * sizeof *erm), *erv = malloc((size_t)c * sizeof *erv);
    for (int64_t ch = 0; ch < c; ch++) {
        erm[ch] = vec(rm, ch, 0);
        erv[ch] = vec(rv, ch, 1);
    }
    float *want = malloc((size_t)numel * sizeof *want), *got = malloc((size_t)numel * sizeof *got);
    reference(x, w, b, o, track ? erm : NULL, erv, want);
    bn_tensor *y = bn_batch_norm(x, rm, rv, w, b, o);
    if (!y) fail_msg("%s: %s", what, bn_last_error());
    assert_true(bn_shape_equal(y, x));
    bn_tensor_read(y, got);
    tu_assert_close_array(got, want, numel, 1e-5, 1e-5, what);
    for (int64_t ch = 0; track && ch < c; ch++) {
        assert_float_equal(bn_tensor_get_flat(rm, ch), erm[ch], 1e-6 * (1 + fabs(erm[ch])));
        assert_float_equal(bn_tensor_get_flat(rv, ch), erv[ch], 1e-6 * (1 + fabs(erv[ch])));
    }
    free(want);
    free(got);
    free(erm);
    free(erv);
    bn_tensor *ts[] = {w, b, rm, rv, y};
    for (size_t i = 0; i < 5; i++) bn_tensor_release(ts[i]);
}

static void test_forward_shapes_and_modes(void **state)
{
    (void)state;
    /* Odd channel counts (not multiples of 4/8), batch 1 where legal. */
    const int64_t shapes[][4] = {{6, 5}, {2, 7}, {4, 3, 5, 5}, {1, 6, 3, 3}, {3, 13, 2, 7}, {2, 10, 1, 1}, {3, 9, 11}};
    const int nds[] = {2, 2, 4, 4, 4, 4, 3};
    char what[160];
    for (size_t s = 0; s < sizeof nds / sizeof nds[0]; s++) {
        bn_tensor *x0 = tu_randn(510 + s, nds[s], shapes[s]);
        bn_tensor *x = bn_add_scalar(x0, 2.0f);
        for (int mode = 0; mode < 2; mode++)
            for (int affine = 0; affine < 2; affine++)
                for (int track = mode == 0 ? 0 : 1; track < 2; track++) {
                    snprintf(what, sizeof what, "%s %s affine %d track %d", bn_shape_str(x), mode ? "eval" : "train",
                             affine, track);
                    check_forward(x, affine, track, mode ? &EVAL : &TRAIN, what);
                }
        bn_tensor_release(x0);
        bn_tensor_release(x);
    }
}

static void test_running_stats_by_hand(void **state)
{
    (void)state;
    /* x = [[1, 10], [3, 30]] ([2 x 2]): channel 0 has mean 2, biased var 1,
     * unbiased var 2; channel 1 mean 20, biased var 100, unbiased 200. */
    bn_tensor *x = bn_tensor_from_array(2, TU_SHAPE(2, 2), (const float[]){1, 10, 3, 30});
    bn_tensor *rm = bn_tensor_from_array(1, TU_SHAPE(2), (const float[]){0, 5});
    bn_tensor *rv = bn_tensor_from_array(1, TU_SHAPE(2), (const float[]){1, 1});
    bn_tensor *y = bn_batch_norm(x, rm, rv, NULL, NULL, &TRAIN);
    TU_OK(y);
    float *m = bn_tensor_data(rm), *v = bn_tensor_data(rv), *yv = bn_tensor_data(y);
    assert_float_equal(m[0], 0.9 * 0 + 0.1 * 2, 1e-7);
    assert_float_equal(m[1], 0.9 * 5 + 0.1 * 20, 1e-6);
    assert_float_equal(v[0], 0.9 * 1 + 0.1 * 2, 1e-7);
    assert_float_equal(v[1], 0.9 * 1 + 0.1 * 200, 1e-5);
    assert_float_equal(yv[0], -1 / sqrt(1 + 1e-5), 1e-6);
    assert_float_equal(yv[3], 10 / sqrt(100 + 1e-5), 1e-6);
    bn_tensor_release(y);

    /* PyTorch updates the running stats whenever training, grad mode or not. */
    bool was = bn_set_grad_enabled(false);
    y = bn_batch_norm(x, rm, rv, NULL, NULL, &TRAIN);
    bn_set_grad_enabled(was);
    TU_OK(y);
    assert_float_equal(m[0], 0.9 * 0.2 + 0.1 * 2, 1e-6);
    bn_tensor_release(y);

    /* Eval uses and keeps them. */
    float m0 = m[0], v0 = v[0];
    y = bn_batch_norm(x, rm, rv, NULL, NULL, &EVAL);
    TU_OK(y);
    assert_float_equal(m[0], m0, 0);
    assert_float_equal(v[0], v0, 0);
    assert_float_equal(bn_tensor_data(y)[0], (1 - m0) / sqrt(v0 + 1e-5), 1e-6);
    bn_tensor_release(y);

    /* momentum 0 freezes them, momentum 1 replaces them. */
    bn_batch_norm_opts o = {true, 1.0, 1e-5};
    y = bn_batch_norm(x, rm, rv, NULL, NULL, &o);
    TU_OK(y);
    assert_float_equal(m[1], 20, 1e-5);
    assert_float_equal(v[1], 200, 1e-4);
    bn_tensor_release(y);
    o.momentum = 0;
    y = bn_batch_norm(x, rm, rv, NULL, NULL, &o);
    assert_float_equal(m[1], 20, 1e-5);
    bn_tensor_release(y);
    bn_tensor_release(x);
    bn_tensor_release(rm);
    bn_tensor_release(rv);
}

static void test_strided_inputs_and_buffers(void **state)
{
    (void)state;
    /* Channels-last storage seen as NCHW through a permute. */
    bn_tensor *nhwc = TU_RANDN(520, 3, 4, 5, 7);
    bn_tensor *x = bn_permute(nhwc, (const int[]){0, 3, 1, 2}); /* [3 x 7 x 4 x 5] */
    assert_false(bn_tensor_is_contiguous(x));
    check_forward(x, true, true, &TRAIN, "channels-last train");
    check_forward(x, true, true, &EVAL, "channels-last eval");
    /* Every other channel of a wider tensor. */
    bn_tensor *wide = TU_RANDN(521, 4, 10, 3, 3);
    bn_tensor *sub = bn_subsample(wide, 1, 1, 2);
    check_forward(sub, false, true, &TRAIN, "subsampled channels");

    /* Running stats and weight as strided views: only their elements move. */
    int64_t c = 7;
    bn_tensor *rm_store = bn_tensor_zeros(1, TU_SHAPE(14)), *rv_store = bn_tensor_ones(1, TU_SHAPE(14));
    bn_tensor *w_store = bn_tensor_full(1, TU_SHAPE(14), 2.0f);
    bn_tensor *rm = bn_subsample(rm_store, 0, 0, 2), *rv = bn_subsample(rv_store, 0, 1, 2);
    bn_tensor *w = bn_subsample(w_store, 0, 0, 2);
    double erm[7], erv[7];
    for (int ch = 0; ch < c; ch++) erm[ch] = 0, erv[ch] = 1;
    float *want = malloc((size_t)bn_tensor_numel(x) * sizeof *want), *got = malloc((size_t)bn_tensor_numel(x) * sizeof *got);
    reference(x, w, NULL, &TRAIN, erm, erv, want);
    bn_tensor *y = bn_batch_norm(x, rm, rv, w, NULL, &TRAIN);
    TU_OK(y);
    bn_tensor_read(y, got);
    tu_assert_close_array(got, want, bn_tensor_numel(x), 1e-5, 1e-5, "strided weight");
    for (int ch = 0; ch < c; ch++) {
        assert_float_equal(bn_tensor_data(rm_store)[2 * ch], erm[ch], 1e-6);
        assert_float_equal(bn_tensor_data(rm_store)[2 * ch + 1], 0, 0);
        assert_float_equal(bn_tensor_data(rv_store)[2 * ch + 1], erv[ch], 1e-6);
        assert_float_equal(bn_tensor_data(rv_store)[2 * ch], 1, 0);
    }
    free(want);
    free(got);
    bn_tensor *ts[] = {nhwc, x, wide, sub, rm_store, rv_store, w_store, rm, rv, w, y};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) bn_tensor_release(ts[i]);
}

/* Large N*H*W, large mean next to the spread: statistics in double keep the
 * output normalized; and the result is bit-identical for any thread count. */
static void test_large_and_deterministic(void **state)
{
    (void)state;
    bn_tensor *x0 = TU_RANDN(530, 32, 5, 32, 32);
    bn_tensor *x = bn_add_scalar(x0, 300.0f);
    TU_ST(bn_tensor_set_requires_grad(x, true));
    int64_t c = 5;
    bn_tensor *w = tu_uniform(531, 0.5f, 1.5f, 1, &c), *b = tu_randn(532, 1, &c);
    TU_ST(bn_tensor_set_requires_grad(w, true));
    TU_ST(bn_tensor_set_requires_grad(b, true));
    check_forward(x, true, true, &TRAIN, "large train");
    int saved = omp_get_max_threads();
    bn_tensor *r = tu_uniform(533, -1, 1, 4, x->shape);
    float *outs[2], *grads[2][3];
    int64_t numel = bn_tensor_numel(x);
    for (int th = 1; th <= 2; th++) {
        omp_set_num_threads(th);
        bn_tensor *y = bn_batch_norm(x, NULL, NULL, w, b, &TRAIN);
        TU_OK(y);
        outs[th - 1] = malloc((size_t)numel * sizeof(float));
        bn_tensor_read(y, outs[th - 1]);
        TU_ST(bn_backward(y, r, false));
        bn_tensor *in[3] = {x, w, b};
        for (int i = 0; i < 3; i++) {
            int64_t n = bn_tensor_numel(in[i]);
            grads[th - 1][i] = malloc((size_t)n * sizeof(float));
            bn_tensor_read(in[i]->grad, grads[th - 1][i]);
            TU_ST(bn_tensor_zero_grad(in[i]));
        }
        bn_tensor_release(y);
    }
    omp_set_num_threads(saved);
    assert_memory_equal(outs[0], outs[1], (size_t)numel * sizeof(float));
    assert_memory_equal(grads[0][0], grads[1][0], (size_t)numel * sizeof(float));
    assert_memory_equal(grads[0][1], grads[1][1], (size_t)c * sizeof(float));
    assert_memory_equal(grads[0][2], grads[1][2], (size_t)c * sizeof(float));
    /* Training-mode dx is orthogonal to 1 and to xhat per channel: Σ dx ≈ 0. */
    double s = 0, scale = 0;
    for (int64_t n = 0; n < 32; n++)
        for (int64_t k = 0; k < 1024; k++) {
            s += grads[0][0][(n * 5 + 2) * 1024 + k];
            scale += fabs(grads[0][0][(n * 5 + 2) * 1024 + k]);
        }
    assert_true(fabs(s) < 1e-4 * scale);
    for (int t = 0; t < 2; t++) {
        free(outs[t]);
        for (int i = 0; i < 3; i++) free(grads[t][i]);
    }
    bn_tensor *ts[] = {x0, x, w, b, r};
    for (size_t i = 0; i < 5; i++) bn_tensor_release(ts[i]);
}

/* The backward formula against a double reference on activations whose
 * mean (1e5) dwarfs their spread: x - mean must be formed to double
 * precision (finite differences cannot resolve this; the formula can). */
static void test_backward_large_mean(void **state)
{
    (void)state;
    int64_t nb = 4, c = 3, s = 25, m = nb * s;
    bn_tensor *x0 = TU_RANDN(540, 4, 3, 5, 5);
    bn_tensor *x = bn_add_scalar(x0, 1e5f);
    bn_tensor *w = tu_uniform(541, 0.5f, 1.5f, 1, &c), *dy = TU_RANDN(542, 4, 3, 5, 5);
    TU_ST(bn_tensor_set_requires_grad(x, true));
    TU_ST(bn_tensor_set_requires_grad(w, true));
    for (int training = 0; training < 2; training++) {
        bn_tensor *rm = bn_tensor_full(1, &c, 1e5f), *rv = bn_tensor_full(1, &c, 0.8f);
        bn_tensor *y = bn_batch_norm(x, rm, rv, w, NULL, training ? &TRAIN : &EVAL);
        TU_OK(y);
        TU_ST(bn_backward(y, dy, false));
        float got[300], want[300], gw[3], ww[3];
        const float *xv = bn_tensor_data(x), *dv = bn_tensor_data(dy);
        for (int64_t ch = 0; ch < c; ch++) {
            double mean = 1e5, var = 0.8, sdy = 0, sdyx = 0;
            if (training) {
                double sum = 0, ss = 0;
                for (int64_t n = 0; n < nb; n++)
                    for (int64_t k = 0; k < s; k++) sum += xv[(n * c + ch) * s + k];
                mean = sum / m;
                for (int64_t n = 0; n < nb; n++)
                    for (int64_t k = 0; k < s; k++) ss += pow(xv[(n * c + ch) * s + k] - mean, 2);
                var = ss / m;
            }
            double invstd = 1 / sqrt(var + 1e-5), gamma = bn_tensor_data(w)[ch];
            for (int64_t n = 0; n < nb; n++)
                for (int64_t k = 0; k < s; k++) {
                    int64_t i = (n * c + ch) * s + k;
                    sdy += dv[i];
                    sdyx += dv[i] * (xv[i] - mean) * invstd;
                }
            ww[ch] = (float)sdyx;
            for (int64_t n = 0; n < nb; n++)
                for (int64_t k = 0; k < s; k++) {
                    int64_t i = (n * c + ch) * s + k;
                    double xhat = (xv[i] - mean) * invstd;
                    want[i] = (float)(training ? gamma * invstd * (dv[i] - sdy / m - xhat * sdyx / m)
                                               : gamma * invstd * dv[i]);
                }
        }
        bn_tensor_read(x->grad, got);
        bn_tensor_read(w->grad, gw);
        tu_assert_close_array(got, want, 300, 1e-4, 1e-5, training ? "dx, train, mean 1e5" : "dx, eval, mean 1e5");
        tu_assert_close_array(gw, ww, 3, 1e-4, 1e-4, "dweight, mean 1e5");
        TU_ST(bn_tensor_zero_grad(x));
        TU_ST(bn_tensor_zero_grad(w));
        bn_tensor_release(y);
        bn_tensor_release(rm);
        bn_tensor_release(rv);
    }
    bn_tensor *ts[] = {x0, x, w, dy};
    for (size_t i = 0; i < 4; i++) bn_tensor_release(ts[i]);
}

/* ---- gradients ---------------------------------------------------------- */

typedef struct bn_ctx {
    const bn_batch_norm_opts *o;
    bn_tensor *rm, *rv;
    bool channels_last; /* input given as [N x H x W x C], permuted inside */
} bn_ctx;

static bn_tensor *bn_fn(bn_tensor **in, void *ctx)
{
    bn_ctx *c = ctx;
    bn_tensor *x = c->channels_last ? bn_permute(in[0], (const int[]){0, 3, 1, 2}) : bn_tensor_retain(in[0]);
    bn_tensor *y = bn_batch_norm(x, c->rm, c->rv, in[1], in[2], c->o);
    bn_tensor_release(x);
    return y;
}

static void gradcheck_case(int nd, const int64_t *shape, bool affine, bool training, bool channels_last,
                           bool x_grad, uint64_t seed)
{
    char what[160];
    int64_t c = shape[channels_last ? nd - 1 : 1];
    bn_tensor *x = tu_randn(seed, nd, shape);
    bn_tensor *w = affine ? tu_uniform(seed + 1, 0.5f, 1.5f, 1, &c) : NULL;
    bn_tensor *b = affine ? tu_randn(seed + 2, 1, &c) : NULL;
    bn_tensor *rm = tu_randn(seed + 3, 1, &c), *rv = tu_uniform(seed + 4, 0.5f, 2.0f, 1, &c);
    if (x_grad) TU_ST(bn_tensor_set_requires_grad(x, true));
    if (w) TU_ST(bn_tensor_set_requires_grad(w, true));
    if (b) TU_ST(bn_tensor_set_requires_grad(b, true));
    /* In training the fn is evaluated many times: the running stats drift,
     * which must not (and does not) change the training-mode output. */
    bn_ctx ctx = {training ? &TRAIN : &EVAL, rm, rv, channels_last};
    bn_tensor *in[3] = {x, w, b};
    snprintf(what, sizeof what, "batch_norm grad %s %s affine %d%s%s", bn_dims_str(nd, shape),
             training ? "train" : "eval", affine, channels_last ? " channels-last" : "", x_grad ? "" : " (params only)");
    tu_gradcheck(bn_fn, 3, in, &ctx, NULL, what);
    bn_tensor *ts[] = {x, w, b, rm, rv};
    for (size_t i = 0; i < 5; i++) bn_tensor_release(ts[i]);
}

static void test_gradients(void **state)
{
    (void)state;
    for (int training = 0; training < 2; training++)
        for (int affine = 0; affine < 2; affine++) {
            gradcheck_case(2, TU_SHAPE(6, 5), affine, training, false, true, 600);
            gradcheck_case(2, TU_SHAPE(2, 3), affine, training, false, true, 610);
            gradcheck_case(4, TU_SHAPE(3, 3, 4, 5), affine, training, false, true, 620);
            gradcheck_case(4, TU_SHAPE(1, 7, 3, 3), affine, training, false, true, 630);
            gradcheck_case(4, TU_SHAPE(2, 3, 3, 6), affine, training, true, true, 640);
        }
    gradcheck_case(4, TU_SHAPE(2, 5, 3, 3), true, true, false, false, 650);
    gradcheck_case(2, TU_SHAPE(4, 5), true, false, false, false, 660);
}

static void test_empty_batch(void **state)
{
    (void)state;
    bn_tensor *x = bn_tensor_zeros(4, TU_SHAPE(0, 3, 4, 4));
    bn_tensor *rm = bn_tensor_zeros(1, TU_SHAPE(3)), *rv = bn_tensor_ones(1, TU_SHAPE(3));
    bn_tensor *w = bn_tensor_ones(1, TU_SHAPE(3));
    TU_ST(bn_tensor_set_requires_grad(w, true));
    bn_tensor *y = bn_batch_norm(x, rm, rv, w, NULL, &TRAIN);
    TU_OK(y);
    assert_int_equal(bn_tensor_numel(y), 0);
    /* An empty batch leaves the running statistics alone, as in PyTorch. */
    assert_float_equal(bn_tensor_data(rm)[1], 0, 0);
    assert_float_equal(bn_tensor_data(rv)[1], 1, 0);
    bn_tensor *s = bn_sum_all(y);
    TU_ST(bn_backward(s, NULL, false));
    for (int c = 0; c < 3; c++) assert_float_equal(bn_tensor_data(w->grad)[c], 0, 0);
    bn_tensor *ts[] = {x, rm, rv, w, y, s};
    for (size_t i = 0; i < 6; i++) bn_tensor_release(ts[i]);
}

static void test_errors(void **state)
{
    (void)state;
    bn_tensor *x = TU_RANDN(700, 4, 16, 3, 3);
    bn_tensor *rm = bn_tensor_zeros(1, TU_SHAPE(16)), *rv = bn_tensor_ones(1, TU_SHAPE(16));
    bn_tensor *r8 = bn_tensor_zeros(1, TU_SHAPE(8)), *w2 = bn_tensor_ones(2, TU_SHAPE(16, 1));
    bn_tensor *v = TU_RANDN(701, 5);
    TU_FAILS(bn_batch_norm(x, r8, rv, NULL, NULL, &TRAIN), BN_ESHAPE, "batch_norm: running_mean expected [16], got [8]");
    TU_FAILS(bn_batch_norm(x, rm, r8, NULL, NULL, &TRAIN), BN_ESHAPE, "batch_norm: running_var expected [16], got [8]");
    TU_FAILS(bn_batch_norm(x, rm, rv, w2, NULL, &TRAIN), BN_ESHAPE, "batch_norm: weight expected [16], got [16 x 1]");
    TU_FAILS(bn_batch_norm(x, rm, rv, NULL, r8, &EVAL), BN_ESHAPE, "batch_norm: bias expected [16], got [8]");
    TU_FAILS(bn_batch_norm(v, NULL, NULL, NULL, NULL, &TRAIN), BN_ESHAPE,
             "batch_norm: input expected [N x C] or [N x C x H x W], got [5]");
    TU_FAILS(bn_batch_norm(NULL, rm, rv, NULL, NULL, &TRAIN), BN_EARG, "batch_norm: input expected a tensor, got NULL");
    TU_FAILS(bn_batch_norm(x, rm, rv, NULL, NULL, NULL), BN_EARG, "batch_norm: opts expected non-NULL");
    TU_FAILS(bn_batch_norm(x, NULL, NULL, NULL, NULL, &EVAL), BN_EARG,
             "batch_norm: running_mean and running_var are required in eval mode");
    TU_FAILS(bn_batch_norm(x, rm, NULL, NULL, NULL, &TRAIN), BN_EARG,
             "batch_norm: running_mean and running_var expected both or neither, got only running_mean");
    bn_batch_norm_opts bad = {true, 1.5, 1e-5};
    TU_FAILS(bn_batch_norm(x, rm, rv, NULL, NULL, &bad), BN_EARG, "batch_norm: momentum expected in [0, 1], got 1.5");
    bad.momentum = NAN;
    TU_FAILS(bn_batch_norm(x, rm, rv, NULL, NULL, &bad), BN_EARG, "momentum expected in [0, 1], got nan");
    bad = (bn_batch_norm_opts){true, 0.1, -1e-5};
    TU_FAILS(bn_batch_norm(x, rm, rv, NULL, NULL, &bad), BN_EARG, "batch_norm: eps expected finite and >= 0, got -1e-05");

    /* One value per channel cannot give a batch variance. */
    bn_tensor *one = TU_RANDN(702, 1, 3), *one4 = TU_RANDN(703, 1, 3, 1, 1);
    TU_FAILS(bn_batch_norm(one, NULL, NULL, NULL, NULL, &TRAIN), BN_EARG,
             "batch_norm: expected more than 1 value per channel when training, got input [1 x 3]");
    TU_FAILS(bn_batch_norm(one4, NULL, NULL, NULL, NULL, &TRAIN), BN_EARG, "got input [1 x 3 x 1 x 1]");
    bn_tensor *r3m = bn_tensor_zeros(1, TU_SHAPE(3)), *r3v = bn_tensor_ones(1, TU_SHAPE(3));
    bn_tensor *ok = bn_batch_norm(one, r3m, r3v, NULL, NULL, &EVAL); /* fine in eval */
    TU_OK(ok);
    bn_tensor_release(ok);

    /* Running buffers that require grad are refused (they are written in place). */
    bn_tensor *rg = bn_tensor_zeros(1, TU_SHAPE(16));
    TU_ST(bn_tensor_set_requires_grad(rg, true));
    TU_FAILS(bn_batch_norm(x, rg, rv, NULL, NULL, &TRAIN), BN_EARG,
             "batch_norm: running_mean expected a buffer that does not require grad");
    TU_FAILS(bn_batch_norm(x, rm, rg, NULL, NULL, &EVAL), BN_EARG, "batch_norm: running_var expected a buffer");

    /* None of the failures touched the running stats. */
    for (int c = 0; c < 16; c++) {
        assert_float_equal(bn_tensor_data(rm)[c], 0, 0);
        assert_float_equal(bn_tensor_data(rv)[c], 1, 0);
    }

    /* Out of memory: BN_ENOMEM, running stats untouched, nothing leaked. */
    bn_tensor *w = bn_tensor_ones(1, TU_SHAPE(16));
    TU_ST(bn_tensor_set_requires_grad(w, true));
    int64_t nodes = bn_nodes_alive(), mem = bn_mem_in_use();
    bn_mem_set_limit(mem + 1024);
    TU_FAILS(bn_batch_norm(x, rm, rv, w, NULL, &TRAIN), BN_ENOMEM, "");
    bn_mem_set_limit(0);
    assert_int_equal(bn_nodes_alive(), nodes);
    assert_int_equal(bn_mem_in_use(), mem);
    for (int c = 0; c < 16; c++) assert_float_equal(bn_tensor_data(rm)[c], 0, 0);

    bn_tensor *ts[] = {x, rm, rv, r8, w2, v, one, one4, r3m, r3v, rg, w};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) bn_tensor_release(ts[i]);
}

static void test_graph_lifetime(void **state)
{
    (void)state;
    int64_t nodes = bn_nodes_alive();
    bn_tensor *x = TU_RANDN(800, 4, 3, 2, 2);
    bn_tensor *rm = bn_tensor_zeros(1, TU_SHAPE(3)), *rv = bn_tensor_ones(1, TU_SHAPE(3));
    bn_tensor *y = bn_batch_norm(x, rm, rv, NULL, NULL, &TRAIN);
    TU_OK(y);
    assert_false(y->requires_grad); /* nothing requires grad: no node */
    bn_tensor_release(y);
    TU_ST(bn_tensor_set_requires_grad(x, true));
    y = bn_batch_norm(x, rm, rv, NULL, NULL, &EVAL);
    assert_true(y->requires_grad);
    assert_int_equal(bn_nodes_alive(), nodes + 1);
    bn_tensor_release(y);
    assert_int_equal(bn_nodes_alive(), nodes);
    bn_tensor_release(x);
    bn_tensor_release(rm);
    bn_tensor_release(rv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_shapes_and_modes),
        cmocka_unit_test(test_running_stats_by_hand),
        cmocka_unit_test(test_strided_inputs_and_buffers),
        cmocka_unit_test(test_large_and_deterministic),
        cmocka_unit_test(test_backward_large_mean),
        cmocka_unit_test(test_gradients),
        cmocka_unit_test(test_empty_batch),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_graph_lifetime),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
