/* Elementwise ops: binary with NumPy broadcasting, unary maps, and the
 * accumulate / sum-to-shape helpers that autograd's broadcasting needs.
 * Backward passes are computed with plain loops (no graph is recorded while
 * backward runs), so these ops are differentiable once, not twice. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autograd.h"
#include "ops.h"
#include "profile.h"
#include "strided.h"

/* Above this many elements a loop is worth splitting over threads. */
#define PAR_MIN 32768

/* ---- broadcasting ------------------------------------------------------- */

bn_status bn_broadcast_shape(const char *op, const bn_tensor *a, const bn_tensor *b, int *ndim,
                             int64_t *shape)
{
    int n = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int d = 0; d < n; d++) {
        int da = d - (n - a->ndim), db = d - (n - b->ndim);
        int64_t sa = da >= 0 ? a->shape[da] : 1, sb = db >= 0 ? b->shape[db] : 1;
        if (sa != sb && sa != 1 && sb != 1)
            return bn_fail(BN_ESHAPE, "%s: shapes %s and %s do not broadcast (dim %d: %lld vs %lld)", op,
                           bn_shape_str(a), bn_shape_str(b), d, (long long)sa, (long long)sb);
        shape[d] = sa == 1 ? sb : sa;
    }
    *ndim = n;
    return BN_OK;
}

/* A stack-allocated view of t broadcast to `shape` (zero strides on
 * broadcast dims); shares t's storage without touching refcounts. */
static bn_tensor broadcast_view(const bn_tensor *t, int ndim, const int64_t *shape)
{
    bn_tensor v = *t;
    int lead = ndim - t->ndim;
    v.ndim = ndim;
    for (int d = 0; d < ndim; d++) {
        int64_t size = d < lead ? 1 : t->shape[d - lead];
        v.stride[d] = (d < lead || size == 1) ? 0 : t->stride[d - lead];
        v.shape[d] = shape[d];
    }
    return v;
}

typedef enum { BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV } binop;

/* The hot loops carry `omp simd`: GCC at -O2 only vectorizes under its
 * "very cheap" cost model, which refuses loops that need a runtime alias
 * check, so without it these run as scalar code (relu and its backward
 * 2.6-3.3x slower on a ResNet activation, bench/NOTES.md). Every loop is
 * elementwise (no reduction), so vector and scalar code give the same
 * results; the op's switch is hoisted out so each body is one operation. */

/* o[j] = x[j * sx] op y[j * sy] for j < len: the unit-stride and
 * broadcast-scalar cases vectorize, the rest is a plain strided loop. */
#define BIN_ROW(OPEXPR)                                                                  \
    do {                                                                                 \
        if (sx == 1 && sy == 1) {                                                        \
            _Pragma("omp simd") for (int64_t j = 0; j < len; j++) {                      \
                float u = x[j], v = y[j];                                                \
                o[j] = OPEXPR;                                                           \
            }                                                                            \
        } else if (sx == 1 && sy == 0) {                                                 \
            const float v = y[0];                                                        \
            _Pragma("omp simd") for (int64_t j = 0; j < len; j++) {                      \
                float u = x[j];                                                          \
                o[j] = OPEXPR;                                                           \
            }                                                                            \
        } else if (sx == 0 && sy == 1) {                                                 \
            const float u = x[0];                                                        \
            _Pragma("omp simd") for (int64_t j = 0; j < len; j++) {                      \
                float v = y[j];                                                          \
                o[j] = OPEXPR;                                                           \
            }                                                                            \
        } else {                                                                         \
            for (int64_t j = 0; j < len; j++) {                                          \
                float u = x[j * sx], v = y[j * sy];                                      \
                o[j] = OPEXPR;                                                           \
            }                                                                            \
        }                                                                                \
    } while (0)

static void bin_row(binop op, float *o, const float *x, int64_t sx, const float *y, int64_t sy,
                    int64_t len)
{
    switch (op) {
    case BIN_ADD: BIN_ROW(u + v); break;
    case BIN_SUB: BIN_ROW(u - v); break;
    case BIN_MUL: BIN_ROW(u * v); break;
    case BIN_DIV: BIN_ROW(u / v); break;
    }
}
#undef BIN_ROW

/* out (contiguous, shape of a and b) = a op b, a and b strided views of the
 * same shape. The innermost dimension runs as a tight loop; contiguous
 * operands run as one loop split over threads in fixed chunks. `out` may be
 * a itself (bn_add_into), never a partial overlap. */
