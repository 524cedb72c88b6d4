/* max_pool2d, avg_pool2d, adaptive_avg_pool2d: forward against direct
 * loops over each window, gradients against finite differences, tie and
 * NaN behaviour, argument errors. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum { POOL_MAX, POOL_AVG } pool_kind;

typedef struct pool_case {
    int64_t n, c, h, w;
    bn_pool2d_opts o;
} pool_case;

static int64_t resolved(int stride, int kernel) { return stride ? stride : kernel; }

/* Each output from its window, written from PyTorch's definition: padded
 * positions are -inf for max; for avg they count in the divisor when
 * count_include_pad (the window clipped to the padded input). */
static void reference_pool(float *y, const float *x, const pool_case *c, pool_kind kind, int64_t oh, int64_t ow)
{
    const bn_pool2d_opts *o = &c->o;
    int64_t sh = resolved(o->stride_h, o->kernel_h), sw = resolved(o->stride_w, o->kernel_w);
    for (int64_t p = 0; p < c->n * c->c; p++)
        for (int64_t oy = 0; oy < oh; oy++)
            for (int64_t ox = 0; ox < ow; ox++) {
                double best = -INFINITY, sum = 0;
                int64_t inside = 0, padded = 0;
                for (int64_t ki = 0; ki < o->kernel_h; ki++)
                    for (int64_t kj = 0; kj < o->kernel_w; kj++) {
                        int64_t iy = oy * sh - o->pad_h + ki, ix = ox * sw - o->pad_w + kj;
                        if (iy >= c->h + o->pad_h || ix >= c->w + o->pad_w) continue;
                        padded++;
                        if (iy < 0 || iy >= c->h || ix < 0 || ix >= c->w) continue;
                        double v = x[(p * c->h + iy) * c->w + ix];
                        inside++;
                        sum += v;
                        if (v > best) best = v;
                    }
                double out = kind == POOL_MAX ? best : sum / (double)(o->count_include_pad ? padded : inside);
                y[(p * oh + oy) * ow + ox] = (float)out;
            }
}

static void check_pool(const pool_case *c, pool_kind kind, uint64_t seed)
{
    bn_tensor *x = TU_RANDN(seed, c->n, c->c, c->h, c->w);
    bn_tensor *y = kind == POOL_MAX ? bn_max_pool2d(x, &c->o) : bn_avg_pool2d(x, &c->o);
    TU_OK(y);
    const bn_pool2d_opts *o = &c->o;
    int64_t oh = (c->h + 2 * o->pad_h - o->kernel_h) / resolved(o->stride_h, o->kernel_h) + 1;
    int64_t ow = (c->w + 2 * o->pad_w - o->kernel_w) / resolved(o->stride_w, o->kernel_w) + 1;
    assert_int_equal(y->shape[0], c->n);
    assert_int_equal(y->shape[1], c->c);
    assert_int_equal(y->shape[2], oh);
    assert_int_equal(y->shape[3], ow);
    float *want = malloc((size_t)bn_tensor_numel(y) * sizeof *want);
    reference_pool(want, bn_tensor_data(x), c, kind, oh, ow);
    char what[128];
    snprintf(what, sizeof what, "%s k%dx%d s%dx%d p%dx%d%s", kind == POOL_MAX ? "max_pool2d" : "avg_pool2d",
             o->kernel_h, o->kernel_w, o->stride_h, o->stride_w, o->pad_h, o->pad_w,
             o->count_include_pad ? " include_pad" : "");
    tu_assert_close_array(bn_tensor_data(y), want, bn_tensor_numel(y), 1e-5, 1e-6, what);
    free(want);
    bn_tensor_release(y);
    bn_tensor_release(x);
}

/* {kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, count_include_pad} */
static const pool_case pool_cases[] = {
    {2, 3, 8, 8, {2, 2, 0, 0, 0, 0, false}},    /* stride defaults to the kernel */
    {2, 3, 7, 9, {2, 2, 2, 2, 0, 0, false}},    /* odd sizes drop the last row/column */
    {1, 2, 7, 7, {3, 3, 1, 1, 1, 1, true}},
    {1, 2, 7, 7, {3, 3, 1, 1, 1, 1, false}},
    {2, 2, 9, 8, {3, 3, 2, 2, 1, 1, true}},     /* ResNet stem-style pooling */
    {2, 2, 9, 8, {3, 3, 2, 2, 1, 1, false}},
    {1, 3, 6, 11, {2, 3, 1, 2, 1, 1, true}},    /* non-square everything */
    {1, 3, 6, 11, {2, 3, 1, 2, 1, 0, false}},
    {3, 1, 5, 5, {5, 5, 1, 1, 2, 2, true}},     /* large kernel, pad 2 */
    {3, 1, 5, 5, {5, 5, 1, 1, 2, 2, false}},
    {1, 1, 1, 1, {1, 1, 1, 1, 0, 0, false}},
    {2, 5, 4, 4, {4, 4, 0, 0, 0, 0, false}},    /* global pooling */
};

