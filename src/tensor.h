/* Tensors: float32, up to BN_MAX_DIMS dimensions, int64 shapes and strides
 * (in elements), a refcounted storage shared by views.
 *
 * Ownership: every function that returns a bn_tensor* returns a new reference
 * (+1) that the caller releases once with bn_tensor_release. A NULL return
 * means failure; bn_last_status()/bn_last_error() say why. Functions that take
 * tensors borrow them. */
#ifndef BN_TENSOR_H
#define BN_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "error.h"

#define BN_MAX_DIMS 8
#define BN_ALIGN 64

typedef struct bn_storage {
    float *data;
    int64_t numel;
    int refcount;
    bool borrowed; /* memory owned by someone else (bn_tensor_wrap) */
} bn_storage;

struct bn_node;
struct bn_hook;

typedef struct bn_tensor {
    int refcount;
    int ndim;
    int64_t shape[BN_MAX_DIMS];
    int64_t stride[BN_MAX_DIMS];
    int64_t offset; /* in elements, into storage->data */
    bn_storage *storage;

    /* autograd */
    bool requires_grad;   /* a leaf that wants .grad, or a result of such ops */
    bool retains_grad;    /* keep .grad on this non-leaf after backward */
    struct bn_tensor *grad;
    struct bn_node *grad_fn; /* the op that made this tensor; NULL for leaves */
    struct bn_hook *hooks;   /* gradient hooks of a leaf (non-leaves keep them on grad_fn) */
    char *name;              /* set by bn_tensor_set_name; what probes match against */
} bn_tensor;

/* ---- memory accounting -------------------------------------------------- */
/* Bytes of tensor storage currently allocated by the core (all threads). */
int64_t bn_mem_in_use(void);
/* Largest value bn_mem_in_use reached since the last reset. */
int64_t bn_mem_peak(void);
void bn_mem_reset_peak(void);
/* Refuse allocations that would take bn_mem_in_use past `bytes` (0 = no
 * limit). Lets tests exercise the BN_ENOMEM paths deterministically. */
void bn_mem_set_limit(int64_t bytes);
/* Called after every storage allocation and free with the byte delta; the
 * Lua bindings use it to drive the garbage collector. */
typedef void (*bn_mem_observer)(int64_t delta, void *ud);
void bn_mem_set_observer(bn_mem_observer fn, void *ud);
/* Freed buffers of 64 KiB and more are cached for reuse by the next
 * allocation of the same size (a training step allocates the same sizes
 * every time), up to a limit in bytes (default 1 GiB; 0 disables the cache
 * and frees what it holds). Cached bytes are not counted by bn_mem_in_use
 * and do not count against bn_mem_set_limit; an allocation the system
 * refuses empties the cache and is retried. No caching under
 * AddressSanitizer. */
int64_t bn_mem_cached(void);
void bn_mem_set_cache_limit(int64_t bytes);
int64_t bn_mem_cache_limit(void);
void bn_mem_cache_clear(void);

/* ---- creation ----------------------------------------------------------- */
bn_tensor *bn_tensor_empty(int ndim, const int64_t *shape);
bn_tensor *bn_tensor_zeros(int ndim, const int64_t *shape);
bn_tensor *bn_tensor_ones(int ndim, const int64_t *shape);
bn_tensor *bn_tensor_full(int ndim, const int64_t *shape, float value);
bn_tensor *bn_tensor_from_array(int ndim, const int64_t *shape, const float *data); /* copies */
bn_tensor *bn_tensor_scalar(float value);                                        /* 0-d */
/* [start, end) by step, like range(); fails on step 0 or a wrong sign. */
bn_tensor *bn_tensor_arange(double start, double end, double step);
bn_tensor *bn_tensor_linspace(double start, double end, int64_t steps);
bn_tensor *bn_tensor_logspace(double start, double end, int64_t steps, double base);
bn_tensor *bn_tensor_eye(int64_t n, int64_t m);
/* Shape helpers for the common case: bn_tensor_zeros_v(2, 3, 4) is a 3x4. */
bn_tensor *bn_tensor_empty_like(const bn_tensor *t);
bn_tensor *bn_tensor_zeros_like(const bn_tensor *t);