static void binary_loop(binop op, float *out, const bn_tensor *a, const bn_tensor *b)
{
    int64_t n = bn_tensor_numel(a);
    if (n == 0) return;
    const float *pa = a->storage->data, *pb = b->storage->data;
    if (bn_tensor_is_contiguous(a) && bn_tensor_is_contiguous(b)) {
        const float *x = pa + a->offset, *y = pb + b->offset;
        int64_t chunks = n > PAR_MIN ? (n + PAR_MIN - 1) / PAR_MIN : 1;
#pragma omp parallel for schedule(static) if (chunks > 1)
        for (int64_t c = 0; c < chunks; c++) {
            int64_t lo = c * n / chunks, hi = (c + 1) * n / chunks;
            bin_row(op, out + lo, x + lo, 1, y + lo, 1, hi - lo);
        }
        return;
    }
    int nd = a->ndim;
    int64_t inner = nd ? a->shape[nd - 1] : 1, sa = nd ? a->stride[nd - 1] : 0, sb = nd ? b->stride[nd - 1] : 0;
    int64_t rows = n / inner;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        int64_t oa = a->offset, ob = b->offset, rem = r;
        for (int d = nd - 2; d >= 0; d--) {
            int64_t i = rem % a->shape[d];
            rem /= a->shape[d];
            oa += i * a->stride[d];
            ob += i * b->stride[d];
        }
        bin_row(op, out + r * inner, pa + oa, sa, pb + ob, sb, inner);
    }
}

/* g broadcasts to acc's shape (without changing it). */
static bn_status check_fits(const bn_tensor *acc, const bn_tensor *g)
{
    if (g->ndim > acc->ndim)
        return bn_fail(BN_ESHAPE, "accumulate: gradient %s does not fit %s", bn_shape_str(g), bn_shape_str(acc));
    for (int d = 0; d < acc->ndim; d++) {
        int lead = acc->ndim - g->ndim;
        int64_t size = d < lead ? 1 : g->shape[d - lead];
        if (size != acc->shape[d] && size != 1)
            return bn_fail(BN_ESHAPE, "accumulate: gradient %s does not fit %s", bn_shape_str(g),
                           bn_shape_str(acc));
    }
    return BN_OK;
}

bn_status bn_add_into(bn_tensor *acc, const bn_tensor *g)
{
    if (check_fits(acc, g) != BN_OK) return bn_last_status();
    bn_tensor gv = broadcast_view(g, acc->ndim, acc->shape);
    if (!bn_tensor_is_contiguous(acc)) {
        float *base = acc->storage->data;
        int64_t n = bn_tensor_numel(acc);
        float *tmp = malloc((size_t)(n ? n : 1) * sizeof(float));
        if (!tmp) return bn_fail(BN_ENOMEM, "accumulate: out of memory");
        bn_tensor_read(&gv, tmp);
        int64_t i = 0;
        FOR_EACH_OFFSET(acc, off, base[off] += tmp[i++]);
        free(tmp);
        return BN_OK;
    }
    binary_loop(BIN_ADD, bn_tensor_data(acc), acc, &gv);
    return BN_OK;
}

bn_tensor *bn_add_new(const bn_tensor *acc, const bn_tensor *g)
{
    if (check_fits(acc, g) != BN_OK) return NULL;
    bn_tensor *out = bn_tensor_empty(acc->ndim, acc->shape);
    if (!out) return NULL;
    bn_tensor av = broadcast_view(acc, acc->ndim, acc->shape), gv = broadcast_view(g, acc->ndim, acc->shape);
    binary_loop(BIN_ADD, bn_tensor_data(out), &av, &gv);
    return out;
}

