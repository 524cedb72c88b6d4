/* Softmax, log-softmax, cross-entropy and MSE: forward against naive double
 * references (odd shapes, every dim, strided views, extreme logits),
 * finite-difference gradients, and error messages. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* Naive softmax over dim d of the logical values of x, in double. */
static void ref_softmax(const bn_tensor *x, int d, bool log_out, float *want)
{
    int64_t outer = 1, n = x->ndim ? x->shape[d] : 1, inner = 1;
    for (int e = 0; e < x->ndim; e++) {
        if (e < d) outer *= x->shape[e];
        if (e > d) inner *= x->shape[e];
    }
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            double m = -INFINITY, s = 0;
            for (int64_t j = 0; j < n; j++) m = fmax(m, bn_tensor_get_flat(x, (o * n + j) * inner + i));
            for (int64_t j = 0; j < n; j++) s += exp(bn_tensor_get_flat(x, (o * n + j) * inner + i) - m);
            for (int64_t j = 0; j < n; j++) {
                double v = bn_tensor_get_flat(x, (o * n + j) * inner + i) - m;
                want[(o * n + j) * inner + i] = (float)(log_out ? v - log(s) : exp(v) / s);
            }
        }
}

static void check_softmax_all_dims(bn_tensor *x, const char *label)
{
    char what[160];
    int64_t n = bn_tensor_numel(x);
    float *want = malloc((size_t)(n + 1) * sizeof *want), *got = malloc((size_t)(n + 1) * sizeof *got);
    int nd = x->ndim > 0 ? x->ndim : 1;
    for (int lg = 0; lg < 2; lg++)
        for (int dd = -nd; dd < nd; dd++) {
            bn_tensor *y = lg ? bn_log_softmax(x, dd) : bn_softmax(x, dd);
            snprintf(what, sizeof what, "%s %s dim %d", label, lg ? "log_softmax" : "softmax", dd);
            if (!y) fail_msg("%s: %s", what, bn_last_error());
            assert_true(bn_shape_equal(y, x));
            ref_softmax(x, dd < 0 ? dd + nd : dd, lg, want);
            bn_tensor_read(y, got);
            tu_assert_close_array(got, want, n, 1e-5, 1e-7, what);
            bn_tensor_release(y);
        }
    free(want);
    free(got);
}

static void test_softmax_forward(void **state)
{
    (void)state;
    const int64_t shapes[][4] = {{7}, {3, 5}, {2, 3, 5}, {4, 1, 6, 3}, {1, 11}, {2, 70, 3}};
    const int nds[] = {1, 2, 3, 4, 2, 3};
    for (size_t s = 0; s < 6; s++) {
        bn_tensor *x = tu_randn(100 + s, nds[s], shapes[s]);
        bn_tensor *x3 = bn_mul_scalar(x, 3.0f);
        check_softmax_all_dims(x3, bn_shape_str(x));
        bn_tensor_release(x);
        bn_tensor_release(x3);
    }
    bn_tensor *base = TU_RANDN(110, 5, 4, 6);
    bn_tensor *t = bn_transpose(base, 0, 2), *nw = bn_narrow(base, 2, 1, 4), *sub = bn_subsample(base, 0, 1, 2);
    check_softmax_all_dims(t, "transposed");
    check_softmax_all_dims(nw, "narrowed");
    check_softmax_all_dims(sub, "subsampled");
    bn_tensor *sc = bn_tensor_scalar(-3.0f);
    check_softmax_all_dims(sc, "0-d");
    bn_tensor *ts[] = {base, t, nw, sub, sc};
    for (size_t i = 0; i < 5; i++) bn_tensor_release(ts[i]);
}

