/* Reductions: forward against naive double loops on odd shapes and strided
 * views, empty and degenerate cases, NaN handling, thread-count
 * determinism, finite-difference gradients and error messages. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

enum { R_SUM, R_MEAN, R_VAR0, R_VAR1, R_STD0, R_STD1, R_MAX, R_MIN, R_ARGMAX, R_COUNT };
static const char *const kind_names[] = {"sum", "mean", "var0", "var1", "std0", "std1", "max", "min", "argmax"};

/* Runs reduction `kind` over dim d (all when all). */
static bn_tensor *run_reduce(int kind, bn_tensor *a, bool all, int d, bool keepdim, bn_tensor **idx)
{
    if (idx) *idx = NULL;
    switch (kind) {
    case R_SUM: return all ? bn_sum_all(a) : bn_sum(a, d, keepdim);
    case R_MEAN: return all ? bn_mean_all(a) : bn_mean(a, d, keepdim);
    case R_VAR0: return all ? bn_var_all(a, 0) : bn_var(a, d, keepdim, 0);
    case R_VAR1: return all ? bn_var_all(a, 1) : bn_var(a, d, keepdim, 1);
    case R_STD0: return all ? bn_std_all(a, 0) : bn_std(a, d, keepdim, 0);
    case R_STD1: return all ? bn_std_all(a, 1) : bn_std(a, d, keepdim, 1);
    case R_MAX: return all ? bn_max_all(a) : bn_max(a, d, keepdim, idx);
    case R_MIN: return all ? bn_min_all(a) : bn_min(a, d, keepdim, idx);
    default: return bn_argmax(a, d, keepdim);
    }
}

/* Naive reference over the logical values of a (read element by element):
 * want[o*inner+i] for the reduction of kind over [outer x n x inner]. */
static void reference(int kind, const bn_tensor *a, int64_t outer, int64_t n, int64_t inner, double *want,
                      double *want_idx)
{
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            double s = 0, best = 0;
            int64_t bi = 0;
            for (int64_t j = 0; j < n; j++) {
                double v = bn_tensor_get_flat(a, (o * n + j) * inner + i);
                s += v;
                bool take = j == 0 || (kind == R_MIN ? v < best : v > best);
                if (take) best = v, bi = j;
            }
            double mean = s / (double)n, ss = 0;
            for (int64_t j = 0; j < n; j++) {
                double v = bn_tensor_get_flat(a, (o * n + j) * inner + i) - mean;
                ss += v * v;
            }
            double r;
            switch (kind) {
            case R_SUM: r = s; break;
            case R_MEAN: r = mean; break;
            case R_VAR0: r = ss / (double)n; break;
            case R_VAR1: r = ss / (double)(n - 1); break;
            case R_STD0: r = sqrt(ss / (double)n); break;
            case R_STD1: r = sqrt(ss / (double)(n - 1)); break;
            case R_ARGMAX: r = (double)bi; break;
            default: r = best;
            }
            want[o * inner + i] = r;
            if (want_idx) want_idx[o * inner + i] = (double)bi;
        }
}

static void compare(const bn_tensor *got, const double *want, int64_t n, double rtol, double atol, const char *what)
{
    float *g = malloc((size_t)(n + 1) * sizeof *g), *w = malloc((size_t)(n + 1) * sizeof *w);
    bn_tensor_read(got, g);
    for (int64_t k = 0; k < n; k++) w[k] = (float)want[k];
    tu_assert_close_array(g, w, n, rtol, atol, what);
    free(g);
    free(w);
}

/* Every kind over every dim (negative too), keepdim on and off, and over
 * everything, of tensor a (any view). */
