/* The probe kernels (src/probe.h): per-channel activation statistics and
 * histograms against direct double loops, and the convolution-gradient
 * coherence sums against a naive loop over every term, against the
 * conv2d weight gradient, and on constructed agreeing / cancelling cases. */
#include "testutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "probe.h"

/* ---- activation statistics ------------------------------------------------ */

static void reference_stats(const bn_tensor *x, double *mean, double *var, double *amax)
{
    int64_t n = x->shape[0], c = x->shape[1], s = bn_tensor_numel(x) / (n * c);
    float *v = malloc((size_t)bn_tensor_numel(x) * sizeof *v);
    bn_tensor_read(x, v);
    for (int64_t ch = 0; ch < c; ch++) {
        double sum = 0, sq = 0, am = 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < s; k++) sum += v[(i * c + ch) * s + k];
        double mu = sum / (double)(n * s);
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < s; k++) {
                double d = v[(i * c + ch) * s + k] - mu;
                sq += d * d;
                if (fabs(v[(i * c + ch) * s + k]) > am) am = fabs(v[(i * c + ch) * s + k]);
            }
        mean[ch] = mu, var[ch] = sq / (double)(n * s), amax[ch] = am;
    }
    free(v);
}

static void check_stats(bn_tensor *x, const char *what)
{
    bn_tensor *m, *v, *a;
    TU_ST(bn_activation_stats(x, &m, &v, &a));
    int64_t c = x->shape[1];
    assert_int_equal(m->ndim, 1);
    assert_int_equal(m->shape[0], c);
    double *rm = malloc((size_t)c * 3 * sizeof *rm);
    reference_stats(x, rm, rm + c, rm + 2 * c);
    for (int64_t ch = 0; ch < c; ch++) {
        double wm = rm[ch], wv = rm[c + ch], wa = rm[2 * c + ch];
        if (fabs(bn_tensor_data(m)[ch] - wm) > 1e-6 * (1 + fabs(wm)) ||
            fabs(bn_tensor_data(v)[ch] - wv) > 1e-6 * (1 + wv) || bn_tensor_data(a)[ch] != (float)wa)
            fail_msg("%s channel %lld: got %g %g %g, want %g %g %g", what, (long long)ch, bn_tensor_data(m)[ch],
                     bn_tensor_data(v)[ch], bn_tensor_data(a)[ch], wm, wv, wa);
    }
    free(rm);
    bn_tensor_release(m), bn_tensor_release(v), bn_tensor_release(a);
}

static void test_stats_match_reference(void **state)
{
    (void)state;
    bn_tensor *x = TU_RANDN(1, 5, 7, 6, 9);
    check_stats(x, "NCHW");
    bn_tensor *t = bn_transpose(x, 2, 3); /* a strided view */
    TU_OK(t);
    check_stats(t, "transposed view");
    bn_tensor *x2 = TU_RANDN(2, 33, 4); /* [N x C] */
    check_stats(x2, "NC");
    bn_tensor_release(t), bn_tensor_release(x), bn_tensor_release(x2);
}

/* A large common offset: E[x^2] - mean^2 in float would lose everything. */
static void test_stats_large_mean(void **state)
{
    (void)state;
    bn_tensor *x = TU_RANDN(3, 64, 2, 8, 8);
    float *p = bn_tensor_data(x);
    for (int64_t i = 0; i < bn_tensor_numel(x); i++) p[i] = 1e4f + p[i];
    bn_tensor *m, *v, *a;
    TU_ST(bn_activation_stats(x, &m, &v, &a));
    for (int ch = 0; ch < 2; ch++) {
        assert_true(fabs(bn_tensor_data(m)[ch] - 1e4) < 0.5);
        assert_true(fabs(bn_tensor_data(v)[ch] - 1.0) < 0.15);
    }
    check_stats(x, "offset 1e4");
    bn_tensor_release(m), bn_tensor_release(v), bn_tensor_release(a), bn_tensor_release(x);
}

static void test_stats_nan_and_inf(void **state)
{
    (void)state;
    bn_tensor *x = bn_tensor_ones(3, TU_SHAPE(2, 3, 4));
    float *p = bn_tensor_data(x);
    p[5] = NAN;       /* n 0, channel 1 */
    p[4 * 3 + 9] = INFINITY; /* n 1, channel 2 */
    bn_tensor *m, *v, *a;
    TU_ST(bn_activation_stats(x, &m, &v, &a));
    assert_float_equal(bn_tensor_data(m)[0], 1, 0);
    assert_float_equal(bn_tensor_data(v)[0], 0, 0);
    assert_true(isnan(bn_tensor_data(m)[1]) && isnan(bn_tensor_data(v)[1]) && isnan(bn_tensor_data(a)[1]));
    assert_true(isinf(bn_tensor_data(m)[2]) && isinf(bn_tensor_data(a)[2]));
    bn_tensor_release(m), bn_tensor_release(v), bn_tensor_release(a), bn_tensor_release(x);
}

