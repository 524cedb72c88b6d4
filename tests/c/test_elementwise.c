/* Elementwise ops: forward against naive double loops (with broadcasting),
 * finite-difference gradients, and error messages. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

typedef bn_tensor *(*binary_fn)(bn_tensor *, bn_tensor *);

static double ref_bin(int op, double x, double y)
{
    switch (op) {
    case 0: return x + y;
    case 1: return x - y;
    case 2: return x * y;
    default: return x / y;
    }
}

/* Naive broadcasting: index of out element k in an input of given shape. */
static int64_t bcast_index(int64_t k, int ondim, const int64_t *oshape, int ndim, const int64_t *shape)
{
    int64_t idx = 0, mul = 1;
    for (int d = ondim - 1; d >= 0; d--) {
        int64_t i = k % oshape[d];
        k /= oshape[d];
        int e = d - (ondim - ndim);
        if (e >= 0) {
            if (shape[e] != 1) idx += i * mul;
            mul *= shape[e];
        }
    }
    return idx;
}

static void check_binary_forward(int op, binary_fn fn, int na, const int64_t *sa, int nb, const int64_t *sb)
{
    bn_tensor *a = tu_randn(1, na, sa), *b = tu_uniform(2, 0.5f, 2.0f, nb, sb);
    bn_tensor *out = fn(a, b);
    TU_OK(out);
    int64_t n = bn_tensor_numel(out);
    float *want = malloc((size_t)n * sizeof(float)), *got = malloc((size_t)n * sizeof(float));
    for (int64_t k = 0; k < n; k++) {
        double x = bn_tensor_data(a)[bcast_index(k, out->ndim, out->shape, na, sa)];
        double y = bn_tensor_data(b)[bcast_index(k, out->ndim, out->shape, nb, sb)];
        want[k] = (float)ref_bin(op, x, y);
    }
    bn_tensor_read(out, got);
    tu_assert_close_array(got, want, n, 1e-6, 1e-7, "binary forward");
    free(want);
    free(got);
    bn_tensor_release(a);
    bn_tensor_release(b);
    bn_tensor_release(out);
}

static void test_binary_forward_broadcasts(void **state)
{
    (void)state;
    binary_fn fns[4] = {bn_add, bn_sub, bn_mul, bn_div};
    for (int op = 0; op < 4; op++) {
        check_binary_forward(op, fns[op], 2, TU_SHAPE(3, 5), 2, TU_SHAPE(3, 5));
        check_binary_forward(op, fns[op], 3, TU_SHAPE(3, 1, 4), 2, TU_SHAPE(5, 1));
        check_binary_forward(op, fns[op], 4, TU_SHAPE(2, 3, 7, 7), 3, TU_SHAPE(3, 1, 1));
        check_binary_forward(op, fns[op], 1, TU_SHAPE(1), 2, TU_SHAPE(4, 3));
        check_binary_forward(op, fns[op], 0, NULL, 1, TU_SHAPE(6));
    }
}

static void test_binary_non_contiguous(void **state)
{
    (void)state;
    bn_tensor *a = TU_RANDN(3, 4, 6), *b = TU_RANDN(4, 6, 4);
    bn_tensor *bt = bn_transpose(b, 0, 1);
    bn_tensor *s = bn_add(a, bt);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 6; j++)
            assert_float_equal(bn_tensor_get(s, TU_SHAPE(i, j)),
                               bn_tensor_get(a, TU_SHAPE(i, j)) + bn_tensor_get(b, TU_SHAPE(j, i)), 1e-6);
    bn_tensor_release(a);
    bn_tensor_release(b);
    bn_tensor_release(bt);
    bn_tensor_release(s);
}

static void test_binary_errors(void **state)
{
    (void)state;
    bn_tensor *a = bn_tensor_zeros(2, TU_SHAPE(3, 4)), *b = bn_tensor_zeros(2, TU_SHAPE(2, 4));
    TU_FAILS(bn_add(a, b), BN_ESHAPE, "add: shapes [3 x 4] and [2 x 4] do not broadcast");
    TU_FAILS(bn_mul(a, NULL), BN_EARG, "mul: operand expected a tensor");
    TU_FAILS(bn_clamp(a, 2, 1), BN_EARG, "clamp: bounds expected lo <= hi");
    bn_tensor_release(a);
    bn_tensor_release(b);
}

typedef struct {
    int which;
    float p, q;
} unary_ctx;

static bn_tensor *apply_unary(bn_tensor *x, const unary_ctx *c)
{
    switch (c->which) {
    case 0: return bn_neg(x);
    case 1: return bn_exp(x);
    case 2: return bn_log(x);
    case 3: return bn_sqrt(x);
    case 4: return bn_abs(x);
    case 5: return bn_relu(x);
    case 6: return bn_tanh(x);
    case 7: return bn_sigmoid(x);
    case 8: return bn_clamp(x, c->p, c->q);
    case 9: return bn_pow_scalar(x, c->p);
    case 10: return bn_add_scalar(x, c->p);
    case 11: return bn_mul_scalar(x, c->p);
    case 12: return bn_rsub_scalar(x, c->p);
    default: return bn_rdiv_scalar(x, c->p);
    }
}

