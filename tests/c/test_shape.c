/* cat, stack, pad: forward against index-by-index references (including
 * strided inputs and many-input cats, which autograd records as a chain of
 * nodes), finite-difference gradients, and argument errors. */
#include <stdlib.h>
#include <string.h>

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

/* Multi-index of flat row-major position i in `shape`. */
static void unflatten(int ndim, const int64_t *shape, int64_t i, int64_t *idx)
{
    for (int d = ndim - 1; d >= 0; d--) {
        idx[d] = i % shape[d];
        i /= shape[d];
    }
}

/* ---- cat ---------------------------------------------------------------- */

static void check_cat(int n, bn_tensor **ts, int dim, const char *what)
{
    bn_tensor *out = bn_cat(n, ts, dim);
    TU_OK(out);
    int nd = ts[0]->ndim, d = dim < 0 ? dim + nd : dim;
    int64_t total = 0;
    for (int k = 0; k < n; k++) total += ts[k]->shape[d];
    assert_int_equal(out->ndim, nd);
    for (int e = 0; e < nd; e++) assert_int_equal(out->shape[e], e == d ? total : ts[0]->shape[e]);
    int64_t cnt = bn_tensor_numel(out), idx[BN_MAX_DIMS];
    for (int64_t i = 0; i < cnt; i++) {
        unflatten(nd, out->shape, i, idx);
        int k = 0;
        while (idx[d] >= ts[k]->shape[d]) idx[d] -= ts[k++]->shape[d];
        float want = bn_tensor_get(ts[k], idx), got = bn_tensor_get_flat(out, i);
        if (got != want) fail_msg("%s: element %lld is %g, expected %g (from tensor #%d)", what, (long long)i, got, want, k + 1);
    }
    bn_tensor_release(out);
}

static void test_cat_forward(void **state)
{
    (void)state;
    bn_tensor *a = TU_RANDN(1, 2, 3, 4), *b = TU_RANDN(2, 2, 5, 4), *c = TU_RANDN(3, 2, 1, 4);
    check_cat(3, (bn_tensor *[]){a, b, c}, 1, "dim 1");
    check_cat(3, (bn_tensor *[]){a, b, c}, -2, "dim -2");
    check_cat(1, (bn_tensor *[]){a}, 0, "one tensor");
    bn_tensor *d0 = TU_RANDN(4, 3, 3, 4), *d2 = TU_RANDN(5, 2, 3, 7);
    check_cat(2, (bn_tensor *[]){a, d0}, 0, "dim 0");
    check_cat(3, (bn_tensor *[]){a, d2, a}, 2, "last dim, repeated input");
    /* 1-D, odd lengths, and an empty piece. */
    bn_tensor *v1 = TU_RANDN(6, 5), *v2 = TU_RANDN(7, 1), *v0 = bn_tensor_empty(1, TU_SHAPE(0));
    check_cat(3, (bn_tensor *[]){v1, v0, v2}, 0, "1-D with an empty piece");
    bn_tensor *release[] = {a, b, c, d0, d2, v1, v2, v0};
    release_all(8, release);
}

static void test_cat_strided_inputs(void **state)
{
    (void)state;
    /* A transposed, a narrowed and an expanded input. */
    bn_tensor *raw = TU_RANDN(1, 4, 3), *t = bn_transpose(raw, 0, 1);
    bn_tensor *wide = TU_RANDN(2, 3, 9), *nar = bn_narrow(wide, 1, 2, 5);
    bn_tensor *row = TU_RANDN(3, 1, 2), *ex = bn_expand(row, 2, TU_SHAPE(3, 2));
    TU_OK(t);
    TU_OK(nar);
    TU_OK(ex);
    check_cat(3, (bn_tensor *[]){t, nar, ex}, 1, "strided inputs");
    bn_tensor *release[] = {raw, t, wide, nar, row, ex};
    release_all(6, release);
}

static void test_cat_many(void **state)
{
    (void)state;
    /* More inputs than a node holds: 1, 4, 5, 7, 10 and 13 pieces. */
    bn_tensor *ts[13];
    for (int k = 0; k < 13; k++) ts[k] = tu_randn(100 + k, 2, TU_SHAPE(2, 1 + k % 3));
    static const int counts[] = {1, 4, 5, 7, 10, 13};
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) check_cat(counts[c], ts, 1, "many");
    release_all(13, ts);
}

