/* dropout: drop rate, scaling, determinism under a seed (and across thread
 * counts), the backward pass reusing the forward's mask, identity modes,
 * NaN visibility, errors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "testutil.h"

static int64_t mem_before, nodes_before;

static int setup(void **state)
{
    (void)state;
    mem_before = bn_mem_in_use();
    nodes_before = bn_nodes_alive();
    bn_clear_error();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    bn_mem_set_limit(0);
    if (bn_mem_in_use() != mem_before || bn_nodes_alive() != nodes_before) {
        print_error("leak: %lld bytes and %lld nodes still alive after the test\n",
                    (long long)(bn_mem_in_use() - mem_before), (long long)(bn_nodes_alive() - nodes_before));
        return -1;
    }
    return 0;
}

static void release_all(int n, bn_tensor **ts)
{
    for (int i = 0; i < n; i++) bn_tensor_release(ts[i]);
}

static void test_rate_and_scale(void **state)
{
    (void)state;
    static const double ps[] = {0.1, 0.3, 0.5, 0.9};
    int64_t n = 200000;
    bn_tensor *x = bn_tensor_ones(1, &n);
    bn_manual_seed(123);
    for (size_t k = 0; k < sizeof ps / sizeof ps[0]; k++) {
        double p = ps[k];
        bn_tensor *y = bn_dropout(x, p, true);
        TU_OK(y);
        float scale = (float)(1.0 / (1.0 - p));
        int64_t zeros = 0;
        double sum = 0;
        const float *v = bn_tensor_data(y);
        for (int64_t i = 0; i < n; i++) {
            if (v[i] == 0) zeros++;
            else if (v[i] != scale) fail_msg("p %g: kept value %g, expected %g", p, v[i], scale);
            sum += v[i];
        }
        /* Binomial: std of the fraction is sqrt(p(1-p)/n) < 0.0012; 6 sigma. */
        double frac = (double)zeros / (double)n, sd = sqrt(p * (1 - p) / (double)n);
        if (fabs(frac - p) > 6 * sd) fail_msg("p %g: dropped fraction %g", p, frac);
        /* Inverted dropout keeps the mean. */
        double mean = sum / (double)n, mean_sd = sd / (1 - p);
        if (fabs(mean - 1) > 6 * mean_sd) fail_msg("p %g: mean %g, expected 1", p, mean);
        bn_tensor_release(y);
    }
    bn_tensor_release(x);
}

static void test_determinism(void **state)
{
    (void)state;
    bn_tensor *x = TU_RANDN(1, 64, 100);
    int64_t n = bn_tensor_numel(x);
    bn_manual_seed(42);
    bn_tensor *a = bn_dropout(x, 0.5, true), *b = bn_dropout(x, 0.5, true);
    bn_manual_seed(42);
    bn_tensor *c = bn_dropout(x, 0.5, true);
    bn_manual_seed(43);
    bn_tensor *d = bn_dropout(x, 0.5, true);
    TU_OK(a);
    TU_OK(b);
    TU_OK(c);
    TU_OK(d);
    assert_memory_equal(bn_tensor_data(a), bn_tensor_data(c), (size_t)n * sizeof(float));
    /* The stream moves on between calls, and another seed differs. */
    assert_memory_not_equal(bn_tensor_data(a), bn_tensor_data(b), (size_t)n * sizeof(float));
    assert_memory_not_equal(bn_tensor_data(a), bn_tensor_data(d), (size_t)n * sizeof(float));
    bn_tensor *release[] = {x, a, b, c, d};
    release_all(5, release);
}

static void test_same_mask_any_thread_count(void **state)
{
    (void)state;
    /* Large enough for the parallel loops. */
    bn_tensor *x = TU_RANDN(2, 1000, 300);
    int was = bn_get_num_threads();
    bn_set_num_threads(1);
    bn_manual_seed(9);
    bn_tensor *a = bn_dropout(x, 0.2, true);
    bn_set_num_threads(2);
    bn_manual_seed(9);
    bn_tensor *b = bn_dropout(x, 0.2, true);
    bn_set_num_threads(was);
    TU_OK(a);
    TU_OK(b);
    assert_memory_equal(bn_tensor_data(a), bn_tensor_data(b), (size_t)bn_tensor_numel(x) * sizeof(float));
    bn_tensor *release[] = {x, a, b};
    release_all(3, release);
}