bn_tensor *bn_sum_to_shape(bn_tensor *g, int ndim, const int64_t *shape)
{
    if (ndim > g->ndim)
        return bn_fail_null(BN_ESHAPE, "sum_to_shape: %s cannot be summed to %s", bn_shape_str(g),
                            bn_dims_str(ndim, shape));
    int lead = g->ndim - ndim;
    for (int d = 0; d < ndim; d++)
        if (shape[d] != 1 && shape[d] != g->shape[lead + d])
            return bn_fail_null(BN_ESHAPE, "sum_to_shape: %s cannot be summed to %s", bn_shape_str(g),
                                bn_dims_str(ndim, shape));
    /* Nothing to sum (every gradient of a same-shape add, sub, expand):
     * the gradient itself, shared. Autograd copies a shared gradient only
     * when it must write into it (autograd.c, accumulate_grad). */
    if (ndim == g->ndim && memcmp(shape, g->shape, (size_t)ndim * sizeof *shape) == 0)
        return bn_tensor_retain(g);
    bn_tensor *out = bn_tensor_zeros(ndim, shape);
    if (!out) return NULL;
    /* Accumulate each element of g into its broadcast source: iterate over g
     * with a view of out carrying zero strides on the summed dims. */
    bn_tensor ov = broadcast_view(out, g->ndim, g->shape);
    float *o = out->storage->data;
    const float *src = g->storage->data;
    if (bn_tensor_is_contiguous(g) && bn_tensor_numel(out) == 1) {
        double s = 0;
        int64_t n = bn_tensor_numel(g);
        const float *p = bn_tensor_data(g);
        for (int64_t i = 0; i < n; i++) s += p[i];
        o[out->offset] = (float)s;
        return out;
    }
    /* Row by row over g's last dim, in g's row-major order, so every output
     * element sums its sources in the same order as an element-by-element
     * walk would. A kept last dim adds the row into the output row
     * (vectorized: distinct outputs); a summed one adds it in sequence. */
    int nd = g->ndim;
    int64_t inner = nd ? g->shape[nd - 1] : 1, gs = nd ? g->stride[nd - 1] : 0, os = nd ? ov.stride[nd - 1] : 0;
    int64_t n = bn_tensor_numel(g), rows = inner ? n / inner : 0;
    int64_t idx[BN_MAX_DIMS] = {0};
    int64_t go = g->offset, oo = ov.offset;
    for (int64_t r = 0; r < rows; r++) {
        const float *gr = src + go;
        float *orow = o + oo;
        if (os == 0) {
            float acc = orow[0];
            for (int64_t j = 0; j < inner; j++) acc += gr[j * gs];
            orow[0] = acc;
        } else if (gs == 1) {
#pragma omp simd
            for (int64_t j = 0; j < inner; j++) orow[j * os] += gr[j];
        } else {
            for (int64_t j = 0; j < inner; j++) orow[j * os] += gr[j * gs];
        }
        for (int d = nd - 2; d >= 0; d--) {
            if (++idx[d] < g->shape[d]) {
                go += g->stride[d];
                oo += ov.stride[d];
                break;
            }
            go -= (idx[d] - 1) * g->stride[d];
            oo -= (idx[d] - 1) * ov.stride[d];
            idx[d] = 0;
        }
    }
    return out;
}

/* out = a op b (broadcast), no autograd. */
static bn_tensor *binary_raw(const char *op_name, binop op, const bn_tensor *a, const bn_tensor *b)
{
    int ndim;
    int64_t shape[BN_MAX_DIMS];
    if (bn_broadcast_shape(op_name, a, b, &ndim, shape) != BN_OK) return NULL;
    bn_tensor *out = bn_tensor_empty(ndim, shape);
    if (!out) return NULL;
    bn_tensor av = broadcast_view(a, ndim, shape), bv = broadcast_view(b, ndim, shape);
    binary_loop(op, bn_tensor_data(out), &av, &bv);
    return out;
}

/* Gradient for one side of a broadcast binary op: g (or g op other) summed
 * back to that input's shape. */
static bn_status bin_grad(bn_node *n, int side, bn_tensor *term, bn_tensor **gin)
{
    if (!term) return bn_last_status();
    gin[side] = bn_sum_to_shape(term, n->in_ndim[side], n->in_shape[side]);
    bn_tensor_release(term);
    return gin[side] ? BN_OK : bn_last_status();
}

static bn_status add_backward(bn_node *n, bn_tensor *g, bn_tensor **gin)
{
    bn_status st = BN_OK;
    if (n->needs[0]) st = bin_grad(n, 0, bn_tensor_retain(g), gin);
    if (st == BN_OK && n->needs[1]) st = bin_grad(n, 1, bn_tensor_retain(g), gin);
    return st;
}

static bn_status sub_backward(bn_node *n, bn_tensor *g, bn_tensor **gin)
{
    bn_status st = BN_OK;
    if (n->needs[0]) st = bin_grad(n, 0, bn_tensor_retain(g), gin);
    if (st == BN_OK && n->needs[1]) st = bin_grad(n, 1, bn_neg(g), gin);
    return st;
}