static void test_stats_errors(void **state)
{
    (void)state;
    bn_tensor *m, *v, *a;
    bn_tensor *x = bn_tensor_zeros(1, TU_SHAPE(4));
    assert_int_equal(bn_activation_stats(x, &m, &v, &a), BN_ESHAPE);
    assert_null(m);
    assert_non_null(strstr(bn_last_error(), "[N x C x ...]"));
    bn_tensor *e = bn_tensor_zeros(2, TU_SHAPE(0, 3));
    assert_int_equal(bn_activation_stats(e, &m, &v, &a), BN_ESHAPE);
    bn_tensor_release(x), bn_tensor_release(e);
}

/* ---- histograms ------------------------------------------------------------------ */

static void test_histc(void **state)
{
    (void)state;
    bn_tensor *x = bn_tensor_from_array(1, TU_SHAPE(8), (const float[]){0, 0.1f, 0.5f, 0.99f, 1, -1, 2, NAN});
    double lo, hi;
    bn_tensor *h = bn_histc(x, 2, 0, 1, &lo, &hi);
    TU_OK(h);
    assert_float_equal(bn_tensor_data(h)[0], 2, 0); /* 0, 0.1 */
    assert_float_equal(bn_tensor_data(h)[1], 3, 0); /* 0.5, 0.99, 1 (the top edge); -1, 2, NaN dropped */
    bn_tensor_release(h);
    h = bn_histc(x, 3, 0, 0, &lo, &hi); /* the finite min and max */
    TU_OK(h);
    assert_float_equal(lo, -1, 0);
    assert_float_equal(hi, 2, 0);
    float *c = bn_tensor_data(h);
    assert_float_equal(c[0] + c[1] + c[2], 7, 0);
    assert_float_equal(c[0], 1, 0); /* -1 */
    assert_float_equal(c[2], 2, 0); /* 1 and 2 */
    bn_tensor_release(h);
    TU_FAILS(bn_histc(x, 0, 0, 1, NULL, NULL), BN_EARG, "bins");
    TU_FAILS(bn_histc(x, 4, 1, 0, NULL, NULL), BN_EARG, "range");
    bn_tensor_release(x);
}

/* ---- coherence --------------------------------------------------------------------- */

typedef struct coh_case {
    int64_t b, o, c, h, w;
    int kh, kw;
    bn_conv2d_opts opt;
} coh_case;

/* Every term d, one at a time, in double. */
static void reference_coherence(const coh_case *k, const float *g, const float *x, int64_t oh, int64_t ow, double *s,
                                double *a, double *m)
{
    memset(m, 0, sizeof(double) * (size_t)(k->c * k->o));
    for (int64_t q = 0; q < k->o; q++)
        for (int64_t i = 0; i < k->c; i++)
            for (int u = 0; u < k->kh; u++)
                for (int v = 0; v < k->kw; v++) {
                    double ss = 0, aa = 0;
                    for (int64_t y = 0; y < oh; y++)
                        for (int64_t xx = 0; xx < ow; xx++) {
                            double sb = 0;
                            for (int64_t b = 0; b < k->b; b++) {
                                int64_t iy = y * k->opt.stride_h + u - k->opt.pad_h;
                                int64_t ix = xx * k->opt.stride_w + v - k->opt.pad_w;
                                double in = (iy < 0 || iy >= k->h || ix < 0 || ix >= k->w)
                                                ? 0
                                                : x[((b * k->c + i) * k->h + iy) * k->w + ix];
                                double d = g[((b * k->o + q) * oh + y) * ow + xx] * in;
                                sb += d;
                                aa += fabs(d);
                            }
                            ss += sb;
                            m[i * k->o + q] += fabs(sb);
                        }
                    int64_t e = ((q * k->c + i) * k->kh + u) * k->kw + v;
                    s[e] = ss, a[e] = aa;
                }
}

static void check_close_d(const float *got, const double *want, int64_t n, double rtol, const char *what)
{
    double scale = 0;
    for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(want[i]));
    for (int64_t i = 0; i < n; i++)
        if (fabs(got[i] - want[i]) > rtol * (fabs(want[i]) + 1e-3 * scale))
            fail_msg("%s[%lld]: got %.9g, want %.9g", what, (long long)i, got[i], want[i]);
}

