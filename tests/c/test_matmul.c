/* matmul and linear: forward against a naive double reference on random and
 * odd shapes, transposed / strided / broadcast operands (the BLAS-flag and
 * packing paths), finite-difference gradients for every input, errors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "testutil.h"

/* ---- leak guard --------------------------------------------------------- */

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

/* ---- reference ---------------------------------------------------------- */

/* c[bt][m][n] = sum_k a[bt][m][k] b[bt][k][n], all row-major, in double. */
static void ref_bmm(float *c, const float *a, const float *b, int64_t bt, int64_t m, int64_t k, int64_t n)
{
    for (int64_t z = 0; z < bt; z++)
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double s = 0;
                for (int64_t p = 0; p < k; p++) s += (double)a[(z * m + i) * k + p] * b[(z * k + p) * n + j];
                c[(z * m + i) * n + j] = (float)s;
            }
}

static float *read_all(const bn_tensor *t)
{
    int64_t n = bn_tensor_numel(t);
    float *v = malloc((size_t)(n + 1) * sizeof(float));
    assert_non_null(v);
    bn_tensor_read(t, v);
    return v;
}

/* Checks bn_matmul(a, b) against the reference; a, b any layout. The
 * product's logical sizes come from the PyTorch rules for 1-D operands. */
static void check_matmul(bn_tensor *a, bn_tensor *b, const char *what)
{
    bn_tensor *c = bn_matmul(a, b);
    TU_OK(c);
    bool batched = a->ndim == 3;
    int64_t bt = batched ? a->shape[0] : 1;
    int64_t m = a->ndim == 1 ? 1 : a->shape[a->ndim - 2];
    int64_t k = a->shape[a->ndim - 1];
    int64_t n = b->ndim == 1 ? 1 : b->shape[b->ndim - 1];
    int want_ndim = (batched ? 1 : 0) + (a->ndim > 1) + (b->ndim > 1);
    assert_int_equal(c->ndim, want_ndim);
    assert_int_equal(bn_tensor_numel(c), bt * m * n);
    float *av = read_all(a), *bv = read_all(b), *cv = read_all(c);
    float *want = malloc((size_t)(bt * m * n + 1) * sizeof(float));
    ref_bmm(want, av, bv, bt, m, k, n);
    tu_assert_close_array(cv, want, bt * m * n, 1e-4, 1e-5 * (double)(k + 1), what);
    free(av);
    free(bv);
    free(cv);
    free(want);
    bn_tensor_release(c);
}

/* ---- forward ------------------------------------------------------------ */

static void test_forward_2d_shapes(void **state)
{
    (void)state;
    static const int64_t sizes[][3] = {{1, 1, 1}, {3, 4, 5}, {17, 33, 9}, {64, 1, 7}, {1, 100, 1},
                                       {5, 7, 1}, {31, 65, 127}, {128, 64, 10}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int64_t m = sizes[s][0], k = sizes[s][1], n = sizes[s][2];
        bn_tensor *a = tu_randn(10 + s, 2, TU_SHAPE(m, k)), *b = tu_randn(20 + s, 2, TU_SHAPE(k, n));
        char what[64];
        snprintf(what, sizeof what, "matmul %lldx%lldx%lld", (long long)m, (long long)k, (long long)n);
        check_matmul(a, b, what);
        bn_tensor_release(a);
        bn_tensor_release(b);
    }
}

static void test_forward_vectors(void **state)
{
    (void)state;
    bn_tensor *v = TU_RANDN(1, 7), *w = TU_RANDN(2, 7), *m = TU_RANDN(3, 7, 5), *mt = TU_RANDN(4, 6, 7);
    check_matmul(v, m, "[k] x [k,n]");
    check_matmul(mt, v, "[m,k] x [k]");
    check_matmul(v, w, "[k] x [k] (dot)");
    bn_tensor *c = bn_matmul(v, m);
    TU_OK(c);
    assert_int_equal(c->ndim, 1);
    assert_int_equal(c->shape[0], 5);
    bn_tensor_release(c);
    c = bn_matmul(mt, v);
    TU_OK(c);
    assert_int_equal(c->ndim, 1);
    assert_int_equal(c->shape[0], 6);
    bn_tensor_release(c);
    c = bn_matmul(v, w);
    TU_OK(c);
    assert_int_equal(c->ndim, 0);
    bn_tensor_release(c);
    /* Strided vectors: every other element of a longer vector. */
    bn_tensor *long_v = TU_RANDN(5, 14);
    bn_tensor *sv = bn_subsample(long_v, 0, 1, 2);
    TU_OK(sv);
    assert_int_equal(sv->shape[0], 7);
    check_matmul(sv, m, "strided [k] x [k,n]");
    check_matmul(mt, sv, "[m,k] x strided [k]");
    check_matmul(sv, sv, "strided dot");
    bn_tensor_release(sv);
    bn_tensor_release(long_v);
    bn_tensor_release(v);
    bn_tensor_release(w);
    bn_tensor_release(m);
    bn_tensor_release(mt);
}