/* ---- references --------------------------------------------------------- */
bn_tensor *bn_tensor_retain(bn_tensor *t); /* returns t, +1 */
void bn_tensor_release(bn_tensor *t);      /* NULL is fine */

/* ---- facts -------------------------------------------------------------- */
int64_t bn_tensor_numel(const bn_tensor *t);
bool bn_tensor_is_contiguous(const bn_tensor *t);
bool bn_shape_equal(const bn_tensor *a, const bn_tensor *b);
static inline float *bn_tensor_data(const bn_tensor *t) { return t->storage->data + t->offset; }
/* "[128 x 3 x 32 x 32]" into a thread-local ring of buffers, for messages. */
const char *bn_shape_str(const bn_tensor *t);
const char *bn_dims_str(int ndim, const int64_t *shape);
/* Element at a multi-index (no checks: for tests and printing). */
float bn_tensor_get(const bn_tensor *t, const int64_t *index);
/* Element by flat row-major position over the logical shape. */
float bn_tensor_get_flat(const bn_tensor *t, int64_t i);
/* Copies the logical contents, row-major, into out[numel]. */
void bn_tensor_read(const bn_tensor *t, float *out);

/* ---- views (share storage) ---------------------------------------------- */
/* All take a possibly negative dim (counted from the end) and record an
 * autograd node when the input requires grad. */
bn_tensor *bn_view(bn_tensor *t, int ndim, const int64_t *shape);    /* -1 infers one size; needs compatible strides */
bn_tensor *bn_reshape(bn_tensor *t, int ndim, const int64_t *shape); /* view when possible, else copy */
bn_tensor *bn_permute(bn_tensor *t, const int *dims);
bn_tensor *bn_transpose(bn_tensor *t, int d0, int d1);
bn_tensor *bn_narrow(bn_tensor *t, int dim, int64_t start, int64_t length);
bn_tensor *bn_select(bn_tensor *t, int dim, int64_t index);          /* removes dim */
bn_tensor *bn_expand(bn_tensor *t, int ndim, const int64_t *shape);  /* -1 keeps a size */
bn_tensor *bn_contiguous(bn_tensor *t);                              /* t itself (+1) when already contiguous */
bn_tensor *bn_flatten(bn_tensor *t, int start_dim, int end_dim);
bn_tensor *bn_squeeze(bn_tensor *t, int dim);
bn_tensor *bn_unsqueeze(bn_tensor *t, int dim);

/* ---- data movement (no autograd: they write into an existing tensor) ----- */
bn_status bn_tensor_fill(bn_tensor *t, float value);
bn_status bn_tensor_copy(bn_tensor *dst, const bn_tensor *src); /* src broadcast to dst's shape */
bn_tensor *bn_tensor_clone(bn_tensor *t);                       /* contiguous copy; differentiable */
bn_tensor *bn_tensor_detach(bn_tensor *t);                      /* same storage, no grad history */
/* For kernels: t itself (+1) when contiguous, else a contiguous copy with no
 * grad history (unlike bn_contiguous, which records the copy). */
bn_tensor *bn_tensor_dense(bn_tensor *t);

/* ---- printing ----------------------------------------------------------- */
/* A short summary: shape, min/max/mean/std, and corner values of big tensors. */
bn_status bn_tensor_summary(const bn_tensor *t, char *buf, size_t size);
void bn_tensor_print(const bn_tensor *t, FILE *f);

/* ---- names and hooks ---------------------------------------------------- */
/* Naming a tensor is how a layer says "this is my output": forward hooks
 * registered with bn_hooks_add whose pattern matches fire now, and their
 * backward hooks fire with this tensor's gradient during backward. */
bn_status bn_tensor_set_name(bn_tensor *t, const char *name);

/* Normalizes a possibly negative dim for a tensor of `ndim` dims; returns -1
 * (and sets the error, naming `op`) when out of range. */
int bn_dim_wrap(const char *op, int dim, int ndim);

#endif