static void test_gradient_uses_forward_mask(void **state)
{
    (void)state;
    /* x in [1, 2): y == 0 exactly where the mask dropped. */
    bn_tensor *x = tu_uniform(3, 1.0f, 2.0f, 2, TU_SHAPE(50, 40));
    TU_ST(bn_tensor_set_requires_grad(x, true));
    bn_manual_seed(5);
    bn_tensor *y = bn_dropout(x, 0.35, true);
    TU_OK(y);
    /* Draw more numbers between forward and backward: backward must not
     * redraw. */
    bn_tensor *noise = bn_rand(1, TU_SHAPE(1000));
    bn_tensor *g = tu_randn(4, 2, TU_SHAPE(50, 40));
    TU_ST(bn_backward(y, g, false));
    float scale = (float)(1.0 / 0.65);
    for (int64_t i = 0; i < 2000; i++) {
        float yi = bn_tensor_get_flat(y, i), gi = bn_tensor_get_flat(g, i), dx = bn_tensor_get_flat(x->grad, i);
        float want = yi == 0 ? 0.0f : gi * scale;
        if (dx != want) fail_msg("element %lld: grad %g, expected %g (y %g)", (long long)i, dx, want, yi);
        if (yi != 0) assert_float_equal(yi, bn_tensor_get_flat(x, i) * scale, 1e-6);
    }
    bn_tensor *release[] = {x, y, noise, g};
    release_all(4, release);
}

/* Reseeding inside the function fixes the mask across the gradcheck's
 * repeated evaluations. */
static bn_tensor *fn_dropout(bn_tensor **in, void *ctx)
{
    bn_manual_seed(77);
    return bn_dropout(in[0], *(double *)ctx, true);
}

static bn_tensor *fn_dropout_t(bn_tensor **in, void *ctx)
{
    bn_tensor *t = bn_transpose(in[0], 0, 1);
    bn_tensor *y = t ? fn_dropout(&t, ctx) : NULL;
    bn_tensor_release(t);
    return y;
}

static void test_gradcheck(void **state)
{
    (void)state;
    bn_tensor *x = TU_RANDN(6, 7, 9);
    TU_ST(bn_tensor_set_requires_grad(x, true));
    double p = 0.3;
    tu_gradcheck(fn_dropout, 1, &x, &p, NULL, "dropout 0.3");
    tu_gradcheck(fn_dropout_t, 1, &x, &p, NULL, "dropout of a transposed view");
    p = 0.0;
    tu_gradcheck(fn_dropout, 1, &x, &p, NULL, "dropout 0 (identity)");
    bn_tensor_release(x);
}

static void test_strided_input(void **state)
{
    (void)state;
    bn_tensor *raw = tu_uniform(7, 1.0f, 2.0f, 2, TU_SHAPE(30, 20));
    bn_tensor *xt = bn_transpose(raw, 0, 1);
    TU_OK(xt);
    bn_tensor *y = bn_dropout(xt, 0.5, true);
    TU_OK(y);
    assert_int_equal(y->shape[0], 20);
    assert_int_equal(y->shape[1], 30);
    int64_t kept = 0;
    for (int64_t i = 0; i < 600; i++) {
        float yi = bn_tensor_get_flat(y, i);
        if (yi == 0) continue;
        kept++;
        assert_float_equal(yi, 2.0f * bn_tensor_get_flat(xt, i), 1e-6);
    }
    assert_in_range(kept, 200, 400);
    bn_tensor *release[] = {raw, xt, y};
    release_all(3, release);
}