static void check_all_reductions(bn_tensor *a, const char *label)
{
    char what[160];
    int nd = a->ndim;
    int64_t numel = bn_tensor_numel(a);
    double *want = malloc((size_t)(numel + 1) * sizeof *want), *widx = malloc((size_t)(numel + 1) * sizeof *widx);
    for (int kind = 0; kind < R_COUNT; kind++) {
        for (int dd = -(nd > 0 ? nd : 1); dd < (nd > 0 ? nd : 1); dd++)
            for (int keep = 0; keep < 2; keep++) {
                int d = dd < 0 ? dd + (nd > 0 ? nd : 1) : dd;
                int64_t outer = 1, n = nd ? a->shape[d] : 1, inner = 1;
                for (int e = 0; e < nd; e++) {
                    if (e < d) outer *= a->shape[e];
                    if (e > d) inner *= a->shape[e];
                }
                snprintf(what, sizeof what, "%s %s dim %d keepdim %d", label, kind_names[kind], dd, keep);
                bn_tensor *idx = NULL;
                bn_tensor *out = run_reduce(kind, a, false, dd, keep, kind == R_MAX || kind == R_MIN ? &idx : NULL);
                if (!out) fail_msg("%s: %s", what, bn_last_error());
                /* PyTorch's output shape: the dim dropped, or kept as 1. */
                int want_nd = nd == 0 ? 0 : keep ? nd : nd - 1;
                assert_int_equal(out->ndim, want_nd);
                for (int e = 0, k = 0; e < nd; e++) {
                    if (e == d && !keep) continue;
                    assert_int_equal(out->shape[k], e == d ? 1 : a->shape[e]);
                    k++;
                }
                reference(kind, a, outer, n, inner, want, widx);
                compare(out, want, outer * inner, 2e-6, 2e-6, what);
                if (idx) {
                    assert_true(bn_shape_equal(idx, out));
                    assert_false(idx->requires_grad);
                    compare(idx, widx, outer * inner, 0, 0, what);
                }
                bn_tensor_release(out);
                bn_tensor_release(idx);
            }
        if (kind == R_ARGMAX) continue;
        snprintf(what, sizeof what, "%s %s all", label, kind_names[kind]);
        bn_tensor *out = run_reduce(kind, a, true, 0, false, NULL);
        if (!out) fail_msg("%s: %s", what, bn_last_error());
        assert_int_equal(out->ndim, 0);
        reference(kind, a, 1, numel, 1, want, NULL);
        compare(out, want, 1, 2e-6, 2e-6, what);
        bn_tensor_release(out);
    }
    free(want);
    free(widx);
}

static void test_forward_odd_shapes(void **state)
{
    (void)state;
    const int64_t shapes[][4] = {{7}, {3, 5}, {2, 3, 5}, {4, 1, 6, 3}, {2, 300, 3}, {1, 9}, {5, 1}};
    const int nds[] = {1, 2, 3, 4, 3, 2, 2};
    for (size_t s = 0; s < sizeof nds / sizeof nds[0]; s++) {
        bn_tensor *a = tu_randn(10 + s, nds[s], shapes[s]);
        check_all_reductions(a, bn_shape_str(a));
        bn_tensor_release(a);
    }
    bn_tensor *sc = bn_tensor_scalar(2.5f);
    /* A 0-d tensor reduces over its one element (dim 0 or -1), like PyTorch;
     * var with correction 1 of one element is NaN there. */
    bn_tensor *s = bn_sum(sc, -1, true), *m = bn_max(sc, 0, false, NULL), *v = bn_var(sc, 0, false, 1);
    TU_OK(s);
    TU_OK(m);
    TU_OK(v);
    assert_int_equal(s->ndim, 0);
    assert_float_equal(bn_tensor_data(s)[0], 2.5, 0);
    assert_float_equal(bn_tensor_data(m)[0], 2.5, 0);
    assert_true(isnan(bn_tensor_data(v)[0]));
    bn_tensor_release(s);
    bn_tensor_release(m);
    bn_tensor_release(v);
    bn_tensor_release(sc);
}