static const coh_case coh_cases[] = {
    {3, 4, 2, 6, 6, 3, 3, {1, 1, 1, 1}},  /* a ResNet 3x3 conv */
    {2, 3, 5, 7, 8, 3, 3, {2, 2, 1, 1}},  /* the downsampling one */
    {4, 2, 3, 5, 5, 1, 1, {2, 2, 0, 0}},  /* an option-B shortcut */
    {2, 2, 2, 6, 9, 2, 3, {1, 2, 0, 1}},  /* non-square everything */
    {5, 3, 4, 1, 1, 1, 1, {1, 1, 0, 0}},  /* a Linear layer seen as 1x1 */
};

static void test_coherence_matches_naive(void **state)
{
    (void)state;
    for (size_t n = 0; n < sizeof coh_cases / sizeof coh_cases[0]; n++) {
        const coh_case *k = &coh_cases[n];
        int64_t oh = (k->h + 2 * k->opt.pad_h - k->kh) / k->opt.stride_h + 1;
        int64_t ow = (k->w + 2 * k->opt.pad_w - k->kw) / k->opt.stride_w + 1;
        bn_tensor *x = TU_RANDN(100 + n, k->b, k->c, k->h, k->w);
        bn_tensor *g = TU_RANDN(200 + n, k->b, k->o, oh, ow);
        bn_tensor *s, *a, *m;
        TU_ST(bn_conv_coherence(g, x, k->kh, k->kw, &k->opt, &s, &a, &m));
        assert_int_equal(s->shape[0], k->o);
        assert_int_equal(s->shape[1], k->c);
        assert_int_equal(m->shape[0], k->c);
        assert_int_equal(m->shape[1], k->o);
        int64_t ne = k->o * k->c * k->kh * k->kw;
        double *rs = malloc(sizeof(double) * (size_t)(2 * ne + k->c * k->o));
        reference_coherence(k, bn_tensor_data(g), bn_tensor_data(x), oh, ow, rs, rs + ne, rs + 2 * ne);
        char what[64];
        snprintf(what, sizeof what, "case %zu sum", n);
        check_close_d(bn_tensor_data(s), rs, ne, 1e-5, what);
        snprintf(what, sizeof what, "case %zu abssum", n);
        check_close_d(bn_tensor_data(a), rs + ne, ne, 1e-5, what);
        snprintf(what, sizeof what, "case %zu M", n);
        check_close_d(bn_tensor_data(m), rs + 2 * ne, k->c * k->o, 1e-5, what);
        free(rs);
        bn_tensor_release(s), bn_tensor_release(a), bn_tensor_release(m);
        bn_tensor_release(x), bn_tensor_release(g);
    }
}

/* The sum of the terms is the weight gradient: L = Σ conv2d(x, w) * R has
 * dL/dO = R. */
static void test_coherence_sum_is_weight_gradient(void **state)
{
    (void)state;
    const coh_case *k = &coh_cases[1];
    bn_tensor *x = TU_RANDN(7, k->b, k->c, k->h, k->w);
    bn_tensor *w = TU_RANDN(8, k->o, k->c, k->kh, k->kw);
    TU_ST(bn_tensor_set_requires_grad(w, true));
    bn_tensor *y = bn_conv2d(x, w, NULL, &k->opt);
    TU_OK(y);
    bn_tensor *r = tu_randn(9, y->ndim, y->shape);
    TU_ST(bn_backward(y, r, false));
    bn_tensor *s, *a, *m;
    TU_ST(bn_conv_coherence(r, x, k->kh, k->kw, &k->opt, &s, &a, &m));
    tu_assert_close(s, w->grad, 1e-5, 1e-5, "sum vs weight grad");
    bn_tensor_release(s), bn_tensor_release(a), bn_tensor_release(m);
    bn_tensor_release(r), bn_tensor_release(y), bn_tensor_release(w), bn_tensor_release(x);
}

/* All terms of one sign: |Σd| = Σ|d| (ratio 1). Terms that cancel pairwise
 * across the batch (example 2 = example 1 with the gradient negated): Σd = 0
 * and M = 0, while Σ|d| > 0. */