static void test_forward_batched(void **state)
{
    (void)state;
    bn_tensor *a = TU_RANDN(7, 3, 5, 4), *b = TU_RANDN(8, 3, 4, 6);
    check_matmul(a, b, "batched 3x[5x4]x[4x6]");
    /* A batch that is not the outer dim in memory: [m, B, k] permuted. */
    bn_tensor *raw = TU_RANDN(9, 5, 3, 4);
    bn_tensor *ap = bn_permute(raw, (const int[]){1, 0, 2});
    TU_OK(ap);
    check_matmul(ap, b, "batched, permuted batch dim");
    /* Batched transposes of both operands. */
    bn_tensor *at_raw = TU_RANDN(10, 3, 4, 5), *bt_raw = TU_RANDN(11, 3, 6, 4);
    bn_tensor *at = bn_transpose(at_raw, 1, 2), *btt = bn_transpose(bt_raw, 1, 2);
    check_matmul(at, btt, "batched, both transposed");
    /* A broadcast batch (stride 0) from expand. */
    bn_tensor *one = TU_RANDN(12, 1, 4, 6);
    bn_tensor *bx = bn_expand(one, 3, TU_SHAPE(3, 4, 6));
    TU_OK(bx);
    assert_int_equal(bx->stride[0], 0);
    check_matmul(a, bx, "batched, expanded b");
    bn_tensor *release[] = {a, b, raw, ap, at_raw, bt_raw, at, btt, one, bx};
    for (size_t i = 0; i < sizeof release / sizeof release[0]; i++) bn_tensor_release(release[i]);
}

static void test_forward_transposed_and_strided(void **state)
{
    (void)state;
    int64_t m = 13, k = 21, n = 11;
    bn_tensor *a = tu_randn(30, 2, TU_SHAPE(m, k)), *b = tu_randn(31, 2, TU_SHAPE(k, n));
    bn_tensor *a_raw = tu_randn(32, 2, TU_SHAPE(k, m)), *b_raw = tu_randn(33, 2, TU_SHAPE(n, k));
    bn_tensor *at = bn_transpose(a_raw, 0, 1), *bt = bn_transpose(b_raw, 0, 1);
    TU_OK(at);
    TU_OK(bt);
    assert_false(bn_tensor_is_contiguous(at));
    check_matmul(at, b, "a transposed");
    check_matmul(a, bt, "b transposed");
    check_matmul(at, bt, "both transposed");
    /* Row stride larger than the row: a column block of a wider matrix. */
    bn_tensor *wide = tu_randn(34, 2, TU_SHAPE(m, k + 9));
    bn_tensor *blk = bn_narrow(wide, 1, 4, k);
    TU_OK(blk);
    check_matmul(blk, b, "a narrowed (ld > k)");
    /* Neither rows nor columns unit-stride: must be packed. */
    bn_tensor *big = tu_randn(35, 2, TU_SHAPE(2 * k, 2 * n));
    bn_tensor *s0 = bn_subsample(big, 0, 1, 2), *s1 = s0 ? bn_subsample(s0, 1, 0, 2) : NULL;
    TU_OK(s1);
    assert_int_equal(s1->shape[0], k);
    assert_int_equal(s1->shape[1], n);
    check_matmul(a, s1, "b every other row and column");
    check_matmul(at, s1, "a transposed, b packed");
    /* A broadcast row (stride 0 between rows). */
    bn_tensor *row = tu_randn(36, 2, TU_SHAPE(1, k));
    bn_tensor *rows = bn_expand(row, 2, TU_SHAPE(m, k));
    TU_OK(rows);
    check_matmul(rows, b, "a expanded rows");
    bn_tensor *release[] = {a, b, a_raw, b_raw, at, bt, wide, blk, big, s0, s1, row, rows};
    for (size_t i = 0; i < sizeof release / sizeof release[0]; i++) bn_tensor_release(release[i]);
}

