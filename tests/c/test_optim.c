/* bn_sgd_step against a naive double-precision implementation of
 * torch.optim.SGD's rule, over many steps and every option combination;
 * the first-step buffer rule, skipped parameters, strided parameters and
 * buffers, thread-count independence, and every error (with nothing
 * modified when a step fails). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "optim.h"
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

/* ---- the reference: the documented algorithm, in double ---------------------- */

typedef struct ref_param {
    int64_t n;
    double *p, *buf;
    bool has_buf;
} ref_param;

static void ref_init(ref_param *r, const bn_tensor *t)
{
    r->n = bn_tensor_numel(t);
    r->p = malloc((size_t)r->n * sizeof(double));
    r->buf = calloc((size_t)r->n, sizeof(double));
    assert_non_null(r->p);
    assert_non_null(r->buf);
    for (int64_t i = 0; i < r->n; i++) r->p[i] = bn_tensor_get_flat(t, i);
    r->has_buf = false;
}

static void ref_free(ref_param *r)
{
    free(r->p);
    free(r->buf);
}

/* torch.optim.SGD, as its documentation states it. grad may be NULL (skip). */
static void ref_step(ref_param *r, const bn_tensor *grad, const bn_sgd_opts *o)
{
    if (!grad) return;
    for (int64_t i = 0; i < r->n; i++) {
        double g = bn_tensor_get_flat(grad, i);
        if (o->maximize) g = -g;
        if (o->weight_decay != 0) g += o->weight_decay * r->p[i];
        if (o->momentum != 0) {
            if (!r->has_buf) r->buf[i] = g;
            else r->buf[i] = o->momentum * r->buf[i] + (1 - o->dampening) * g;
            g = o->nesterov ? g + o->momentum * r->buf[i] : r->buf[i];
        }
        r->p[i] -= o->lr * g;
    }
    if (o->momentum != 0) r->has_buf = true;
}

static void assert_matches_ref(const bn_tensor *t, const double *want, int64_t n, double rtol, const char *what)
{
    assert_int_equal(bn_tensor_numel(t), n);
    for (int64_t i = 0; i < n; i++) {
        double got = bn_tensor_get_flat(t, i);
        if (!(fabs(got - want[i]) <= 1e-6 + rtol * fabs(want[i])))
            fail_msg("%s: element %lld is %.9g, reference %.9g", what, (long long)i, got, want[i]);
    }
}

/* Sets p->grad to a fresh tensor (its own reference). */
static void set_grad(bn_tensor *p, bn_tensor *g)
{
    bn_tensor_release(p->grad);
    p->grad = g;
}

static bn_tensor *leaf_randn(uint64_t seed, int ndim, const int64_t *shape)
{
    bn_tensor *t = tu_randn(seed, ndim, shape);
    TU_OK(t);
    TU_ST(bn_tensor_set_requires_grad(t, true));
    return t;
}

/* ---- trajectories ------------------------------------------------------------ */

/* Three parameters (one large enough for the threaded path, one that gets no
 * gradient on some steps), STEPS updates with fresh random gradients, each
 * checked against the reference. */
#define STEPS 12
static void run_trajectory(const bn_sgd_opts *o, const char *what)
{
    static const int64_t shapes[3][2] = {{7, 5}, {400, 200}, {1, 13}}; /* 80048 elements: threaded */
    bn_tensor *ps[3], *bufs[3] = {NULL, NULL, NULL};
    ref_param refs[3];
    for (int k = 0; k < 3; k++) {
        ps[k] = leaf_randn(10 + (uint64_t)k, 2, shapes[k]);
        ref_init(&refs[k], ps[k]);
    }
    for (int s = 0; s < STEPS; s++) {
        for (int k = 0; k < 3; k++) {
            /* Parameter 2 gets no gradient on steps 0 and 5: skipped, its
             * buffer neither created nor decayed. */
            bool skip = k == 2 && (s == 0 || s == 5);
            set_grad(ps[k], skip ? NULL : tu_randn(1000 + (uint64_t)(s * 3 + k), 2, shapes[k]));
            ref_step(&refs[k], ps[k]->grad, o);
        }
        TU_ST(bn_sgd_step(3, ps, bufs, o));
        if (s == 0) assert_null(bufs[2]);
        for (int k = 0; k < 3; k++) {
            char msg[128];
            snprintf(msg, sizeof msg, "%s, step %d, param %d", what, s + 1, k);
            assert_matches_ref(ps[k], refs[k].p, refs[k].n, 1e-5, msg);
            if (o->momentum != 0 && refs[k].has_buf) {
                assert_non_null(bufs[k]);
                assert_true(bn_tensor_is_contiguous(bufs[k]));
                assert_matches_ref(bufs[k], refs[k].buf, refs[k].n, 1e-5, msg);
            } else {
                assert_null(bufs[k]);
            }
        }
    }
    for (int k = 0; k < 3; k++) {
        bn_tensor_release(ps[k]);
        bn_tensor_release(bufs[k]);
        ref_free(&refs[k]);
    }
}