static void test_forward_strided_views(void **state)
{
    (void)state;
    bn_tensor *base = TU_RANDN(20, 6, 7, 5);
    bn_tensor *t = bn_transpose(base, 0, 2);          /* [5 x 7 x 6] */
    bn_tensor *nw = bn_narrow(base, 1, 2, 3);         /* [6 x 3 x 5], gaps */
    bn_tensor *sub = bn_subsample(base, 2, 1, 2);     /* [6 x 7 x 2], stride 2 */
    bn_tensor *p = bn_permute(base, (const int[]){1, 2, 0});
    bn_tensor *row = bn_tensor_arange(0, 5, 1);
    bn_tensor *ex = bn_expand(row, 2, TU_SHAPE(3, 5)); /* zero stride */
    TU_OK(t);
    TU_OK(nw);
    TU_OK(sub);
    TU_OK(p);
    TU_OK(ex);
    assert_false(bn_tensor_is_contiguous(t));
    check_all_reductions(t, "transpose");
    check_all_reductions(nw, "narrow");
    check_all_reductions(sub, "subsample");
    check_all_reductions(p, "permute");
    check_all_reductions(ex, "expand");
    bn_tensor *ts[] = {base, t, nw, sub, p, row, ex};
    for (size_t i = 0; i < 7; i++) bn_tensor_release(ts[i]);
}

/* Big enough for the chunked whole-tensor path and the threaded loops. */
static void test_large_and_thread_count_independent(void **state)
{
    (void)state;
    bn_tensor *a = TU_RANDN(30, 3, 40009);
    bn_tensor *shifted = bn_add_scalar(a, 1000.0f); /* |mean| >> std: needs the two-pass variance */
    TU_OK(shifted);
    check_all_reductions(shifted, "large");
    bn_tensor *(*fns[])(bn_tensor *) = {bn_sum_all, bn_mean_all, bn_max_all, bn_min_all};
    int saved = omp_get_max_threads();
    for (size_t f = 0; f < 4; f++) {
        float r[3];
        for (int th = 1; th <= 3; th++) {
            omp_set_num_threads(th);
            bn_tensor *o = fns[f](shifted);
            TU_OK(o);
            r[th - 1] = bn_tensor_data(o)[0];
            bn_tensor_release(o);
        }
        assert_memory_equal(&r[0], &r[1], sizeof(float));
        assert_memory_equal(&r[0], &r[2], sizeof(float));
    }
    float v[2];
    for (int th = 1; th <= 2; th++) {
        omp_set_num_threads(th);
        bn_tensor *o = bn_var_all(shifted, 1);
        TU_OK(o);
        v[th - 1] = bn_tensor_data(o)[0];
        bn_tensor_release(o);
    }
    assert_memory_equal(&v[0], &v[1], sizeof(float));
    assert_float_equal(v[0], 1.0, 0.02); /* the N(0,1) spread survives the shift */
    omp_set_num_threads(saved);
    bn_tensor_release(a);
    bn_tensor_release(shifted);
}