static void test_coherence_agreeing_and_cancelling(void **state)
{
    (void)state;
    bn_conv2d_opts o = {1, 1, 1, 1};
    bn_tensor *x = tu_uniform(11, 0.1f, 1.0f, 4, TU_SHAPE(2, 3, 5, 5));
    bn_tensor *g = tu_uniform(12, 0.1f, 1.0f, 4, TU_SHAPE(2, 2, 5, 5));
    bn_tensor *s, *a, *m;
    TU_ST(bn_conv_coherence(g, x, 3, 3, &o, &s, &a, &m));
    for (int64_t e = 0; e < bn_tensor_numel(s); e++)
        assert_true(fabs(bn_tensor_data(s)[e] - bn_tensor_data(a)[e]) <= 1e-6 * bn_tensor_data(a)[e]);
    bn_tensor_release(s), bn_tensor_release(a), bn_tensor_release(m);

    float *px = bn_tensor_data(x), *pg = bn_tensor_data(g);
    int64_t xs = 3 * 25, gs = 2 * 25;
    for (int64_t k = 0; k < xs; k++) px[xs + k] = px[k];
    for (int64_t k = 0; k < gs; k++) pg[gs + k] = -pg[k];
    TU_ST(bn_conv_coherence(g, x, 3, 3, &o, &s, &a, &m));
    for (int64_t e = 0; e < bn_tensor_numel(s); e++) {
        assert_float_equal(bn_tensor_data(s)[e], 0, 0);
        assert_true(bn_tensor_data(a)[e] > 0);
    }
    for (int64_t e = 0; e < bn_tensor_numel(m); e++) assert_float_equal(bn_tensor_data(m)[e], 0, 0);
    bn_tensor_release(s), bn_tensor_release(a), bn_tensor_release(m);
    bn_tensor_release(x), bn_tensor_release(g);
}

static void test_coherence_errors(void **state)
{
    (void)state;
    bn_conv2d_opts o = {1, 1, 1, 1};
    bn_tensor *x = bn_tensor_zeros(4, TU_SHAPE(2, 3, 5, 5));
    bn_tensor *g = bn_tensor_zeros(4, TU_SHAPE(2, 4, 4, 4)); /* 5x5 pad 1 k3 gives 5x5, not 4x4 */
    bn_tensor *g3 = bn_tensor_zeros(3, TU_SHAPE(2, 4, 5));
    bn_tensor *gb = bn_tensor_zeros(4, TU_SHAPE(3, 4, 5, 5));
    bn_tensor *s, *a, *m;
    assert_int_equal(bn_conv_coherence(g, x, 3, 3, &o, &s, &a, &m), BN_ESHAPE);
    assert_non_null(strstr(bn_last_error(), "dout expected [2 x 4 x 5 x 5]"));
    assert_null(s);
    assert_int_equal(bn_conv_coherence(g3, x, 3, 3, &o, &s, &a, &m), BN_ESHAPE);
    assert_int_equal(bn_conv_coherence(gb, x, 3, 3, &o, &s, &a, &m), BN_ESHAPE);
    assert_non_null(strstr(bn_last_error(), "same batch size"));
    assert_int_equal(bn_conv_coherence(gb, x, 0, 3, &o, &s, &a, &m), BN_EARG);
    bn_tensor_release(x), bn_tensor_release(g), bn_tensor_release(g3), bn_tensor_release(gb);
}

static void test_out_of_memory_is_an_error(void **state)
{
    (void)state;
    bn_conv2d_opts o = {1, 1, 1, 1};
    bn_tensor *x = bn_tensor_zeros(4, TU_SHAPE(8, 16, 16, 16));
    bn_tensor *g = bn_tensor_zeros(4, TU_SHAPE(8, 16, 16, 16));
    bn_tensor *s, *a, *m;
    bn_mem_set_limit(bn_mem_in_use() + 1024);
    assert_int_equal(bn_conv_coherence(g, x, 3, 3, &o, &s, &a, &m), BN_ENOMEM);
    bn_mem_set_limit(bn_mem_in_use() + 1);
    assert_int_equal(bn_activation_stats(x, &s, &a, &m), BN_ENOMEM);
    assert_null(s);
    bn_mem_set_limit(0);
    bn_tensor_release(x), bn_tensor_release(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stats_match_reference),
        cmocka_unit_test(test_stats_large_mean),
        cmocka_unit_test(test_stats_nan_and_inf),
        cmocka_unit_test(test_stats_errors),
        cmocka_unit_test(test_histc),
        cmocka_unit_test(test_coherence_matches_naive),
        cmocka_unit_test(test_coherence_sum_is_weight_gradient),
        cmocka_unit_test(test_coherence_agreeing_and_cancelling),
        cmocka_unit_test(test_coherence_errors),
        cmocka_unit_test(test_out_of_memory_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
