/* Whole training steps of a CIFAR ResNet-110 built from the core ops: the
 * tape of a step must not leak (memory and live nodes after 100 steps equal
 * those after 2), and the step must actually train (loss decreases on a
 * fixed batch). Small images keep it fast: the graph is what we test. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define MAX_PARAMS 1024

typedef struct {
    bool use_bn;
    int n_params;
    bn_tensor *params[MAX_PARAMS];
    int n_buffers;
    bn_tensor *buffers[MAX_PARAMS];
} resnet;

static bn_tensor *param(resnet *r, bn_tensor *t)
{
    TU_OK(t);
    TU_ST(bn_tensor_set_requires_grad(t, true));
    r->params[r->n_params++] = t;
    return t;
}

static bn_tensor *conv_weight(resnet *r, int64_t o, int64_t i, int64_t k, uint64_t seed)
{
    bn_tensor *w = tu_randn(seed, 4, TU_SHAPE(o, i, k, k));
    /* Kaiming normal, fan_out */
    bn_tensor *s = bn_mul_scalar(w, sqrtf(2.0f / (float)(o * k * k)));
    bn_tensor_release(w);
    return param(r, s);
}

/* Parameter layout, in creation order, consumed again by forward. */
static void build(resnet *r, int depth, bool use_bn)
{
    memset(r, 0, sizeof *r);
    r->use_bn = use_bn;
    int n = (depth - 2) / 6;
    uint64_t seed = 100;
    int64_t widths[3] = {16, 32, 64};
    conv_weight(r, 16, 3, 3, seed++);
    int64_t in = 16;
    for (int stage = 0; stage < 3; stage++) {
        for (int b = 0; b < n; b++) {
            int64_t out = widths[stage];
            conv_weight(r, out, in, 3, seed++);
            conv_weight(r, out, out, 3, seed++);
            in = out;
        }
    }
    if (use_bn) {
        int layers = 1 + 3 * n * 2;
        for (int l = 0; l < layers; l++) {
            int64_t c = l == 0 ? 16 : widths[(l - 1) / (2 * n)];
            param(r, bn_tensor_ones(1, &c));
            param(r, bn_tensor_zeros(1, &c));
            r->buffers[r->n_buffers++] = bn_tensor_zeros(1, &c);
            r->buffers[r->n_buffers++] = bn_tensor_ones(1, &c);
        }
    }
    bn_tensor *w = tu_randn(seed++, 2, TU_SHAPE(10, 64));
    bn_tensor *ws = bn_mul_scalar(w, 0.125f);
    bn_tensor_release(w);
    param(r, ws);
    param(r, bn_tensor_zeros(1, TU_SHAPE(10)));
}

typedef struct {
    resnet *r;
    int conv_i, bn_i;
} cursor;

static bn_tensor *conv_bn(cursor *c, bn_tensor *x, int stride, bool relu)
{
    bn_conv2d_opts o = {stride, stride, 1, 1};
    bn_tensor *y = bn_conv2d(x, c->r->params[c->conv_i++], NULL, &o);
    TU_OK(y);
    if (c->r->use_bn) {
        int base = c->r->n_params - 2 - 2 * (c->r->n_buffers / 2) + 2 * c->bn_i;
        bn_batch_norm_opts bo = {true, 0.1, 1e-5};
        bn_tensor *z = bn_batch_norm(y, c->r->buffers[2 * c->bn_i], c->r->buffers[2 * c->bn_i + 1],
                                     c->r->params[base], c->r->params[base + 1], &bo);
        TU_OK(z);
        c->bn_i++;
        bn_tensor_release(y);
        y = z;
    }
    if (relu) {
        bn_tensor *z = bn_relu(y);
        bn_tensor_release(y);
        y = z;
    }
    return y;
}

/* Option A shortcut: subsample by 2, zero-pad channels. */
static bn_tensor *shortcut_a(bn_tensor *x, int64_t out_c)
{
    bn_tensor *s1 = bn_subsample(x, 2, 0, 2);
    bn_tensor *s2 = bn_subsample(s1, 3, 0, 2);
    int64_t extra = out_c - x->shape[1];
    int64_t pads[8] = {0, 0, extra / 2, extra - extra / 2, 0, 0, 0, 0};
    bn_tensor *p = bn_pad(s2, pads);
    TU_OK(p);
    bn_tensor_release(s1);
    bn_tensor_release(s2);
    return p;
}