static void test_softmax_extremes(void **state)
{
    (void)state;
    /* Huge logits: max subtraction keeps everything finite. */
    float v[] = {1000, 1001, 999, -1000, -INFINITY, 0, 88.8f, 89.0f};
    bn_tensor *x = bn_tensor_from_array(2, TU_SHAPE(2, 4), v);
    bn_tensor *s = bn_softmax(x, 1), *l = bn_log_softmax(x, 1);
    TU_OK(s);
    TU_OK(l);
    float want_s[8], want_l[8];
    ref_softmax(x, 1, false, want_s);
    ref_softmax(x, 1, true, want_l);
    float got[8];
    bn_tensor_read(s, got);
    tu_assert_close_array(got, want_s, 8, 1e-6, 1e-30, "softmax of large logits");
    bn_tensor_read(l, got);
    tu_assert_close_array(got, want_l, 8, 1e-6, 1e-6, "log_softmax of large logits");
    assert_float_equal(got[4], -INFINITY, 0); /* exp(-inf) = 0: log prob -inf, not NaN */
    for (int k = 0; k < 8; k++)
        if (k != 4) assert_true(isfinite(got[k]));
    bn_tensor_release(s);
    bn_tensor_release(l);
    bn_tensor_release(x);

    /* A NaN poisons its row only; an empty softmax dim gives an empty result. */
    float w[] = {1, NAN, 2, 3, 4, 5};
    bn_tensor *y = bn_tensor_from_array(2, TU_SHAPE(2, 3), w);
    bn_tensor *sy = bn_softmax(y, 1);
    TU_OK(sy);
    for (int k = 0; k < 3; k++) assert_true(isnan(bn_tensor_data(sy)[k]));
    for (int k = 3; k < 6; k++) assert_true(isfinite(bn_tensor_data(sy)[k]));
    bn_tensor *e = bn_tensor_zeros(2, TU_SHAPE(3, 0));
    bn_tensor *se = bn_log_softmax(e, 1);
    TU_OK(se);
    assert_int_equal(bn_tensor_numel(se), 0);
    bn_tensor *ts[] = {y, sy, e, se};
    for (size_t i = 0; i < 4; i++) bn_tensor_release(ts[i]);
}

typedef struct sm_ctx {
    int dim;
    bool log_out, transpose;
} sm_ctx;

static bn_tensor *softmax_fn(bn_tensor **in, void *ctx)
{
    sm_ctx *c = ctx;
    bn_tensor *x = c->transpose ? bn_transpose(in[0], 0, -1) : bn_tensor_retain(in[0]);
    bn_tensor *y = c->log_out ? bn_log_softmax(x, c->dim) : bn_softmax(x, c->dim);
    bn_tensor_release(x);
    return y;
}

static void test_softmax_gradients(void **state)
{
    (void)state;
    char what[120];
    const int64_t shapes[][3] = {{6, 1, 1}, {3, 5, 1}, {2, 3, 4}};
    for (int s = 0; s < 3; s++)
        for (int lg = 0; lg < 2; lg++)
            for (int tr = 0; tr < 2; tr++)
                for (int d = -1; d < s + 1; d++) {
                    bn_tensor *x = tu_randn(120 + s, s + 1, shapes[s]);
                    TU_ST(bn_tensor_set_requires_grad(x, true));
                    sm_ctx c = {d, lg == 1, tr == 1};
                    snprintf(what, sizeof what, "%s grad %s dim %d%s", lg ? "log_softmax" : "softmax",
                             bn_shape_str(x), d, tr ? " transposed" : "");
                    tu_gradcheck(softmax_fn, 1, &x, &c, NULL, what);
                    bn_tensor_release(x);
                }
}

/* ---- cross_entropy ------------------------------------------------------ */

static double ref_ce(const bn_tensor *x, const int64_t *labels)
{
    int64_t n = x->shape[0], k = x->shape[1];
    double total = 0;
    for (int64_t r = 0; r < n; r++) {
        double m = -INFINITY, s = 0;
        for (int64_t j = 0; j < k; j++) m = fmax(m, bn_tensor_get(x, TU_SHAPE(r, j)));
        for (int64_t j = 0; j < k; j++) s += exp(bn_tensor_get(x, TU_SHAPE(r, j)) - m);
        total += m + log(s) - bn_tensor_get(x, TU_SHAPE(r, labels[r]));
    }
    return total / (double)n;
}