static void test_empty_and_degenerate(void **state)
{
    (void)state;
    bn_tensor *e = bn_tensor_zeros(2, TU_SHAPE(3, 0));
    bn_tensor *s = bn_sum(e, 1, false), *m = bn_mean(e, 1, true), *v = bn_var(e, -1, false, 0);
    TU_OK(s);
    TU_OK(m);
    TU_OK(v);
    assert_int_equal(bn_tensor_numel(s), 3);
    assert_int_equal(m->ndim, 2);
    for (int i = 0; i < 3; i++) {
        assert_float_equal(bn_tensor_data(s)[i], 0, 0);
        assert_true(isnan(bn_tensor_data(m)[i]));
        assert_true(isnan(bn_tensor_data(v)[i]));
    }
    /* Reducing over the non-empty dim gives an empty result. */
    bn_tensor *s0 = bn_sum(e, 0, false);
    TU_OK(s0);
    assert_int_equal(bn_tensor_numel(s0), 0);
    bn_tensor *sa = bn_sum_all(e), *ma = bn_mean_all(e);
    TU_OK(sa);
    TU_OK(ma);
    assert_float_equal(bn_tensor_data(sa)[0], 0, 0);
    assert_true(isnan(bn_tensor_data(ma)[0]));
    TU_FAILS(bn_max(e, 1, false, NULL), BN_EARG, "max: cannot reduce over a dim of size 0 (input [3 x 0])");
    TU_FAILS(bn_min(e, -1, true, NULL), BN_EARG, "min: cannot reduce over a dim of size 0");
    TU_FAILS(bn_argmax(e, 1, false), BN_EARG, "argmax: cannot reduce over a dim of size 0");
    TU_FAILS(bn_max_all(e), BN_EARG, "max_all: cannot reduce an empty tensor [3 x 0]");
    TU_FAILS(bn_min_all(e), BN_EARG, "min_all: cannot reduce an empty tensor");

    /* n <= correction: PyTorch's divisor max(0, n - correction) gives 0/0 = NaN
     * (or x/0 = inf), never a crash. */
    bn_tensor *one = bn_tensor_full(1, TU_SHAPE(1), 3.0f);
    bn_tensor *two = bn_tensor_arange(0, 2, 1);
    bn_tensor *v1 = bn_var_all(one, 1), *sd1 = bn_std(one, 0, false, 1), *v2 = bn_var_all(two, 2);
    bn_tensor *v0 = bn_var_all(one, 0);
    TU_OK(v1);
    TU_OK(sd1);
    TU_OK(v2);
    TU_OK(v0);
    assert_true(isnan(bn_tensor_data(v1)[0]));
    assert_true(isnan(bn_tensor_data(sd1)[0]));
    assert_true(isinf(bn_tensor_data(v2)[0]));
    assert_float_equal(bn_tensor_data(v0)[0], 0, 0);
    bn_tensor *ts[] = {e, s, m, v, s0, sa, ma, one, two, v1, sd1, v2, v0};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) bn_tensor_release(ts[i]);
}

static void test_nan_and_ties(void **state)
{
    (void)state;
    float vals[] = {1, NAN, 5, NAN, 5, -2};
    bn_tensor *a = bn_tensor_from_array(1, TU_SHAPE(6), vals);
    bn_tensor *idx = NULL;
    bn_tensor *m = bn_max(a, 0, false, &idx), *mn = bn_min(a, 0, false, NULL), *ma = bn_max_all(a);
    bn_tensor *am = bn_argmax(a, 0, false);
    TU_OK(m);
    TU_OK(mn);
    TU_OK(ma);
    TU_OK(am);
    /* NaN propagates (it is the extreme) and the first NaN's index is given. */
    assert_true(isnan(bn_tensor_data(m)[0]));
    assert_true(isnan(bn_tensor_data(mn)[0]));
    assert_true(isnan(bn_tensor_data(ma)[0]));
    assert_float_equal(bn_tensor_data(idx)[0], 1, 0);
    assert_float_equal(bn_tensor_data(am)[0], 1, 0);
    bn_tensor *ts[] = {a, idx, m, mn, ma, am};
    for (size_t i = 0; i < 6; i++) bn_tensor_release(ts[i]);

    /* Ties: the first extreme wins the index and the gradient. */
    float tv[] = {1, 7, 3, 7, 7, 0};
    bn_tensor *t = bn_tensor_from_array(2, TU_SHAPE(2, 3), tv);
    TU_ST(bn_tensor_set_requires_grad(t, true));
    bn_tensor *ti = NULL;
    bn_tensor *tm = bn_max(t, 1, false, &ti);
    TU_OK(tm);
    assert_float_equal(bn_tensor_data(ti)[0], 1, 0);
    assert_float_equal(bn_tensor_data(ti)[1], 0, 0);
    bn_tensor *loss = bn_sum_all(tm);
    TU_ST(bn_backward(loss, NULL, false));
    float want[] = {0, 1, 0, 1, 0, 0}, got[6];
    bn_tensor_read(t->grad, got);
    tu_assert_close_array(got, want, 6, 0, 0, "max tie gradient");
    bn_tensor_release(loss);
    bn_tensor_release(tm);
    bn_tensor_release(ti);

    /* Whole-tensor max shares the gradient evenly among ties, like PyTorch. */
    TU_ST(bn_tensor_zero_grad(t));
    bn_tensor *all = bn_max_all(t);
    TU_ST(bn_backward(all, NULL, false));
    float want_all[] = {0, 1.0f / 3, 0, 1.0f / 3, 1.0f / 3, 0};
    bn_tensor_read(t->grad, got);
    tu_assert_close_array(got, want_all, 6, 1e-6, 0, "max_all tie gradient");
    bn_tensor_release(all);
    bn_tensor_release(t);
}