static void test_forward_empty(void **state)
{
    (void)state;
    /* k == 0: the product is all zeros, as in PyTorch. */
    bn_tensor *a = bn_tensor_empty(2, TU_SHAPE(3, 0)), *b = bn_tensor_empty(2, TU_SHAPE(0, 4));
    bn_tensor *c = bn_matmul(a, b);
    TU_OK(c);
    assert_int_equal(c->shape[0], 3);
    assert_int_equal(c->shape[1], 4);
    for (int64_t i = 0; i < 12; i++) assert_true(bn_tensor_get_flat(c, i) == 0.0f);
    bn_tensor_release(c);
    /* m == 0 and batch == 0. */
    bn_tensor *e = bn_tensor_empty(2, TU_SHAPE(0, 5)), *f = TU_RANDN(3, 5, 2);
    c = bn_matmul(e, f);
    TU_OK(c);
    assert_int_equal(c->shape[0], 0);
    assert_int_equal(c->shape[1], 2);
    bn_tensor_release(c);
    bn_tensor *g = bn_tensor_empty(3, TU_SHAPE(0, 2, 3)), *h = bn_tensor_empty(3, TU_SHAPE(0, 3, 4));
    c = bn_matmul(g, h);
    TU_OK(c);
    assert_int_equal(c->ndim, 3);
    assert_int_equal(c->shape[0], 0);
    bn_tensor_release(c);
    bn_tensor *release[] = {a, b, e, f, g, h};
    for (size_t i = 0; i < sizeof release / sizeof release[0]; i++) bn_tensor_release(release[i]);
}

static void test_forward_threads_agree(void **state)
{
    (void)state;
    /* Big enough for OpenBLAS to split; 1 and 2 threads give close results. */
    bn_tensor *a = TU_RANDN(40, 200, 300), *b = TU_RANDN(41, 300, 150);
    int was = bn_get_num_threads();
    bn_set_num_threads(1);
    bn_tensor *c1 = bn_matmul(a, b);
    bn_set_num_threads(2);
    bn_tensor *c2 = bn_matmul(a, b);
    bn_set_num_threads(was);
    TU_OK(c1);
    TU_OK(c2);
    tu_assert_close(c2, c1, 1e-5, 1e-4, "1 vs 2 threads");
    check_matmul(a, b, "200x300x150");
    bn_tensor_release(a);
    bn_tensor_release(b);
    bn_tensor_release(c1);
    bn_tensor_release(c2);
}

/* ---- gradients ---------------------------------------------------------- */

/* ctx bits: 1 = use a^T (input 0 stored transposed), 2 = use b^T. */
static bn_tensor *fn_matmul(bn_tensor **in, void *ctx)
{
    int flags = ctx ? *(int *)ctx : 0;
    bn_tensor *a = (flags & 1) ? bn_transpose(in[0], -1, -2) : bn_tensor_retain(in[0]);
    bn_tensor *b = (flags & 2) ? bn_transpose(in[1], -1, -2) : bn_tensor_retain(in[1]);
    bn_tensor *c = a && b ? bn_matmul(a, b) : NULL;
    bn_tensor_release(a);
    bn_tensor_release(b);
    return c;
}

static void gradcheck_matmul(int na, const int64_t *sa, int nb, const int64_t *sb, int flags, const char *what)
{
    bn_tensor *in[2] = {tu_randn(50, na, sa), tu_randn(51, nb, sb)};
    TU_ST(bn_tensor_set_requires_grad(in[0], true));
    TU_ST(bn_tensor_set_requires_grad(in[1], true));
    tu_gradcheck(fn_matmul, 2, in, &flags, NULL, what);
    bn_tensor_release(in[0]);
    bn_tensor_release(in[1]);
}

