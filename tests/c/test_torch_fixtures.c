/* bnlab's ops against PyTorch: each case loads the inputs and results that
 * tests/fixtures/make_fixtures.py wrote (PyTorch 1.13, float64 references
 * rounded to float32), recomputes forward and backward with bnlab and
 * compares outputs, gradients and BN running statistics.
 *
 * Tolerance: |got - ref| <= 1e-5 + 1e-4 |ref| everywhere. make_fixtures.py
 * prints how much of that allowance float32 PyTorch itself uses on each
 * result (at most about half, on the ResNet blocks' conv weight gradients). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Overridable (-DFIX_RTOL=1e-6 ...) to see how much margin the ops have. */
#ifndef FIX_RTOL
#define FIX_RTOL 1e-4
#endif
#ifndef FIX_ATOL
#define FIX_ATOL 1e-5
#endif

/* ---- helpers ------------------------------------------------------------ */

static bn_tensor *fx(const char *c, const char *name)
{
    char full[256];
    snprintf(full, sizeof full, "%s.%s", c, name);
    return tu_fixture(full);
}

/* A fixture loaded as a leaf that wants a gradient. */
static bn_tensor *param(const char *c, const char *name)
{
    bn_tensor *t = fx(c, name);
    TU_ST(bn_tensor_set_requires_grad(t, true));
    return t;
}

/* Compares `got` (borrowed) with fixture <c>.<name>. */
static void check(const bn_tensor *got, const char *c, const char *name)
{
    char what[256];
    snprintf(what, sizeof what, "%s.%s", c, name);
    if (!got) fail_msg("%s: no result (missing gradient?)", what);
    bn_tensor *want = fx(c, name);
    tu_assert_close(got, want, FIX_RTOL, FIX_ATOL, what);
    bn_tensor_release(want);
}

/* Backward from `out` with the fixture's upstream gradient <c>.dy. */
static void backward(bn_tensor *out, const char *c)
{
    bn_tensor *dy = fx(c, "dy");
    TU_ST(bn_backward(out, dy, false));
    bn_tensor_release(dy);
}

/* Every case must leave no tape nodes and no tensor memory behind. */
typedef struct baseline {
    int64_t nodes, mem;
} baseline;

static baseline start(void) { return (baseline){bn_nodes_alive(), bn_mem_in_use()}; }

static void finish(baseline b, const char *c)
{
    if (bn_nodes_alive() != b.nodes)
        fail_msg("%s: %lld autograd nodes leaked", c, (long long)(bn_nodes_alive() - b.nodes));
    if (bn_mem_in_use() != b.mem)
        fail_msg("%s: %lld bytes of tensor memory leaked", c, (long long)(bn_mem_in_use() - b.mem));
}

/* ---- conv2d ------------------------------------------------------------- */

typedef struct conv_case {
    const char *name;
    bool bias;
    bn_conv2d_opts o;
} conv_case;

static const conv_case conv_cases[] = {
    {"conv2d_basic", true, {1, 1, 0, 0}},  {"conv2d_s2p1", true, {2, 2, 1, 1}},
    {"conv2d_nobias", false, {1, 1, 1, 1}}, {"conv2d_odd", true, {2, 1, 1, 0}},
    {"conv2d_1x1s2", false, {2, 2, 0, 0}},  {"conv2d_k5p2", true, {1, 1, 2, 2}},
};

static void test_conv(void **state)
{
    const conv_case *k = *state;
    baseline b0 = start();
    bn_tensor *x = param(k->name, "x"), *w = param(k->name, "w");
    bn_tensor *b = k->bias ? param(k->name, "b") : NULL;
    bn_tensor *y = bn_conv2d(x, w, b, &k->o);
    TU_OK(y);
    check(y, k->name, "y");
    backward(y, k->name);
    check(x->grad, k->name, "dx");
    check(w->grad, k->name, "dw");
    if (b) check(b->grad, k->name, "db");
    bn_tensor_release(y);
    bn_tensor_release(x);
    bn_tensor_release(w);
    bn_tensor_release(b);
    finish(b0, k->name);
}

/* ---- batch norm --------------------------------------------------------- */

typedef struct bn_case {
    const char *name;
    bool training, affine;
} bn_case;

static const bn_case bn_cases[] = {
    {"bn1d_train", true, true}, {"bn4d_train", true, true}, {"bn4d_train_noaffine", true, false},
    {"bn1d_eval", false, true}, {"bn4d_eval", false, true},
};

