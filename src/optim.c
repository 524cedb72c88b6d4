/* SGD with momentum, weight decay and Nesterov, as torch.optim.SGD.
 *
 * The update is elementwise, so any split across threads gives the same
 * bits. One parallel region covers every dense parameter (a ResNet has
 * hundreds of small tensors: a region per tensor would cost more than the
 * arithmetic); strided ones, rare, take a serial walk. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <omp.h>

#include "autograd.h"
#include "optim.h"
#include "profile.h"

/* Below this many elements in total, threads cost more than they save. */
#define SGD_PAR_MIN 65536

/* The rule's constants, in float as PyTorch's kernels use them. */
typedef struct sgd_coef {
    float neg_lr, wd, mom, keep; /* keep = 1 - dampening */
    bool has_wd, has_mom, nesterov, maximize;
} sgd_coef;

/* One element. `first`: the buffer is new (buf = g, no dampening). */
static inline void sgd_one(float *p, float g, float *b, bool first, const sgd_coef *c)
{
    float d = c->maximize ? -g : g;
    if (c->has_wd) d = d + c->wd * *p;
    if (c->has_mom) {
        float m = first ? d : *b * c->mom + c->keep * d;
        *b = m;
        d = c->nesterov ? d + c->mom * m : m;
    }
    *p = *p + c->neg_lr * d;
}

/* A row-major walk over a strided tensor's storage offsets. */
typedef struct walker {
    const bn_tensor *t;
    int64_t idx[BN_MAX_DIMS];
    int64_t off;
} walker;

static void walk_init(walker *w, const bn_tensor *t)
{
    w->t = t;
    for (int d = 0; d < BN_MAX_DIMS; d++) w->idx[d] = 0;
    w->off = t->offset;
}

static void walk_next(walker *w)
{
    const bn_tensor *t = w->t;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (++w->idx[d] < t->shape[d]) {
            w->off += t->stride[d];
            return;
        }
        w->off -= (w->idx[d] - 1) * t->stride[d];
        w->idx[d] = 0;
    }
}

/* Any layout: three walks in step. */
static void sgd_strided(bn_tensor *p, const bn_tensor *g, bn_tensor *b, bool first, const sgd_coef *c)
{
    int64_t n = bn_tensor_numel(p);
    walker wp, wg, wb;
    walk_init(&wp, p);
    walk_init(&wg, g);
    if (b) walk_init(&wb, b);
    float *pd = p->storage->data, *gd = g->storage->data, *bd = b ? b->storage->data : NULL;
    float dummy = 0;
    for (int64_t k = 0; k < n; k++) {
        sgd_one(pd + wp.off, gd[wg.off], b ? bd + wb.off : &dummy, first, c);
        walk_next(&wp);
        walk_next(&wg);
        if (b) walk_next(&wb);
    }
}

/* The dense loop, specialised by the compiler for each combination of
 * flags (they are constants at every call site below), so each variant is a
 * branch-free loop that omp simd vectorises. Same operations, same order, as
 * sgd_one. mode: 0 no momentum, 1 new buffer, 2 existing buffer. */
static inline __attribute__((always_inline)) void sgd_run(float *restrict p, const float *restrict g,
                                                          float *restrict b, int64_t n, const sgd_coef *c,
                                                          bool wd, int mode, bool nesterov)
{
    const float neg_lr = c->neg_lr, wdv = c->wd, mom = c->mom, keep = c->keep;
    const float sign = c->maximize ? -1.0f : 1.0f; /* exact: flips the sign, nothing else */
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float d = sign * g[i];
        if (wd) d = d + wdv * p[i];
        if (mode) {
            float m = mode == 1 ? d : b[i] * mom + keep * d;
            b[i] = m;
            d = nesterov ? d + mom * m : m;
        }
        p[i] = p[i] + neg_lr * d;
    }
}