static void test_grad_matmul(void **state)
{
    (void)state;
    gradcheck_matmul(2, TU_SHAPE(3, 4), 2, TU_SHAPE(4, 5), 0, "2-D");
    gradcheck_matmul(2, TU_SHAPE(1, 1), 2, TU_SHAPE(1, 1), 0, "1x1");
    gradcheck_matmul(2, TU_SHAPE(7, 9), 2, TU_SHAPE(9, 1), 0, "odd, n = 1");
    gradcheck_matmul(2, TU_SHAPE(4, 3), 2, TU_SHAPE(4, 5), 1, "a^T");
    gradcheck_matmul(2, TU_SHAPE(3, 4), 2, TU_SHAPE(5, 4), 2, "b^T");
    gradcheck_matmul(2, TU_SHAPE(4, 3), 2, TU_SHAPE(5, 4), 3, "a^T b^T");
    gradcheck_matmul(3, TU_SHAPE(2, 3, 4), 3, TU_SHAPE(2, 4, 5), 0, "batched");
    gradcheck_matmul(3, TU_SHAPE(2, 4, 3), 3, TU_SHAPE(2, 5, 4), 3, "batched, transposed");
    gradcheck_matmul(1, TU_SHAPE(6), 2, TU_SHAPE(6, 3), 0, "[k] x [k,n]");
    gradcheck_matmul(2, TU_SHAPE(4, 6), 1, TU_SHAPE(6), 0, "[m,k] x [k]");
    gradcheck_matmul(1, TU_SHAPE(6), 1, TU_SHAPE(6), 0, "dot");
}

static void test_grad_one_side(void **state)
{
    (void)state;
    /* Only one input requires grad: the other gets none, and its partner
     * is not needed (not saved). */
    bn_tensor *a = TU_RANDN(60, 3, 4), *b = TU_RANDN(61, 4, 2);
    TU_ST(bn_tensor_set_requires_grad(b, true));
    bn_tensor *in[2] = {a, b};
    tu_gradcheck(fn_matmul, 2, in, NULL, NULL, "only b");
    assert_null(a->grad);
    bn_tensor_zero_grad(b);
    TU_ST(bn_tensor_set_requires_grad(b, false));
    TU_ST(bn_tensor_set_requires_grad(a, true));
    tu_gradcheck(fn_matmul, 2, in, NULL, NULL, "only a");
    assert_null(b->grad);
    bn_tensor_release(a);
    bn_tensor_release(b);
}

/* A non-contiguous incoming gradient: cat hands matmul a narrowed slice. */
static bn_tensor *fn_matmul_then_cat(bn_tensor **in, void *ctx)
{
    (void)ctx;
    bn_tensor *c = bn_matmul(in[0], in[1]);
    if (!c) return NULL;
    bn_tensor *parts[2] = {c, in[2]};
    bn_tensor *out = bn_cat(2, parts, 1);
    bn_tensor_release(c);
    return out;
}

static void test_grad_strided_gout(void **state)
{
    (void)state;
    bn_tensor *in[3] = {TU_RANDN(70, 5, 3), TU_RANDN(71, 3, 4), TU_RANDN(72, 5, 2)};
    for (int i = 0; i < 3; i++) TU_ST(bn_tensor_set_requires_grad(in[i], true));
    tu_gradcheck(fn_matmul_then_cat, 3, in, NULL, NULL, "matmul then cat");
    for (int i = 0; i < 3; i++) bn_tensor_release(in[i]);
}

static void test_no_grad_records_nothing(void **state)
{
    (void)state;
    bn_tensor *a = TU_RANDN(80, 3, 4), *b = TU_RANDN(81, 4, 5);
    TU_ST(bn_tensor_set_requires_grad(a, true));
    bool was = bn_set_grad_enabled(false);
    bn_tensor *c = bn_matmul(a, b);
    bn_set_grad_enabled(was);
    TU_OK(c);
    assert_false(c->requires_grad);
    assert_null(c->grad_fn);
    bn_tensor_release(c);
    c = bn_matmul(a, b);
    TU_OK(c);
    assert_true(c->requires_grad);
    assert_non_null(c->grad_fn);
    bn_tensor_release(c);
    bn_tensor_release(a);
    bn_tensor_release(b);
}

/* ---- linear ------------------------------------------------------------- */

static void check_linear(bn_tensor *x, bn_tensor *w, bn_tensor *b, const char *what)
{
    bn_tensor *y = bn_linear(x, w, b);
    TU_OK(y);
    int64_t nn = x->shape[0], in = x->shape[1], out = w->shape[0];
    assert_int_equal(y->ndim, 2);
    assert_int_equal(y->shape[0], nn);
    assert_int_equal(y->shape[1], out);
    float *xv = read_all(x), *wv = read_all(w), *yv = read_all(y), *bv = b ? read_all(b) : NULL;
    float *want = malloc((size_t)(nn * out + 1) * sizeof(float));
    for (int64_t i = 0; i < nn; i++)
        for (int64_t j = 0; j < out; j++) {
            double s = bv ? bv[j] : 0;
            for (int64_t p = 0; p < in; p++) s += (double)xv[i * in + p] * wv[j * in + p];
            want[i * out + j] = (float)s;
        }
    tu_assert_close_array(yv, want, nn * out, 1e-4, 1e-5 * (double)(in + 1), what);
    free(xv);
    free(wv);
    free(yv);
    free(bv);
    free(want);
    bn_tensor_release(y);
}

