/* Core throughput: OpenBLAS sgemm on square matrices and on the GEMMs that
 * conv2d's im2col runs per image for the ResNet-CIFAR layers, then conv2d
 * forward and backward on those layers (batch 128, 3x3, pad 1), each at 1
 * and 2 threads. Prints Markdown; bench/run.sh adds machine and date.
 *
 * Every number is the median of BENCH_REPS (default 7, at least 5) timed
 * repetitions after one untimed warm-up; 1- and 2-thread repetitions
 * alternate so that both see the same background load. A repetition of a
 * small GEMM loops it for ~20 ms, so the clock's resolution does not matter.
 *
 * FLOPs: sgemm 2*M*N*K; conv2d forward 2*N*O*C*kh*kw*OH*OW; conv2d backward
 * twice that (input gradient + weight gradient).
 *
 * `core --peak` measures only the sgemm peak (the best of square 1024 and
 * 2048, 1 and 2 threads) and prints it as one line of JSON, for
 * bench/compare.lua's "% of sgemm peak". */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "autograd.h"
#include "blas.h"
#include "ops.h"
#include "rng.h"
#include "tensor.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int reps = 7;

static void die(const char *what)
{
    fprintf(stderr, "bench/core: %s: %s\n", what, bn_last_error());
    exit(1);
}

static bn_tensor *randn(int ndim, const int64_t *shape)
{
    bn_tensor *t = bn_randn(ndim, shape);
    if (!t) die("randn");
    return t;
}

/* ---- machine check ------------------------------------------------------ */

/* Speedup of a trivially parallel loop at 2 threads over 1. On a shared or
 * virtual machine the second core is not always there; this says how far
 * the 2-thread columns can be trusted (2.0 = two free cores). */
static volatile double capacity_sink; /* keeps the loop from being optimized away */

static double parallel_capacity(void)
{
    double t[2][15];
    for (int r = 0; r < 15; r++)
        for (int th = 1; th <= 2; th++) {
            double t0 = now();
#pragma omp parallel num_threads(th)
            {
                double acc = 0;
                for (long i = 0; i < 20000000L / th; i++) acc += (double)i * 1e-9;
#pragma omp critical
                capacity_sink += acc;
            }
            t[th - 1][r] = now() - t0;
        }
    return median(t[0], 15) / median(t[1], 15);
}

/* ---- sgemm -------------------------------------------------------------- */

typedef struct gemm_case {
    const char *name;
    bool ta, tb;
    int64_t m, n, k;
} gemm_case;

/* Seconds per call of C = op(A) op(B) over `calls` calls. */
static double gemm_rep(const gemm_case *c, const float *a, const float *b, float *out, int64_t calls)
{
    int64_t lda = c->ta ? c->m : c->k, ldb = c->tb ? c->k : c->n;
    double t0 = now();
    for (int64_t i = 0; i < calls; i++)
        bn_sgemm(c->ta, c->tb, c->m, c->n, c->k, 1.0f, a, lda, b, ldb, 0.0f, out, c->n);
    return (now() - t0) / (double)calls;
}