static bn_tensor *fn_cat(bn_tensor **in, void *ctx)
{
    int *p = ctx; /* p[0] = n, p[1] = dim */
    return bn_cat(p[0], in, p[1]);
}

static void test_cat_grad(void **state)
{
    (void)state;
    bn_tensor *in[3] = {TU_RANDN(1, 2, 3, 2), TU_RANDN(2, 2, 1, 2), TU_RANDN(3, 2, 4, 2)};
    for (int k = 0; k < 3; k++) TU_ST(bn_tensor_set_requires_grad(in[k], true));
    int ctx[2] = {3, 1};
    tu_gradcheck(fn_cat, 3, in, ctx, NULL, "cat dim 1");
    ctx[1] = -2;
    tu_gradcheck(fn_cat, 3, in, ctx, NULL, "cat dim -2");
    release_all(3, in);
}

static void test_cat_grad_chain(void **state)
{
    (void)state;
    /* 11 inputs, some without grad, in every position of the chain. */
    enum { N = 11 };
    bn_tensor *in[N];
    for (int k = 0; k < N; k++) {
        in[k] = tu_randn(200 + k, 2, TU_SHAPE(1 + k % 4, 3));
        if (k % 3 != 1) TU_ST(bn_tensor_set_requires_grad(in[k], true));
    }
    int ctx[2] = {N, 0};
    tu_gradcheck(fn_cat, N, in, ctx, NULL, "cat of 11");
    for (int k = 0; k < N; k++) {
        if (k % 3 == 1) assert_null(in[k]->grad);
        else assert_non_null(in[k]->grad);
    }
    /* Only the very last input requires grad: the gradient still arrives
     * through the whole chain. */
    for (int k = 0; k < N; k++) {
        bn_tensor_zero_grad(in[k]);
        TU_ST(bn_tensor_set_requires_grad(in[k], k == N - 1));
    }
    tu_gradcheck(fn_cat, N, in, ctx, NULL, "cat of 11, last only");
    /* Only the first. */
    TU_ST(bn_tensor_set_requires_grad(in[N - 1], false));
    bn_tensor_zero_grad(in[N - 1]);
    TU_ST(bn_tensor_set_requires_grad(in[0], true));
    tu_gradcheck(fn_cat, N, in, ctx, NULL, "cat of 11, first only");
    release_all(N, in);
}

/* The same tensor twice gets both slices' gradients summed. */
static void test_cat_grad_repeated(void **state)
{
    (void)state;
    bn_tensor *x = TU_RANDN(1, 2, 3);
    TU_ST(bn_tensor_set_requires_grad(x, true));
    bn_tensor *out = bn_cat(3, (bn_tensor *[]){x, x, x}, 0);
    TU_OK(out);
    bn_tensor *g = TU_RANDN(2, 6, 3);
    TU_ST(bn_backward(out, g, false));
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++) {
            float want = bn_tensor_get(g, TU_SHAPE(i, j)) + bn_tensor_get(g, TU_SHAPE(i + 2, j)) +
                         bn_tensor_get(g, TU_SHAPE(i + 4, j));
            assert_float_equal(bn_tensor_get(x->grad, TU_SHAPE(i, j)), want, 1e-6);
        }
    bn_tensor *release[] = {x, out, g};
    release_all(3, release);
}

static void test_cat_no_grad_mode(void **state)
{
    (void)state;
    bn_tensor *ts[6];
    for (int k = 0; k < 6; k++) {
        ts[k] = TU_RANDN(k, 2, 2);
        TU_ST(bn_tensor_set_requires_grad(ts[k], true));
    }
    bool was = bn_set_grad_enabled(false);
    bn_tensor *out = bn_cat(6, ts, 0);
    bn_set_grad_enabled(was);
    TU_OK(out);
    assert_false(out->requires_grad);
    assert_null(out->grad_fn);
    bn_tensor_release(out);
    /* With grad: the chain of nodes dies with the output (checked by the
     * teardown's node count). */
    out = bn_cat(6, ts, 1);
    TU_OK(out);
    assert_true(out->requires_grad);
    bn_tensor_release(out);
    release_all(6, ts);
}