static void test_linear_forward(void **state)
{
    (void)state;
    bn_tensor *x = TU_RANDN(90, 9, 13), *w = TU_RANDN(91, 5, 13), *b = TU_RANDN(92, 5);
    check_linear(x, w, b, "linear with bias");
    check_linear(x, w, NULL, "linear without bias");
    /* w given as a transposed view of an [in x out] matrix, x as a column
     * block of a wider batch, b strided. */
    bn_tensor *w_raw = TU_RANDN(93, 13, 5), *wt = bn_transpose(w_raw, 0, 1);
    bn_tensor *x_wide = TU_RANDN(94, 9, 20), *xn = bn_narrow(x_wide, 1, 3, 13);
    bn_tensor *b_long = TU_RANDN(95, 10), *bs = bn_subsample(b_long, 0, 0, 2);
    TU_OK(wt);
    TU_OK(xn);
    TU_OK(bs);
    check_linear(xn, wt, bs, "linear, strided everything");
    /* Odd sizes, including one output and one input feature. */
    bn_tensor *x1 = TU_RANDN(96, 1, 1), *w1 = TU_RANDN(97, 1, 1), *b1 = TU_RANDN(98, 1);
    check_linear(x1, w1, b1, "linear 1x1");
    bn_tensor *x2 = TU_RANDN(99, 130, 64), *w2 = TU_RANDN(100, 10, 64), *b2 = TU_RANDN(101, 10);
    check_linear(x2, w2, b2, "linear 130x64 -> 10");
    bn_tensor *release[] = {x, w, b, w_raw, wt, x_wide, xn, b_long, bs, x1, w1, b1, x2, w2, b2};
    for (size_t i = 0; i < sizeof release / sizeof release[0]; i++) bn_tensor_release(release[i]);
}

/* No input features: y is the bias in every row, and dw is empty. */
static void test_linear_no_features(void **state)
{
    (void)state;
    bn_tensor *x = bn_tensor_empty(2, TU_SHAPE(3, 0)), *w = bn_tensor_empty(2, TU_SHAPE(2, 0));
    bn_tensor *b = bn_tensor_from_array(1, TU_SHAPE(2), (const float[]){1.5f, -2.0f});
    TU_ST(bn_tensor_set_requires_grad(b, true));
    bn_tensor *y = bn_linear(x, w, b);
    TU_OK(y);
    for (int i = 0; i < 3; i++) {
        assert_true(bn_tensor_get(y, TU_SHAPE(i, 0)) == 1.5f);
        assert_true(bn_tensor_get(y, TU_SHAPE(i, 1)) == -2.0f);
    }
    bn_tensor *g = bn_tensor_ones(2, TU_SHAPE(3, 2));
    TU_ST(bn_backward(y, g, false));
    assert_true(bn_tensor_get_flat(b->grad, 0) == 3.0f);
    bn_tensor *release[] = {x, w, b, y, g};
    for (size_t i = 0; i < sizeof release / sizeof release[0]; i++) bn_tensor_release(release[i]);
}

static bn_tensor *fn_linear(bn_tensor **in, void *ctx)
{
    bool wt = ctx && *(int *)ctx;
    if (!wt) return bn_linear(in[0], in[1], in[2]);
    bn_tensor *w = bn_transpose(in[1], 0, 1);
    bn_tensor *y = w ? bn_linear(in[0], w, in[2]) : NULL;
    bn_tensor_release(w);
    return y;
}