static void test_max_forward(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof pool_cases / sizeof pool_cases[0]; i++) check_pool(&pool_cases[i], POOL_MAX, 10 + i);
}

static void test_avg_forward(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof pool_cases / sizeof pool_cases[0]; i++) check_pool(&pool_cases[i], POOL_AVG, 40 + i);
}

/* count_include_pad at a corner of a 3x3/pad 1 window: 4 of 9 cells are
 * inside, so the divisors are 9 and 4. */
static void test_avg_divisor_at_corner(void **state)
{
    (void)state;
    bn_tensor *x = bn_tensor_ones(4, TU_SHAPE(1, 1, 4, 4));
    bn_pool2d_opts incl = {3, 3, 1, 1, 1, 1, true}, excl = {3, 3, 1, 1, 1, 1, false};
    bn_tensor *a = bn_avg_pool2d(x, &incl), *b = bn_avg_pool2d(x, &excl);
    TU_OK(a);
    TU_OK(b);
    assert_float_equal(bn_tensor_data(a)[0], 4.0f / 9.0f, 1e-7);
    assert_float_equal(bn_tensor_data(a)[1], 6.0f / 9.0f, 1e-7);
    assert_float_equal(bn_tensor_data(a)[5], 1.0f, 1e-7);
    for (int i = 0; i < 16; i++) assert_float_equal(bn_tensor_data(b)[i], 1.0f, 1e-7);
    bn_tensor_release(a);
    bn_tensor_release(b);
    bn_tensor_release(x);
}

/* ---- adaptive ----------------------------------------------------------- */

static void reference_adaptive(float *y, const float *x, int64_t planes, int64_t h, int64_t w, int64_t oh,
                               int64_t ow)
{
    for (int64_t p = 0; p < planes; p++)
        for (int64_t i = 0; i < oh; i++)
            for (int64_t j = 0; j < ow; j++) {
                int64_t y0 = (int64_t)floor((double)i * h / oh), y1 = (int64_t)ceil((double)(i + 1) * h / oh);
                int64_t x0 = (int64_t)floor((double)j * w / ow), x1 = (int64_t)ceil((double)(j + 1) * w / ow);
                double s = 0;
                for (int64_t iy = y0; iy < y1; iy++)
                    for (int64_t ix = x0; ix < x1; ix++) s += x[(p * h + iy) * w + ix];
                y[(p * oh + i) * ow + j] = (float)(s / (double)((y1 - y0) * (x1 - x0)));
            }
}

static const int64_t adaptive_cases[][6] = {
    /* n, c, h, w, oh, ow */
    {2, 3, 7, 9, 3, 4},  /* overlapping uneven bins */
    {2, 3, 8, 8, 1, 1},  /* global average: the ResNet head */
    {1, 2, 5, 5, 5, 5},  /* identity */
    {1, 2, 4, 3, 6, 7},  /* more bins than inputs */
    {3, 1, 10, 6, 4, 5},
    {1, 1, 1, 1, 1, 1},
};

static void test_adaptive_forward(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof adaptive_cases / sizeof adaptive_cases[0]; i++) {
        const int64_t *c = adaptive_cases[i];
        bn_tensor *x = TU_RANDN(70 + i, c[0], c[1], c[2], c[3]);
        bn_tensor *y = bn_adaptive_avg_pool2d(x, c[4], c[5]);
        TU_OK(y);
        assert_int_equal(y->shape[2], c[4]);
        assert_int_equal(y->shape[3], c[5]);
        float *want = malloc((size_t)bn_tensor_numel(y) * sizeof *want);
        reference_adaptive(want, bn_tensor_data(x), c[0] * c[1], c[2], c[3], c[4], c[5]);
        char what[96];
        snprintf(what, sizeof what, "adaptive_avg_pool2d %lldx%lld -> %lldx%lld", (long long)c[2], (long long)c[3],
                 (long long)c[4], (long long)c[5]);
        tu_assert_close_array(bn_tensor_data(y), want, bn_tensor_numel(y), 1e-5, 1e-6, what);
        free(want);
        bn_tensor_release(y);
        bn_tensor_release(x);
    }
}