static bn_status mul_backward(bn_node *n, bn_tensor *g, bn_tensor **gin)
{
    bn_status st = BN_OK;
    if (n->needs[0]) st = bin_grad(n, 0, binary_raw("mul", BIN_MUL, g, n->saved[1]), gin);
    if (st == BN_OK && n->needs[1]) st = bin_grad(n, 1, binary_raw("mul", BIN_MUL, g, n->saved[0]), gin);
    return st;
}

static bn_status div_backward(bn_node *n, bn_tensor *g, bn_tensor **gin)
{
    bn_status st = BN_OK;
    bn_tensor *ga = binary_raw("div", BIN_DIV, g, n->saved[1]); /* g / b */
    if (!ga) return bn_last_status();
    if (n->needs[1]) { /* -g a / b^2 = -(g / b) * (a / b) */
        bn_tensor *ab = binary_raw("div", BIN_DIV, n->saved[0], n->saved[1]);
        bn_tensor *t = ab ? binary_raw("div", BIN_MUL, ga, ab) : NULL;
        bn_tensor_release(ab);
        if (t) {
            float *p = bn_tensor_data(t);
            for (int64_t i = 0, m = bn_tensor_numel(t); i < m; i++) p[i] = -p[i];
        }
        st = bin_grad(n, 1, t, gin);
    }
    if (st == BN_OK && n->needs[0]) return bin_grad(n, 0, ga, gin);
    bn_tensor_release(ga);
    return st;
}

static bn_tensor *binary_unprofiled(const char *name, binop op, bn_backward_fn bwd, bn_tensor *a, bn_tensor *b)
{
    if (!a || !b) return bn_fail_null(BN_EARG, "%s: operand expected a tensor, got NULL", name);
    bn_tensor *out = binary_raw(name, op, a, b);
    bn_tensor *in[2] = {a, b};
    int n_saved = (op == BIN_MUL || op == BIN_DIV) ? 2 : 0;
    return bn_record(out, name, bwd, 2, in, n_saved, in, NULL, 0, NULL, 0);
}

static bn_tensor *binary(const char *name, binop op, bn_backward_fn bwd, bn_tensor *a, bn_tensor *b)
{
    BN_PROFILE_BEGIN(name, false);
    bn_tensor *out = binary_unprofiled(name, op, bwd, a, b);
    BN_PROFILE_END();
    return out;
}

bn_tensor *bn_add(bn_tensor *a, bn_tensor *b) { return binary("add", BIN_ADD, add_backward, a, b); }
bn_tensor *bn_sub(bn_tensor *a, bn_tensor *b) { return binary("sub", BIN_SUB, sub_backward, a, b); }
bn_tensor *bn_mul(bn_tensor *a, bn_tensor *b) { return binary("mul", BIN_MUL, mul_backward, a, b); }
bn_tensor *bn_div(bn_tensor *a, bn_tensor *b) { return binary("div", BIN_DIV, div_backward, a, b); }

/* ---- unary -------------------------------------------------------------- */

typedef enum {
    UN_NEG, UN_EXP, UN_LOG, UN_SQRT, UN_ABS, UN_RELU, UN_TANH, UN_SIGMOID,
    UN_CLAMP, UN_POW, UN_ADDS, UN_MULS, UN_RSUB, UN_RDIV
} unop;

static const char *const unop_names[] = {"neg",  "exp",     "log",   "sqrt", "abs",  "relu", "tanh",
                                         "sigmoid", "clamp", "pow",   "add", "mul", "rsub", "rdiv"};

static inline float apply_un(unop op, float x, float p, float q)
{
    switch (op) {
    case UN_NEG: return -x;
    case UN_EXP: return expf(x);
    case UN_LOG: return logf(x);
    case UN_SQRT: return sqrtf(x);
    case UN_ABS: return fabsf(x);
    case UN_RELU: return (x > 0 || x != x) ? x : 0.0f; /* NaN stays NaN: divergence is data */
    case UN_TANH: return tanhf(x);
    case UN_SIGMOID: return x >= 0 ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x));
    case UN_CLAMP: return x < p ? p : x > q ? q : x;
    case UN_POW: return powf(x, p);
    case UN_ADDS: return x + p;
    case UN_MULS: return x * p;
    case UN_RSUB: return p - x;
    case UN_RDIV: return p / x;
    }
    return 0;
}

