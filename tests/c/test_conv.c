/* conv2d: forward against a direct double-precision loop, gradients against
 * finite differences, argument errors, allocation failures, and results
 * that do not depend on the thread count. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "blas.h"

typedef struct conv_case {
    int64_t n, c, h, w, o, kh, kw;
    int sh, sw, ph, pw;
    bool bias;
} conv_case;

static int64_t out_size(int64_t in, int64_t k, int s, int p) { return (in + 2 * p - k) / s + 1; }

/* The definition of convolution, summed in double. */
static void reference_conv(double *y, const float *x, const float *w, const float *b, const conv_case *c)
{
    int64_t oh = out_size(c->h, c->kh, c->sh, c->ph), ow = out_size(c->w, c->kw, c->sw, c->pw);
    for (int64_t n = 0; n < c->n; n++)
        for (int64_t o = 0; o < c->o; o++)
            for (int64_t oy = 0; oy < oh; oy++)
                for (int64_t ox = 0; ox < ow; ox++) {
                    double s = b ? b[o] : 0.0;
                    for (int64_t ci = 0; ci < c->c; ci++)
                        for (int64_t ki = 0; ki < c->kh; ki++)
                            for (int64_t kj = 0; kj < c->kw; kj++) {
                                int64_t iy = oy * c->sh - c->ph + ki, ix = ox * c->sw - c->pw + kj;
                                if (iy < 0 || iy >= c->h || ix < 0 || ix >= c->w) continue;
                                s += (double)x[((n * c->c + ci) * c->h + iy) * c->w + ix] *
                                     w[((o * c->c + ci) * c->kh + ki) * c->kw + kj];
                            }
                    y[((n * c->o + o) * oh + oy) * ow + ox] = s;
                }
}

static void check_forward(const conv_case *c, uint64_t seed)
{
    bn_tensor *x = TU_RANDN(seed, c->n, c->c, c->h, c->w);
    bn_tensor *w = TU_RANDN(seed + 1, c->o, c->c, c->kh, c->kw);
    bn_tensor *b = c->bias ? TU_RANDN(seed + 2, c->o) : NULL;
    bn_conv2d_opts opts = {c->sh, c->sw, c->ph, c->pw};
    bn_tensor *y = bn_conv2d(x, w, b, &opts);
    TU_OK(y);
    int64_t oh = out_size(c->h, c->kh, c->sh, c->ph), ow = out_size(c->w, c->kw, c->sw, c->pw);
    assert_int_equal(y->ndim, 4);
    assert_int_equal(y->shape[0], c->n);
    assert_int_equal(y->shape[1], c->o);
    assert_int_equal(y->shape[2], oh);
    assert_int_equal(y->shape[3], ow);
    int64_t numel = bn_tensor_numel(y);
    double *want = malloc((size_t)numel * sizeof *want);
    float *want_f = malloc((size_t)numel * sizeof *want_f);
    reference_conv(want, bn_tensor_data(x), bn_tensor_data(w), b ? bn_tensor_data(b) : NULL, c);
    for (int64_t i = 0; i < numel; i++) want_f[i] = (float)want[i];
    char what[160];
    snprintf(what, sizeof what, "conv2d x[%lld,%lld,%lld,%lld] w[%lld,%lld,%lld,%lld] s%dx%d p%dx%d%s",
             (long long)c->n, (long long)c->c, (long long)c->h, (long long)c->w, (long long)c->o,
             (long long)c->c, (long long)c->kh, (long long)c->kw, c->sh, c->sw, c->ph, c->pw,
             c->bias ? " +b" : "");
    tu_assert_close_array(bn_tensor_data(y), want_f, numel, 1e-4, 1e-4, what);
    free(want);
    free(want_f);
    bn_tensor_release(y);
    bn_tensor_release(x);
    bn_tensor_release(w);
    bn_tensor_release(b);
}