static bn_tensor *forward_loss(resnet *r, int depth, bn_tensor *x, const int64_t *labels)
{
    int n = (depth - 2) / 6;
    cursor c = {r, 0, 0};
    bn_tensor *h = conv_bn(&c, x, 1, true);
    for (int stage = 0; stage < 3; stage++) {
        for (int b = 0; b < n; b++) {
            int stride = (stage > 0 && b == 0) ? 2 : 1;
            bn_tensor *a = conv_bn(&c, h, stride, true);
            bn_tensor *y = conv_bn(&c, a, 1, false);
            bn_tensor *sc = stride == 2 ? shortcut_a(h, y->shape[1]) : bn_tensor_retain(h);
            bn_tensor *s = bn_add(y, sc);
            TU_OK(s);
            bn_tensor *o = bn_relu(s);
            bn_tensor *ts[] = {a, y, sc, s, h};
            for (int i = 0; i < 5; i++) bn_tensor_release(ts[i]);
            h = o;
        }
    }
    bn_tensor *g = bn_adaptive_avg_pool2d(h, 1, 1);
    TU_OK(g);
    bn_tensor *f = bn_flatten(g, 1, -1);
    int np = r->n_params;
    bn_tensor *logits = bn_linear(f, r->params[np - 2], r->params[np - 1]);
    TU_OK(logits);
    bn_tensor *loss = bn_cross_entropy(logits, labels, x->shape[0]);
    TU_OK(loss);
    bn_tensor *ts[] = {h, g, f, logits};
    for (int i = 0; i < 4; i++) bn_tensor_release(ts[i]);
    return loss;
}

static float sgd_step(resnet *r, int depth, bn_tensor *x, const int64_t *labels, float lr)
{
    for (int i = 0; i < r->n_params; i++) bn_tensor_zero_grad(r->params[i]);
    bn_tensor *loss = forward_loss(r, depth, x, labels);
    float value = bn_tensor_data(loss)[0];
    TU_ST(bn_backward(loss, NULL, false));
    bn_tensor_release(loss);
    bool was = bn_set_grad_enabled(false);
    for (int i = 0; i < r->n_params; i++) {
        bn_tensor *p = r->params[i];
        if (!p->grad) fail_msg("parameter %d got no gradient", i);
        float *pv = bn_tensor_data(p), *gv = bn_tensor_data(p->grad);
        for (int64_t k = 0; k < bn_tensor_numel(p); k++) pv[k] -= lr * gv[k];
    }
    bn_set_grad_enabled(was);
    return value;
}

static void free_resnet(resnet *r)
{
    for (int i = 0; i < r->n_params; i++) bn_tensor_release(r->params[i]);
    for (int i = 0; i < r->n_buffers; i++) bn_tensor_release(r->buffers[i]);
}

static void check_no_leak(bool use_bn)
{
    const int depth = 110;
    int64_t nodes0 = bn_nodes_alive(), mem0 = bn_mem_in_use();
    resnet r;
    build(&r, depth, use_bn);
    assert_int_equal(r.n_params, 1 + 108 + (use_bn ? 2 * 109 : 0) + 2);
    bn_tensor *x = TU_RANDN(1, 2, 3, 8, 8);
    int64_t labels[2] = {3, 7};
    int64_t mem_after2 = 0, nodes_after2 = 0;
    float first = 0, last = 0;
    /* The BN net trains for the full 100 steps; the plain one, which must use
     * a vanishing step to stay finite, repeats the same graph shape in 30. */
    int steps = use_bn ? 100 : 30;
    for (int step = 1; step <= steps; step++) {
        /* Without BN a 110-layer net at init has enormous activations (that
         * is the paper's point): only a tiny step keeps it finite. */
        float l = sgd_step(&r, depth, x, labels, use_bn ? 0.01f : 1e-9f);
        if (!isfinite(l)) fail_msg("loss became %g at step %d", l, step);
        if (step == 1) first = l;
        last = l;
        if (step == 2) {
            mem_after2 = bn_mem_in_use();
            nodes_after2 = bn_nodes_alive();
        }
    }
    assert_int_equal(bn_nodes_alive(), nodes_after2);
    assert_int_equal(bn_nodes_alive(), nodes0);
    assert_int_equal(bn_mem_in_use(), mem_after2);
    if (use_bn) assert_true(last < first); /* it trains on a fixed batch */
    (void)first;
    bn_tensor_release(x);
    free_resnet(&r);
    assert_int_equal(bn_mem_in_use(), mem0);
}

static void test_resnet110_bn_step_does_not_leak(void **state)
{
    (void)state;
    check_no_leak(true);
}

static void test_resnet110_plain_step_does_not_leak(void **state)
{
    (void)state;
    check_no_leak(false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resnet110_bn_step_does_not_leak),
        cmocka_unit_test(test_resnet110_plain_step_does_not_leak),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
