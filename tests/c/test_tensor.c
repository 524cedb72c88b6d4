/* Tensors: creation, views and aliasing, refcounts, copy/fill, RNG, printing. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <omp.h>

#include "testutil.h"

static void test_creation(void **state)
{
    (void)state;
    bn_tensor *z = bn_tensor_zeros(3, TU_SHAPE(2, 3, 4));
    TU_OK(z);
    assert_int_equal(bn_tensor_numel(z), 24);
    assert_true(bn_tensor_is_contiguous(z));
    assert_int_equal(z->stride[0], 12);
    assert_int_equal(z->stride[2], 1);
    assert_true((uintptr_t)bn_tensor_data(z) % BN_ALIGN == 0);
    for (int64_t i = 0; i < 24; i++) assert_true(bn_tensor_get_flat(z, i) == 0.0f);
    bn_tensor *f = bn_tensor_full(2, TU_SHAPE(2, 2), 3.5f);
    assert_true(bn_tensor_get_flat(f, 3) == 3.5f);
    bn_tensor *o = bn_tensor_ones(1, TU_SHAPE(5));
    assert_true(bn_tensor_get_flat(o, 4) == 1.0f);
    bn_tensor *s = bn_tensor_scalar(2.0f);
    assert_int_equal(s->ndim, 0);
    assert_int_equal(bn_tensor_numel(s), 1);
    float data[6] = {1, 2, 3, 4, 5, 6};
    bn_tensor *a = bn_tensor_from_array(2, TU_SHAPE(2, 3), data);
    assert_true(bn_tensor_get(a, TU_SHAPE(1, 2)) == 6.0f);
    bn_tensor *e = bn_tensor_empty(2, TU_SHAPE(0, 3));
    TU_OK(e);
    assert_int_equal(bn_tensor_numel(e), 0);
    bn_tensor_release(z);
    bn_tensor_release(f);
    bn_tensor_release(o);
    bn_tensor_release(s);
    bn_tensor_release(a);
    bn_tensor_release(e);
}

static void test_ranges(void **state)
{
    (void)state;
    bn_tensor *a = bn_tensor_arange(0, 5, 1);
    assert_int_equal(bn_tensor_numel(a), 5);
    assert_true(bn_tensor_get_flat(a, 4) == 4.0f);
    bn_tensor *b = bn_tensor_arange(1, 0, -0.25);
    assert_int_equal(bn_tensor_numel(b), 4);
    assert_true(bn_tensor_get_flat(b, 3) == 0.25f);
    bn_tensor *l = bn_tensor_linspace(-1, 1, 5);
    float want_l[5] = {-1, -0.5f, 0, 0.5f, 1};
    tu_assert_close_array(bn_tensor_data(l), want_l, 5, 0, 1e-7, "linspace");
    bn_tensor *g = bn_tensor_logspace(-2, 1, 4, 10);
    float want_g[4] = {0.01f, 0.1f, 1, 10};
    tu_assert_close_array(bn_tensor_data(g), want_g, 4, 1e-6, 0, "logspace");
    bn_tensor *eye = bn_tensor_eye(3, 4);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) assert_true(bn_tensor_get(eye, TU_SHAPE(i, j)) == (i == j ? 1.0f : 0.0f));
    bn_tensor_release(a);
    bn_tensor_release(b);
    bn_tensor_release(l);
    bn_tensor_release(g);
    bn_tensor_release(eye);
}

static void test_creation_errors(void **state)
{
    (void)state;
    TU_FAILS(bn_tensor_empty(2, TU_SHAPE(2, -3)), BN_EARG, "dim 1 expected >= 0, got -3");
    TU_FAILS(bn_tensor_empty(9, TU_SHAPE(1, 1, 1, 1, 1, 1, 1, 1, 1)), BN_EARG, "0 to 8 dimensions");
    TU_FAILS(bn_tensor_empty(3, TU_SHAPE(1 << 20, 1 << 20, 1 << 20)), BN_ENOMEM, "too many elements");
    TU_FAILS(bn_tensor_arange(0, 1, 0), BN_EARG, "step expected non-zero");
    TU_FAILS(bn_tensor_arange(0, 1, -1), BN_EARG, "goes away from end");
    TU_FAILS(bn_tensor_arange(0, NAN, 1), BN_EARG, "finite");
    TU_FAILS(bn_tensor_linspace(0, 1, -2), BN_EARG, "steps expected >= 0");
    TU_FAILS(bn_tensor_logspace(0, 1, 3, -2), BN_EARG, "base expected > 0");
}

static void test_memory_limit_reports_enomem(void **state)
{
    (void)state;
    bn_mem_set_limit(bn_mem_in_use() + 4096);
    TU_FAILS(bn_tensor_empty(1, TU_SHAPE(100000)), BN_ENOMEM, "out of memory");
    bn_tensor *small = bn_tensor_empty(1, TU_SHAPE(100));
    TU_OK(small);
    bn_tensor_release(small);
    bn_mem_set_limit(0);
}

static void test_refcounts_and_memory(void **state)
{
    (void)state;
    int64_t before = bn_mem_in_use();
    bn_tensor *t = bn_tensor_zeros(2, TU_SHAPE(64, 64));
    assert_true(bn_mem_in_use() >= before + 64 * 64 * 4);
    bn_tensor *v = bn_narrow(t, 0, 10, 5);
    TU_OK(v);
    assert_ptr_equal(v->storage, t->storage);
    assert_int_equal(t->storage->refcount, 2);
    bn_tensor_release(t); /* the view keeps the storage alive */
    assert_true(bn_mem_in_use() >= before + 64 * 64 * 4);
    assert_true(bn_tensor_get_flat(v, 0) == 0.0f);
    bn_tensor *r = bn_tensor_retain(v);
    bn_tensor_release(v);
    bn_tensor_release(r);
    assert_int_equal(bn_mem_in_use(), before);
}