static void test_cross_entropy_forward(void **state)
{
    (void)state;
    const int64_t sizes[][2] = {{1, 10}, {5, 3}, {17, 7}, {64, 10}, {3, 1}};
    int64_t labels[64];
    for (size_t s = 0; s < 5; s++) {
        int64_t n = sizes[s][0], k = sizes[s][1];
        for (int64_t r = 0; r < n; r++) labels[r] = (r * 7 + 3) % k;
        bn_tensor *x = tu_randn(200 + s, 2, sizes[s]);
        bn_tensor *x5 = bn_mul_scalar(x, 5.0f);
        bn_tensor *l = bn_cross_entropy(x5, labels, n);
        TU_OK(l);
        assert_int_equal(l->ndim, 0);
        assert_float_equal(bn_tensor_data(l)[0], ref_ce(x5, labels), 1e-5 * (1 + ref_ce(x5, labels)));
        bn_tensor_release(l);
        bn_tensor_release(x);
        bn_tensor_release(x5);
    }
    /* Logits as a transposed view of [K x N]. */
    bn_tensor *kn = TU_RANDN(210, 6, 9);
    bn_tensor *nk = bn_transpose(kn, 0, 1);
    for (int r = 0; r < 9; r++) labels[r] = r % 6;
    bn_tensor *l = bn_cross_entropy(nk, labels, 9);
    TU_OK(l);
    assert_float_equal(bn_tensor_data(l)[0], ref_ce(nk, labels), 1e-5);
    bn_tensor_release(l);
    bn_tensor_release(nk);
    bn_tensor_release(kn);

    /* Extreme logits stay finite: the fused log-sum-exp never overflows. */
    float big[] = {1e4f, -1e4f, 0, 3e4f, 3e4f + 2, 3e4f - 1};
    bn_tensor *b = bn_tensor_from_array(2, TU_SHAPE(2, 3), big);
    int64_t bl[] = {1, 0};
    bn_tensor *lb = bn_cross_entropy(b, bl, 2);
    TU_OK(lb);
    assert_float_equal(bn_tensor_data(lb)[0], ref_ce(b, bl), 1e-3);
    assert_true(isfinite(bn_tensor_data(lb)[0]));
    TU_ST(bn_tensor_set_requires_grad(b, true));
    bn_tensor *lg = bn_cross_entropy(b, bl, 2);
    TU_ST(bn_backward(lg, NULL, false));
    float g[6];
    bn_tensor_read(b->grad, g);
    /* Row 0: p = (1, 0, 0), label 1: grad (1, -1, 0)/2. */
    float want0[] = {0.5f, -0.5f, 0};
    tu_assert_close_array(g, want0, 3, 1e-5, 1e-6, "CE gradient, saturated row");
    for (int k = 0; k < 6; k++) assert_true(isfinite(g[k]));
    bn_tensor_release(lg);
    bn_tensor_release(lb);
    bn_tensor_release(b);

    /* Logits near 1e4: backward's exp(x - lse) needs lse beyond float
     * precision (float(lse) alone is off by up to 5e-4). */
    bn_tensor *n0 = TU_RANDN(211, 5, 4);
    bn_tensor *far = bn_add_scalar(n0, 1e4f);
    int64_t fl[] = {0, 3, 2, 1, 3};
    TU_ST(bn_tensor_set_requires_grad(far, true));
    bn_tensor *lf = bn_cross_entropy(far, fl, 5);
    TU_ST(bn_backward(lf, NULL, false));
    float gf[20], wf[20];
    for (int r = 0; r < 5; r++) {
        double m = -INFINITY, sum = 0;
        for (int j = 0; j < 4; j++) m = fmax(m, bn_tensor_data(far)[r * 4 + j]);
        for (int j = 0; j < 4; j++) sum += exp(bn_tensor_data(far)[r * 4 + j] - m);
        for (int j = 0; j < 4; j++)
            wf[r * 4 + j] = (float)((exp(bn_tensor_data(far)[r * 4 + j] - m) / sum - (j == fl[r])) / 5);
    }
    bn_tensor_read(far->grad, gf);
    tu_assert_close_array(gf, wf, 20, 1e-5, 1e-7, "CE gradient, logits near 1e4");
    bn_tensor_release(lf);
    bn_tensor_release(far);
    bn_tensor_release(n0);

    /* No rows: the mean of nothing is NaN, as in PyTorch. */
    bn_tensor *e = bn_tensor_zeros(2, TU_SHAPE(0, 4));
    bn_tensor *le = bn_cross_entropy(e, NULL, 0);
    TU_OK(le);
    assert_true(isnan(bn_tensor_data(le)[0]));
    bn_tensor_release(le);
    bn_tensor_release(e);
}