static void sgd_dense(float *p, const float *g, float *b, int64_t n, bool first, const sgd_coef *c)
{
#define SGD_RUN(W, M, N) sgd_run(p, g, b, n, c, W, M, N)
    if (!c->has_mom) {
        if (c->has_wd) SGD_RUN(true, 0, false);
        else SGD_RUN(false, 0, false);
    } else if (first) {
        if (c->has_wd) {
            if (c->nesterov) SGD_RUN(true, 1, true);
            else SGD_RUN(true, 1, false);
        } else {
            if (c->nesterov) SGD_RUN(false, 1, true);
            else SGD_RUN(false, 1, false);
        }
    } else {
        if (c->has_wd) {
            if (c->nesterov) SGD_RUN(true, 2, true);
            else SGD_RUN(true, 2, false);
        } else {
            if (c->nesterov) SGD_RUN(false, 2, true);
            else SGD_RUN(false, 2, false);
        }
    }
#undef SGD_RUN
}

typedef struct sgd_job {
    float *p;
    const float *g;
    float *b; /* NULL without momentum */
    int64_t n;
    int64_t start; /* position of the job's first element in the concatenation of all jobs */
    bool first;
} sgd_job;

/* Elements [lo, hi) of the concatenation of all jobs. */
static void sgd_dense_span(const sgd_job *jobs, int nj, int64_t lo, int64_t hi, const sgd_coef *c)
{
    for (int k = 0; k < nj && lo < hi; k++) {
        const sgd_job *j = &jobs[k];
        int64_t a = lo > j->start ? lo : j->start, e = j->start + j->n < hi ? j->start + j->n : hi;
        if (a >= e) continue;
        int64_t off = a - j->start;
        sgd_dense(j->p + off, j->g + off, j->b ? j->b + off : NULL, e - a, j->first, c);
    }
}

static void sgd_dense_all(const sgd_job *jobs, int nj, int64_t total, const sgd_coef *c)
{
    if (total < SGD_PAR_MIN) {
        sgd_dense_span(jobs, nj, 0, total, c);
        return;
    }
    /* Every thread takes one contiguous slice of all the elements, across
     * tensor boundaries: tiny tensors (BN's affine parameters) cost no
     * extra synchronisation. No two jobs share memory (checked by the caller). */
#pragma omp parallel
    {
        int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
        sgd_dense_span(jobs, nj, total * t / nt, total * (t + 1) / nt, c);
    }
}

/* ---- checks ------------------------------------------------------------------ */

bn_status bn_sgd_check_opts(const bn_sgd_opts *o)
{
    if (!o) return bn_fail(BN_EARG, "sgd_step: options expected, got NULL");
    if (!(isfinite(o->lr) && o->lr >= 0)) return bn_fail(BN_EARG, "sgd_step: lr expected a finite number >= 0, got %g", o->lr);
    if (!(isfinite(o->momentum) && o->momentum >= 0))
        return bn_fail(BN_EARG, "sgd_step: momentum expected a finite number >= 0, got %g", o->momentum);
    if (!isfinite(o->dampening))
        return bn_fail(BN_EARG, "sgd_step: dampening expected a finite number, got %g", o->dampening);
    if (!(isfinite(o->weight_decay) && o->weight_decay >= 0))
        return bn_fail(BN_EARG, "sgd_step: weight_decay expected a finite number >= 0, got %g", o->weight_decay);
    if (o->nesterov && !(o->momentum > 0 && o->dampening == 0))
        return bn_fail(BN_EARG,
                       "sgd_step: nesterov requires momentum > 0 and dampening == 0, got momentum %g, dampening %g",
                       o->momentum, o->dampening);
    return BN_OK;
}

/* The storage range [lo, hi) a tensor can touch; false when it writes one
 * element twice (a stride-0 dim of size > 1, as expand makes). */
typedef struct span {
    const bn_storage *s;
    int64_t lo, hi;
    int who; /* index, and +n_params for a buffer */
} span;