static void test_cat_errors(void **state)
{
    (void)state;
    bn_tensor *a = TU_RANDN(1, 2, 3), *b = TU_RANDN(2, 4, 5), *v = TU_RANDN(3, 3), *s = bn_tensor_scalar(2);
    TU_FAILS(bn_cat(0, (bn_tensor *[]){a}, 0), BN_EARG, "cat: expected at least 1 tensor, got 0");
    TU_FAILS(bn_cat(-1, (bn_tensor *[]){a}, 0), BN_EARG, "got -1");
    TU_FAILS(bn_cat(2, NULL, 0), BN_EARG, "cat: tensors expected an array, got NULL");
    TU_FAILS(bn_cat(2, (bn_tensor *[]){a, NULL}, 0), BN_EARG, "cat: tensor #2 expected a tensor, got NULL");
    TU_FAILS(bn_cat(2, (bn_tensor *[]){a, b}, 0), BN_ESHAPE,
             "cat: tensor #2 expected [2 x 3] except along dim 0, got [4 x 5] (dim 1: 5 vs 3)");
    TU_FAILS(bn_cat(2, (bn_tensor *[]){a, v}, 0), BN_ESHAPE, "cat: tensor #2 expected 2-D like tensor #1 [2 x 3], got [3]");
    TU_FAILS(bn_cat(2, (bn_tensor *[]){a, a}, 2), BN_EARG, "cat: dim expected in [-2, 1], got 2");
    TU_FAILS(bn_cat(2, (bn_tensor *[]){a, a}, -3), BN_EARG, "got -3");
    TU_FAILS(bn_cat(1, (bn_tensor *[]){s}, 0), BN_ESHAPE, "0-d");
    bn_mem_set_limit(bn_mem_in_use() + 8);
    TU_FAILS(bn_cat(2, (bn_tensor *[]){a, a}, 0), BN_ENOMEM, "out of memory");
    bn_mem_set_limit(0);
    bn_tensor *release[] = {a, b, v, s};
    release_all(4, release);
}

/* ---- stack -------------------------------------------------------------- */

static void check_stack(int n, bn_tensor **ts, int dim, const char *what)
{
    bn_tensor *out = bn_stack(n, ts, dim);
    TU_OK(out);
    int nd = ts[0]->ndim, d = dim < 0 ? dim + nd + 1 : dim;
    assert_int_equal(out->ndim, nd + 1);
    assert_int_equal(out->shape[d], n);
    int64_t cnt = bn_tensor_numel(out), idx[BN_MAX_DIMS], sub[BN_MAX_DIMS];
    for (int64_t i = 0; i < cnt; i++) {
        unflatten(nd + 1, out->shape, i, idx);
        int k = 0;
        for (int e = 0; e <= nd; e++) {
            if (e == d) continue;
            sub[k++] = idx[e];
        }
        float want = bn_tensor_get(ts[idx[d]], sub);
        if (bn_tensor_get_flat(out, i) != want) fail_msg("%s: element %lld differs", what, (long long)i);
    }
    bn_tensor_release(out);
}

static void test_stack_forward(void **state)
{
    (void)state;
    bn_tensor *a = TU_RANDN(1, 3, 4), *b = TU_RANDN(2, 3, 4), *c = TU_RANDN(3, 3, 4);
    bn_tensor *raw = TU_RANDN(4, 4, 3), *ct = bn_transpose(raw, 0, 1);
    TU_OK(ct);
    bn_tensor *ts[4] = {a, b, c, ct};
    for (int d = -3; d <= 2; d++) check_stack(4, ts, d, "stack");
    check_stack(1, ts, 0, "stack of one");
    bn_tensor *s0 = bn_tensor_scalar(1), *s1 = bn_tensor_scalar(2);
    check_stack(2, (bn_tensor *[]){s0, s1}, 0, "stack of scalars");
    bn_tensor *release[] = {a, b, c, raw, ct, s0, s1};
    release_all(7, release);
}

static bn_tensor *fn_stack(bn_tensor **in, void *ctx)
{
    int *p = ctx;
    return bn_stack(p[0], in, p[1]);
}

static void test_stack_grad(void **state)
{
    (void)state;
    bn_tensor *in[6];
    for (int k = 0; k < 6; k++) {
        in[k] = tu_randn(10 + k, 2, TU_SHAPE(2, 3));
        TU_ST(bn_tensor_set_requires_grad(in[k], k != 2));
    }
    int ctx[2] = {6, 1};
    tu_gradcheck(fn_stack, 6, in, ctx, NULL, "stack of 6, dim 1");
    assert_null(in[2]->grad);
    ctx[1] = -1;
    tu_gradcheck(fn_stack, 6, in, ctx, NULL, "stack of 6, dim -1");
    release_all(6, in);
}