/* ---- views -------------------------------------------------------------- */

static void test_non_contiguous_input(void **state)
{
    (void)state;
    bn_tensor *base = TU_RANDN(90, 2, 7, 9, 3); /* [N x H x W x C] */
    bn_tensor *x = bn_permute(base, (const int[]){0, 3, 1, 2});
    TU_OK(x);
    bn_tensor *xc = bn_tensor_clone(x);
    bn_pool2d_opts o = {3, 3, 2, 2, 1, 1, true};
    bn_tensor *got[3] = {bn_max_pool2d(x, &o), bn_avg_pool2d(x, &o), bn_adaptive_avg_pool2d(x, 2, 3)};
    bn_tensor *want[3] = {bn_max_pool2d(xc, &o), bn_avg_pool2d(xc, &o), bn_adaptive_avg_pool2d(xc, 2, 3)};
    for (int i = 0; i < 3; i++) {
        TU_OK(got[i]);
        TU_OK(want[i]);
        tu_assert_close(got[i], want[i], 0, 0, "pooling a permuted view");
        bn_tensor_release(got[i]);
        bn_tensor_release(want[i]);
    }
    bn_tensor_release(xc);
    bn_tensor_release(x);
    bn_tensor_release(base);
}

/* ---- gradients ---------------------------------------------------------- */

static bn_tensor *max_fn(bn_tensor **in, void *ctx) { return bn_max_pool2d(in[0], ctx); }
static bn_tensor *avg_fn(bn_tensor **in, void *ctx) { return bn_avg_pool2d(in[0], ctx); }
static bn_tensor *adaptive_fn(bn_tensor **in, void *ctx)
{
    const int64_t *size = ctx;
    return bn_adaptive_avg_pool2d(in[0], size[0], size[1]);
}

static void gradcheck_one(tu_fn fn, void *ctx, const int64_t *shape, uint64_t seed, const char *what)
{
    bn_tensor *x = tu_randn(seed, 4, shape);
    TU_ST(bn_tensor_set_requires_grad(x, true));
    tu_gradcheck(fn, 1, &x, ctx, &(tu_gradcheck_opts){.max_checks = 96}, what);
    bn_tensor_release(x);
    assert_int_equal(bn_nodes_alive(), 0);
}

static void test_max_gradcheck(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof pool_cases / sizeof pool_cases[0]; i++) {
        const pool_case *c = &pool_cases[i];
        gradcheck_one(max_fn, (void *)&c->o, TU_SHAPE(c->n, c->c, c->h, c->w), 200 + i, "max_pool2d grad");
    }
}

static void test_avg_gradcheck(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof pool_cases / sizeof pool_cases[0]; i++) {
        const pool_case *c = &pool_cases[i];
        gradcheck_one(avg_fn, (void *)&c->o, TU_SHAPE(c->n, c->c, c->h, c->w), 300 + i, "avg_pool2d grad");
    }
}

static void test_adaptive_gradcheck(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof adaptive_cases / sizeof adaptive_cases[0]; i++) {
        const int64_t *c = adaptive_cases[i];
        gradcheck_one(adaptive_fn, (void *)(c + 4), c, 400 + i, "adaptive_avg_pool2d grad");
    }
}

/* Gradient reaches a leaf through a view it was pooled from. */
static bn_tensor *max_of_narrowed_fn(bn_tensor **in, void *ctx)
{
    bn_tensor *x = bn_narrow(in[0], 3, 1, 6);
    if (!x) return NULL;
    bn_tensor *y = bn_max_pool2d(x, ctx);
    bn_tensor_release(x);
    return y;
}

static void test_gradcheck_through_view(void **state)
{
    (void)state;
    bn_pool2d_opts o = {3, 2, 2, 1, 1, 1, false};
    gradcheck_one(max_of_narrowed_fn, &o, TU_SHAPE(2, 3, 7, 8), 500, "max_pool2d of a narrowed leaf");
}

/* On ties the whole gradient goes to the first maximal element of each
 * window (row-major), as documented. */