static void bench_gemm(void)
{
    /* The conv rows are the per-image GEMMs of src/ops/conv.c for batch
     * 128 ResNet-CIFAR layers (C = O, 3x3, pad 1): forward W[O x K] cols[K x P],
     * weight grad dY[O x P] cols^T, input grad W^T dY[O x P]; K = 9C, P = OH*OW. */
    static const gemm_case cases[] = {
        {"square 512", false, false, 512, 512, 512},
        {"square 1024", false, false, 1024, 1024, 1024},
        {"square 2048", false, false, 2048, 2048, 2048},
        {"conv 16ch 32x32 fwd", false, false, 16, 1024, 144},
        {"conv 16ch 32x32 bwd weight", false, true, 16, 144, 1024},
        {"conv 16ch 32x32 bwd input", true, false, 144, 1024, 16},
        {"conv 32ch 16x16 fwd", false, false, 32, 256, 288},
        {"conv 32ch 16x16 bwd weight", false, true, 32, 288, 256},
        {"conv 32ch 16x16 bwd input", true, false, 288, 256, 32},
        {"conv 64ch 8x8 fwd", false, false, 64, 64, 576},
        {"conv 64ch 8x8 bwd weight", false, true, 64, 576, 64},
        {"conv 64ch 8x8 bwd input", true, false, 576, 64, 64},
    };
    printf("| sgemm | op (A, B: N/T) | M | N | K | GFLOP/s, 1 thread | GFLOP/s, 2 threads |\n");
    printf("|---|---|---:|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const gemm_case *c = &cases[i];
        int64_t sa = c->m * c->k, sb = c->k * c->n, sc = c->m * c->n;
        bn_tensor *a = randn(1, &sa), *b = randn(1, &sb), *out = bn_tensor_zeros(1, &sc);
        if (!out) die("zeros");
        const float *pa = bn_tensor_data(a), *pb = bn_tensor_data(b);
        float *pc = bn_tensor_data(out);
        double flops = 2.0 * (double)c->m * (double)c->n * (double)c->k, gf[2];
        /* Warm-up, which also sizes a repetition to ~20 ms per thread count. */
        int64_t calls[2];
        for (int th = 1; th <= 2; th++) {
            bn_set_num_threads(th);
            int64_t guess = (int64_t)(0.02 * 20e9 / flops) + 1;
            calls[th - 1] = (int64_t)(0.02 / gemm_rep(c, pa, pb, pc, guess)) + 1;
        }
        /* Thread counts alternate within each repetition, so both see the
         * same drift in what else the machine is doing. */
        double *t = malloc(2 * (size_t)reps * sizeof *t);
        if (!t) die("malloc");
        for (int r = 0; r < reps; r++)
            for (int th = 1; th <= 2; th++) {
                bn_set_num_threads(th);
                t[(th - 1) * reps + r] = gemm_rep(c, pa, pb, pc, calls[th - 1]);
            }
        for (int th = 1; th <= 2; th++) gf[th - 1] = flops / median(t + (th - 1) * reps, reps) / 1e9;
        free(t);
        printf("| %s | %s | %lld | %lld | %lld | %.1f | %.1f |\n", c->name,
               c->ta ? (c->tb ? "TT" : "TN") : (c->tb ? "NT" : "NN"), (long long)c->m, (long long)c->n,
               (long long)c->k, gf[0], gf[1]);
        fflush(stdout);
        bn_tensor_release(a);
        bn_tensor_release(b);
        bn_tensor_release(out);
    }
}

/* The sgemm peak: for each thread count, the best median over square 1024
 * and 2048; one line of JSON. */
static void bench_peak(void)
{
    static const gemm_case cases[] = {
        {"square 1024", false, false, 1024, 1024, 1024},
        {"square 2048", false, false, 2048, 2048, 2048},
    };
    double best[2] = {0, 0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const gemm_case *c = &cases[i];
        int64_t sa = c->m * c->k, sb = c->k * c->n, sc = c->m * c->n;
        bn_tensor *a = randn(1, &sa), *b = randn(1, &sb), *out = bn_tensor_zeros(1, &sc);
        if (!out) die("zeros");
        const float *pa = bn_tensor_data(a), *pb = bn_tensor_data(b);
        float *pc = bn_tensor_data(out);
        double flops = 2.0 * (double)c->m * (double)c->n * (double)c->k;
        double *t = malloc(2 * (size_t)reps * sizeof *t);
        if (!t) die("malloc");
        for (int th = 1; th <= 2; th++) { /* warm-up */
            bn_set_num_threads(th);
            gemm_rep(c, pa, pb, pc, 1);
        }
        for (int r = 0; r < reps; r++)
            for (int th = 1; th <= 2; th++) {
                bn_set_num_threads(th);
                t[(th - 1) * reps + r] = gemm_rep(c, pa, pb, pc, 1);
            }
        for (int th = 1; th <= 2; th++) {
            double gf = flops / median(t + (th - 1) * reps, reps) / 1e9;
            if (gf > best[th - 1]) best[th - 1] = gf;
        }
        free(t);
        bn_tensor_release(a);
        bn_tensor_release(b);
        bn_tensor_release(out);
    }
    printf("{\"sgemm_peak_gflops\": {\"1\": %.2f, \"2\": %.2f}, \"reps\": %d, \"blas\": \"%s\"}\n", best[0], best[1],
           reps, bn_blas_version());
}

/* ---- conv2d ------------------------------------------------------------- */

typedef struct conv_case {
    int64_t n, c, hw;
} conv_case;

/* Times one forward and one backward pass (the backward alone, after the
 * forward that records the graph). */
static void conv_rep(bn_tensor *x, bn_tensor *w, bn_tensor *gy, double *fwd, double *bwd)
{
    bn_conv2d_opts o = {1, 1, 1, 1};
    double t0 = now();
    bn_tensor *y = bn_conv2d(x, w, NULL, &o);
    double t1 = now();
    if (!y) die("conv2d");
    if (bn_backward(y, gy, false) != BN_OK) die("conv2d backward");
    double t2 = now();
    bn_tensor_release(y);
    bn_tensor_zero_grad(x);
    bn_tensor_zero_grad(w);
    *fwd = t1 - t0;
    *bwd = t2 - t1;
}