/* 1.0f when c, else 0.0f, from the comparison's bits: written as `c ? 1 : 0`
 * the product g * (c ? 1 : 0) becomes a branch (GCC moves the multiply into
 * it, and may not run a possibly-trapping multiply unconditionally), which
 * blocks vectorization. Same value, same product. */
static inline float one_if(bool c)
{
    uint32_t bits = (uint32_t) - (int32_t)c & UINT32_C(0x3f800000);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* d out / d x at input x, output y. */
static inline float deriv_un(unop op, float x, float y, float p, float q)
{
    switch (op) {
    case UN_NEG: return -1.0f;
    case UN_EXP: return y;
    case UN_LOG: return 1.0f / x;
    case UN_SQRT: return 0.5f / y;
    case UN_ABS: return x > 0 ? 1.0f : x < 0 ? -1.0f : 0.0f;
    case UN_RELU: return one_if(x > 0);
    case UN_TANH: return 1.0f - y * y;
    case UN_SIGMOID: return y * (1.0f - y);
    case UN_CLAMP: return one_if(x >= p && x <= q);
    case UN_POW: return p == 0 ? 0.0f : p * powf(x, p - 1.0f);
    case UN_ADDS: return 1.0f;
    case UN_MULS: return p;
    case UN_RSUB: return -1.0f;
    case UN_RDIV: return -p / (x * x);
    }
    return 0;
}

static bn_status unary_backward(bn_node *n, bn_tensor *g, bn_tensor **gin)
{
    unop op = (unop)n->i[0];
    float p = (float)n->f[0], q = (float)n->f[1];
    bn_tensor *x = n->saved[0], *y = n->saved[1]; /* both contiguous, out's shape */
    bn_tensor *gc = bn_tensor_dense(g);
    if (!gc) return bn_last_status();
    bn_tensor *out = bn_tensor_empty(n->in_ndim[0], n->in_shape[0]);
    if (!out) {
        bn_tensor_release(gc);
        return bn_last_status();
    }
    const float *gp = bn_tensor_data(gc), *xp = x ? bn_tensor_data(x) : NULL, *yp = y ? bn_tensor_data(y) : NULL;
    float *o = bn_tensor_data(out);
    int64_t m = bn_tensor_numel(out);
    /* Only the saved tensor the op needs exists (needs_input/needs_output):
     * one loop per op reading just that one, so that each vectorizes. */
#define DERIV_LOOP(OP, X, Y)                                                              \
    case OP: {                                                                            \
        _Pragma("omp parallel for simd schedule(static) if (m > PAR_MIN)")               \
        for (int64_t i = 0; i < m; i++) o[i] = gp[i] * deriv_un(OP, X, Y, p, q);          \
        break;                                                                            \
    }
    switch (op) {
        DERIV_LOOP(UN_NEG, 0.0f, 0.0f) DERIV_LOOP(UN_EXP, 0.0f, yp[i]) DERIV_LOOP(UN_LOG, xp[i], 0.0f)
        DERIV_LOOP(UN_SQRT, 0.0f, yp[i]) DERIV_LOOP(UN_ABS, xp[i], 0.0f) DERIV_LOOP(UN_RELU, xp[i], 0.0f)
        DERIV_LOOP(UN_TANH, 0.0f, yp[i]) DERIV_LOOP(UN_SIGMOID, 0.0f, yp[i]) DERIV_LOOP(UN_CLAMP, xp[i], 0.0f)
        DERIV_LOOP(UN_POW, xp[i], 0.0f) DERIV_LOOP(UN_ADDS, 0.0f, 0.0f) DERIV_LOOP(UN_MULS, 0.0f, 0.0f)
        DERIV_LOOP(UN_RSUB, 0.0f, 0.0f) DERIV_LOOP(UN_RDIV, xp[i], 0.0f)
    }
#undef DERIV_LOOP
    bn_tensor_release(gc);
    gin[0] = out;
    return BN_OK;
}

/* Which of input / output each backward needs (so we save no more). */
static bool needs_input(unop op)
{
    return op == UN_LOG || op == UN_ABS || op == UN_RELU || op == UN_CLAMP || op == UN_POW || op == UN_RDIV;
}
static bool needs_output(unop op) { return op == UN_EXP || op == UN_SQRT || op == UN_TANH || op == UN_SIGMOID; }

static bn_tensor *unary_unprofiled(unop op, bn_tensor *a, float p, float q)
{
    const char *name = unop_names[op];
    if (!a) return bn_fail_null(BN_EARG, "%s: input expected a tensor, got NULL", name);
    bn_tensor *x = bn_tensor_dense(a);
    if (!x) return NULL;
    bn_tensor *out = bn_tensor_empty(x->ndim, x->shape);
    if (!out) {
        bn_tensor_release(x);
        return NULL;
    }
    const float *xp = bn_tensor_data(x);
    float *o = bn_tensor_data(out);
    int64_t m = bn_tensor_numel(out);
    /* One loop per op (the switch hoisted out) so each one vectorizes. */
#define UNARY_LOOP(OP)                                                          \
    case OP: {                                                                  \
        _Pragma("omp parallel for simd schedule(static) if (m > PAR_MIN)")     \
        for (int64_t i = 0; i < m; i++) o[i] = apply_un(OP, xp[i], p, q);       \
        break;                                                                  \
    }
    switch (op) {
        UNARY_LOOP(UN_NEG) UNARY_LOOP(UN_EXP) UNARY_LOOP(UN_LOG) UNARY_LOOP(UN_SQRT)
        UNARY_LOOP(UN_ABS) UNARY_LOOP(UN_RELU) UNARY_LOOP(UN_TANH) UNARY_LOOP(UN_SIGMOID)
        UNARY_LOOP(UN_CLAMP) UNARY_LOOP(UN_POW) UNARY_LOOP(UN_ADDS) UNARY_LOOP(UN_MULS)
        UNARY_LOOP(UN_RSUB) UNARY_LOOP(UN_RDIV)
    }
#undef UNARY_LOOP
    bn_tensor *saved[2] = {needs_input(op) ? x : NULL, needs_output(op) ? out : NULL};
    double f[2] = {p, q};
    int64_t iv[1] = {op};
    out = bn_record(out, name, unary_backward, 1, &a, 2, saved, f, 2, iv, 1);
    bn_tensor_release(x);
    return out;
}

static bn_tensor *unary(unop op, bn_tensor *a, float p, float q)
{
    BN_PROFILE_BEGIN(unop_names[op], false);
    bn_tensor *out = unary_unprofiled(op, a, p, q);
    BN_PROFILE_END();
    return out;
}

bn_tensor *bn_neg(bn_tensor *a) { return unary(UN_NEG, a, 0, 0); }
bn_tensor *bn_exp(bn_tensor *a) { return unary(UN_EXP, a, 0, 0); }
bn_tensor *bn_log(bn_tensor *a) { return unary(UN_LOG, a, 0, 0); }
bn_tensor *bn_sqrt(bn_tensor *a) { return unary(UN_SQRT, a, 0, 0); }
bn_tensor *bn_abs(bn_tensor *a) { return unary(UN_ABS, a, 0, 0); }
bn_tensor *bn_relu(bn_tensor *a) { return unary(UN_RELU, a, 0, 0); }
bn_tensor *bn_tanh(bn_tensor *a) { return unary(UN_TANH, a, 0, 0); }
bn_tensor *bn_sigmoid(bn_tensor *a) { return unary(UN_SIGMOID, a, 0, 0); }
bn_tensor *bn_pow_scalar(bn_tensor *a, float p) { return unary(UN_POW, a, p, 0); }
bn_tensor *bn_add_scalar(bn_tensor *a, float s) { return unary(UN_ADDS, a, s, 0); }
bn_tensor *bn_mul_scalar(bn_tensor *a, float s) { return unary(UN_MULS, a, s, 0); }
bn_tensor *bn_rsub_scalar(bn_tensor *a, float s) { return unary(UN_RSUB, a, s, 0); }
bn_tensor *bn_rdiv_scalar(bn_tensor *a, float s) { return unary(UN_RDIV, a, s, 0); }

bn_tensor *bn_clamp(bn_tensor *a, float lo, float hi)
{
    if (isnan(lo) || isnan(hi) || lo > hi)
        return bn_fail_null(BN_EARG, "clamp: bounds expected lo <= hi, got lo %g, hi %g", lo, hi);
    return unary(UN_CLAMP, a, lo, hi);
}