static void test_batch_norm(void **state)
{
    const bn_case *k = *state;
    baseline b0 = start();
    bn_tensor *x = param(k->name, "x");
    bn_tensor *w = k->affine ? param(k->name, "weight") : NULL;
    bn_tensor *b = k->affine ? param(k->name, "bias") : NULL;
    bn_tensor *rm = fx(k->name, "running_mean"), *rv = fx(k->name, "running_var");
    bn_batch_norm_opts o = {k->training, 0.1, 1e-5};
    bn_tensor *y = bn_batch_norm(x, rm, rv, w, b, &o);
    TU_OK(y);
    check(y, k->name, "y");
    if (k->training) {
        check(rm, k->name, "running_mean_out");
        check(rv, k->name, "running_var_out");
    } else { /* eval must not touch them */
        check(rm, k->name, "running_mean");
        check(rv, k->name, "running_var");
    }
    backward(y, k->name);
    check(x->grad, k->name, "dx");
    if (k->affine) {
        check(w->grad, k->name, "dweight");
        check(b->grad, k->name, "dbias");
    }
    bn_tensor_release(y);
    bn_tensor_release(x);
    bn_tensor_release(w);
    bn_tensor_release(b);
    bn_tensor_release(rm);
    bn_tensor_release(rv);
    finish(b0, k->name);
}

/* ---- pooling ------------------------------------------------------------ */

typedef enum { POOL_MAX, POOL_AVG, POOL_ADAPTIVE } pool_kind;

typedef struct pool_case {
    const char *name;
    pool_kind kind;
    bn_pool2d_opts o;   /* max / avg */
    int64_t oh, ow;     /* adaptive */
} pool_case;

static const pool_case pool_cases[] = {
    {"maxpool_k2s2", POOL_MAX, {2, 2, 2, 2, 0, 0, true}, 0, 0},
    {"maxpool_k3s2p1", POOL_MAX, {3, 3, 2, 2, 1, 1, true}, 0, 0},
    {"maxpool_k3s1", POOL_MAX, {3, 3, 1, 1, 0, 0, true}, 0, 0},
    {"avgpool_k2s2", POOL_AVG, {2, 2, 2, 2, 0, 0, true}, 0, 0},
    {"avgpool_k3s2p1", POOL_AVG, {3, 3, 2, 2, 1, 1, true}, 0, 0},
    {"avgpool_k3s2p1_nopad", POOL_AVG, {3, 3, 2, 2, 1, 1, false}, 0, 0},
    {"adapt_7to3", POOL_ADAPTIVE, {0}, 3, 3},
    {"adapt_global", POOL_ADAPTIVE, {0}, 1, 1},
    {"adapt_6x10to4x3", POOL_ADAPTIVE, {0}, 4, 3},
};

static void test_pool(void **state)
{
    const pool_case *k = *state;
    baseline b0 = start();
    bn_tensor *x = param(k->name, "x");
    bn_tensor *y = k->kind == POOL_MAX   ? bn_max_pool2d(x, &k->o)
                   : k->kind == POOL_AVG ? bn_avg_pool2d(x, &k->o)
                                         : bn_adaptive_avg_pool2d(x, k->oh, k->ow);
    TU_OK(y);
    check(y, k->name, "y");
    backward(y, k->name);
    check(x->grad, k->name, "dx");
    bn_tensor_release(y);
    bn_tensor_release(x);
    finish(b0, k->name);
}

/* ---- cross entropy ------------------------------------------------------ */

static void test_cross_entropy(void **state)
{
    const char *c = *state;
    baseline b0 = start();
    bn_tensor *z = param(c, "logits"), *lab = fx(c, "labels");
    /* Labels are int64 in the file and float32 once loaded (exact: small
     * integers); PyTorch's are 0-based like the C API's. */
    int64_t n = bn_tensor_numel(lab), k = z->shape[1];
    int64_t *labels = malloc((size_t)n * sizeof *labels);
    for (int64_t i = 0; i < n; i++) {
        float v = bn_tensor_get_flat(lab, i);
        if (v != floorf(v) || v < 0 || v >= (float)k) fail_msg("%s: label %lld is %g", c, (long long)i, v);
        labels[i] = (int64_t)v;
    }
    bn_tensor *loss = bn_cross_entropy(z, labels, n);
    TU_OK(loss);
    check(loss, c, "loss");
    backward(loss, c);
    check(z->grad, c, "dlogits");
    free(labels);
    bn_tensor_release(loss);
    bn_tensor_release(lab);
    bn_tensor_release(z);
    finish(b0, c);
}

/* ---- ResNet basic block ------------------------------------------------- */

typedef struct block_case {
    const char *name;
    int stride;
    bool bn;
} block_case;

static const block_case block_cases[] = {
    {"block_bn", 1, true},
    {"block_nobn", 1, false},
    {"block_down_bn", 2, true},
    {"block_down_nobn", 2, false},
};

/* Swaps *t for f(*t)'s result, releasing the old one (the tape keeps what
 * backward needs). */
static void step(bn_tensor **t, bn_tensor *next)
{
    TU_OK(next);
    bn_tensor_release(*t);
    *t = next;
}

/* relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), as in
 * make_fixtures.py: 3x3 convs without bias, pad 1; the shortcut is the
 * identity or option A (every second pixel, zero channels on both sides). */
static void test_block(void **state)
{
    const block_case *k = *state;
    const char *c = k->name;
    baseline b0 = start();
    bn_tensor *x = param(c, "x"), *w1 = param(c, "conv1_w"), *w2 = param(c, "conv2_w");
    bn_tensor *g1 = NULL, *b1 = NULL, *g2 = NULL, *b2 = NULL, *rm1 = NULL, *rv1 = NULL, *rm2 = NULL,
              *rv2 = NULL;
    int64_t cout = w1->shape[0], cin = x->shape[1];
    if (k->bn) {
        g1 = param(c, "bn1_w");
        b1 = param(c, "bn1_b");
        g2 = param(c, "bn2_w");
        b2 = param(c, "bn2_b");
        rm1 = bn_tensor_zeros(1, &cout); /* PyTorch's initial running stats */
        rv1 = bn_tensor_ones(1, &cout);
        rm2 = bn_tensor_zeros(1, &cout);
        rv2 = bn_tensor_ones(1, &cout);
    }
    bn_conv2d_opts o1 = {k->stride, k->stride, 1, 1}, o2 = {1, 1, 1, 1};
    bn_batch_norm_opts bo = {true, 0.1, 1e-5};

    bn_tensor *h = bn_conv2d(x, w1, NULL, &o1);
    TU_OK(h);
    if (k->bn) step(&h, bn_batch_norm(h, rm1, rv1, g1, b1, &bo));
    step(&h, bn_relu(h));
    step(&h, bn_conv2d(h, w2, NULL, &o2));
    if (k->bn) step(&h, bn_batch_norm(h, rm2, rv2, g2, b2, &bo));

    bn_tensor *sc = bn_tensor_retain(x);
    if (k->stride != 1 || cin != cout) {
        step(&sc, bn_subsample(sc, 2, 0, k->stride));
        step(&sc, bn_subsample(sc, 3, 0, k->stride));
        int64_t extra = (cout - cin) / 2;
        const int64_t pads[8] = {0, 0, extra, extra, 0, 0, 0, 0};
        step(&sc, bn_pad(sc, pads));
    }
    step(&h, bn_add(h, sc));
    step(&h, bn_relu(h));
    bn_tensor_release(sc);

    check(h, c, "y");
    if (k->bn) {
        check(rm1, c, "bn1_rm");
        check(rv1, c, "bn1_rv");
        check(rm2, c, "bn2_rm");
        check(rv2, c, "bn2_rv");
    }
    backward(h, c);
    check(x->grad, c, "dx");
    check(w1->grad, c, "dconv1_w");
    check(w2->grad, c, "dconv2_w");
    if (k->bn) {
        check(g1->grad, c, "dbn1_w");
        check(b1->grad, c, "dbn1_b");
        check(g2->grad, c, "dbn2_w");
        check(b2->grad, c, "dbn2_b");
    }
    bn_tensor *all[] = {h, x, w1, w2, g1, b1, g2, b2, rm1, rv1, rm2, rv2};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) bn_tensor_release(all[i]);
    finish(b0, c);
}

/* ---- registry ----------------------------------------------------------- */

#define N_OF(a) (sizeof(a) / sizeof *(a))
#define MAX_TESTS 64

int main(void)
{
    static struct CMUnitTest tests[MAX_TESTS];
    size_t n = 0;
    /* One named test per case, so a failure says which geometry. */
    for (size_t i = 0; i < N_OF(conv_cases); i++)
        tests[n++] = (struct CMUnitTest){conv_cases[i].name, test_conv, NULL, NULL, (void *)&conv_cases[i]};
    for (size_t i = 0; i < N_OF(bn_cases); i++)
        tests[n++] = (struct CMUnitTest){bn_cases[i].name, test_batch_norm, NULL, NULL, (void *)&bn_cases[i]};
    for (size_t i = 0; i < N_OF(pool_cases); i++)
        tests[n++] = (struct CMUnitTest){pool_cases[i].name, test_pool, NULL, NULL, (void *)&pool_cases[i]};
    static const char *ce_cases[] = {"ce", "ce_large"};
    for (size_t i = 0; i < N_OF(ce_cases); i++)
        tests[n++] = (struct CMUnitTest){ce_cases[i], test_cross_entropy, NULL, NULL, (void *)ce_cases[i]};
    for (size_t i = 0; i < N_OF(block_cases); i++)
        tests[n++] = (struct CMUnitTest){block_cases[i].name, test_block, NULL, NULL, (void *)&block_cases[i]};
    return _cmocka_run_group_tests("torch_fixtures", tests, n, NULL, NULL);
}
