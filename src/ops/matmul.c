/* Matrix products: matmul (2-D, batched 3-D, PyTorch's 1-D vector cases) and
 * linear, forward and backward, all through bn_sgemm.
 *
 * Every operand, in forward and backward, is described as a batch of strided
 * matrices (mat). A mat whose rows or columns are unit-stride goes to BLAS
 * as is, with the transpose flag picked from its layout, so transposed views
 * (w^T in linear, B^T and A^T in backward) cost no copy; anything else is
 * gathered once into a packed buffer. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "autograd.h"
#include "blas.h"
#include "ops.h"
#include "profile.h"
#include "tensor.h"

/* A batch of `batch` matrices rows x cols: element (b, i, j) is at
 * p[b*bs + i*rs + j*cs]. */
typedef struct mat {
    float *p;
    int64_t batch, rows, cols;
    int64_t bs, rs, cs;
} mat;

static mat mat_t(mat m) /* the transposed matrices: same memory, swapped roles */
{
    mat t = m;
    t.rows = m.cols;
    t.cols = m.rows;
    t.rs = m.cs;
    t.cs = m.rs;
    return t;
}

/* The matrices of t: its last two dims, or one of them when the other is a
 * unit dim implied by a 1-D operand (unit_rows: t is a row vector, unit_cols:
 * a column vector), with the first dim as batch when t is 3-D. */
static mat mat_of(const bn_tensor *t, bool unit_rows, bool unit_cols)
{
    mat m = {bn_tensor_data(t), 1, 1, 1, 0, 0, 0};
    int d = 0;
    if (t->ndim == 3) {
        m.batch = t->shape[0];
        m.bs = t->stride[0];
        d = 1;
    }
    if (!unit_rows) {
        m.rows = t->shape[d];
        m.rs = t->stride[d++];
    }
    if (!unit_cols) {
        m.cols = t->shape[d];
        m.cs = t->stride[d];
    }
    return m;
}

/* How BLAS sees a mat: op(X) = X^T when trans, leading dimension ld. */
typedef struct blas_view {
    const float *p;
    bool trans;
    int64_t ld, bs;
} blas_view;

/* The row-major ld for a dim of `n` entries whose stride is `st`, when the
 * other dim is unit-stride (or has one entry); 0 when BLAS cannot read it. A
 * dim with one entry has no stride to respect, any valid ld works. */
static int64_t usable_ld(int64_t n, int64_t st, int64_t other_n)
{
    int64_t need = other_n > 1 ? other_n : 1;
    if (n <= 1) return need;
    return st >= need && st <= INT_MAX ? st : 0;
}

static bool blas_view_of(const mat *m, blas_view *v)
{
    v->p = m->p;
    v->bs = m->bs;
    if (m->cs == 1 || m->cols <= 1) { /* rows are contiguous: row-major as is */
        v->trans = false;
        v->ld = usable_ld(m->rows, m->rs, m->cols);
        if (v->ld) return true;
    }
    if (m->rs == 1 || m->rows <= 1) { /* columns are contiguous: a stored transpose */
        v->trans = true;
        v->ld = usable_ld(m->cols, m->cs, m->rows);
        if (v->ld) return true;
    }
    return false;
}

/* Packs m into a fresh buffer (row-major, batch-major); *hold owns it. */
static bn_status pack(const char *op, const mat *m, blas_view *v, bn_tensor **hold)
{
    int64_t per = m->rows * m->cols, shape = m->batch * per;
    bn_tensor *t = bn_tensor_empty(1, &shape);
    if (!t) {
        bn_error_prefix("%s: packing a strided operand: ", op);
        return bn_last_status();
    }
    float *dst = bn_tensor_data(t);
    const float *src = m->p;
#pragma omp parallel for collapse(2) schedule(static) if (shape > 65536)
    for (int64_t b = 0; b < m->batch; b++)
        for (int64_t i = 0; i < m->rows; i++)
            for (int64_t j = 0; j < m->cols; j++)
                dst[b * per + i * m->cols + j] = src[b * m->bs + i * m->rs + j * m->cs];
    *hold = t;
    v->p = dst;
    v->trans = false;
    v->ld = m->cols > 1 ? m->cols : 1;
    v->bs = per;
    return BN_OK;
}

/* c = a @ b + beta * c for every batch entry. c must have unit-stride rows
 * (the outputs here are always fresh contiguous tensors); a and b may be any
 * strided mats with matching sizes. Batch strides may be 0 (broadcast). */
