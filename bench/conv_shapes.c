/* conv2d forward and backward throughput on the three 3x3 body shapes of a
 * CIFAR ResNet at batch 128, at 1 and 2 threads (or the counts given as
 * arguments). Prints a Markdown table; the best of several runs is kept.
 * Forward is timed in back-to-back forwards; backward (input, weight and
 * bias gradients, plus the tape's own seed copy and accumulation) in
 * forward+backward steps. GFLOP/s count 2 flops per multiply-add: one
 * conv's worth forward, two (input and weight gradients) backward.
 *
 *   build/bench/conv_shapes [threads...] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "autograd.h"
#include "blas.h"
#include "ops.h"
#include "rng.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static bn_tensor *randn(bn_rng *g, int ndim, const int64_t *shape, bool grad)
{
    bn_tensor *t = bn_tensor_empty(ndim, shape);
    if (!t || bn_rng_normal(g, t, 0.0f, 1.0f) != BN_OK || bn_tensor_set_requires_grad(t, grad) != BN_OK) {
        fprintf(stderr, "conv_shapes: %s\n", bn_last_error());
        exit(1);
    }
    return t;
}

static void die_unless(bool ok)
{
    if (ok) return;
    fprintf(stderr, "conv_shapes: %s\n", bn_last_error());
    exit(1);
}

int main(int argc, char **argv)
{
    static const int64_t shapes[][3] = {{16, 32, 32}, {32, 16, 16}, {64, 8, 8}}; /* channels, H, W */
    const int64_t batch = 128;
    const int reps = 10;
    int threads[8] = {1, 2}, n_threads = 2;
    if (argc > 1) {
        n_threads = 0;
        for (int a = 1; a < argc && n_threads < 8; a++) threads[n_threads++] = atoi(argv[a]);
    }
    bn_rng g;
    bn_rng_init(&g, 1);
    printf("conv2d 3x3, stride 1, pad 1, with bias; %s; best of %d\n\n", bn_blas_version(), reps);
    printf("| input | weight | threads | forward ms | forward GFLOP/s | backward ms | backward GFLOP/s |\n");
    printf("|---|---|---:|---:|---:|---:|---:|\n");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t c = shapes[s][0], h = shapes[s][1], w = shapes[s][2];
        bn_tensor *x = randn(&g, 4, (int64_t[]){batch, c, h, w}, true);
        bn_tensor *wt = randn(&g, 4, (int64_t[]){c, c, 3, 3}, true);
        bn_tensor *b = randn(&g, 1, (int64_t[]){c}, true);
        bn_tensor *gy = randn(&g, 4, (int64_t[]){batch, c, h, w}, false);
        bn_conv2d_opts opts = {1, 1, 1, 1};
        double flops = 2.0 * (double)batch * c * h * w * c * 9;
        for (int t = 0; t < n_threads; t++) {
            bn_set_num_threads(threads[t]);
            double fwd = 1e30, bwd = 1e30;
            for (int r = 0; r < reps + 1; r++) { /* the first run warms up */
                double t0 = now();
                bn_tensor *y = bn_conv2d(x, wt, b, &opts);
                double t1 = now();
                die_unless(y != NULL);
                if (r > 0 && t1 - t0 < fwd) fwd = t1 - t0;
                bn_tensor_release(y);
            }
            for (int r = 0; r < reps + 1; r++) {
                bn_tensor *y = bn_conv2d(x, wt, b, &opts);
                die_unless(y != NULL);
                double t0 = now();
                die_unless(bn_backward(y, gy, false) == BN_OK);
                double t1 = now();
                if (r > 0 && t1 - t0 < bwd) bwd = t1 - t0;
                bn_tensor_release(y);
                bn_tensor_zero_grad(x);
                bn_tensor_zero_grad(wt);
                bn_tensor_zero_grad(b);
            }
            printf("| %s | %s | %d | %.2f | %.1f | %.2f | %.1f |\n", bn_shape_str(x), bn_shape_str(wt),
                   threads[t], 1e3 * fwd, flops / fwd * 1e-9, 1e3 * bwd, 2 * flops / bwd * 1e-9);
        }
        bn_tensor_release(x);
        bn_tensor_release(wt);
        bn_tensor_release(b);
        bn_tensor_release(gy);
    }
    return 0;
}