static const conv_case forward_cases[] = {
    {2, 3, 7, 9, 7, 3, 3, 1, 1, 1, 1, true},     /* odd sizes, C=3, O=7 */
    {1, 5, 8, 8, 4, 3, 3, 2, 2, 1, 1, true},     /* batch 1, stride 2 */
    {3, 4, 11, 6, 6, 5, 5, 1, 1, 2, 2, false},   /* padding 2 */
    {2, 3, 9, 10, 5, 2, 4, 1, 2, 0, 1, true},    /* non-square kernel, mixed stride/pad */
    {2, 6, 8, 8, 7, 1, 1, 2, 2, 0, 0, false},    /* ResNet option-B shortcut: 1x1 stride 2 */
    {2, 6, 7, 7, 7, 1, 1, 2, 2, 0, 0, true},     /* same, odd input */
    {2, 8, 5, 5, 3, 1, 1, 1, 1, 0, 0, true},     /* pointwise: reads the image as its columns */
    {1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, false},    /* smallest */
    {4, 16, 6, 6, 16, 3, 3, 1, 1, 1, 1, true},   /* a ResNet body shape, small */
    {2, 3, 5, 5, 2, 5, 5, 1, 1, 0, 0, true},     /* kernel as large as the input: 1x1 output */
    {2, 2, 3, 3, 3, 3, 3, 3, 3, 1, 1, true},     /* stride equal to kernel */
    {1, 3, 4, 4, 2, 3, 3, 5, 5, 2, 2, true},     /* stride larger than the input */
    {2, 5, 6, 13, 7, 3, 1, 1, 3, 2, 0, false},   /* 3x1 kernel, pad only along H */
    {2, 3, 8, 7, 4, 5, 3, 1, 1, 0, 1, true},     /* full-width rows, fewer output rows */
    {1, 2, 1, 6, 3, 5, 3, 1, 1, 2, 1, true},     /* kernel rows entirely in the padding */
    {2, 3, 32, 32, 5, 3, 3, 1, 1, 1, 1, true},   /* a 4 KiB plane */
};

static void test_forward_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof forward_cases / sizeof forward_cases[0]; i++)
        check_forward(&forward_cases[i], 100 + 10 * i);
}

static uint32_t draw(bn_rng *g, uint32_t lo, uint32_t hi)
{
    uint32_t r[4];
    bn_philox(g->offset++, 0, g->seed, r);
    return lo + r[0] % (hi - lo + 1);
}

static void test_forward_random_shapes(void **state)
{
    (void)state;
    bn_rng g;
    bn_rng_init(&g, 2024);
    for (int t = 0; t < 40; t++) {
        conv_case c;
        c.n = draw(&g, 1, 3);
        c.c = draw(&g, 1, 9);
        c.o = draw(&g, 1, 9);
        c.kh = draw(&g, 1, 5);
        c.kw = draw(&g, 1, 5);
        c.sh = (int)draw(&g, 1, 3);
        c.sw = (int)draw(&g, 1, 3);
        c.ph = (int)draw(&g, 0, 2);
        c.pw = (int)draw(&g, 0, 2);
        int64_t min_h = c.kh - 2 * c.ph, min_w = c.kw - 2 * c.pw;
        c.h = draw(&g, (uint32_t)(min_h < 1 ? 1 : min_h), 12);
        c.w = draw(&g, (uint32_t)(min_w < 1 ? 1 : min_w), 12);
        c.bias = draw(&g, 0, 1);
        check_forward(&c, 5000 + (uint64_t)t * 7);
    }
}

static void test_null_opts_default_to_stride1_pad0(void **state)
{
    (void)state;
    bn_tensor *x = TU_RANDN(1, 2, 3, 6, 5), *w = TU_RANDN(2, 4, 3, 3, 2);
    bn_conv2d_opts explicit_opts = {1, 1, 0, 0};
    bn_tensor *a = bn_conv2d(x, w, NULL, NULL), *b = bn_conv2d(x, w, NULL, &explicit_opts);
    TU_OK(a);
    TU_OK(b);
    assert_int_equal(a->shape[2], 4);
    assert_int_equal(a->shape[3], 4);
    tu_assert_close(a, b, 0, 0, "NULL opts");
    bn_tensor_release(a);
    bn_tensor_release(b);
    bn_tensor_release(x);
    bn_tensor_release(w);
}

/* Views whose layout is not NCHW-contiguous give the same result as their
 * packed copies. */