static void test_identity_modes(void **state)
{
    (void)state;
    bn_tensor *x = TU_RANDN(8, 4, 5);
    TU_ST(bn_tensor_set_requires_grad(x, true));
    uint64_t before = bn_rng_global()->offset;
    bn_tensor *e = bn_dropout(x, 0.5, false), *z = bn_dropout(x, 0.0, true);
    TU_OK(e);
    TU_OK(z);
    /* No draws: evaluation does not shift the training stream. */
    assert_true(bn_rng_global()->offset == before);
    assert_ptr_not_equal(e, x);
    tu_assert_close(e, x, 0, 0, "eval mode is the identity");
    tu_assert_close(z, x, 0, 0, "p = 0 is the identity");
    /* Gradient passes through unchanged. */
    bn_tensor *g = TU_RANDN(9, 4, 5);
    TU_ST(bn_backward(e, g, false));
    tu_assert_close(x->grad, g, 0, 0, "eval-mode gradient");
    /* Without grad: no node. */
    bn_tensor *x2 = TU_RANDN(10, 3);
    bn_tensor *e2 = bn_dropout(x2, 0.9, false);
    TU_OK(e2);
    assert_false(e2->requires_grad);
    bn_tensor *release[] = {x, e, z, g, x2, e2};
    release_all(6, release);
}

static void test_p_one_and_nan(void **state)
{
    (void)state;
    bn_tensor *x = TU_RANDN(11, 100);
    TU_ST(bn_tensor_set_requires_grad(x, true));
    bn_tensor *y = bn_dropout(x, 1.0, true);
    TU_OK(y);
    for (int64_t i = 0; i < 100; i++) assert_true(bn_tensor_get_flat(y, i) == 0.0f);
    bn_tensor *g = bn_tensor_ones(1, TU_SHAPE(100));
    TU_ST(bn_backward(y, g, false));
    for (int64_t i = 0; i < 100; i++) assert_true(bn_tensor_get_flat(x->grad, i) == 0.0f);
    /* NaN and Inf stay visible where dropped (x * 0), as in PyTorch:
     * divergence studies must see them. */
    float vals[4] = {NAN, INFINITY, 1.0f, -2.0f};
    bn_tensor *bad = bn_tensor_from_array(1, TU_SHAPE(4), vals);
    bn_tensor *yb = bn_dropout(bad, 1.0, true);
    TU_OK(yb);
    assert_true(isnan(bn_tensor_get_flat(yb, 0)));
    assert_true(isnan(bn_tensor_get_flat(yb, 1)));
    assert_true(bn_tensor_get_flat(yb, 2) == 0.0f);
    bn_tensor *release[] = {x, y, g, bad, yb};
    release_all(5, release);
}

static void test_odd_shapes(void **state)
{
    (void)state;
    bn_tensor *s = bn_tensor_scalar(2.0f), *e = bn_tensor_empty(2, TU_SHAPE(0, 3));
    bn_tensor *ys = bn_dropout(s, 0.5, true), *ye = bn_dropout(e, 0.5, true);
    TU_OK(ys);
    TU_OK(ye);
    assert_int_equal(ys->ndim, 0);
    float v = bn_tensor_get_flat(ys, 0);
    assert_true(v == 0.0f || v == 4.0f);
    assert_int_equal(ye->shape[0], 0);
    assert_int_equal(ye->shape[1], 3);
    bn_tensor *release[] = {s, e, ys, ye};
    release_all(4, release);
}

static void test_errors(void **state)
{
    (void)state;
    bn_tensor *x = TU_RANDN(12, 3);
    TU_FAILS(bn_dropout(NULL, 0.5, true), BN_EARG, "dropout: x expected a tensor, got NULL");
    TU_FAILS(bn_dropout(x, -0.1, true), BN_EARG, "dropout: p expected in [0, 1], got -0.1");
    TU_FAILS(bn_dropout(x, 1.5, true), BN_EARG, "dropout: p expected in [0, 1], got 1.5");
    TU_FAILS(bn_dropout(x, NAN, true), BN_EARG, "dropout: p expected in [0, 1], got nan");
    TU_FAILS(bn_dropout(x, 2.0, false), BN_EARG, "got 2");
    bn_mem_set_limit(bn_mem_in_use() + 8);
    TU_FAILS(bn_dropout(x, 0.5, true), BN_ENOMEM, "out of memory");
    bn_mem_set_limit(0);
    bn_tensor_release(x);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_rate_and_scale),      T(test_determinism), T(test_same_mask_any_thread_count),
        T(test_gradient_uses_forward_mask), T(test_gradcheck), T(test_strided_input),
        T(test_identity_modes),      T(test_p_one_and_nan), T(test_odd_shapes),
        T(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