static void test_trajectories(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        bn_sgd_opts o;
    } cases[] = {
        {"plain", {.lr = 0.1}},
        {"zero lr", {.lr = 0.0, .momentum = 0.9}},
        {"momentum", {.lr = 0.05, .momentum = 0.9}},
        {"dampening", {.lr = 0.05, .momentum = 0.9, .dampening = 0.5}},
        {"negative dampening", {.lr = 0.05, .momentum = 0.5, .dampening = -0.5}},
        {"nesterov", {.lr = 0.05, .momentum = 0.9, .nesterov = true}},
        {"weight decay", {.lr = 0.1, .weight_decay = 0.05}},
        {"paper (momentum 0.9, wd 1e-4)", {.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-4}},
        {"nesterov + wd", {.lr = 0.05, .momentum = 0.8, .weight_decay = 0.01, .nesterov = true}},
        {"maximize", {.lr = 0.01, .momentum = 0.5, .maximize = true}},
        {"everything", {.lr = 0.03, .momentum = 0.7, .dampening = 0.2, .weight_decay = 0.02, .maximize = true}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_trajectory(&cases[i].o, cases[i].name);
}

/* The first step sets buf = g exactly (no dampening), as PyTorch. */
static void test_first_step_rule(void **state)
{
    (void)state;
    bn_tensor *p = bn_tensor_full(1, TU_SHAPE(4), 1.0f);
    TU_ST(bn_tensor_set_requires_grad(p, true));
    set_grad(p, bn_tensor_full(1, TU_SHAPE(4), 2.0f));
    bn_tensor *buf = NULL;
    bn_sgd_opts o = {.lr = 0.5, .momentum = 0.9, .dampening = 0.9};
    TU_ST(bn_sgd_step(1, &p, &buf, &o));
    assert_non_null(buf);
    assert_float_equal(bn_tensor_get_flat(buf, 0), 2.0f, 0);  /* not 0.1 * 2 */
    assert_float_equal(bn_tensor_get_flat(p, 3), 0.0f, 0);    /* 1 - 0.5 * 2 */
    TU_ST(bn_sgd_step(1, &p, &buf, &o));                      /* now dampened */
    assert_float_equal(bn_tensor_get_flat(buf, 0), 0.9f * 2.0f + 0.1f * 2.0f, 1e-6);
    assert_float_equal(bn_tensor_get_flat(p, 0), -1.0f, 1e-6);
    /* momentum 0: the buffers array may be NULL and is never touched. */
    bn_sgd_opts plain = {.lr = 1.0};
    TU_ST(bn_sgd_step(1, &p, NULL, &plain));
    assert_float_equal(bn_tensor_get_flat(p, 0), -3.0f, 1e-6);
    bn_tensor_release(p);
    bn_tensor_release(buf);
}

/* Transposed parameters, a strided grad-less neighbour and a caller-made
 * transposed buffer: same numbers as the reference. */
static void test_strided(void **state)
{
    (void)state;
    bn_tensor *base = tu_randn(3, 2, TU_SHAPE(6, 4));
    bn_tensor *pt = bn_transpose(base, 0, 1); /* [4 x 6], a leaf view (base needs no grad) */
    TU_OK(pt);
    assert_false(bn_tensor_is_contiguous(pt));
    TU_ST(bn_tensor_set_requires_grad(pt, true));
    bn_tensor *bbase = bn_tensor_zeros(2, TU_SHAPE(6, 4));
    bn_tensor *bt = bn_transpose(bbase, 0, 1);
    bn_tensor *bufs[1] = {bt};
    ref_param r;
    ref_init(&r, pt);
    r.has_buf = true; /* a caller-given buffer counts as existing: zeros */
    bn_sgd_opts o = {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true};
    for (int s = 0; s < 5; s++) {
        set_grad(pt, tu_randn(50 + (uint64_t)s, 2, TU_SHAPE(4, 6)));
        ref_step(&r, pt->grad, &o);
        TU_ST(bn_sgd_step(1, &pt, bufs, &o));
        assert_ptr_equal(bufs[0], bt);
        assert_matches_ref(pt, r.p, r.n, 1e-5, "transposed parameter");
        assert_matches_ref(bt, r.buf, r.n, 1e-5, "transposed buffer");
    }
    /* The update went through to the base tensor's storage. */
    assert_float_equal(bn_tensor_get_flat(base, 1), (float)r.p[6], 1e-6); /* base[0][1] = pt[1][0] */
    ref_free(&r);
    bn_tensor *rel[] = {base, pt, bbase, bt};
    for (int i = 0; i < 4; i++) bn_tensor_release(rel[i]);
}

/* Same bits with 1 thread and with 4, on a step big enough to be threaded. */
static void test_thread_count(void **state)
{
    (void)state;
    int was = bn_get_num_threads();
    int64_t shape[1] = {200003};
    float *out[2];
    for (int run = 0; run < 2; run++) {
        bn_set_num_threads(run == 0 ? 1 : 4);
        bn_tensor *ps[2] = {leaf_randn(7, 1, shape), leaf_randn(8, 1, TU_SHAPE(77777))};
        bn_tensor *bufs[2] = {NULL, NULL};
        bn_sgd_opts o = {.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-4, .nesterov = true};
        for (int s = 0; s < 3; s++) {
            set_grad(ps[0], tu_randn(70 + (uint64_t)s, 1, shape));
            set_grad(ps[1], tu_randn(80 + (uint64_t)s, 1, TU_SHAPE(77777)));
            TU_ST(bn_sgd_step(2, ps, bufs, &o));
        }
        out[run] = malloc((size_t)(shape[0] + 77777) * sizeof(float));
        assert_non_null(out[run]);
        bn_tensor_read(ps[0], out[run]);
        bn_tensor_read(ps[1], out[run] + shape[0]);
        for (int k = 0; k < 2; k++) {
            bn_tensor_release(ps[k]);
            bn_tensor_release(bufs[k]);
        }
    }
    bn_set_num_threads(was);
    assert_memory_equal(out[0], out[1], (size_t)(shape[0] + 77777) * sizeof(float));
    free(out[0]);
    free(out[1]);
}

/* NaN and Inf pass through (divergence studies rely on seeing them). */
static void test_nonfinite_propagates(void **state)
{
    (void)state;
    bn_tensor *p = bn_tensor_full(1, TU_SHAPE(3), 1.0f);
    float g[3] = {NAN, INFINITY, 1.0f};
    set_grad(p, bn_tensor_from_array(1, TU_SHAPE(3), g));
    bn_tensor *buf = NULL;
    bn_sgd_opts o = {.lr = 0.1, .momentum = 0.9};
    TU_ST(bn_sgd_step(1, &p, &buf, &o));
    assert_true(isnan(bn_tensor_get_flat(p, 0)));
    assert_true(isinf(bn_tensor_get_flat(p, 1)));
    assert_float_equal(bn_tensor_get_flat(p, 2), 0.9f, 1e-6);
    bn_tensor_release(p);
    bn_tensor_release(buf);
}

/* ---- errors ------------------------------------------------------------------ */

#define ST_FAILS(expr, st, needle)                                                       \
    do {                                                                                 \
        bn_clear_error();                                                                \
        bn_status s_ = (expr);                                                           \
        assert_int_equal(s_, (st));                                                      \
        if (!strstr(bn_last_error(), (needle)))                                          \
            fail_msg("%s: message '%s' lacks '%s'", #expr, bn_last_error(), (needle));   \
    } while (0)

static void test_option_errors(void **state)
{
    (void)state;
    bn_tensor *p = leaf_randn(1, 1, TU_SHAPE(3));
    set_grad(p, tu_randn(2, 1, TU_SHAPE(3)));
    float before[3];
    bn_tensor_read(p, before);
    bn_tensor *buf = NULL;
    static const struct {
        bn_sgd_opts o;
        const char *needle;
    } bad[] = {
        {{.lr = -0.1}, "sgd_step: lr expected a finite number >= 0, got -0.1"},
        {{.lr = NAN}, "lr expected a finite number >= 0"},
        {{.lr = INFINITY}, "lr expected a finite number >= 0, got inf"},
        {{.lr = 0.1, .momentum = -0.5}, "momentum expected a finite number >= 0, got -0.5"},
        {{.lr = 0.1, .momentum = 0.9, .dampening = NAN}, "dampening expected a finite number"},
        {{.lr = 0.1, .weight_decay = -1e-4}, "weight_decay expected a finite number >= 0, got -0.0001"},
        {{.lr = 0.1, .nesterov = true}, "nesterov requires momentum > 0 and dampening == 0, got momentum 0"},
        {{.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .nesterov = true}, "nesterov requires momentum > 0 and dampening == 0"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ST_FAILS(bn_sgd_step(1, &p, &buf, &bad[i].o), BN_EARG, bad[i].needle);
        ST_FAILS(bn_sgd_check_opts(&bad[i].o), BN_EARG, bad[i].needle);
    }
    ST_FAILS(bn_sgd_step(1, &p, &buf, NULL), BN_EARG, "options expected");
    bn_sgd_opts mom = {.lr = 0.1, .momentum = 0.9};
    ST_FAILS(bn_sgd_step(1, &p, NULL, &mom), BN_EARG, "momentum 0.9 needs momentum_bufs");
    ST_FAILS(bn_sgd_step(-1, &p, &buf, &mom), BN_EARG, "n expected >= 0, got -1");
    bn_tensor *nul = NULL;
    ST_FAILS(bn_sgd_step(1, &nul, &buf, &mom), BN_EARG, "params[0] expected a tensor, got NULL");
    assert_null(buf);
    float after[3];
    bn_tensor_read(p, after);
    assert_memory_equal(before, after, sizeof before);
    /* Nothing to do is fine. */
    TU_ST(bn_sgd_step(0, NULL, NULL, &mom));
    bn_tensor_release(p);
}

/* A bad tensor anywhere in the list fails the step before any parameter
 * changes or any buffer is kept. */
static void test_tensor_errors_change_nothing(void **state)
{
    (void)state;
    bn_tensor *a = leaf_randn(1, 2, TU_SHAPE(2, 3));
    set_grad(a, tu_randn(2, 2, TU_SHAPE(2, 3)));
    float a0[6];
    bn_tensor_read(a, a0);
    bn_sgd_opts o = {.lr = 0.1, .momentum = 0.9};

    /* A buffer of the wrong shape. */
    bn_tensor *b = leaf_randn(3, 1, TU_SHAPE(4));
    set_grad(b, tu_randn(4, 1, TU_SHAPE(4)));
    bn_tensor *wrong = bn_tensor_zeros(1, TU_SHAPE(5));
    bn_tensor *ps[2] = {a, b}, *bufs[2] = {NULL, wrong};
    ST_FAILS(bn_sgd_step(2, ps, bufs, &o), BN_ESHAPE, "momentum_bufs[1] expected shape [4] (its parameter's), got [5]");
    assert_null(bufs[0]);

    /* A grad of the wrong shape (C callers can set one). */
    bufs[1] = NULL;
    set_grad(b, bn_tensor_zeros(1, TU_SHAPE(3)));
    ST_FAILS(bn_sgd_step(2, ps, bufs, &o), BN_ESHAPE, "params[1].grad expected shape [4], got [3]");

    /* The same parameter twice. */
    set_grad(b, tu_randn(4, 1, TU_SHAPE(4)));
    bn_tensor *twice[3] = {a, b, a}, *bufs3[3] = {NULL, NULL, NULL};
    ST_FAILS(bn_sgd_step(3, twice, bufs3, &o), BN_EARG, "params[0] and params[2] share memory");
    /* Two views of one storage that overlap. */
    bn_tensor *vbase = tu_randn(5, 2, TU_SHAPE(2, 3));
    bn_tensor *v1 = bn_narrow(vbase, 1, 0, 2), *v2 = bn_narrow(vbase, 1, 1, 2);
    TU_OK(v1);
    TU_OK(v2);
    TU_ST(bn_tensor_set_requires_grad(v1, true));
    TU_ST(bn_tensor_set_requires_grad(v2, true));
    set_grad(v1, bn_tensor_zeros(2, TU_SHAPE(2, 2)));
    set_grad(v2, bn_tensor_zeros(2, TU_SHAPE(2, 2)));
    bn_tensor *views[2] = {v1, v2}, *vbufs[2] = {NULL, NULL};
    ST_FAILS(bn_sgd_step(2, views, vbufs, &o), BN_EARG, "params[0] and params[1] share memory");
    /* A buffer that is its own parameter. */
    bn_tensor *selfbuf[1] = {b};
    ST_FAILS(bn_sgd_step(1, &b, selfbuf, &o), BN_EARG, "params[0] and momentum_bufs[0] share memory");
    /* A stride-0 (expanded) parameter. */
    bn_tensor *one = bn_tensor_zeros(2, TU_SHAPE(1, 3));
    bn_tensor *ex = bn_expand(one, 2, TU_SHAPE(4, 3));
    TU_OK(ex);
    set_grad(ex, bn_tensor_zeros(2, TU_SHAPE(4, 3)));
    bn_tensor *exbuf = NULL;
    ST_FAILS(bn_sgd_step(1, &ex, &exbuf, &o), BN_EARG, "params[0] [4 x 3] writes some elements more than once");
    /* A non-leaf with a gradient (retain_grad). */
    bn_tensor *w = leaf_randn(9, 1, TU_SHAPE(3));
    bn_tensor *y = bn_mul_scalar(w, 2.0f);
    TU_OK(y);
    assert_non_null(y->grad_fn);
    set_grad(y, bn_tensor_zeros(1, TU_SHAPE(3)));
    bn_tensor *ybuf = NULL;
    ST_FAILS(bn_sgd_step(1, &y, &ybuf, &o), BN_EARG, "params[0] is not a leaf (made by");

    float a1[6];
    bn_tensor_read(a, a1);
    assert_memory_equal(a0, a1, sizeof a0);
    bn_tensor *rel[] = {a, b, wrong, vbase, v1, v2, one, ex, w, y};
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) bn_tensor_release(rel[i]);
}

/* Out of memory while making the second new buffer: the first one is
 * released again, nothing changes, and the step works once memory is back. */
static void test_out_of_memory(void **state)
{
    (void)state;
    bn_tensor *a = leaf_randn(1, 1, TU_SHAPE(1000));
    bn_tensor *b = leaf_randn(2, 1, TU_SHAPE(1000));
    set_grad(a, tu_randn(3, 1, TU_SHAPE(1000)));
    set_grad(b, tu_randn(4, 1, TU_SHAPE(1000)));
    float a0[1000];
    bn_tensor_read(a, a0);
    bn_tensor *ps[2] = {a, b}, *bufs[2] = {NULL, NULL};
    bn_sgd_opts o = {.lr = 0.1, .momentum = 0.9};
    bn_mem_set_limit(bn_mem_in_use() + 6000); /* room for one 4000-byte buffer, not two */
    ST_FAILS(bn_sgd_step(2, ps, bufs, &o), BN_ENOMEM, "");
    assert_null(bufs[0]);
    assert_null(bufs[1]);
    float a1[1000];
    bn_tensor_read(a, a1);
    assert_memory_equal(a0, a1, sizeof a0);
    bn_mem_set_limit(0);
    TU_ST(bn_sgd_step(2, ps, bufs, &o));
    assert_non_null(bufs[0]);
    assert_non_null(bufs[1]);
    bn_tensor *rel[] = {a, b, bufs[0], bufs[1]};
    for (int i = 0; i < 4; i++) bn_tensor_release(rel[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_trajectories, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_step_rule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_strided, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thread_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nonfinite_propagates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_option_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tensor_errors_change_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_memory, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