typedef struct ce_ctx {
    const int64_t *labels;
    int64_t n;
    bool transpose;
} ce_ctx;

static bn_tensor *ce_fn(bn_tensor **in, void *ctx)
{
    ce_ctx *c = ctx;
    bn_tensor *x = c->transpose ? bn_transpose(in[0], 0, 1) : bn_tensor_retain(in[0]);
    bn_tensor *l = bn_cross_entropy(x, c->labels, c->n);
    bn_tensor_release(x);
    return l;
}

static void test_cross_entropy_gradients(void **state)
{
    (void)state;
    int64_t labels[13];
    for (int r = 0; r < 13; r++) labels[r] = (r * 5) % 7;
    bn_tensor *x = TU_RANDN(220, 13, 7);
    TU_ST(bn_tensor_set_requires_grad(x, true));
    ce_ctx c = {labels, 13, false};
    tu_gradcheck(ce_fn, 1, &x, &c, NULL, "cross_entropy grad [13 x 7]");
    bn_tensor *xt = TU_RANDN(221, 7, 13);
    TU_ST(bn_tensor_set_requires_grad(xt, true));
    c.transpose = true;
    tu_gradcheck(ce_fn, 1, &xt, &c, NULL, "cross_entropy grad, transposed logits");
    int64_t one = 2;
    bn_tensor *x1 = TU_RANDN(222, 1, 3);
    TU_ST(bn_tensor_set_requires_grad(x1, true));
    ce_ctx c1 = {&one, 1, false};
    tu_gradcheck(ce_fn, 1, &x1, &c1, NULL, "cross_entropy grad, batch 1");
    bn_tensor_release(x);
    bn_tensor_release(xt);
    bn_tensor_release(x1);
}

static void test_cross_entropy_errors(void **state)
{
    (void)state;
    bn_tensor *x = TU_RANDN(230, 4, 5);
    int64_t ok[] = {0, 1, 2, 4}, neg[] = {0, -1, 2, 3}, high[] = {0, 1, 2, 5};
    TU_FAILS(bn_cross_entropy(x, high, 4), BN_EARG, "cross_entropy: labels[3] expected in [0, 5) (0-based), got 5");
    TU_FAILS(bn_cross_entropy(x, neg, 4), BN_EARG, "labels[1] expected in [0, 5) (0-based), got -1");
    TU_FAILS(bn_cross_entropy(x, ok, 3), BN_ESHAPE,
             "cross_entropy: labels expected 4 (one per row of logits [4 x 5]), got 3");
    TU_FAILS(bn_cross_entropy(x, NULL, 4), BN_EARG, "cross_entropy: labels expected an array, got NULL");
    TU_FAILS(bn_cross_entropy(NULL, ok, 4), BN_EARG, "cross_entropy: logits expected a tensor, got NULL");
    bn_tensor *v = TU_RANDN(231, 5);
    TU_FAILS(bn_cross_entropy(v, ok, 1), BN_ESHAPE, "cross_entropy: logits expected [N x K], got [5]");
    TU_FAILS(bn_softmax(x, 2), BN_EARG, "softmax: dim expected in [-2, 1], got 2");
    TU_FAILS(bn_log_softmax(NULL, 0), BN_EARG, "log_softmax: input expected a tensor, got NULL");
    bn_tensor_release(v);
    bn_tensor_release(x);
}

/* ---- mse_loss ----------------------------------------------------------- */