static void test_non_contiguous_inputs(void **state)
{
    (void)state;
    bn_conv2d_opts opts = {2, 1, 1, 0};
    bn_tensor *nhwc = TU_RANDN(11, 3, 7, 6, 5); /* [N x H x W x C] */
    bn_tensor *x = bn_permute(nhwc, (const int[]){0, 3, 1, 2});
    TU_OK(x);
    assert_false(bn_tensor_is_contiguous(x));
    bn_tensor *wide = TU_RANDN(12, 6, 9, 3, 3);
    bn_tensor *w = bn_narrow(wide, 1, 2, 5); /* [6 x 5 x 3 x 3], channels 2..6 */
    TU_OK(w);
    assert_false(bn_tensor_is_contiguous(w));
    bn_tensor *bias_base = TU_RANDN(13, 12);
    bn_tensor *b = bn_subsample(bias_base, 0, 1, 2); /* stride 2 */
    TU_OK(b);

    bn_tensor *xc = bn_tensor_clone(x), *wc = bn_tensor_clone(w), *bc = bn_tensor_clone(b);
    bn_tensor *got = bn_conv2d(x, w, b, &opts), *want = bn_conv2d(xc, wc, bc, &opts);
    TU_OK(got);
    TU_OK(want);
    tu_assert_close(got, want, 0, 0, "conv2d of views");

    conv_case c = {3, 5, 7, 6, 6, 3, 3, 2, 1, 1, 0, true};
    int64_t numel = bn_tensor_numel(want);
    double *ref = malloc((size_t)numel * sizeof *ref);
    float *ref_f = malloc((size_t)numel * sizeof *ref_f);
    reference_conv(ref, bn_tensor_data(xc), bn_tensor_data(wc), bn_tensor_data(bc), &c);
    for (int64_t i = 0; i < numel; i++) ref_f[i] = (float)ref[i];
    tu_assert_close_array(bn_tensor_data(got), ref_f, numel, 1e-4, 1e-4, "conv2d of views vs reference");
    free(ref);
    free(ref_f);
    bn_tensor *all[] = {nhwc, x, wide, w, bias_base, b, xc, wc, bc, got, want};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) bn_tensor_release(all[i]);
}

/* ---- gradients ---------------------------------------------------------- */

static bn_tensor *conv_fn(bn_tensor **in, void *ctx)
{
    return bn_conv2d(in[0], in[1], in[2], ctx);
}

static void gradcheck_case(const conv_case *c, bool gx, bool gw, uint64_t seed)
{
    bn_tensor *in[3] = {TU_RANDN(seed, c->n, c->c, c->h, c->w), TU_RANDN(seed + 1, c->o, c->c, c->kh, c->kw),
                        c->bias ? TU_RANDN(seed + 2, c->o) : NULL};
    TU_ST(bn_tensor_set_requires_grad(in[0], gx));
    TU_ST(bn_tensor_set_requires_grad(in[1], gw));
    if (in[2]) TU_ST(bn_tensor_set_requires_grad(in[2], true));
    bn_conv2d_opts opts = {c->sh, c->sw, c->ph, c->pw};
    char what[96];
    snprintf(what, sizeof what, "conv2d grad k%lldx%lld s%dx%d p%dx%d (x:%d w:%d b:%d)", (long long)c->kh,
             (long long)c->kw, c->sh, c->sw, c->ph, c->pw, gx, gw, c->bias);
    tu_gradcheck(conv_fn, 3, in, &opts, &(tu_gradcheck_opts){.max_checks = 48}, what);
    assert_true(!gx || in[0]->grad);
    assert_true(gx || !in[0]->grad);
    assert_true(!gw || in[1]->grad);
    for (int i = 0; i < 3; i++) bn_tensor_release(in[i]);
    assert_int_equal(bn_nodes_alive(), 0);
}

static const conv_case grad_cases[] = {
    {2, 3, 5, 6, 4, 3, 3, 1, 1, 1, 1, true},
    {2, 3, 7, 7, 5, 3, 3, 2, 2, 1, 1, true},
    {1, 5, 6, 5, 7, 2, 3, 1, 2, 2, 0, true},
    {3, 4, 6, 6, 7, 1, 1, 2, 2, 0, 0, false}, /* option-B shortcut */
    {3, 4, 4, 5, 3, 1, 1, 1, 1, 0, 0, true},  /* pointwise */
    {2, 2, 5, 5, 3, 5, 5, 1, 1, 2, 2, true},
    {40, 2, 3, 3, 2, 3, 3, 1, 1, 1, 1, true}, /* more images than gradient groups */
    {2, 3, 8, 7, 4, 5, 3, 1, 1, 0, 1, true},  /* full-width rows, fewer output rows */
    {1, 2, 1, 6, 3, 5, 3, 1, 1, 2, 1, true},  /* kernel rows entirely in the padding */
    {2, 3, 4, 5, 3, 1, 3, 1, 1, 1, 2, true},  /* padding beyond kernel-1: no flipped-kernel path */
    {2, 3, 5, 5, 2, 3, 3, 1, 1, 3, 0, false}, /* same, along H only */
};