static bool tensor_span(const bn_tensor *t, span *sp)
{
    int64_t lo = t->offset, hi = t->offset;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] > 1 && t->stride[d] == 0) return false;
        int64_t ext = (t->shape[d] - 1) * t->stride[d];
        if (ext < 0) lo += ext;
        else hi += ext;
    }
    sp->s = t->storage;
    sp->lo = lo;
    sp->hi = hi + 1;
    return true;
}

static int span_cmp(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->s != y->s) return (uintptr_t)x->s < (uintptr_t)y->s ? -1 : 1;
    if (x->lo != y->lo) return x->lo < y->lo ? -1 : 1;
    return (x->who > y->who) - (x->who < y->who);
}

static const char *who_str(int who, int n, char *buf, size_t size)
{
    if (who < n) snprintf(buf, size, "params[%d]", who);
    else snprintf(buf, size, "momentum_bufs[%d]", who - n);
    return buf;
}

/* Everything a caller can get wrong, before anything is allocated. */
static bn_status check_args(int n, bn_tensor *const *params, bn_tensor **bufs, const bn_sgd_opts *o)
{
    if (bn_sgd_check_opts(o) != BN_OK) return bn_last_status();
    if (n < 0) return bn_fail(BN_EARG, "sgd_step: n expected >= 0, got %d", n);
    if (n > 0 && !params) return bn_fail(BN_EARG, "sgd_step: params expected an array, got NULL");
    bool mom = o->momentum != 0;
    if (mom && n > 0 && !bufs)
        return bn_fail(BN_EARG, "sgd_step: momentum %g needs momentum_bufs (an array of n entries), got NULL",
                       o->momentum);
    for (int i = 0; i < n; i++) {
        const bn_tensor *p = params[i];
        if (!p) return bn_fail(BN_EARG, "sgd_step: params[%d] expected a tensor, got NULL", i);
        if (!p->grad) continue;
        if (p->grad_fn)
            return bn_fail(BN_EARG, "sgd_step: params[%d] is not a leaf (made by %s); only leaves can be optimized", i,
                           p->grad_fn->op);
        if (!bn_shape_equal(p->grad, p))
            return bn_fail(BN_ESHAPE, "sgd_step: params[%d].grad expected shape %s, got %s", i, bn_shape_str(p),
                           bn_shape_str(p->grad));
        const bn_tensor *b = mom ? bufs[i] : NULL;
        if (b && !bn_shape_equal(b, p))
            return bn_fail(BN_ESHAPE, "sgd_step: momentum_bufs[%d] expected shape %s (its parameter's), got %s", i,
                           bn_shape_str(p), bn_shape_str(b));
    }
    return BN_OK;
}

/* No two tensors written by this step may share memory: the parallel loop
 * would race, and a duplicated parameter would be updated twice. */
static bn_status check_disjoint(int n, bn_tensor *const *params, bn_tensor **bufs, bool mom)
{
    int m = 0;
    for (int i = 0; i < n; i++)
        if (params[i]->grad) m += (mom && bufs[i]) ? 2 : 1;
    if (m == 0) return BN_OK;
    span *sp = malloc((size_t)m * sizeof *sp);
    if (!sp) return bn_fail(BN_ENOMEM, "sgd_step: out of memory checking %d tensors", m);
    int k = 0;
    char a[48], b[48];
    bn_status st = BN_OK;
    for (int i = 0; i < n && st == BN_OK; i++) {
        if (!params[i]->grad || bn_tensor_numel(params[i]) == 0) continue;
        bn_tensor *ts[2] = {params[i], (mom && bufs[i]) ? bufs[i] : NULL};
        for (int w = 0; w < 2 && st == BN_OK; w++) {
            if (!ts[w]) continue;
            sp[k].who = i + w * n;
            if (!tensor_span(ts[w], &sp[k]))
                st = bn_fail(BN_EARG, "sgd_step: %s %s writes some elements more than once (a stride-0 view, as expand makes)",
                             who_str(sp[k].who, n, a, sizeof a), bn_shape_str(ts[w]));
            k++;
        }
    }
    if (st == BN_OK) {
        qsort(sp, (size_t)k, sizeof *sp, span_cmp);
        /* Sorted by start: a span overlaps an earlier one exactly when it
         * starts before the furthest end reached so far on its storage. */
        int reach = 0;
        for (int i = 1; i < k; i++) {
            if (sp[i].s != sp[reach].s) {
                reach = i;
                continue;
            }
            if (sp[i].lo < sp[reach].hi) {
                int x = sp[reach].who < sp[i].who ? sp[reach].who : sp[i].who;
                int y = sp[reach].who < sp[i].who ? sp[i].who : sp[reach].who;
                st = bn_fail(BN_EARG, "sgd_step: %s and %s share memory (a parameter listed twice, or views of one tensor)",
                             who_str(x, n, a, sizeof a), who_str(y, n, b, sizeof b));
                break;
            }
            if (sp[i].hi > sp[reach].hi) reach = i;
        }
    }
    free(sp);
    return st;
}