/* Freed big buffers are kept for the next allocation of the same size; they
 * are not "in use" and do not count against the memory limit. */
static void test_storage_cache(void **state)
{
    (void)state;
    int64_t limit = bn_mem_cache_limit();
    bn_mem_set_cache_limit(0); /* empty */
    assert_int_equal(bn_mem_cached(), 0);
    bn_mem_set_cache_limit(INT64_C(64) << 20);
    if (bn_mem_cache_limit() == 0) { /* AddressSanitizer build: no cache */
        bn_tensor *t = bn_tensor_ones(1, TU_SHAPE(1 << 18));
        TU_OK(t);
        bn_tensor_release(t);
        assert_int_equal(bn_mem_cached(), 0);
        return;
    }
    int64_t before = bn_mem_in_use();
    bn_tensor *t = bn_tensor_ones(1, TU_SHAPE(1 << 18)); /* 1 MiB */
    TU_OK(t);
    float *buf = t->storage->data;
    bn_tensor_release(t);
    assert_int_equal(bn_mem_in_use(), before);
    assert_int_equal(bn_mem_cached(), 1 << 20);
    /* a different size does not take it; the same size does (zeros: cleared) */
    bn_tensor *other = bn_tensor_zeros(1, TU_SHAPE(1 << 17));
    TU_OK(other);
    assert_ptr_not_equal(other->storage->data, buf);
    bn_tensor *again = bn_tensor_zeros(1, TU_SHAPE(1 << 18));
    TU_OK(again);
    assert_ptr_equal(again->storage->data, buf);
    assert_int_equal(bn_mem_cached(), 0);
    for (int64_t i = 0; i < (1 << 18); i += 4099) assert_true(bn_tensor_data(again)[i] == 0.0f);
    assert_int_equal(bn_mem_in_use(), before + (1 << 20) + (1 << 19));
    /* the limit counts tensors only: cached bytes do not make it fail */
    bn_tensor_release(other);
    bn_mem_set_limit(bn_mem_in_use() + (1 << 19));
    bn_tensor *fits = bn_tensor_empty(1, TU_SHAPE(1 << 17));
    TU_OK(fits);
    TU_FAILS(bn_tensor_empty(1, TU_SHAPE(1 << 18)), BN_ENOMEM, "limit");
    bn_mem_set_limit(0);
    bn_tensor_release(fits);
    bn_tensor_release(again);
    /* bounded: a buffer above the limit is freed, and lowering it evicts */
    bn_mem_set_cache_limit(INT64_C(1) << 20);
    bn_tensor *big = bn_tensor_empty(1, TU_SHAPE(1 << 19)); /* 2 MiB */
    TU_OK(big);
    bn_tensor_release(big);
    assert_true(bn_mem_cached() <= INT64_C(1) << 20);
    bn_mem_set_cache_limit(0);
    assert_int_equal(bn_mem_cached(), 0);
    assert_int_equal(bn_mem_in_use(), before);
    bn_mem_set_cache_limit(limit);
}

