/* The tape: accumulation, no_grad, detach, retain_grad, retain_graph, hooks,
 * gradients through views, and that graphs are freed with their tensors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static bn_tensor *leaf(uint64_t seed, int ndim, const int64_t *shape)
{
    bn_tensor *t = tu_randn(seed, ndim, shape);
    TU_ST(bn_tensor_set_requires_grad(t, true));
    return t;
}

/* y = sum(x * x) -> dy/dx = 2x */
static bn_tensor *square_sum(bn_tensor *x)
{
    bn_tensor *sq = bn_mul(x, x);
    bn_tensor *s = bn_sum_all(sq);
    bn_tensor_release(sq);
    return s;
}

static void test_backward_accumulates(void **state)
{
    (void)state;
    bn_tensor *x = leaf(1, 2, TU_SHAPE(3, 4));
    for (int round = 1; round <= 2; round++) {
        bn_tensor *y = square_sum(x);
        TU_OK(y);
        TU_ST(bn_backward(y, NULL, false));
        bn_tensor_release(y);
        for (int i = 0; i < 12; i++)
            assert_float_equal(bn_tensor_data(x->grad)[i], 2.0f * round * bn_tensor_data(x)[i], 1e-5);
    }
    TU_ST(bn_tensor_zero_grad(x));
    assert_null(x->grad);
    bn_tensor_release(x);
}

static void test_no_grad_records_nothing(void **state)
{
    (void)state;
    bn_tensor *x = leaf(2, 1, TU_SHAPE(5));
    int64_t nodes = bn_nodes_alive();
    bool was = bn_set_grad_enabled(false);
    bn_tensor *y = bn_mul(x, x);
    bn_set_grad_enabled(was);
    assert_false(y->requires_grad);
    assert_null(y->grad_fn);
    assert_int_equal(bn_nodes_alive(), nodes);
    bn_clear_error();
    assert_int_equal(bn_backward(y, NULL, false), BN_ESTATE);
    assert_non_null(strstr(bn_last_error(), "does not require grad"));
    bn_tensor_release(y);
    bn_tensor_release(x);
}

static void test_detach_cuts_the_graph(void **state)
{
    (void)state;
    bn_tensor *x = leaf(3, 1, TU_SHAPE(4));
    bn_tensor *y = bn_mul(x, x);
    bn_tensor *d = bn_tensor_detach(y);
    assert_false(d->requires_grad);
    assert_ptr_equal(d->storage, y->storage);
    bn_tensor *z = bn_mul(d, x); /* dz/dx = d = x^2 treated as constant */
    bn_tensor *s = bn_sum_all(z);
    TU_ST(bn_backward(s, NULL, false));
    for (int i = 0; i < 4; i++) {
        float v = bn_tensor_data(x)[i];
        assert_float_equal(bn_tensor_data(x->grad)[i], v * v, 1e-5);
    }
    bn_tensor *ts[] = {x, y, d, z, s};
    for (int i = 0; i < 5; i++) bn_tensor_release(ts[i]);
}

static void test_retain_grad_and_non_scalar_backward(void **state)
{
    (void)state;
    bn_tensor *x = leaf(4, 2, TU_SHAPE(2, 3));
    bn_tensor *h = bn_mul_scalar(x, 3.0f);
    TU_ST(bn_tensor_retain_grad(h));
    bn_tensor *y = bn_tanh(h);
    bn_clear_error();
    assert_int_equal(bn_backward(y, NULL, false), BN_ESTATE);
    assert_non_null(strstr(bn_last_error(), "non-scalar output [2 x 3]"));
    bn_tensor *g = bn_tensor_full(2, TU_SHAPE(2, 3), 0.5f);
    bn_tensor *bad = bn_tensor_ones(1, TU_SHAPE(6));
    assert_int_equal(bn_backward(y, bad, false), BN_ESHAPE);
    TU_ST(bn_backward(y, g, false));
    assert_non_null(h->grad);
    assert_null(y->grad); /* not asked */
    for (int i = 0; i < 6; i++) {
        float t = bn_tensor_data(y)[i];
        float dh = 0.5f * (1 - t * t);
        assert_float_equal(bn_tensor_data(h->grad)[i], dh, 1e-6);
        assert_float_equal(bn_tensor_data(x->grad)[i], 3 * dh, 1e-6);
    }
    bn_tensor *ts[] = {x, h, y, g, bad};
    for (int i = 0; i < 5; i++) bn_tensor_release(ts[i]);
}