static double ref_unary(double x, const unary_ctx *c)
{
    switch (c->which) {
    case 0: return -x;
    case 1: return exp(x);
    case 2: return log(x);
    case 3: return sqrt(x);
    case 4: return fabs(x);
    case 5: return x > 0 ? x : 0;
    case 6: return tanh(x);
    case 7: return 1 / (1 + exp(-x));
    case 8: return x < c->p ? c->p : x > c->q ? c->q : x;
    case 9: return pow(x, c->p);
    case 10: return x + c->p;
    case 11: return x * c->p;
    case 12: return c->p - x;
    default: return c->p / x;
    }
}

static bn_tensor *unary_fn(bn_tensor **in, void *ctx) { return apply_unary(in[0], ctx); }

static void test_unary_forward_and_gradients(void **state)
{
    (void)state;
    for (int which = 0; which <= 13; which++) {
        unary_ctx c = {which, which == 9 ? 2.5f : which == 8 ? -0.5f : 1.7f, 0.6f};
        bool positive = which == 2 || which == 3 || which == 9 || which == 13;
        bn_tensor *x = positive ? tu_uniform(5, 0.3f, 3.0f, 2, TU_SHAPE(7, 5)) : TU_RANDN(5, 7, 5);
        bn_tensor *y = apply_unary(x, &c);
        TU_OK(y);
        float want[35];
        for (int i = 0; i < 35; i++) want[i] = (float)ref_unary(bn_tensor_data(x)[i], &c);
        char what[64];
        snprintf(what, sizeof what, "unary %d forward", which);
        tu_assert_close_array(bn_tensor_data(y), want, 35, 2e-6, 1e-7, what);
        TU_ST(bn_tensor_set_requires_grad(x, true));
        snprintf(what, sizeof what, "unary %d gradient", which);
        tu_gradcheck(unary_fn, 1, &x, &c, NULL, what);
        bn_tensor_release(y);
        bn_tensor_release(x);
    }
}

static void test_relu_keeps_nan(void **state)
{
    (void)state;
    float v[3] = {NAN, -1, INFINITY};
    bn_tensor *x = bn_tensor_from_array(1, TU_SHAPE(3), v);
    bn_tensor *y = bn_relu(x);
    assert_true(isnan(bn_tensor_data(y)[0]));
    assert_true(bn_tensor_data(y)[1] == 0);
    assert_true(isinf(bn_tensor_data(y)[2]));
    bn_tensor_release(x);
    bn_tensor_release(y);
}

typedef struct {
    binary_fn fn;
} bin_ctx;

static bn_tensor *binary_gc(bn_tensor **in, void *ctx) { return ((bin_ctx *)ctx)->fn(in[0], in[1]); }

static void test_binary_gradients_with_broadcasting(void **state)
{
    (void)state;
    binary_fn fns[4] = {bn_add, bn_sub, bn_mul, bn_div};
    const char *names[4] = {"add", "sub", "mul", "div"};
    struct {
        int na, nb;
        int64_t sa[4], sb[4];
    } cases[] = {
        {2, 2, {3, 4}, {3, 4}},
        {3, 2, {2, 3, 4}, {3, 1}},
        {4, 1, {2, 3, 2, 2}, {2}},
        {1, 2, {1}, {3, 2}},
    };
    for (int op = 0; op < 4; op++) {
        for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
            bn_tensor *in[2] = {tu_randn(10 + k, cases[k].na, cases[k].sa),
                                tu_uniform(20 + k, 0.5f, 2.0f, cases[k].nb, cases[k].sb)};
            TU_ST(bn_tensor_set_requires_grad(in[0], true));
            TU_ST(bn_tensor_set_requires_grad(in[1], true));
            bin_ctx c = {fns[op]};
            char what[64];
            snprintf(what, sizeof what, "%s case %zu", names[op], k);
            tu_gradcheck(binary_gc, 2, in, &c, NULL, what);
            bn_tensor_release(in[0]);
            bn_tensor_release(in[1]);
        }
    }
}

static void test_sum_to_shape_and_add_into(void **state)
{
    (void)state;
    bn_tensor *g = bn_tensor_arange(0, 24, 1);
    bn_tensor *g3 = bn_view(g, 3, TU_SHAPE(2, 3, 4));
    bn_tensor *s = bn_sum_to_shape(g3, 2, TU_SHAPE(3, 1));
    TU_OK(s);
    /* row r of dim 1 sums over dims 0 and 2: sum_{i,k} (12 i + 4 r + k) */
    for (int r = 0; r < 3; r++) assert_float_equal(bn_tensor_data(s)[r], 12.0 * 4 + 8.0 * 4 * r + 2 * 6, 1e-4);
    TU_FAILS(bn_sum_to_shape(g3, 2, TU_SHAPE(4, 4)), BN_ESHAPE, "cannot be summed to [4 x 4]");
    bn_tensor *acc = bn_tensor_ones(2, TU_SHAPE(3, 1));
    TU_ST(bn_add_into(acc, s));
    assert_float_equal(bn_tensor_data(acc)[0], 61, 1e-4);
    bn_clear_error();
    assert_int_equal(bn_add_into(acc, g3), BN_ESHAPE);
    bn_tensor *ts[] = {g, g3, s, acc};
    for (size_t i = 0; i < 4; i++) bn_tensor_release(ts[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binary_forward_broadcasts),
        cmocka_unit_test(test_binary_non_contiguous),
        cmocka_unit_test(test_binary_errors),
        cmocka_unit_test(test_unary_forward_and_gradients),
        cmocka_unit_test(test_relu_keeps_nan),
        cmocka_unit_test(test_binary_gradients_with_broadcasting),
        cmocka_unit_test(test_sum_to_shape_and_add_into),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