static void test_mse(void **state)
{
    (void)state;
    bn_tensor *a = TU_RANDN(300, 3, 7, 5), *b = TU_RANDN(301, 3, 7, 5);
    bn_tensor *bt_base = TU_RANDN(302, 5, 7, 3);
    bn_tensor *bt = bn_permute(bt_base, (const int[]){2, 1, 0}); /* [3 x 7 x 5], strided */
    bn_tensor *pairs[][2] = {{a, b}, {a, bt}};
    for (int p = 0; p < 2; p++) {
        bn_tensor *l = bn_mse_loss(pairs[p][0], pairs[p][1]);
        TU_OK(l);
        double s = 0;
        for (int64_t k = 0; k < 105; k++) {
            double d = (double)bn_tensor_get_flat(pairs[p][0], k) - bn_tensor_get_flat(pairs[p][1], k);
            s += d * d;
        }
        assert_float_equal(bn_tensor_data(l)[0], s / 105, 1e-6 * s / 105);
        bn_tensor_release(l);
    }
    /* A large input: the chunked sum gives the same bits for any thread count. */
    bn_tensor *la = TU_RANDN(303, 200003), *lb = TU_RANDN(304, 200003);
    int saved = omp_get_max_threads();
    float r[2];
    for (int th = 1; th <= 2; th++) {
        omp_set_num_threads(th);
        bn_tensor *l = bn_mse_loss(la, lb);
        TU_OK(l);
        r[th - 1] = bn_tensor_data(l)[0];
        bn_tensor_release(l);
    }
    omp_set_num_threads(saved);
    assert_memory_equal(&r[0], &r[1], sizeof(float));
    assert_float_equal(r[0], 2.0, 0.03);

    bn_tensor_release(la);
    bn_tensor_release(lb);
    bn_tensor_release(a);
    bn_tensor_release(b);
    bn_tensor_release(bt);
    bn_tensor_release(bt_base);
}

static bn_tensor *mse_fn(bn_tensor **in, void *ctx)
{
    bool transpose = ctx != NULL;
    bn_tensor *b = transpose ? bn_transpose(in[1], 0, -1) : bn_tensor_retain(in[1]);
    bn_tensor *l = bn_mse_loss(in[0], b);
    bn_tensor_release(b);
    return l;
}

static void test_mse_gradients_and_errors(void **state)
{
    (void)state;
    bn_tensor *a = TU_RANDN(310, 4, 6), *b = TU_RANDN(311, 4, 6), *bt = TU_RANDN(312, 6, 4);
    TU_ST(bn_tensor_set_requires_grad(a, true));
    TU_ST(bn_tensor_set_requires_grad(b, true));
    TU_ST(bn_tensor_set_requires_grad(bt, true));
    bn_tensor *in[2] = {a, b};
    tu_gradcheck(mse_fn, 2, in, NULL, NULL, "mse_loss grad");
    in[1] = bt;
    int flag = 1;
    tu_gradcheck(mse_fn, 2, in, &flag, NULL, "mse_loss grad, transposed target");
    /* Only one side requiring grad. */
    bn_tensor *c = TU_RANDN(313, 4, 6);
    in[1] = c;
    tu_gradcheck(mse_fn, 2, in, NULL, NULL, "mse_loss grad, constant target");

    TU_FAILS(bn_mse_loss(a, bt), BN_ESHAPE,
             "mse_loss: input and target expected the same shape, got [4 x 6] and [6 x 4]");
    bn_tensor *row = TU_RANDN(314, 6);
    TU_FAILS(bn_mse_loss(a, row), BN_ESHAPE, "got [4 x 6] and [6]"); /* no broadcasting */
    TU_FAILS(bn_mse_loss(a, NULL), BN_EARG, "mse_loss: target expected a tensor, got NULL");
    bn_tensor *e1 = bn_tensor_zeros(1, TU_SHAPE(0)), *e2 = bn_tensor_zeros(1, TU_SHAPE(0));
    bn_tensor *le = bn_mse_loss(e1, e2);
    TU_OK(le);
    assert_true(isnan(bn_tensor_data(le)[0]));
    bn_tensor *ts[] = {a, b, bt, c, row, e1, e2, le};
    for (size_t i = 0; i < 8; i++) bn_tensor_release(ts[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_softmax_forward),
        cmocka_unit_test(test_softmax_extremes),
        cmocka_unit_test(test_softmax_gradients),
        cmocka_unit_test(test_cross_entropy_forward),
        cmocka_unit_test(test_cross_entropy_gradients),
        cmocka_unit_test(test_cross_entropy_errors),
        cmocka_unit_test(test_mse),
        cmocka_unit_test(test_mse_gradients_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