static void test_stack_errors(void **state)
{
    (void)state;
    bn_tensor *a = TU_RANDN(1, 2, 3), *b = TU_RANDN(2, 3, 2);
    TU_FAILS(bn_stack(0, (bn_tensor *[]){a}, 0), BN_EARG, "stack: expected at least 1 tensor, got 0");
    TU_FAILS(bn_stack(2, (bn_tensor *[]){a, NULL}, 0), BN_EARG, "stack: tensor #2 expected a tensor, got NULL");
    TU_FAILS(bn_stack(2, (bn_tensor *[]){a, b}, 0), BN_ESHAPE,
             "stack: tensor #2 expected shape [2 x 3] like tensor #1, got [3 x 2]");
    TU_FAILS(bn_stack(2, (bn_tensor *[]){a, a}, 3), BN_EARG, "stack: dim expected in [-3, 2], got 3");
    bn_tensor *big = bn_tensor_zeros(8, TU_SHAPE(1, 1, 1, 1, 1, 1, 1, 1));
    TU_FAILS(bn_stack(1, (bn_tensor *[]){big}, 0), BN_ESHAPE, "stack: tensors expected at most 7-D");
    bn_tensor *release[] = {a, b, big};
    release_all(3, release);
}

/* ---- pad ---------------------------------------------------------------- */

static void check_pad(bn_tensor *x, const int64_t *pads, const char *what)
{
    bn_tensor *out = bn_pad(x, pads);
    TU_OK(out);
    int nd = x->ndim;
    assert_int_equal(out->ndim, nd);
    for (int k = 0; k < nd; k++) assert_int_equal(out->shape[k], x->shape[k] + pads[2 * k] + pads[2 * k + 1]);
    int64_t cnt = bn_tensor_numel(out), idx[BN_MAX_DIMS];
    for (int64_t i = 0; i < cnt; i++) {
        unflatten(nd, out->shape, i, idx);
        bool inside = true;
        for (int k = 0; k < nd; k++) {
            idx[k] -= pads[2 * k];
            if (idx[k] < 0 || idx[k] >= x->shape[k]) inside = false;
        }
        float want = inside ? bn_tensor_get(x, idx) : 0.0f, got = bn_tensor_get_flat(out, i);
        if (got != want) fail_msg("%s: element %lld is %g, expected %g", what, (long long)i, got, want);
    }
    bn_tensor_release(out);
}

static void test_pad_forward(void **state)
{
    (void)state;
    bn_tensor *x = TU_RANDN(1, 2, 3, 5);
    check_pad(x, TU_SHAPE(0, 0, 0, 0, 0, 0), "no pad");
    check_pad(x, TU_SHAPE(1, 2, 0, 3, 2, 1), "pad");
    check_pad(x, TU_SHAPE(0, 0, -1, 0, -2, -1), "crop");
    check_pad(x, TU_SHAPE(-1, 1, 2, -2, -3, 4), "mixed");
    check_pad(x, TU_SHAPE(0, 0, 0, 0, -5, 2), "crop everything, then pad");
    check_pad(x, TU_SHAPE(0, 0, 0, 0, 9, -9), "shift past the end");
    check_pad(x, TU_SHAPE(0, 0, 0, 0, -5, 0), "crop to empty");
    bn_tensor *raw = TU_RANDN(2, 5, 3), *xt = bn_transpose(raw, 0, 1);
    TU_OK(xt);
    check_pad(xt, TU_SHAPE(1, 1, 2, 0), "strided input");
    bn_tensor *s = bn_tensor_scalar(3);
    bn_tensor *ps = bn_pad(s, NULL); /* 0-d: nothing to pad, pads may be NULL */
    TU_OK(ps);
    assert_int_equal(ps->ndim, 0);
    assert_float_equal(bn_tensor_get_flat(ps, 0), 3.0f, 0);
    bn_tensor *release[] = {x, raw, xt, s, ps};
    release_all(5, release);
}

/* ResNet option A: the shortcut of a stride-2 stage keeps every other pixel
 * and pads the channels with zeros, half before and half after. */