static void test_max_ties_route_to_first(void **state)
{
    (void)state;
    bn_tensor *x = bn_tensor_full(4, TU_SHAPE(1, 1, 4, 4), 2.0f);
    TU_ST(bn_tensor_set_requires_grad(x, true));
    bn_pool2d_opts o = {2, 2, 2, 2, 0, 0, false};
    bn_tensor *y = bn_max_pool2d(x, &o);
    TU_OK(y);
    bn_tensor *g = bn_tensor_ones(4, y->shape);
    TU_ST(bn_backward(y, g, false));
    const float want[16] = {1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0};
    tu_assert_close_array(bn_tensor_data(x->grad), want, 16, 0, 0, "max_pool2d tie gradient");
    bn_tensor_release(g);
    bn_tensor_release(y);
    bn_tensor_release(x);
}

/* Overlapping windows (stride < kernel) add their gradients where they
 * share a maximum. */
static void test_max_overlapping_windows_accumulate(void **state)
{
    (void)state;
    float data[9] = {0, 0, 0, 0, 9, 0, 0, 0, 0};
    bn_tensor *x = bn_tensor_from_array(4, TU_SHAPE(1, 1, 3, 3), data);
    TU_ST(bn_tensor_set_requires_grad(x, true));
    bn_pool2d_opts o = {2, 2, 1, 1, 0, 0, false};
    bn_tensor *y = bn_max_pool2d(x, &o);
    TU_OK(y);
    bn_tensor *g = bn_tensor_ones(4, y->shape);
    TU_ST(bn_backward(y, g, false));
    assert_float_equal(bn_tensor_data(x->grad)[4], 4.0f, 0);
    bn_tensor_release(g);
    bn_tensor_release(y);
    bn_tensor_release(x);
}

/* NaN is data in divergence studies: it must win the max, not vanish. */
static void test_max_propagates_nan(void **state)
{
    (void)state;
    float data[8] = {1, NAN, 3, 2, 5, 1, -INFINITY, -INFINITY};
    bn_tensor *x = bn_tensor_from_array(4, TU_SHAPE(1, 2, 2, 2), data);
    TU_ST(bn_tensor_set_requires_grad(x, true));
    bn_pool2d_opts o = {2, 2, 0, 0, 0, 0, false};
    bn_tensor *y = bn_max_pool2d(x, &o);
    TU_OK(y);
    assert_true(isnan(bn_tensor_data(y)[0]));
    assert_float_equal(bn_tensor_data(y)[1], 5.0f, 0);
    bn_tensor *g = bn_tensor_ones(4, y->shape);
    TU_ST(bn_backward(y, g, false));
    const float want[8] = {0, 1, 0, 0, 1, 0, 0, 0};
    tu_assert_close_array(bn_tensor_data(x->grad), want, 8, 0, 0, "max_pool2d NaN gradient");
    bn_tensor_release(g);
    bn_tensor_release(y);
    bn_tensor_release(x);
}

static void test_max_all_negative_infinity(void **state)
{
    (void)state;
    bn_tensor *x = bn_tensor_full(4, TU_SHAPE(1, 1, 3, 3), -INFINITY);
    bn_pool2d_opts o = {3, 3, 1, 1, 1, 1, false};
    bn_tensor *y = bn_max_pool2d(x, &o);
    TU_OK(y);
    for (int i = 0; i < 9; i++) assert_true(isinf(bn_tensor_data(y)[i]) && bn_tensor_data(y)[i] < 0);
    bn_tensor_release(y);
    bn_tensor_release(x);
}

/* ---- errors ------------------------------------------------------------- */