static void test_gradcheck_all_inputs(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof grad_cases / sizeof grad_cases[0]; i++)
        gradcheck_case(&grad_cases[i], true, true, 300 + 10 * i);
}

/* The backward skips the gradients nobody asked for; each path alone must
 * still be right. */
static void test_gradcheck_one_input_at_a_time(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof grad_cases / sizeof grad_cases[0]; i++) {
        conv_case c = grad_cases[i];
        c.bias = false;
        gradcheck_case(&c, true, false, 600 + 10 * i);
        gradcheck_case(&c, false, true, 700 + 10 * i);
    }
}

static void test_gradcheck_random_shapes(void **state)
{
    (void)state;
    bn_rng g;
    bn_rng_init(&g, 77);
    for (int t = 0; t < 16; t++) {
        conv_case c;
        c.n = draw(&g, 1, 3);
        c.c = draw(&g, 1, 5);
        c.o = draw(&g, 1, 5);
        c.kh = draw(&g, 1, 4);
        c.kw = draw(&g, 1, 4);
        c.sh = (int)draw(&g, 1, 2);
        c.sw = (int)draw(&g, 1, 2);
        c.ph = (int)draw(&g, 0, 3);
        c.pw = (int)draw(&g, 0, 3);
        int64_t min_h = c.kh - 2 * c.ph, min_w = c.kw - 2 * c.pw;
        c.h = draw(&g, (uint32_t)(min_h < 1 ? 1 : min_h), 7);
        c.w = draw(&g, (uint32_t)(min_w < 1 ? 1 : min_w), 7);
        c.bias = draw(&g, 0, 1);
        gradcheck_case(&c, true, true, 900 + (uint64_t)t * 5);
    }
}

/* Gradient reaches a leaf through a permuted view of it. */
static bn_tensor *conv_of_permuted_fn(bn_tensor **in, void *ctx)
{
    bn_tensor *x = bn_permute(in[0], (const int[]){0, 3, 1, 2});
    if (!x) return NULL;
    bn_tensor *y = bn_conv2d(x, in[1], NULL, ctx);
    bn_tensor_release(x);
    return y;
}

static void test_gradcheck_through_view(void **state)
{
    (void)state;
    bn_tensor *in[2] = {TU_RANDN(40, 2, 5, 6, 3), TU_RANDN(41, 4, 3, 3, 3)};
    TU_ST(bn_tensor_set_requires_grad(in[0], true));
    TU_ST(bn_tensor_set_requires_grad(in[1], true));
    bn_conv2d_opts opts = {1, 2, 1, 1};
    tu_gradcheck(conv_of_permuted_fn, 2, in, &opts, NULL, "conv2d of a permuted leaf");
    bn_tensor_release(in[0]);
    bn_tensor_release(in[1]);
    assert_int_equal(bn_nodes_alive(), 0);
}

/* Bias gradient is the sum of dY over N, H, W; check exactly against it
 * with dY = 1. */
static void test_bias_grad_is_count_with_unit_seed(void **state)
{
    (void)state;
    bn_tensor *x = TU_RANDN(50, 3, 2, 5, 5), *w = TU_RANDN(51, 4, 2, 3, 3), *b = TU_RANDN(52, 4);
    TU_ST(bn_tensor_set_requires_grad(b, true));
    bn_conv2d_opts opts = {2, 2, 1, 1};
    bn_tensor *y = bn_conv2d(x, w, b, &opts);
    TU_OK(y);
    bn_tensor *ones = bn_tensor_ones(y->ndim, y->shape);
    TU_ST(bn_backward(y, ones, false));
    for (int o = 0; o < 4; o++) assert_float_equal(bn_tensor_data(b->grad)[o], 3 * 3 * 3, 0);
    bn_tensor *all[] = {ones, y, x, w, b};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) bn_tensor_release(all[i]);
}

/* ---- determinism -------------------------------------------------------- */

typedef struct conv_run {
    bn_tensor *y, *dx, *dw, *db;
} conv_run;