/* Whole-tensor and 1-D reductions run in fixed chunks: ties and NaNs in
 * different chunks still resolve to the first position. */
static void test_chunked_first_index(void **state)
{
    (void)state;
    bn_tensor *a = bn_tensor_zeros(1, TU_SHAPE(200000));
    float *v = bn_tensor_data(a);
    v[30001] = 5;
    v[150000] = 5;
    v[190000] = 5;
    v[7] = -1;
    v[120000] = -1;
    bn_tensor *am = bn_argmax(a, 0, false), *mi = NULL, *mn = bn_min(a, -1, true, &mi);
    TU_OK(am);
    TU_OK(mn);
    assert_float_equal(bn_tensor_data(am)[0], 30001, 0);
    assert_float_equal(bn_tensor_data(mi)[0], 7, 0);
    bn_tensor_release(am);
    bn_tensor_release(mn);
    bn_tensor_release(mi);
    v[100001] = NAN;
    v[170000] = NAN;
    am = bn_argmax(a, 0, false);
    mn = bn_min(a, 0, false, &mi);
    bn_tensor *ma = bn_max_all(a);
    assert_float_equal(bn_tensor_data(am)[0], 100001, 0);
    assert_float_equal(bn_tensor_data(mi)[0], 100001, 0);
    assert_true(isnan(bn_tensor_data(ma)[0]));
    bn_tensor *ts[] = {a, am, mn, mi, ma};
    for (size_t i = 0; i < 5; i++) bn_tensor_release(ts[i]);
}

/* ---- gradients ---------------------------------------------------------- */

typedef struct grad_ctx {
    int kind;
    bool all, keepdim, transpose;
    int dim;
} grad_ctx;

static bn_tensor *reduce_fn(bn_tensor **in, void *ctx)
{
    grad_ctx *c = ctx;
    bn_tensor *x = c->transpose ? bn_transpose(in[0], 0, -1) : bn_tensor_retain(in[0]);
    if (!x) return NULL;
    bn_tensor *out = run_reduce(c->kind, x, c->all, c->dim, c->keepdim, NULL);
    bn_tensor_release(x);
    return out;
}

static void test_gradients(void **state)
{
    (void)state;
    const int64_t shapes[][3] = {{7, 1, 1}, {3, 5, 1}, {2, 3, 5}};
    const int nds[] = {1, 2, 3};
    char what[160];
    for (int s = 0; s < 3; s++)
        for (int kind = 0; kind < R_ARGMAX; kind++)
            for (int tr = 0; tr < 2; tr++)
                for (int dd = -1; dd <= nds[s]; dd++) { /* dd == nds[s]: over everything */
                    bn_tensor *x = tu_randn(40 + s * 10 + kind, nds[s], shapes[s]);
                    TU_ST(bn_tensor_set_requires_grad(x, true));
                    grad_ctx c = {kind, dd == nds[s], dd % 2 == 0, tr == 1, dd == nds[s] ? 0 : dd};
                    snprintf(what, sizeof what, "grad %s of %s dim %d%s", kind_names[kind], bn_shape_str(x), dd,
                             tr ? " (transposed)" : "");
                    tu_gradcheck(reduce_fn, 1, &x, &c, NULL, what);
                    bn_tensor_release(x);
                }
}

static void test_std_gradient_at_zero_spread(void **state)
{
    (void)state;
    bn_tensor *x = bn_tensor_full(2, TU_SHAPE(2, 4), 3.0f);
    TU_ST(bn_tensor_set_requires_grad(x, true));
    bn_tensor *s = bn_std(x, 1, false, 1);
    bn_tensor *l = bn_sum_all(s);
    TU_ST(bn_backward(l, NULL, false));
    /* PyTorch masks d std where std == 0: zero, not NaN. */
    for (int k = 0; k < 8; k++) assert_true(bn_tensor_data(x->grad)[k] == 0); /* NaN fails too */
    bn_tensor_release(l);
    bn_tensor_release(s);
    bn_tensor_release(x);
}