static void test_linear_grad(void **state)
{
    (void)state;
    bn_tensor *in[3] = {TU_RANDN(110, 6, 5), TU_RANDN(111, 4, 5), TU_RANDN(112, 4)};
    for (int i = 0; i < 3; i++) TU_ST(bn_tensor_set_requires_grad(in[i], true));
    tu_gradcheck(fn_linear, 3, in, NULL, NULL, "linear x, w, b");
    bn_tensor *nob[3] = {in[0], in[1], NULL};
    tu_gradcheck(fn_linear, 3, nob, NULL, NULL, "linear without bias");
    /* w stored as [in x out] and transposed inside: backward writes a
     * gradient of the stored shape. */
    bn_tensor *w_t = TU_RANDN(113, 5, 4);
    TU_ST(bn_tensor_set_requires_grad(w_t, true));
    bn_tensor *tin[3] = {in[0], w_t, in[2]};
    int flag = 1;
    tu_gradcheck(fn_linear, 3, tin, &flag, NULL, "linear with w^T view");
    /* Bias alone requires grad: its gradient is the column sums. */
    bn_tensor *x = TU_RANDN(114, 7, 3), *w = TU_RANDN(115, 2, 3), *b = TU_RANDN(116, 2);
    TU_ST(bn_tensor_set_requires_grad(b, true));
    bn_tensor *y = bn_linear(x, w, b);
    TU_OK(y);
    bn_tensor *g = TU_RANDN(117, 7, 2);
    TU_ST(bn_backward(y, g, false));
    assert_non_null(b->grad);
    for (int j = 0; j < 2; j++) {
        double s = 0;
        for (int i = 0; i < 7; i++) s += bn_tensor_get(g, TU_SHAPE(i, j));
        assert_float_equal(bn_tensor_get_flat(b->grad, j), s, 1e-5);
    }
    bn_tensor *release[] = {in[0], in[1], in[2], w_t, x, w, b, y, g};
    for (size_t i = 0; i < sizeof release / sizeof release[0]; i++) bn_tensor_release(release[i]);
}

/* ---- errors ------------------------------------------------------------- */

static void test_errors(void **state)
{
    (void)state;
    bn_tensor *a34 = TU_RANDN(1, 3, 4), *b56 = TU_RANDN(2, 5, 6), *v5 = TU_RANDN(3, 5), *s = bn_tensor_scalar(1);
    bn_tensor *t234 = TU_RANDN(4, 2, 3, 4), *t345 = TU_RANDN(5, 3, 4, 5), *t2 = TU_RANDN(6, 2, 4, 5);
    bn_tensor *c_ok, *b45 = TU_RANDN(7, 4, 5), *t4d = bn_tensor_zeros(4, TU_SHAPE(1, 2, 3, 4));
    TU_FAILS(bn_matmul(a34, b56), BN_ESHAPE, "matmul: a [3 x 4] and b [5 x 6]: inner sizes 4 and 5 differ");
    TU_FAILS(bn_matmul(a34, v5), BN_ESHAPE, "inner sizes 4 and 5 differ");
    TU_FAILS(bn_matmul(v5, a34), BN_ESHAPE, "inner sizes 5 and 3 differ");
    TU_FAILS(bn_matmul(t234, t345), BN_ESHAPE, "batch sizes 2 and 3 differ");
    c_ok = bn_matmul(t234, t2); /* the same batch is fine */
    TU_OK(c_ok);
    bn_tensor_release(c_ok);
    bn_tensor *t3 = TU_RANDN(8, 2, 5, 5);
    TU_FAILS(bn_matmul(t234, t3), BN_ESHAPE, "matmul: a [2 x 3 x 4] and b [2 x 5 x 5]: inner sizes 4 and 5 differ");
    TU_FAILS(bn_matmul(t234, b45), BN_ESHAPE, "got 3-D x 2-D");
    TU_FAILS(bn_matmul(t4d, t4d), BN_ESHAPE, "got 4-D x 4-D");
    TU_FAILS(bn_matmul(s, a34), BN_ESHAPE, "0-d");
    TU_FAILS(bn_matmul(NULL, a34), BN_EARG, "matmul: a expected a tensor, got NULL");
    TU_FAILS(bn_matmul(a34, NULL), BN_EARG, "matmul: b expected a tensor, got NULL");

    bn_tensor *x = TU_RANDN(9, 6, 4), *w = TU_RANDN(10, 3, 4), *w5 = TU_RANDN(11, 3, 5), *b3 = TU_RANDN(12, 3);
    bn_tensor *b2 = TU_RANDN(13, 2), *b33 = TU_RANDN(14, 3, 3);
    TU_FAILS(bn_linear(x, w5, b3), BN_ESHAPE, "linear: w expected [out x 4] to match x [6 x 4], got [3 x 5]");
    TU_FAILS(bn_linear(x, w, b2), BN_ESHAPE, "linear: b expected [3] to match w [3 x 4], got [2]");
    TU_FAILS(bn_linear(x, w, b33), BN_ESHAPE, "got [3 x 3]");
    TU_FAILS(bn_linear(v5, w, b3), BN_ESHAPE, "linear: x expected 2-D [N x in], got [5]");
    TU_FAILS(bn_linear(x, b3, NULL), BN_ESHAPE, "linear: w expected 2-D [out x in], got [3]");
    TU_FAILS(bn_linear(NULL, w, NULL), BN_EARG, "linear: x expected a tensor");
    TU_FAILS(bn_linear(x, NULL, NULL), BN_EARG, "linear: w expected a tensor");
    bn_tensor *release[] = {a34, b56, v5, s, t234, t345, t2, b45, t4d, t3, x, w, w5, b3, b2, b33};
    for (size_t i = 0; i < sizeof release / sizeof release[0]; i++) bn_tensor_release(release[i]);
}