static conv_run run_once(int threads)
{
    int before = bn_get_num_threads();
    bn_set_num_threads(threads);
    bn_tensor *x = TU_RANDN(60, 37, 5, 9, 9), *w = TU_RANDN(61, 6, 5, 3, 3), *b = TU_RANDN(62, 6);
    TU_ST(bn_tensor_set_requires_grad(x, true));
    TU_ST(bn_tensor_set_requires_grad(w, true));
    TU_ST(bn_tensor_set_requires_grad(b, true));
    bn_conv2d_opts opts = {1, 1, 1, 1};
    bn_tensor *y = bn_conv2d(x, w, b, &opts);
    TU_OK(y);
    bn_tensor *seed = TU_RANDN(63, y->shape[0], y->shape[1], y->shape[2], y->shape[3]);
    TU_ST(bn_backward(y, seed, false));
    conv_run r = {bn_tensor_detach(y), bn_tensor_retain(x->grad), bn_tensor_retain(w->grad),
                  bn_tensor_retain(b->grad)};
    bn_tensor *all[] = {seed, y, x, w, b};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) bn_tensor_release(all[i]);
    bn_set_num_threads(before);
    return r;
}

static void assert_same_bits(const bn_tensor *a, const bn_tensor *b, const char *what, int threads)
{
    assert_true(bn_shape_equal(a, b));
    if (memcmp(bn_tensor_data(a), bn_tensor_data(b), (size_t)bn_tensor_numel(a) * sizeof(float)) != 0)
        fail_msg("%s differs between 1 and %d threads", what, threads);
}

static void test_same_bits_for_any_thread_count(void **state)
{
    (void)state;
    conv_run one = run_once(1);
    for (int threads = 2; threads <= 3; threads++) {
        conv_run more = run_once(threads);
        assert_same_bits(one.y, more.y, "output", threads);
        assert_same_bits(one.dx, more.dx, "input gradient", threads);
        assert_same_bits(one.dw, more.dw, "weight gradient", threads);
        assert_same_bits(one.db, more.db, "bias gradient", threads);
        bn_tensor *all[] = {more.y, more.dx, more.dw, more.db};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) bn_tensor_release(all[i]);
    }
    bn_tensor *all[] = {one.y, one.dx, one.dw, one.db};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) bn_tensor_release(all[i]);
}

/* ---- errors ------------------------------------------------------------- */

static void test_argument_errors(void **state)
{
    (void)state;
    bn_tensor *x = TU_RANDN(70, 2, 3, 8, 8), *w = TU_RANDN(71, 7, 3, 3, 3), *b = TU_RANDN(72, 7);
    bn_tensor *x3 = TU_RANDN(73, 3, 8, 8), *w3 = TU_RANDN(74, 7, 3, 9), *w_c5 = TU_RANDN(75, 7, 5, 3, 3);
    bn_tensor *b6 = TU_RANDN(76, 6), *b2d = TU_RANDN(77, 7, 1), *big_w = TU_RANDN(78, 2, 3, 11, 3);
    int64_t before = bn_mem_in_use();

    TU_FAILS(bn_conv2d(NULL, w, b, NULL), BN_EARG, "conv2d: input expected a tensor");
    TU_FAILS(bn_conv2d(x, NULL, b, NULL), BN_EARG, "conv2d: weight expected a tensor");
    TU_FAILS(bn_conv2d(x3, w, b, NULL), BN_ESHAPE, "conv2d: input expected 4-D [N x C x H x W], got [3 x 8 x 8]");
    TU_FAILS(bn_conv2d(x, w3, b, NULL), BN_ESHAPE,
             "conv2d: weight expected 4-D [out x in x kh x kw], got [7 x 3 x 9]");
    TU_FAILS(bn_conv2d(x, w_c5, b, NULL), BN_ESHAPE,
             "conv2d: input expected [N x 5 x H x W] (the in-channels of weight [7 x 5 x 3 x 3]), got [2 x 3 x 8 x 8]");
    TU_FAILS(bn_conv2d(x, w, b6, NULL), BN_ESHAPE, "conv2d: bias expected [7]");
    TU_FAILS(bn_conv2d(x, w, b6, NULL), BN_ESHAPE, "got [6]");
    TU_FAILS(bn_conv2d(x, w, b2d, NULL), BN_ESHAPE, "got [7 x 1]");
    TU_FAILS(bn_conv2d(x, w, b, &((bn_conv2d_opts){0, 1, 0, 0})), BN_EARG, "conv2d: stride expected >= 1, got 0 x 1");
    TU_FAILS(bn_conv2d(x, w, b, &((bn_conv2d_opts){1, -2, 0, 0})), BN_EARG, "stride expected >= 1, got 1 x -2");
    TU_FAILS(bn_conv2d(x, w, b, &((bn_conv2d_opts){1, 1, 0, -1})), BN_EARG, "conv2d: padding expected >= 0, got 0 x -1");
    TU_FAILS(bn_conv2d(x, big_w, NULL, NULL), BN_ESHAPE, "kernel 11 x 3 expected to fit the padded input 8 x 8");
    TU_FAILS(bn_conv2d(x, big_w, NULL, &((bn_conv2d_opts){1, 1, 1, 0})), BN_ESHAPE, "padded input 10 x 8");
    /* Padding that makes room is fine. */
    bn_tensor *fits = bn_conv2d(x, big_w, NULL, &((bn_conv2d_opts){1, 1, 2, 0}));
    TU_OK(fits);
    assert_int_equal(fits->shape[2], 2);
    bn_tensor_release(fits);
    assert_int_equal(bn_mem_in_use(), before); /* checks happen before any allocation */

    bn_tensor *all[] = {x, w, b, x3, w3, w_c5, b6, b2d, big_w};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) bn_tensor_release(all[i]);
}