static void test_graph_recording(void **state)
{
    (void)state;
    int64_t nodes = bn_nodes_alive();
    bn_tensor *x = TU_RANDN(50, 4, 3);
    TU_ST(bn_tensor_set_requires_grad(x, true));
    bn_tensor *am = bn_argmax(x, 1, false);
    TU_OK(am);
    assert_false(am->requires_grad); /* argmax is not differentiable */
    bool was = bn_set_grad_enabled(false);
    bn_tensor *s = bn_sum(x, 0, false);
    bn_set_grad_enabled(was);
    TU_OK(s);
    assert_false(s->requires_grad);
    bn_tensor *m = bn_mean(x, 0, false);
    assert_true(m->requires_grad);
    assert_int_equal(bn_nodes_alive(), nodes + 1);
    bn_tensor_release(m);
    assert_int_equal(bn_nodes_alive(), nodes);
    bn_tensor_release(s);
    bn_tensor_release(am);
    bn_tensor_release(x);
}

static void test_errors(void **state)
{
    (void)state;
    bn_tensor *a = TU_RANDN(60, 3, 4);
    TU_FAILS(bn_sum(a, 2, false), BN_EARG, "sum: dim expected in [-2, 1], got 2");
    TU_FAILS(bn_mean(a, -3, false), BN_EARG, "mean: dim expected in [-2, 1], got -3");
    TU_FAILS(bn_max(a, 5, false, NULL), BN_EARG, "max: dim expected");
    TU_FAILS(bn_argmax(a, 2, true), BN_EARG, "argmax: dim expected");
    TU_FAILS(bn_var(a, 0, false, -1), BN_EARG, "var: correction expected >= 0, got -1");
    TU_FAILS(bn_std_all(a, -2), BN_EARG, "std_all: correction expected >= 0, got -2");
    TU_FAILS(bn_sum_all(NULL), BN_EARG, "sum_all: input expected a tensor, got NULL");
    TU_FAILS(bn_min(NULL, 0, false, NULL), BN_EARG, "min: input expected a tensor, got NULL");
    bn_tensor *idx = (bn_tensor *)&idx;
    TU_FAILS(bn_max(a, 9, false, &idx), BN_EARG, "max: dim expected");
    assert_null(idx); /* cleared on failure */

    /* Out of memory: a clean BN_ENOMEM, no leaked nodes or storage. */
    bn_tensor *big = TU_RANDN(61, 1000, 2);
    TU_ST(bn_tensor_set_requires_grad(big, true));
    int64_t nodes = bn_nodes_alive(), mem = bn_mem_in_use();
    bn_mem_set_limit(mem + 256);
    TU_FAILS(bn_sum(big, 1, false), BN_ENOMEM, "");
    TU_FAILS(bn_var(big, 1, true, 1), BN_ENOMEM, "");
    TU_FAILS(bn_max(big, 1, false, NULL), BN_ENOMEM, "");
    bn_tensor *t = bn_transpose(big, 0, 1);
    TU_FAILS(bn_sum_all(t), BN_ENOMEM, ""); /* the dense copy of a strided view */
    bn_mem_set_limit(0);
    assert_int_equal(bn_nodes_alive(), nodes + 1); /* only the transpose's */
    bn_tensor_release(t);
    assert_int_equal(bn_mem_in_use(), mem);
    bn_tensor_release(big);
    bn_tensor_release(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_odd_shapes),
        cmocka_unit_test(test_forward_strided_views),
        cmocka_unit_test(test_large_and_thread_count_independent),
        cmocka_unit_test(test_empty_and_degenerate),
        cmocka_unit_test(test_nan_and_ties),
        cmocka_unit_test(test_chunked_first_index),
        cmocka_unit_test(test_gradients),
        cmocka_unit_test(test_std_gradient_at_zero_spread),
        cmocka_unit_test(test_graph_recording),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