static void bench_conv(void)
{
    static const conv_case cases[] = {{128, 16, 32}, {128, 32, 16}, {128, 64, 8}};
    printf("| conv2d 3x3, pad 1 | GFLOP fwd | fwd GFLOP/s, 1 thread | fwd GFLOP/s, 2 threads "
           "| bwd GFLOP/s, 1 thread | bwd GFLOP/s, 2 threads | fwd ms, 2 threads | bwd ms, 2 threads |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const conv_case *c = &cases[i];
        double flops = 2.0 * (double)c->n * (double)c->c * (double)c->c * 9.0 * (double)(c->hw * c->hw);
        int64_t xs[4] = {c->n, c->c, c->hw, c->hw}, ws[4] = {c->c, c->c, 3, 3};
        bn_tensor *x = randn(4, xs), *w = randn(4, ws);
        bn_tensor *gy = randn(4, xs); /* the output's shape: stride 1, pad 1 */
        /* Inside a network both the activation and the weight want gradients. */
        if (bn_tensor_set_requires_grad(x, true) != BN_OK || bn_tensor_set_requires_grad(w, true) != BN_OK)
            die("requires_grad");
        double *tf = malloc(2 * (size_t)reps * sizeof *tf), *tb = malloc(2 * (size_t)reps * sizeof *tb), d0, d1;
        if (!tf || !tb) die("malloc");
        for (int th = 1; th <= 2; th++) { /* warm-up */
            bn_set_num_threads(th);
            conv_rep(x, w, gy, &d0, &d1);
        }
        for (int r = 0; r < reps; r++) /* thread counts alternate, as for sgemm */
            for (int th = 1; th <= 2; th++) {
                bn_set_num_threads(th);
                conv_rep(x, w, gy, &tf[(th - 1) * reps + r], &tb[(th - 1) * reps + r]);
            }
        double f[2], b[2];
        for (int th = 1; th <= 2; th++) {
            f[th - 1] = median(tf + (th - 1) * reps, reps);
            b[th - 1] = median(tb + (th - 1) * reps, reps);
        }
        free(tf);
        free(tb);
        bn_tensor_release(x);
        bn_tensor_release(w);
        bn_tensor_release(gy);
        printf("| [%lld x %lld x %lld x %lld] * [%lld x %lld x 3 x 3] | %.3f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |\n",
               (long long)c->n, (long long)c->c, (long long)c->hw, (long long)c->hw, (long long)c->c,
               (long long)c->c, flops / 1e9, flops / f[0] / 1e9, flops / f[1] / 1e9, 2 * flops / b[0] / 1e9,
               2 * flops / b[1] / 1e9, f[1] * 1e3, b[1] * 1e3);
        fflush(stdout);
    }
}

int main(int argc, char **argv)
{
    const char *r = getenv("BENCH_REPS");
    if (r) reps = atoi(r);
    if (reps < 5) reps = 5; /* a median of fewer says little */
    bool only_gemm = argc > 1 && strcmp(argv[1], "--gemm") == 0;
    bool only_conv = argc > 1 && strcmp(argv[1], "--conv") == 0;
    bool only_peak = argc > 1 && strcmp(argv[1], "--peak") == 0;
    if (argc > 1 && !only_gemm && !only_conv && !only_peak) {
        fprintf(stderr, "usage: %s [--gemm | --conv | --peak]   (BENCH_REPS=n sets the repetitions, >= 5)\n",
                argv[0]);
        return 2;
    }
    bn_manual_seed(1);
    int threads_before = bn_get_num_threads();
    if (only_peak) {
        bench_peak();
        bn_set_num_threads(threads_before);
        return 0;
    }
    printf("BLAS: %s. Median of %d repetitions after a warm-up.\n\n", bn_blas_version(), reps);
    printf("Parallel capacity before the runs: a trivially parallel loop runs %.2fx faster on 2 threads "
           "than on 1 (2.00 = two free cores).\n\n",
           parallel_capacity());
    if (!only_conv) {
        bench_gemm();
        printf("\n");
    }
    if (!only_gemm) {
        bench_conv();
        printf("\n");
    }
    printf("Parallel capacity after the runs: %.2fx.\n", parallel_capacity());
    bn_set_num_threads(threads_before);
    return 0;
}
