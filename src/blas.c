#include "blas.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "profile.h"

/* From lapack: singular values only (jobz = 'N'), column-major. */
extern void sgesdd_(const char *jobz, const int *m, const int *n, float *a, const int *lda, float *s,
                    float *u, const int *ldu, float *vt, const int *ldvt, float *work, const int *lwork,
                    int *iwork, int *info);

void bn_sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
              int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
    if (m <= 0 || n <= 0) return;
    if (k <= 0) { /* BLAS leaves C untouched by alpha*AB here; scale by beta ourselves */
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) c[i * ldc + j] = beta == 0 ? 0.0f : beta * c[i * ldc + j];
        return;
    }
    if (bn_profile_on) bn_profile_add_flops(2 * m * n * k);
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (blasint)m,
                (blasint)n, (blasint)k, alpha, a, (blasint)lda, b, (blasint)ldb, beta, c, (blasint)ldc);
}

static int num_threads = 0;

void bn_set_num_threads(int n)
{
    if (n < 1) n = 1;
    num_threads = n;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int bn_get_num_threads(void)
{
    if (num_threads == 0) num_threads = omp_get_max_threads();
    return num_threads;
}

const char *bn_blas_version(void)
{
    static char buf[128];
    const char *cfg = openblas_get_config();
    snprintf(buf, sizeof buf, "%s (%s)", cfg ? cfg : "OpenBLAS", openblas_get_corename());
    return buf;
}

bn_status bn_singular_values(const float *a, int64_t m, int64_t n, double *s)
{
    if (m <= 0 || n <= 0) return bn_fail(BN_EARG, "svd: matrix expected non-empty, got %lld x %lld",
                                         (long long)m, (long long)n);
    if (m > 46340 || n > 46340) return bn_fail(BN_EARG, "svd: matrix %lld x %lld too large", (long long)m, (long long)n);
    int M = (int)m, N = (int)n, mn = M < N ? M : N, info = 0, lwork = -1;
    /* Row-major A is column-major A^T: same singular values. */
    float *work_a = malloc((size_t)M * (size_t)N * sizeof(float));
    float *sv = malloc((size_t)mn * sizeof(float));
    int *iwork = malloc((size_t)8 * (size_t)mn * sizeof(int));
    float wq = 0, dummy = 0;
    int one = 1;
    if (!work_a || !sv || !iwork) goto oom;
    memcpy(work_a, a, (size_t)M * (size_t)N * sizeof(float));
    sgesdd_("N", &N, &M, work_a, &N, sv, &dummy, &one, &dummy, &one, &wq, &lwork, iwork, &info);
    lwork = (int)wq + 1;
    float *work = malloc((size_t)lwork * sizeof(float));
    if (!work) goto oom;
    sgesdd_("N", &N, &M, work_a, &N, sv, &dummy, &one, &dummy, &one, work, &lwork, iwork, &info);
    free(work);
    if (info != 0) {
        free(work_a); free(sv); free(iwork);
        return bn_fail(BN_EARG, "svd: LAPACK sgesdd did not converge (info %d)", info);
    }
    for (int i = 0; i < mn; i++) s[i] = sv[i];
    free(work_a); free(sv); free(iwork);
    return BN_OK;
oom:
    free(work_a); free(sv); free(iwork);
    return bn_fail(BN_ENOMEM, "svd: out of memory for a %lld x %lld matrix", (long long)m, (long long)n);
}