static void test_retain_graph(void **state)
{
    (void)state;
    bn_tensor *x = leaf(5, 1, TU_SHAPE(3));
    bn_tensor *y = bn_exp(x);
    bn_tensor *s = bn_sum_all(y);
    TU_ST(bn_backward(s, NULL, true));
    TU_ST(bn_backward(s, NULL, false)); /* allowed: the graph was kept */
    for (int i = 0; i < 3; i++)
        assert_float_equal(bn_tensor_data(x->grad)[i], 2 * expf(bn_tensor_data(x)[i]), 1e-5);
    bn_clear_error();
    assert_int_equal(bn_backward(s, NULL, false), BN_ESTATE);
    assert_non_null(strstr(bn_last_error(), "second time"));
    bn_tensor_release(x);
    bn_tensor_release(y);
    bn_tensor_release(s);
}

typedef struct {
    int calls;
    double sum;
    char name[64];
} hook_log;

static bn_status log_grad(void *ud, const char *name, bn_tensor *grad)
{
    hook_log *l = ud;
    l->calls++;
    snprintf(l->name, sizeof l->name, "%s", name);
    for (int64_t i = 0; i < bn_tensor_numel(grad); i++) l->sum += bn_tensor_get_flat(grad, i);
    return BN_OK;
}

static bn_status log_value(void *ud, const char *name, bn_tensor *value)
{
    return log_grad(ud, name, value);
}

static bn_status refuse(void *ud, const char *name, bn_tensor *grad)
{
    (void)ud;
    (void)grad;
    return bn_fail(BN_EARG, "probe %s refused", name);
}

static void test_tensor_hooks(void **state)
{
    (void)state;
    bn_tensor *x = leaf(6, 1, TU_SHAPE(4));
    hook_log on_x = {0}, on_h = {0};
    TU_ST(bn_tensor_register_hook(x, log_grad, &on_x, NULL));
    bn_tensor *h = bn_mul_scalar(x, 2.0f);
    TU_ST(bn_tensor_register_hook(h, log_grad, &on_h, NULL));
    bn_tensor *s = bn_sum_all(h);
    TU_ST(bn_backward(s, NULL, false));
    assert_int_equal(on_h.calls, 1);
    assert_float_equal(on_h.sum, 4.0, 1e-6); /* d s / d h = 1 each */
    assert_int_equal(on_x.calls, 1);
    assert_float_equal(on_x.sum, 8.0, 1e-6);
    /* a failing hook stops backward with its message */
    bn_tensor *h2 = bn_mul_scalar(x, 2.0f);
    TU_ST(bn_tensor_register_hook(h2, refuse, NULL, NULL));
    bn_tensor *s2 = bn_sum_all(h2);
    bn_clear_error();
    assert_int_equal(bn_backward(s2, NULL, false), BN_EARG);
    assert_non_null(strstr(bn_last_error(), "refused"));
    bn_tensor *ts[] = {x, h, s, h2, s2};
    for (int i = 0; i < 5; i++) bn_tensor_release(ts[i]);
}

/* add and sub hand their output gradient to both inputs without copying;
 * what receives it must still end up with the right, separate values. */
static bn_status keep_grad(void *ud, const char *name, bn_tensor *grad)
{
    (void)name;
    bn_tensor **kept = ud;
    if (!*kept) *kept = bn_tensor_retain(grad);
    return BN_OK;
}

