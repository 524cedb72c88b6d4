/* The only door to BLAS/LAPACK: nothing else includes cblas.h. Also owns
 * the thread count, which OpenBLAS and our OpenMP kernels share (both run on
 * the same OpenMP runtime, so they never oversubscribe the cores). */
#ifndef BN_BLAS_H
#define BN_BLAS_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

/* C = alpha * op(A) op(B) + beta * C, row-major; op(X) = X^T when tX. */
void bn_sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
              int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

void bn_set_num_threads(int n);
int bn_get_num_threads(void);
/* "OpenBLAS 0.3.21 (Haswell, openmp)". */
const char *bn_blas_version(void);

/* Singular values of a row-major m x n matrix, descending, into s[min(m,n)]. */
bn_status bn_singular_values(const float *a, int64_t m, int64_t n, double *s);

#endif