static void test_argument_errors(void **state)
{
    (void)state;
    bn_tensor *x = TU_RANDN(600, 2, 3, 5, 6), *x3 = TU_RANDN(601, 3, 5, 6);
    bn_tensor *empty = bn_tensor_zeros(4, TU_SHAPE(2, 3, 0, 6));
    int64_t before = bn_mem_in_use();
    bn_pool2d_opts ok = {2, 2, 0, 0, 0, 0, false};

    TU_FAILS(bn_max_pool2d(NULL, &ok), BN_EARG, "max_pool2d: input expected a tensor");
    TU_FAILS(bn_max_pool2d(x3, &ok), BN_ESHAPE, "max_pool2d: input expected 4-D [N x C x H x W], got [3 x 5 x 6]");
    TU_FAILS(bn_avg_pool2d(x3, &ok), BN_ESHAPE, "avg_pool2d: input expected 4-D");
    TU_FAILS(bn_max_pool2d(empty, &ok), BN_ESHAPE, "non-empty spatial dims");
    TU_FAILS(bn_max_pool2d(x, NULL), BN_EARG, "max_pool2d: options expected");
    TU_FAILS(bn_avg_pool2d(x, &((bn_pool2d_opts){0, 2, 0, 0, 0, 0, false})), BN_EARG,
             "avg_pool2d: kernel size expected >= 1, got 0 x 2");
    TU_FAILS(bn_max_pool2d(x, &((bn_pool2d_opts){2, 2, -1, 1, 0, 0, false})), BN_EARG,
             "max_pool2d: stride expected >= 1 (or 0 for the kernel size), got -1 x 1");
    TU_FAILS(bn_max_pool2d(x, &((bn_pool2d_opts){3, 3, 1, 1, 2, 0, false})), BN_EARG,
             "max_pool2d: padding expected between 0 and half the kernel (1 x 1), got 2 x 0");
    TU_FAILS(bn_avg_pool2d(x, &((bn_pool2d_opts){3, 3, 1, 1, 0, -1, false})), BN_EARG, "got 0 x -1");
    TU_FAILS(bn_max_pool2d(x, &((bn_pool2d_opts){7, 2, 1, 1, 0, 0, false})), BN_ESHAPE,
             "max_pool2d: kernel 7 x 2 expected to fit the padded input 5 x 6");
    TU_FAILS(bn_avg_pool2d(x, &((bn_pool2d_opts){2, 9, 1, 1, 1, 1, false})), BN_ESHAPE, "padded input 7 x 8");

    TU_FAILS(bn_adaptive_avg_pool2d(NULL, 1, 1), BN_EARG, "adaptive_avg_pool2d: input expected a tensor");
    TU_FAILS(bn_adaptive_avg_pool2d(x3, 1, 1), BN_ESHAPE, "adaptive_avg_pool2d: input expected 4-D");
    TU_FAILS(bn_adaptive_avg_pool2d(x, 0, 1), BN_EARG, "adaptive_avg_pool2d: output size expected >= 1, got 0 x 1");
    TU_FAILS(bn_adaptive_avg_pool2d(x, 2, -3), BN_EARG, "got 2 x -3");
    TU_FAILS(bn_adaptive_avg_pool2d(empty, 1, 1), BN_ESHAPE, "non-empty spatial dims");
    TU_FAILS(bn_adaptive_avg_pool2d(x, INT64_MAX / 2, 1), BN_EARG, "too large");
    assert_int_equal(bn_mem_in_use(), before);

    bn_tensor_release(x);
    bn_tensor_release(x3);
    bn_tensor_release(empty);
}

/* Under every memory limit, each op and its backward either succeed or
 * fail with BN_ENOMEM, and leave nothing behind. */
static void test_out_of_memory_is_an_error(void **state)
{
    (void)state;
    bn_tensor *x = TU_RANDN(700, 2, 3, 8, 8);
    TU_ST(bn_tensor_set_requires_grad(x, true));
    int64_t inputs = bn_mem_in_use();
    bn_pool2d_opts o = {3, 3, 2, 2, 1, 1, true};
    for (int op = 0; op < 3; op++) {
        int successes = 0;
        for (int64_t budget = 0; budget <= 8192; budget += 64) {
            bn_mem_set_limit(inputs + budget);
            bn_tensor *y = op == 0 ? bn_max_pool2d(x, &o) : op == 1 ? bn_avg_pool2d(x, &o) : bn_adaptive_avg_pool2d(x, 3, 3);
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
            assert_int_equal(bn_nodes_alive(), 0);
            assert_int_equal(bn_mem_in_use(), inputs);
        }
        assert_true(successes > 0);
    }
    bn_tensor_release(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_max_forward),
        cmocka_unit_test(test_avg_forward),
        cmocka_unit_test(test_avg_divisor_at_corner),
        cmocka_unit_test(test_adaptive_forward),
        cmocka_unit_test(test_non_contiguous_input),
        cmocka_unit_test(test_max_gradcheck),
        cmocka_unit_test(test_avg_gradcheck),
        cmocka_unit_test(test_adaptive_gradcheck),
        cmocka_unit_test(test_gradcheck_through_view),
        cmocka_unit_test(test_max_ties_route_to_first),
        cmocka_unit_test(test_max_overlapping_windows_accumulate),
        cmocka_unit_test(test_max_propagates_nan),
        cmocka_unit_test(test_max_all_negative_infinity),
        cmocka_unit_test(test_argument_errors),
        cmocka_unit_test(test_out_of_memory_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