static void test_shared_gradients_are_copied_on_write(void **state)
{
    (void)state;
    bn_tensor *a = leaf(21, 2, TU_SHAPE(4, 8)), *b = leaf(22, 2, TU_SHAPE(4, 8));
    /* leaves: each .grad its own buffer, even from one add */
    bn_tensor *s = bn_add(a, b), *l = bn_sum_all(s);
    TU_ST(bn_backward(l, NULL, false));
    assert_ptr_not_equal(a->grad->storage, b->grad->storage);
    for (int i = 0; i < 32; i++) assert_true(bn_tensor_data(a->grad)[i] == 1.0f && bn_tensor_data(b->grad)[i] == 1.0f);
    bn_tensor_data(a->grad)[0] = 5.0f; /* writing one leaves the other alone */
    assert_true(bn_tensor_data(b->grad)[0] == 1.0f);
    bn_tensor_release(s), bn_tensor_release(l);
    TU_ST(bn_tensor_zero_grad(a));
    TU_ST(bn_tensor_zero_grad(b));

    /* nodes: h = 3a feeds an add twice (t = h + h2, h2 = 2h), so the slots
     * of h and h2 share the add's gradient, then h2's backward adds 2 g into
     * h's: the gradient a hook on h2 kept must not change */
    bn_tensor *h = bn_mul_scalar(a, 3.0f), *h2 = bn_mul_scalar(h, 2.0f);
    bn_tensor *kept = NULL;
    TU_ST(bn_tensor_register_hook(h2, keep_grad, &kept, NULL));
    bn_tensor *t = bn_add(h, h2), *w = bn_mul(t, b), *m = bn_sum_all(w);
    TU_ST(bn_backward(m, NULL, false));
    TU_OK(kept);
    for (int i = 0; i < 32; i++) {
        float bi = bn_tensor_data(b)[i];
        assert_true(bn_tensor_data(kept)[i] == bi);                          /* d m / d h2 = b */
        assert_float_equal(bn_tensor_data(a->grad)[i], 9.0f * bi, 1e-5);     /* 3 (b + 2 b) */
        assert_float_equal(bn_tensor_data(b->grad)[i], 9.0f * bn_tensor_data(a)[i], 1e-4); /* t = 9a */
    }
    bn_tensor *ts[] = {kept, h, h2, t, w, m, a, b};
    for (int i = 0; i < 8; i++) bn_tensor_release(ts[i]);
}

static void free_counter(void *ud) { (*(int *)ud)++; }

static void test_pattern_hooks_see_named_tensors(void **state)
{
    (void)state;
    hook_log fwd = {0}, bwd = {0};
    int id = bn_hooks_add("stage2.*.conv?", log_value, log_grad, &fwd, NULL);
    assert_true(id > 0);
    int id2 = bn_hooks_add("stage2.*", NULL, log_grad, &bwd, NULL);
    bn_tensor *x = leaf(7, 1, TU_SHAPE(3));
    bn_tensor *a = bn_mul_scalar(x, 1.0f), *b = bn_mul_scalar(x, 1.0f);
    TU_ST(bn_tensor_set_name(a, "stage2.block1.conv1"));
    TU_ST(bn_tensor_set_name(b, "stage1.block1.conv1"));
    assert_int_equal(fwd.calls, 1);
    assert_string_equal(fwd.name, "stage2.block1.conv1");
    double value_sum = 0;
    for (int i = 0; i < 3; i++) value_sum += bn_tensor_data(x)[i];
    assert_float_equal(fwd.sum, value_sum, 1e-5);
    bn_tensor *ab = bn_add(a, b);
    bn_tensor *y = bn_mul_scalar(ab, 5.0f);
    bn_tensor *s = bn_sum_all(y);
    TU_ST(bn_backward(s, NULL, false));
    /* the fwd+bwd hook saw a's gradient (5 each) once more; the bwd-only one too */
    assert_int_equal(fwd.calls, 2);
    assert_float_equal(fwd.sum, value_sum + 15.0, 1e-5);
    assert_int_equal(bwd.calls, 1);
    assert_string_equal(bwd.name, "stage2.block1.conv1");
    TU_ST(bn_hooks_remove(id));
    TU_ST(bn_hooks_remove(id2));
    bn_clear_error();
    assert_int_equal(bn_hooks_remove(id), BN_EARG);
    /* free_ud runs on removal */
    int freed = 0;
    int id3 = bn_hooks_add("*", NULL, log_grad, &freed, free_counter);
    TU_ST(bn_hooks_remove(id3));
    assert_int_equal(freed, 1);
    assert_true(bn_glob_match("a*b?c", "axxbyc"));
    assert_false(bn_glob_match("a*b?c", "axxbc"));
    assert_true(bn_glob_match("*", ""));
    bn_tensor *ts[] = {x, a, b, ab, y, s};
    for (int i = 0; i < 6; i++) bn_tensor_release(ts[i]);
}