static void test_views_share_storage(void **state)
{
    (void)state;
    bn_tensor *t = bn_tensor_arange(0, 24, 1);
    bn_tensor *m = bn_view(t, 3, TU_SHAPE(2, 3, 4));
    TU_OK(m);
    assert_ptr_equal(m->storage, t->storage);
    /* permute: element [i][j][k] of m is [k][i][j] of p */
    bn_tensor *p = bn_permute(m, (const int[]){2, 0, 1});
    TU_OK(p);
    assert_int_equal(p->shape[0], 4);
    assert_true(bn_tensor_get(p, TU_SHAPE(3, 1, 2)) == bn_tensor_get(m, TU_SHAPE(1, 2, 3)));
    assert_false(bn_tensor_is_contiguous(p));
    /* writing through a view is visible in the base */
    bn_tensor *s = bn_select(m, 1, 2); /* [2 x 4] */
    TU_OK(s);
    assert_int_equal(s->ndim, 2);
    TU_ST(bn_tensor_fill(s, -1.0f));
    assert_true(bn_tensor_get_flat(t, 8) == -1.0f);
    assert_true(bn_tensor_get_flat(t, 20) == -1.0f);
    assert_true(bn_tensor_get_flat(t, 7) == 7.0f);
    /* narrow + contiguous copies only when needed */
    bn_tensor *n = bn_narrow(m, 2, 1, 2);
    bn_tensor *c = bn_contiguous(n);
    assert_ptr_not_equal(c->storage, t->storage);
    assert_true(bn_tensor_is_contiguous(c));
    float got[12];
    bn_tensor_read(c, got);
    float want[12] = {1, 2, 5, 6, -1, -1, 13, 14, 17, 18, -1, -1};
    tu_assert_close_array(got, want, 12, 0, 0, "narrow+contiguous");
    bn_tensor *same = bn_contiguous(m);
    assert_ptr_equal(same, m);
    /* transpose twice is the original layout */
    bn_tensor *tt = bn_transpose(m, 0, -1);
    bn_tensor *tt2 = bn_transpose(tt, 0, -1);
    assert_true(bn_tensor_is_contiguous(tt2));
    /* view of a non-viewable layout fails; reshape copies */
    TU_FAILS(bn_view(p, 1, TU_SHAPE(24)), BN_ESHAPE, "not contiguous enough");
    bn_tensor *rs = bn_reshape(p, 2, TU_SHAPE(-1, 6));
    TU_OK(rs);
    assert_int_equal(rs->shape[0], 4);
    assert_true(bn_tensor_get_flat(rs, 1) == bn_tensor_get_flat(p, 1));
    /* a view that splits a dim of a permuted tensor is still a view */
    bn_tensor *split = bn_view(p, 4, TU_SHAPE(2, 2, 2, 3));
    TU_OK(split);
    assert_ptr_equal(split->storage, t->storage);
    assert_true(bn_tensor_get(split, TU_SHAPE(1, 1, 1, 2)) == bn_tensor_get(p, TU_SHAPE(3, 1, 2)));
    bn_tensor *ts[] = {t, m, p, s, n, c, same, tt, tt2, rs, split};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) bn_tensor_release(ts[i]);
}

static void test_expand_and_subsample(void **state)
{
    (void)state;
    bn_tensor *col = bn_tensor_arange(0, 3, 1);
    bn_tensor *c2 = bn_view(col, 2, TU_SHAPE(3, 1));
    bn_tensor *e = bn_expand(c2, 3, TU_SHAPE(2, 3, 4));
    TU_OK(e);
    assert_int_equal(e->stride[0], 0);
    assert_int_equal(e->stride[2], 0);
    assert_true(bn_tensor_get(e, TU_SHAPE(1, 2, 3)) == 2.0f);
    TU_FAILS(bn_expand(c2, 2, TU_SHAPE(2, 4)), BN_ESHAPE, "cannot expand [3 x 1] to [2 x 4]");
    bn_tensor *img = bn_tensor_arange(0, 16, 1);
    bn_tensor *im = bn_view(img, 2, TU_SHAPE(4, 4));
    bn_tensor *sub = bn_subsample(im, 1, 0, 2);
    bn_tensor *sub2 = bn_subsample(sub, 0, 1, 2);
    float got[4];
    bn_tensor_read(sub2, got);
    float want[4] = {4, 6, 12, 14};
    tu_assert_close_array(got, want, 4, 0, 0, "subsample");
    TU_FAILS(bn_subsample(im, 0, 0, 0), BN_EARG, "step expected >= 1");
    bn_tensor *ts[] = {col, c2, e, img, im, sub, sub2};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) bn_tensor_release(ts[i]);
}