static bn_status bn_sgd_step_unprofiled(int n, bn_tensor *const *params, bn_tensor **momentum_bufs, const bn_sgd_opts *o)
{
    if (check_args(n, params, momentum_bufs, o) != BN_OK) return bn_last_status();
    bool mom = o->momentum != 0;
    if (check_disjoint(n, params, momentum_bufs, mom) != BN_OK) return bn_last_status();

    /* Allocate what is missing (new buffers, the job list) before touching
     * any value, so a failure leaves the caller's state as it was. */
    int nj = 0;
    for (int i = 0; i < n; i++)
        if (params[i]->grad) nj++;
    if (nj == 0) return BN_OK;
    sgd_job *jobs = malloc((size_t)nj * sizeof *jobs);
    bool *fresh = calloc((size_t)n, sizeof *fresh);
    if (!jobs || !fresh) {
        free(jobs);
        free(fresh);
        return bn_fail(BN_ENOMEM, "sgd_step: out of memory for %d parameters", n);
    }
    for (int i = 0; i < n && mom; i++) {
        bn_tensor *p = params[i];
        if (!p->grad || momentum_bufs[i]) continue;
        bn_tensor *b = bn_tensor_empty(p->ndim, p->shape);
        if (!b) {
            for (int k = 0; k < i; k++)
                if (fresh[k]) {
                    bn_tensor_release(momentum_bufs[k]);
                    momentum_bufs[k] = NULL;
                }
            free(jobs);
            free(fresh);
            return bn_last_status();
        }
        momentum_bufs[i] = b;
        fresh[i] = true;
    }

    sgd_coef c = {
        .neg_lr = (float)-o->lr,
        .wd = (float)o->weight_decay,
        .mom = (float)o->momentum,
        .keep = (float)(1.0 - o->dampening),
        .has_wd = o->weight_decay != 0,
        .has_mom = mom,
        .nesterov = o->nesterov,
        .maximize = o->maximize,
    };
    int k = 0;
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        bn_tensor *p = params[i], *g = p->grad, *b = mom ? momentum_bufs[i] : NULL;
        if (!g) continue;
        if (bn_tensor_is_contiguous(p) && bn_tensor_is_contiguous(g) && (!b || bn_tensor_is_contiguous(b))) {
            jobs[k++] = (sgd_job){bn_tensor_data(p), bn_tensor_data(g), b ? bn_tensor_data(b) : NULL,
                                  bn_tensor_numel(p), total, fresh[i]};
            total += bn_tensor_numel(p);
        } else {
            sgd_strided(p, g, b, fresh[i], &c);
        }
    }
    sgd_dense_all(jobs, k, total, &c);
    free(jobs);
    free(fresh);
    return BN_OK;
}

bn_status bn_sgd_step(int n, bn_tensor *const *params, bn_tensor **momentum_bufs, const bn_sgd_opts *o)
{
    BN_PROFILE_BEGIN("sgd_step", false);
    bn_status st = bn_sgd_step_unprofiled(n, params, momentum_bufs, o);
    BN_PROFILE_END();
    return st;
}