static void test_out_of_memory(void **state)
{
    (void)state;
    bn_tensor *a = TU_RANDN(1, 64, 64), *b = TU_RANDN(2, 64, 64);
    /* Room for nothing more: the output allocation fails cleanly. */
    bn_mem_set_limit(bn_mem_in_use() + 64);
    TU_FAILS(bn_matmul(a, b), BN_ENOMEM, "out of memory");
    TU_FAILS(bn_linear(a, b, NULL), BN_ENOMEM, "out of memory");
    bn_mem_set_limit(0);
    /* The packing path fails cleanly too: room for the output only. */
    bn_tensor *big = TU_RANDN(3, 128, 128);
    bn_tensor *s0 = bn_subsample(big, 0, 0, 2), *s1 = bn_subsample(s0, 1, 0, 2);
    TU_OK(s1);
    bn_mem_set_limit(bn_mem_in_use() + 64 * 64 * 4);
    TU_FAILS(bn_matmul(s1, b), BN_ENOMEM, "matmul: packing");
    bn_mem_set_limit(0);
    bn_tensor *release[] = {a, b, big, s0, s1};
    for (size_t i = 0; i < sizeof release / sizeof release[0]; i++) bn_tensor_release(release[i]);
}

/* Transposed and row-strided operands go to BLAS through its flags and
 * leading dimensions: with room for the output only, nothing is copied. */
static void test_transposed_views_are_not_copied(void **state)
{
    (void)state;
    bn_tensor *a_raw = TU_RANDN(1, 48, 32), *b_raw = TU_RANDN(2, 64, 48), *wide = TU_RANDN(3, 32, 100);
    bn_tensor *at = bn_transpose(a_raw, 0, 1), *bt = bn_transpose(b_raw, 0, 1), *blk = bn_narrow(wide, 1, 7, 48);
    TU_OK(at);
    TU_OK(bt);
    TU_OK(blk);
    bn_mem_set_limit(bn_mem_in_use() + 32 * 64 * 4);
    bn_tensor *c = bn_matmul(at, bt);
    TU_OK(c);
    bn_tensor_release(c);
    c = bn_matmul(blk, bt);
    TU_OK(c);
    bn_tensor_release(c);
    bn_tensor *b64 = bn_transpose(bt, 0, 1); /* [64 x 48]: linear's w, used as w^T without a copy */
    TU_OK(b64);
    c = bn_linear(blk, b64, NULL);
    TU_OK(c);
    bn_mem_set_limit(0);
    check_matmul(at, bt, "no-copy transposes");
    check_matmul(blk, bt, "no-copy narrowed");
    bn_tensor *release[] = {a_raw, b_raw, wide, at, bt, blk, c, b64};
    for (size_t i = 0; i < sizeof release / sizeof release[0]; i++) bn_tensor_release(release[i]);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_forward_2d_shapes),
        T(test_forward_vectors),
        T(test_forward_batched),
        T(test_forward_transposed_and_strided),
        T(test_forward_empty),
        T(test_forward_threads_agree),
        T(test_grad_matmul),
        T(test_grad_one_side),
        T(test_grad_strided_gout),
        T(test_no_grad_records_nothing),
        T(test_linear_forward),
        T(test_linear_grad),
        T(test_linear_no_features),
        T(test_errors),
        T(test_out_of_memory),
        T(test_transposed_views_are_not_copied),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