/* Gradients through every view op: checked by finite differences. */
static bn_tensor *through_views(bn_tensor **in, void *ctx)
{
    (void)ctx;
    bn_tensor *x = in[0]; /* [2 x 3 x 4] */
    bn_tensor *p = bn_permute(x, (const int[]){2, 0, 1});      /* [4 x 2 x 3] */
    bn_tensor *n = bn_narrow(p, 0, 1, 3);                      /* [3 x 2 x 3] */
    bn_tensor *s = bn_select(n, 1, 1);                         /* [3 x 3] */
    bn_tensor *t = bn_transpose(s, 0, 1);                      /* [3 x 3] */
    bn_tensor *r = bn_reshape(t, 2, TU_SHAPE(9, 1));           /* copy */
    bn_tensor *e = bn_expand(r, 2, TU_SHAPE(9, 2));            /* [9 x 2] */
    bn_tensor *sub = bn_subsample(x, 2, 1, 2);                 /* [2 x 3 x 2] */
    bn_tensor *f = bn_flatten(sub, 0, 1);                      /* [6 x 2] */
    bn_tensor *c = bn_tensor_clone(f);
    bn_tensor *sq = bn_mul(e, e);
    bn_tensor *top = bn_narrow(sq, 0, 0, 6);
    bn_tensor *out = bn_add(top, c);
    bn_tensor *ts[] = {p, n, s, t, r, e, sub, f, c, sq, top};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) bn_tensor_release(ts[i]);
    return out;
}

static void test_gradients_through_views(void **state)
{
    (void)state;
    bn_tensor *x = leaf(8, 3, TU_SHAPE(2, 3, 4));
    tu_gradcheck(through_views, 1, &x, NULL, NULL, "views");
    bn_tensor_release(x);
}

static void test_graph_is_freed_with_its_tensors(void **state)
{
    (void)state;
    int64_t nodes = bn_nodes_alive(), mem = bn_mem_in_use();
    bn_tensor *x = leaf(9, 2, TU_SHAPE(16, 16));
    int64_t mem_x = bn_mem_in_use();
    /* A long chain (deeper than any recursion would survive comfortably). */
    bn_tensor *h = bn_tensor_retain(x);
    for (int i = 0; i < 20000; i++) {
        bn_tensor *next = bn_mul_scalar(h, 1.0001f);
        bn_tensor_release(h);
        h = next;
    }
    assert_int_equal(bn_nodes_alive(), nodes + 20000);
    bn_tensor *s = bn_sum_all(h);
    TU_ST(bn_backward(s, NULL, false));
    assert_float_equal(bn_tensor_data(x->grad)[0], powf(1.0001f, 20000), 1e-2);
    bn_tensor_release(s);
    bn_tensor_release(h); /* frees the whole chain, iteratively */
    assert_int_equal(bn_nodes_alive(), nodes);
    /* graphs never backpropagated are freed too */
    for (int step = 0; step < 100; step++) {
        bn_tensor *a = bn_mul(x, x);
        bn_tensor *b = bn_exp(a);
        bn_tensor_release(a);
        bn_tensor_release(b);
    }
    assert_int_equal(bn_nodes_alive(), nodes);
    bn_tensor_release(x);
    assert_int_equal(bn_mem_in_use(), mem);
    (void)mem_x;
}

static void test_saved_tensors_freed_after_backward(void **state)
{
    (void)state;
    bn_tensor *x = leaf(10, 1, TU_SHAPE(1 << 16));
    bn_tensor *y = bn_exp(x); /* saves its output (an alias: no extra memory) */
    bn_tensor *z = bn_mul(y, y); /* saves y twice */
    bn_tensor_release(y);        /* y's buffer is now only held by saved aliases */
    int64_t before = bn_mem_in_use();
    bn_tensor *s = bn_sum_all(z);
    TU_ST(bn_backward(s, NULL, false));
    bn_tensor_zero_grad(x);
    bn_tensor_release(s);
    /* y's storage (256 KiB) is released once mul's and exp's backward ran */
    assert_true(bn_mem_in_use() <= before - (1 << 16) * 4 + 4096);
    bn_tensor_release(z);
    bn_tensor_release(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backward_accumulates),
        cmocka_unit_test(test_no_grad_records_nothing),
        cmocka_unit_test(test_detach_cuts_the_graph),
        cmocka_unit_test(test_retain_grad_and_non_scalar_backward),
        cmocka_unit_test(test_retain_graph),
        cmocka_unit_test(test_tensor_hooks),
        cmocka_unit_test(test_shared_gradients_are_copied_on_write),
        cmocka_unit_test(test_pattern_hooks_see_named_tensors),
        cmocka_unit_test(test_gradients_through_views),
        cmocka_unit_test(test_graph_is_freed_with_its_tensors),
        cmocka_unit_test(test_saved_tensors_freed_after_backward),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