static bn_status gemm(const char *op, mat c, mat a, mat b, float beta)
{
    blas_view va, vb;
    bn_tensor *ha = NULL, *hb = NULL;
    bn_status st = BN_OK;
    if (!blas_view_of(&a, &va)) st = pack(op, &a, &va, &ha);
    if (st == BN_OK && !blas_view_of(&b, &vb)) st = pack(op, &b, &vb, &hb);
    if (st == BN_OK) {
        int64_t ldc = usable_ld(c.rows, c.rs, c.cols);
        for (int64_t i = 0; i < c.batch; i++)
            bn_sgemm(va.trans, vb.trans, c.rows, c.cols, a.cols, 1.0f, va.p + i * va.bs, va.ld, vb.p + i * vb.bs,
                     vb.ld, beta, c.p + i * c.bs, ldc);
    }
    bn_tensor_release(ha);
    bn_tensor_release(hb);
    return st;
}

/* BLAS takes 32-bit sizes. */
static bool fits_blas(int n, const int64_t *sizes)
{
    for (int i = 0; i < n; i++)
        if (sizes[i] > INT_MAX) return false;
    return true;
}

/* ---- matmul ------------------------------------------------------------- */

/* Node integers: i[0] = a is a 1-D vector, i[1] = b is. Saved: 0 = a, 1 = b. */
static bn_status matmul_backward(bn_node *n, bn_tensor *gout, bn_tensor **gin)
{
    bool av = n->i[0], bv = n->i[1];
    bn_tensor *a = n->saved[0], *b = n->saved[1];
    mat g = mat_of(gout, av, bv);
    if (n->needs[0]) {
        bn_tensor *ga = bn_tensor_empty(n->in_ndim[0], n->in_shape[0]);
        if (!ga) return bn_last_status();
        bn_status st = gemm("matmul", mat_of(ga, av, false), g, mat_t(mat_of(b, false, bv)), 0.0f);
        if (st != BN_OK) {
            bn_tensor_release(ga);
            return st;
        }
        gin[0] = ga;
    }
    if (n->needs[1]) {
        bn_tensor *gb = bn_tensor_empty(n->in_ndim[1], n->in_shape[1]);
        if (!gb) return bn_last_status();
        bn_status st = gemm("matmul", mat_of(gb, false, bv), mat_t(mat_of(a, av, false)), g, 0.0f);
        if (st != BN_OK) {
            bn_tensor_release(gb);
            return st;
        }
        gin[1] = gb;
    }
    return BN_OK;
}

static bn_tensor *bn_matmul_unprofiled(bn_tensor *a, bn_tensor *b)
{
    if (!a || !b)
        return bn_fail_null(BN_EARG, "matmul: %s expected a tensor, got NULL", !a ? "a" : "b");
    const char *sa = bn_shape_str(a), *sb = bn_shape_str(b);
    if (a->ndim == 0 || b->ndim == 0)
        return bn_fail_null(BN_ESHAPE, "matmul: a %s and b %s: both expected at least 1-D, got a 0-d tensor", sa,
                            sb);
    bool batched = a->ndim == 3 && b->ndim == 3;
    if (!batched && (a->ndim > 2 || b->ndim > 2))
        return bn_fail_null(BN_ESHAPE,
                            "matmul: a %s and b %s: expected 1-D or 2-D operands, or 3-D x 3-D batches; got "
                            "%d-D x %d-D",
                            sa, sb, a->ndim, b->ndim);
    bool av = a->ndim == 1, bv = b->ndim == 1;
    int64_t ka = a->shape[a->ndim - 1], kb = b->shape[bv ? 0 : b->ndim - 2];
    if (ka != kb)
        return bn_fail_null(BN_ESHAPE, "matmul: a %s and b %s: inner sizes %lld and %lld differ", sa, sb,
                            (long long)ka, (long long)kb);
    if (batched && a->shape[0] != b->shape[0])
        return bn_fail_null(BN_ESHAPE, "matmul: a %s and b %s: batch sizes %lld and %lld differ", sa, sb,
                            (long long)a->shape[0], (long long)b->shape[0]);
    int64_t m = av ? 1 : a->shape[a->ndim - 2], nn = bv ? 1 : b->shape[b->ndim - 1];
    if (!fits_blas(3, (int64_t[]){m, nn, ka}))
        return bn_fail_null(BN_EARG, "matmul: a %s and b %s: sizes above %d are not supported by BLAS", sa, sb,
                            INT_MAX);

    /* Output shape: batch, then m unless a is a vector, then n unless b is. */
    int64_t shape[3];
    int nd = 0;
    if (batched) shape[nd++] = a->shape[0];
    if (!av) shape[nd++] = m;
    if (!bv) shape[nd++] = nn;
    bn_tensor *out = bn_tensor_empty(nd, shape);
    if (!out) return NULL;
    if (gemm("matmul", mat_of(out, av, bv), mat_of(a, av, false), mat_of(b, false, bv), 0.0f) != BN_OK) {
        bn_tensor_release(out);
        return NULL;
    }
    /* dA needs b and dB needs a: save only what a needed gradient uses. */
    bn_tensor *inputs[2] = {a, b};
    bn_tensor *saved[2] = {b->requires_grad ? a : NULL, a->requires_grad ? b : NULL};
    int64_t iv[2] = {av, bv};
    return bn_record(out, "matmul", matmul_backward, 2, inputs, 2, saved, NULL, 0, iv, 2);
}