/* Under every memory limit, forward and backward either succeed or fail
 * with BN_ENOMEM, and leave nothing behind. */
static void test_out_of_memory_is_an_error(void **state)
{
    (void)state;
    int64_t base = bn_mem_in_use();
    bn_tensor *x = TU_RANDN(80, 4, 3, 8, 8), *w = TU_RANDN(81, 5, 3, 3, 3), *b = TU_RANDN(82, 5);
    TU_ST(bn_tensor_set_requires_grad(x, true));
    TU_ST(bn_tensor_set_requires_grad(w, true));
    TU_ST(bn_tensor_set_requires_grad(b, true));
    int64_t inputs = bn_mem_in_use();
    int successes = 0;
    for (int64_t budget = 0; budget <= 64 * 1024; budget += 256) {
        bn_mem_set_limit(inputs + budget);
        bn_tensor *y = bn_conv2d(x, w, b, &((bn_conv2d_opts){1, 1, 1, 1}));
        if (!y) {
            assert_int_equal(bn_last_status(), BN_ENOMEM);
        } else {
            bn_status st = bn_backward(y, y, false);
            if (st != BN_OK) assert_int_equal(st, BN_ENOMEM);
            else successes++;
            bn_tensor_release(y);
        }
        bn_mem_set_limit(0);
        TU_ST(bn_tensor_zero_grad(x));
        TU_ST(bn_tensor_zero_grad(w));
        TU_ST(bn_tensor_zero_grad(b));
        assert_int_equal(bn_nodes_alive(), 0);
        assert_int_equal(bn_mem_in_use(), inputs);
    }
    assert_true(successes > 0);
    bn_tensor_release(x);
    bn_tensor_release(w);
    bn_tensor_release(b);
    assert_int_equal(bn_mem_in_use(), base);
}

/* Inference (no grad) records nothing and keeps nothing. */
static void test_no_grad_records_nothing(void **state)
{
    (void)state;
    bn_tensor *x = TU_RANDN(90, 2, 3, 6, 6), *w = TU_RANDN(91, 4, 3, 3, 3);
    TU_ST(bn_tensor_set_requires_grad(w, true));
    bool was = bn_set_grad_enabled(false);
    bn_tensor *y = bn_conv2d(x, w, NULL, NULL);
    bn_set_grad_enabled(was);
    TU_OK(y);
    assert_null(y->grad_fn);
    assert_false(y->requires_grad);
    assert_int_equal(bn_nodes_alive(), 0);
    bn_tensor_release(y);
    bn_tensor_release(x);
    bn_tensor_release(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_cases),
        cmocka_unit_test(test_forward_random_shapes),
        cmocka_unit_test(test_null_opts_default_to_stride1_pad0),
        cmocka_unit_test(test_non_contiguous_inputs),
        cmocka_unit_test(test_gradcheck_all_inputs),
        cmocka_unit_test(test_gradcheck_one_input_at_a_time),
        cmocka_unit_test(test_gradcheck_random_shapes),
        cmocka_unit_test(test_gradcheck_through_view),
        cmocka_unit_test(test_bias_grad_is_count_with_unit_seed),
        cmocka_unit_test(test_same_bits_for_any_thread_count),
        cmocka_unit_test(test_argument_errors),
        cmocka_unit_test(test_out_of_memory_is_an_error),
        cmocka_unit_test(test_no_grad_records_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
