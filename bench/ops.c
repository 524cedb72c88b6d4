/* The memory-bound ops of a ResNet step, timed one by one: the forward and
 * backward of batch_norm, relu and add (a residual sum) on a ResNet-CIFAR
 * activation, and the gradient accumulation, through the public API and the
 * profiler (each row is what `bnlab --profile` would report).
 *
 *   build/bench/ops [--shape N,C,H,W] [--reps R] [--keep K] [--threads T]
 *
 * One repetition is the block  y = relu(add(relu(batch_norm(x)), x))  and a
 * backward from y with a given gradient; x, the BN weight and bias are leaves.
 * --keep K holds the last K repetitions' outputs (and so their graphs'
 * buffers) alive before releasing them, as Lua's collector does, so that new
 * outputs cannot reuse just-freed memory; 0 releases each at once.
 * Prints the median and the minimum over the repetitions of each row's ms
 * per repetition, after one untimed repetition (on a loaded machine the
 * minimum is the steadier of the two). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd.h"
#include "blas.h"
#include "ops.h"
#include "profile.h"
#include "rng.h"
#include "tensor.h"

#define MAX_ROWS 32
#define MAX_KEEP 64

static void die(const char *what)
{
    fprintf(stderr, "bench/ops: %s: %s\n", what, bn_last_error());
    exit(1);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static bn_tensor *block(bn_tensor *x, bn_tensor *w, bn_tensor *b, bn_tensor *rm, bn_tensor *rv, bn_tensor *gy)
{
    bn_batch_norm_opts o = {true, 0.1, 1e-5};
    bn_tensor *h = bn_batch_norm(x, rm, rv, w, b, &o);
    bn_tensor *r = h ? bn_relu(h) : NULL;
    bn_tensor *s = r ? bn_add(r, x) : NULL;
    bn_tensor *y = s ? bn_relu(s) : NULL;
    if (!y) die("forward");
    bn_tensor_release(h);
    bn_tensor_release(r);
    bn_tensor_release(s);
    if (bn_backward(y, gy, false) != BN_OK) die("backward");
    return y;
}

int main(int argc, char **argv)
{
    int64_t shape[4] = {128, 16, 32, 32};
    int reps = 15, keep = 0, threads = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--shape") && i + 1 < argc) {
            long long a, b, c, d;
            if (sscanf(argv[++i], "%lld,%lld,%lld,%lld", &a, &b, &c, &d) != 4) goto usage;
            shape[0] = a, shape[1] = b, shape[2] = c, shape[3] = d;
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--keep") && i + 1 < argc) {
            keep = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else {
            goto usage;
        }
    }
    if (reps < 1 || keep < 0 || keep > MAX_KEEP || threads < 1) goto usage;
    bn_set_num_threads(threads);
    bn_manual_seed(1);
    int64_t c = shape[1];
    bn_tensor *x = bn_randn(4, shape), *gy = bn_randn(4, shape);
    bn_tensor *w = bn_tensor_ones(1, &c), *b = bn_tensor_zeros(1, &c);
    bn_tensor *rm = bn_tensor_zeros(1, &c), *rv = bn_tensor_ones(1, &c);
    if (!x || !gy || !w || !b || !rm || !rv) die("inputs");
    bn_tensor_set_requires_grad(x, true);
    bn_tensor_set_requires_grad(w, true);
    bn_tensor_set_requires_grad(b, true);

    const char *names[MAX_ROWS];
    bool bwd[MAX_ROWS];
    double *ms[MAX_ROWS];
    int n_names = 0;
    bn_tensor *held[MAX_KEEP] = {NULL};
    for (int r = -1; r < reps; r++) {
        bn_tensor_zero_grad(x), bn_tensor_zero_grad(w), bn_tensor_zero_grad(b);
        bn_profile_start();
        bn_tensor *y = block(x, w, b, rm, rv, gy);
        bn_profile_stop();
        if (keep) {
            bn_tensor_release(held[(r + 1) % keep]);
            held[(r + 1) % keep] = y;
        } else {
            bn_tensor_release(y);
        }
        if (r < 0) continue;
        bn_profile_row rows[MAX_ROWS];
        int n = bn_profile_rows(rows, MAX_ROWS, NULL);
        if (n > MAX_ROWS) n = MAX_ROWS;
        for (int k = 0; k < n; k++) {
            int j = 0;
            while (j < n_names && !(strcmp(names[j], rows[k].name) == 0 && bwd[j] == rows[k].backward)) j++;
            if (j == n_names) {
                if (n_names == MAX_ROWS) continue;
                names[j] = rows[k].name, bwd[j] = rows[k].backward;
                ms[j] = calloc((size_t)reps, sizeof(double));
                if (!ms[j]) die("out of memory");
                n_names++;
            }
            ms[j][r] = rows[k].seconds * 1e3;
        }
    }
    printf("| op | median ms per repetition (%d) | min ms |\n|---|---:|---:|\n", reps);
    for (int j = 0; j < n_names; j++) {
        qsort(ms[j], (size_t)reps, sizeof(double), cmp_double);
        printf("| %s%s | %.3f | %.3f |\n", names[j], bwd[j] ? " backward" : "", ms[j][reps / 2], ms[j][0]);
        free(ms[j]);
    }
    for (int k = 0; k < MAX_KEEP; k++) bn_tensor_release(held[k]);
    bn_tensor_release(x), bn_tensor_release(gy), bn_tensor_release(w), bn_tensor_release(b);
    bn_tensor_release(rm), bn_tensor_release(rv);
    return 0;
usage:
    fprintf(stderr, "usage: %s [--shape N,C,H,W] [--reps R] [--keep K (0..%d)] [--threads T]\n", argv[0], MAX_KEEP);
    return 2;
}