static void test_view_errors(void **state)
{
    (void)state;
    bn_tensor *t = bn_tensor_zeros(2, TU_SHAPE(3, 4));
    TU_FAILS(bn_view(t, 2, TU_SHAPE(5, -1)), BN_ESHAPE, "invalid for input [3 x 4]");
    TU_FAILS(bn_view(t, 2, TU_SHAPE(-1, -1)), BN_EARG, "only one size may be -1");
    TU_FAILS(bn_narrow(t, 1, 3, 2), BN_EARG, "within size 4 of dim 1");
    TU_FAILS(bn_narrow(t, 5, 0, 1), BN_EARG, "dim expected in [-2, 1], got 5");
    TU_FAILS(bn_select(t, 0, 3), BN_EARG, "index expected in [0, 3)");
    TU_FAILS(bn_permute(t, (const int[]){0, 0}), BN_EARG, "permutation");
    TU_FAILS(bn_flatten(t, 1, 0), BN_EARG, "start_dim 1 expected <= end_dim 0");
    bn_tensor *f = bn_flatten(t, 0, -1);
    assert_int_equal(f->ndim, 1);
    assert_int_equal(f->shape[0], 12);
    bn_tensor *u = bn_unsqueeze(t, 1);
    assert_int_equal(u->ndim, 3);
    assert_int_equal(u->shape[1], 1);
    bn_tensor *sq = bn_squeeze(u, 1);
    assert_true(bn_shape_equal(sq, t));
    bn_tensor_release(sq);
    bn_tensor_release(u);
    bn_tensor_release(f);
    bn_tensor_release(t);
}

static void test_copy_broadcasts(void **state)
{
    (void)state;
    bn_tensor *dst = bn_tensor_zeros(2, TU_SHAPE(2, 3));
    float row[3] = {1, 2, 3};
    bn_tensor *src = bn_tensor_from_array(1, TU_SHAPE(3), row);
    TU_ST(bn_tensor_copy(dst, src));
    float got[6];
    bn_tensor_read(dst, got);
    float want[6] = {1, 2, 3, 1, 2, 3};
    tu_assert_close_array(got, want, 6, 0, 0, "copy broadcast");
    bn_tensor *bad = bn_tensor_zeros(1, TU_SHAPE(4));
    bn_clear_error();
    assert_int_equal(bn_tensor_copy(dst, bad), BN_ESHAPE);
    assert_non_null(strstr(bn_last_error(), "does not broadcast"));
    /* copying a tensor into its own transpose reads before writing */
    bn_tensor *sq = bn_tensor_arange(0, 4, 1);
    bn_tensor *m = bn_view(sq, 2, TU_SHAPE(2, 2));
    bn_tensor *mt = bn_transpose(m, 0, 1);
    TU_ST(bn_tensor_copy(m, mt));
    float got2[4];
    bn_tensor_read(m, got2);
    float want2[4] = {0, 2, 1, 3};
    tu_assert_close_array(got2, want2, 4, 0, 0, "self-overlapping copy");
    bn_tensor *c = bn_tensor_clone(m);
    assert_ptr_not_equal(c->storage, m->storage);
    bn_tensor *ts[] = {dst, src, bad, sq, m, mt, c};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) bn_tensor_release(ts[i]);
}