bn_tensor *bn_matmul(bn_tensor *a, bn_tensor *b)
{
    BN_PROFILE_BEGIN("matmul", false);
    bn_tensor *out = bn_matmul_unprofiled(a, b);
    BN_PROFILE_END();
    return out;
}

/* ---- linear ------------------------------------------------------------- */

/* Saved: 0 = x, 1 = w. */
static bn_status linear_backward(bn_node *n, bn_tensor *gout, bn_tensor **gin)
{
    bn_tensor *x = n->saved[0], *w = n->saved[1];
    mat g = mat_of(gout, false, false);
    bn_status st = BN_OK;
    if (n->needs[0]) { /* dx = dy w */
        gin[0] = bn_tensor_empty(n->in_ndim[0], n->in_shape[0]);
        st = gin[0] ? gemm("linear", mat_of(gin[0], false, false), g, mat_of(w, false, false), 0.0f)
                    : bn_last_status();
        if (st != BN_OK) return st;
    }
    if (n->needs[1]) { /* dw = dy^T x */
        gin[1] = bn_tensor_empty(n->in_ndim[1], n->in_shape[1]);
        st = gin[1] ? gemm("linear", mat_of(gin[1], false, false), mat_t(g), mat_of(x, false, false), 0.0f)
                    : bn_last_status();
        if (st != BN_OK) return st;
    }
    if (n->needs[2]) { /* db = column sums of dy, in double: N can be large */
        gin[2] = bn_tensor_empty(n->in_ndim[2], n->in_shape[2]);
        if (!gin[2]) return bn_last_status();
        float *db = bn_tensor_data(gin[2]);
#pragma omp parallel for schedule(static) if (g.rows * g.cols > 65536)
        for (int64_t j = 0; j < g.cols; j++) {
            double s = 0;
            for (int64_t i = 0; i < g.rows; i++) s += g.p[i * g.rs + j * g.cs];
            db[j] = (float)s;
        }
    }
    return BN_OK;
}

static bn_tensor *bn_linear_unprofiled(bn_tensor *x, bn_tensor *w, bn_tensor *b)
{
    if (!x || !w) return bn_fail_null(BN_EARG, "linear: %s expected a tensor, got NULL", !x ? "x" : "w");
    if (x->ndim != 2)
        return bn_fail_null(BN_ESHAPE, "linear: x expected 2-D [N x in], got %s", bn_shape_str(x));
    if (w->ndim != 2)
        return bn_fail_null(BN_ESHAPE, "linear: w expected 2-D [out x in], got %s", bn_shape_str(w));
    if (w->shape[1] != x->shape[1])
        return bn_fail_null(BN_ESHAPE, "linear: w expected [out x %lld] to match x %s, got %s",
                            (long long)x->shape[1], bn_shape_str(x), bn_shape_str(w));
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0]))
        return bn_fail_null(BN_ESHAPE, "linear: b expected [%lld] to match w %s, got %s", (long long)w->shape[0],
                            bn_shape_str(w), bn_shape_str(b));
    if (!fits_blas(3, (int64_t[]){x->shape[0], x->shape[1], w->shape[0]}))
        return bn_fail_null(BN_EARG, "linear: x %s and w %s: sizes above %d are not supported by BLAS",
                            bn_shape_str(x), bn_shape_str(w), INT_MAX);

    int64_t shape[2] = {x->shape[0], w->shape[0]};
    bn_tensor *out = bn_tensor_empty(2, shape);
    if (!out) return NULL;
    float beta = 0.0f;
    if (b) { /* start from the bias in every row and let sgemm add x w^T (beta = 1) */
        float *y = bn_tensor_data(out);
        for (int64_t i = 0; i < shape[0]; i++)
            for (int64_t j = 0; j < shape[1]; j++) y[i * shape[1] + j] = b->storage->data[b->offset + j * b->stride[0]];
        beta = 1.0f;
    }
    if (gemm("linear", mat_of(out, false, false), mat_of(x, false, false), mat_t(mat_of(w, false, false)), beta) !=
        BN_OK) {
        bn_tensor_release(out);
        return NULL;
    }
    bn_tensor *inputs[3] = {x, w, b};
    bn_tensor *saved[2] = {w->requires_grad ? x : NULL, x->requires_grad ? w : NULL};
    return bn_record(out, "linear", linear_backward, 3, inputs, 2, saved, NULL, 0, NULL, 0);
}

bn_tensor *bn_linear(bn_tensor *x, bn_tensor *w, bn_tensor *b)
{
    BN_PROFILE_BEGIN("linear", false);
    bn_tensor *out = bn_linear_unprofiled(x, w, b);
    BN_PROFILE_END();
    return out;
}