static void test_pad_resnet_option_a(void **state)
{
    (void)state;
    bn_tensor *x = TU_RANDN(1, 4, 16, 32, 32);
    bn_tensor *h = bn_subsample(x, 2, 0, 2), *hw = h ? bn_subsample(h, 3, 0, 2) : NULL;
    TU_OK(hw);
    bn_tensor *y = bn_pad(hw, TU_SHAPE(0, 0, 8, 8, 0, 0, 0, 0));
    TU_OK(y);
    assert_int_equal(y->shape[1], 32);
    assert_int_equal(y->shape[2], 16);
    assert_int_equal(y->shape[3], 16);
    for (int64_t n = 0; n < 4; n++)
        for (int64_t c = 0; c < 32; c++)
            for (int64_t i = 0; i < 16; i++)
                for (int64_t j = 0; j < 16; j++) {
                    float want = c < 8 || c >= 24 ? 0.0f : bn_tensor_get(x, TU_SHAPE(n, c - 8, 2 * i, 2 * j));
                    assert_true(bn_tensor_get(y, TU_SHAPE(n, c, i, j)) == want);
                }
    bn_tensor *release[] = {x, h, hw, y};
    release_all(4, release);
}

static bn_tensor *fn_pad(bn_tensor **in, void *ctx) { return bn_pad(in[0], ctx); }

/* Subsample then pad, as the option-A shortcut does inside a model. */
static bn_tensor *fn_shortcut(bn_tensor **in, void *ctx)
{
    (void)ctx;
    bn_tensor *h = bn_subsample(in[0], 2, 0, 2), *hw = h ? bn_subsample(h, 3, 0, 2) : NULL;
    bn_tensor *y = hw ? bn_pad(hw, TU_SHAPE(0, 0, 2, 2, 0, 0, 0, 0)) : NULL;
    bn_tensor_release(h);
    bn_tensor_release(hw);
    return y;
}

static void test_pad_grad(void **state)
{
    (void)state;
    bn_tensor *x = TU_RANDN(1, 3, 4, 5);
    TU_ST(bn_tensor_set_requires_grad(x, true));
    int64_t p1[] = {1, 2, 0, 1, 3, 0}, p2[] = {-1, 1, 1, -2, 2, -3}, p3[] = {0, 0, 0, 0, -5, 1};
    tu_gradcheck(fn_pad, 1, &x, p1, NULL, "pad");
    tu_gradcheck(fn_pad, 1, &x, p2, NULL, "pad and crop");
    /* All cropped away: the gradient is all zeros. */
    bn_tensor *y = bn_pad(x, p3);
    TU_OK(y);
    bn_tensor *g = bn_tensor_ones(y->ndim, y->shape);
    bn_tensor_zero_grad(x);
    TU_ST(bn_backward(y, g, false));
    for (int64_t i = 0; i < 60; i++) assert_true(bn_tensor_get_flat(x->grad, i) == 0.0f);
    bn_tensor *x4 = TU_RANDN(2, 2, 3, 6, 6);
    TU_ST(bn_tensor_set_requires_grad(x4, true));
    tu_gradcheck(fn_shortcut, 1, &x4, NULL, NULL, "option-A shortcut");
    bn_tensor *release[] = {x, y, g, x4};
    release_all(4, release);
}

static void test_pad_errors(void **state)
{
    (void)state;
    bn_tensor *x = TU_RANDN(1, 2, 3);
    TU_FAILS(bn_pad(NULL, TU_SHAPE(0, 0)), BN_EARG, "pad: x expected a tensor, got NULL");
    TU_FAILS(bn_pad(x, NULL), BN_EARG, "pad: pads expected 2 before/after pairs, got NULL");
    TU_FAILS(bn_pad(x, TU_SHAPE(0, 0, -2, -2)), BN_EARG,
             "pad: dim 1 of x [2 x 3] (size 3) with pads -2 and -2 expected size >= 0, got -1");
    TU_FAILS(bn_pad(x, TU_SHAPE(INT64_MAX, 0, 0, 0)), BN_EARG, "pad: pads for dim 0 expected within");
    TU_FAILS(bn_pad(x, TU_SHAPE(0, INT64_MIN, 0, 0)), BN_EARG, "pad: pads for dim 0 expected within");
    bn_mem_set_limit(bn_mem_in_use() + 8);
    TU_FAILS(bn_pad(x, TU_SHAPE(1, 1, 1, 1)), BN_ENOMEM, "out of memory");
    bn_mem_set_limit(0);
    bn_tensor_release(x);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_cat_forward),       T(test_cat_strided_inputs),  T(test_cat_many),
        T(test_cat_grad),          T(test_cat_grad_chain),      T(test_cat_grad_repeated),
        T(test_cat_no_grad_mode),  T(test_cat_errors),          T(test_stack_forward),
        T(test_stack_grad),        T(test_stack_errors),        T(test_pad_forward),
        T(test_pad_resnet_option_a), T(test_pad_grad),          T(test_pad_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