static void test_rng_is_reproducible_and_thread_independent(void **state)
{
    (void)state;
    int64_t n = 200001; /* large enough that the fill is split over threads */
    bn_rng g;
    bn_rng_init(&g, 123);
    bn_tensor *a = bn_tensor_empty(1, &n);
    TU_ST(bn_rng_normal(&g, a, 0, 1));
    omp_set_num_threads(1);
    bn_rng_init(&g, 123);
    bn_tensor *b = bn_tensor_empty(1, &n);
    TU_ST(bn_rng_normal(&g, b, 0, 1));
    omp_set_num_threads(2);
    assert_memory_equal(bn_tensor_data(a), bn_tensor_data(b), (size_t)n * sizeof(float));
    /* moments of N(0,1) */
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = bn_tensor_data(a)[i];
        s += v;
        s2 += v * v;
    }
    assert_true(fabs(s / n) < 0.01);
    assert_true(fabs(s2 / n - 1) < 0.02);
    /* uniform in [lo, hi) with the right mean; a second draw differs */
    TU_ST(bn_rng_uniform(&g, a, -2, 2));
    s = 0;
    for (int64_t i = 0; i < n; i++) {
        float v = bn_tensor_data(a)[i];
        assert_true(v >= -2 && v < 2);
        s += v;
    }
    assert_true(fabs(s / n) < 0.02);
    TU_ST(bn_rng_bernoulli(&g, b, 0.25f));
    s = 0;
    for (int64_t i = 0; i < n; i++) s += bn_tensor_data(b)[i];
    assert_true(fabs(s / n - 0.25) < 0.01);
    int64_t perm[1000];
    TU_ST(bn_rng_randperm(&g, 1000, perm));
    int seen[1000] = {0};
    int moved = 0;
    for (int i = 0; i < 1000; i++) {
        assert_true(perm[i] >= 0 && perm[i] < 1000);
        seen[perm[i]]++;
        moved += perm[i] != i;
    }
    for (int i = 0; i < 1000; i++) assert_int_equal(seen[i], 1);
    assert_true(moved > 900);
    bn_clear_error();
    assert_int_equal(bn_rng_bernoulli(&g, b, 1.5f), BN_EARG);
    assert_int_equal(bn_rng_normal(&g, b, 0, -1), BN_EARG);
    bn_tensor_release(a);
    bn_tensor_release(b);
}

static void test_rng_fills_views_in_logical_order(void **state)
{
    (void)state;
    bn_rng g;
    bn_rng_init(&g, 9);
    bn_tensor *flat = bn_tensor_empty(2, TU_SHAPE(4, 3));
    TU_ST(bn_rng_uniform(&g, flat, 0, 1));
    bn_rng_init(&g, 9);
    bn_tensor *base = bn_tensor_zeros(2, TU_SHAPE(3, 4));
    bn_tensor *t = bn_transpose(base, 0, 1);
    TU_ST(bn_rng_uniform(&g, t, 0, 1));
    tu_assert_close(t, flat, 0, 0, "rng into transposed view");
    bn_tensor_release(flat);
    bn_tensor_release(base);
    bn_tensor_release(t);
}

static void test_summary(void **state)
{
    (void)state;
    bn_tensor *t = bn_tensor_arange(0, 1000, 1);
    char buf[512];
    TU_ST(bn_tensor_summary(t, buf, sizeof buf));
    assert_non_null(strstr(buf, "[1000]"));
    assert_non_null(strstr(buf, "min 0"));
    assert_non_null(strstr(buf, "max 999"));
    assert_non_null(strstr(buf, "mean 499.5"));
    assert_non_null(strstr(buf, "..., 998, 999]"));
    bn_tensor_data(t)[3] = NAN;
    TU_ST(bn_tensor_summary(t, buf, sizeof buf));
    assert_non_null(strstr(buf, "(1 NaN/Inf)"));
    char tiny[8];
    TU_ST(bn_tensor_summary(t, tiny, sizeof tiny)); /* truncates, never overflows */
    assert_true(strlen(tiny) < sizeof tiny);
    bn_tensor_release(t);
}

static void test_inplace_on_graph_tensor_is_refused(void **state)
{
    (void)state;
    bn_tensor *w = bn_tensor_ones(1, TU_SHAPE(3));
    TU_ST(bn_tensor_set_requires_grad(w, true));
    bn_clear_error();
    assert_int_equal(bn_tensor_fill(w, 0), BN_ESTATE);
    assert_non_null(strstr(bn_last_error(), "in place"));
    bool was = bn_set_grad_enabled(false); /* what an optimizer does */
    TU_ST(bn_tensor_fill(w, 2));
    bn_set_grad_enabled(was);
    assert_true(bn_tensor_get_flat(w, 0) == 2.0f);
    bn_tensor_release(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_creation),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_creation_errors),
        cmocka_unit_test(test_memory_limit_reports_enomem),
        cmocka_unit_test(test_refcounts_and_memory),
        cmocka_unit_test(test_storage_cache),
        cmocka_unit_test(test_views_share_storage),
        cmocka_unit_test(test_expand_and_subsample),
        cmocka_unit_test(test_view_errors),
        cmocka_unit_test(test_copy_broadcasts),
        cmocka_unit_test(test_rng_is_reproducible_and_thread_independent),
        cmocka_unit_test(test_rng_fills_views_in_logical_order),
        cmocka_unit_test(test_summary),
        cmocka_unit_test(test_inplace_on_graph_tensor_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
