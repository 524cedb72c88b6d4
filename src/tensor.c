#include "tensor.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "autograd.h"
#include "profile.h"
#include "strided.h"

/* ---- memory accounting -------------------------------------------------- */

static _Atomic int64_t mem_in_use = 0;
static _Atomic int64_t mem_peak = 0;
static _Atomic int64_t mem_limit = 0;
static bn_mem_observer mem_observer = NULL;
static void *mem_observer_ud = NULL;

int64_t bn_mem_in_use(void) { return atomic_load(&mem_in_use); }
int64_t bn_mem_peak(void) { return atomic_load(&mem_peak); }
void bn_mem_reset_peak(void) { atomic_store(&mem_peak, atomic_load(&mem_in_use)); }
void bn_mem_set_limit(int64_t bytes) { atomic_store(&mem_limit, bytes); }

void bn_mem_set_observer(bn_mem_observer fn, void *ud)
{
    mem_observer = fn;
    mem_observer_ud = ud;
}

static void mem_account(int64_t delta)
{
    int64_t now = atomic_fetch_add(&mem_in_use, delta) + delta;
    int64_t peak = atomic_load(&mem_peak);
    while (now > peak && !atomic_compare_exchange_weak(&mem_peak, &peak, now)) {
    }
    if (mem_observer) mem_observer(delta, mem_observer_ud);
}

/* ---- the buffers: a cache of freed storage ------------------------------ */
/* A training step allocates the same activation and gradient sizes every
 * time, and most are freed only when Lua's collector gets to them. Handed
 * back to malloc, a large buffer returns to the kernel (or ends at the top of
 * the heap and is trimmed), and the next one of that size arrives as fresh
 * pages that fault in and are zeroed on first touch: ~14,000 faults per
 * ResNet-20 step, several ms per 8 MB activation on a VM (bench/NOTES.md).
 * So freed buffers of CACHE_MIN_BYTES and more are kept, up to cache_limit
 * bytes in all, and handed out again, most recently freed first (warmest),
 * for an allocation of exactly the same size; the oldest go when the cache
 * is full. Cached bytes are not "in use": bn_mem_in_use, the limit and the
 * observer see tensors only. When the system refuses memory the cache is
 * emptied and the allocation retried.
 *
 * Under AddressSanitizer nothing is cached, so that a use after free is
 * still caught. */
#if defined(__SANITIZE_ADDRESS__)
#define CACHE_ENABLED 0
#else
#define CACHE_ENABLED 1
#endif
#define CACHE_MIN_BYTES (INT64_C(64) << 10)
#define CACHE_MAX_ENTRIES 1024
#define CACHE_DEFAULT_LIMIT (INT64_C(1) << 30)

typedef struct cache_entry {
    float *data;
    int64_t bytes;
} cache_entry;

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static cache_entry cache[CACHE_MAX_ENTRIES]; /* oldest first */
static int cache_count = 0;
static int64_t cache_bytes = 0;
static int64_t cache_limit = CACHE_ENABLED ? CACHE_DEFAULT_LIMIT : 0;

static float *system_alloc(int64_t bytes) { return aligned_alloc(BN_ALIGN, (size_t)bytes); }

static void system_free(float *data) { free(data); }

/* Takes the oldest entries out until `keep` bytes or fewer are cached,
 * into out[] (the caller frees them). Called with the lock held. */
static int cache_evict(int64_t keep, cache_entry *out)
{
    int n = 0;
    while (n < cache_count && cache_bytes > keep) {
        out[n] = cache[n];
        cache_bytes -= cache[n++].bytes;
    }
    cache_count -= n;
    memmove(cache, cache + n, (size_t)cache_count * sizeof *cache);
    return n;
}

static float *cache_take(int64_t bytes)
{
    if (bytes < CACHE_MIN_BYTES) return NULL;
    float *data = NULL;
    pthread_mutex_lock(&cache_lock);
    for (int i = cache_count - 1; i >= 0; i--) {
        if (cache[i].bytes != bytes) continue;
        data = cache[i].data;
        cache_bytes -= bytes;
        memmove(cache + i, cache + i + 1, (size_t)(cache_count - i - 1) * sizeof *cache);
        cache_count--;
        break;
    }
    pthread_mutex_unlock(&cache_lock);
    return data;
}

static void cache_give(float *data, int64_t bytes)
{
    static cache_entry dropped[CACHE_MAX_ENTRIES];
    int n = 0;
    bool kept = false;
    pthread_mutex_lock(&cache_lock);
    if (bytes >= CACHE_MIN_BYTES && bytes <= cache_limit) {
        n = cache_evict(cache_limit - bytes, dropped);
        if (cache_count == CACHE_MAX_ENTRIES) /* full of small buffers: drop the oldest */
            n += cache_evict(cache_bytes - cache[0].bytes, dropped + n);
        cache[cache_count++] = (cache_entry){data, bytes};
        cache_bytes += bytes;
        kept = true;
    }
    /* Freed under the lock: `dropped` is shared (too big for the stack). */
    for (int i = 0; i < n; i++) system_free(dropped[i].data);
    pthread_mutex_unlock(&cache_lock);
    if (!kept) system_free(data);
}

void bn_mem_cache_clear(void)
{
    pthread_mutex_lock(&cache_lock);
    for (int i = 0; i < cache_count; i++) system_free(cache[i].data);
    cache_count = 0;
    cache_bytes = 0;
    pthread_mutex_unlock(&cache_lock);
}

int64_t bn_mem_cached(void)
{
    pthread_mutex_lock(&cache_lock);
    int64_t b = cache_bytes;
    pthread_mutex_unlock(&cache_lock);
    return b;
}

void bn_mem_set_cache_limit(int64_t bytes)
{
    static cache_entry dropped[CACHE_MAX_ENTRIES];
    if (!CACHE_ENABLED || bytes < 0) bytes = 0;
    pthread_mutex_lock(&cache_lock);
    cache_limit = bytes;
    int n = cache_evict(bytes, dropped);
    for (int i = 0; i < n; i++) system_free(dropped[i].data);
    pthread_mutex_unlock(&cache_lock);
}

int64_t bn_mem_cache_limit(void)
{
    pthread_mutex_lock(&cache_lock);
    int64_t b = cache_limit;
    pthread_mutex_unlock(&cache_lock);
    return b;
}

/* Largest element count we accept: keeps byte sizes far from int64 overflow. */
#define BN_MAX_NUMEL (INT64_C(1) << 40)

/* Bytes a storage of numel floats takes and is accounted for. */
static int64_t storage_bytes(int64_t numel)
{
    int64_t bytes = numel * (int64_t)sizeof(float);
    int64_t rounded = (bytes + BN_ALIGN - 1) / BN_ALIGN * BN_ALIGN;
    return rounded == 0 ? BN_ALIGN : rounded;
}

static bn_storage *storage_new(int64_t numel)
{
    if (numel < 0 || numel > BN_MAX_NUMEL)
        return bn_fail_null(BN_ENOMEM, "tensor: cannot allocate %lld elements", (long long)numel);
    int64_t rounded = storage_bytes(numel);
    int64_t limit = atomic_load(&mem_limit);
    if (limit > 0 && bn_mem_in_use() + rounded > limit)
        return bn_fail_null(BN_ENOMEM,
                            "tensor: out of memory allocating %lld bytes (limit %lld, in use %lld)",
                            (long long)rounded, (long long)limit, (long long)bn_mem_in_use());
    bn_storage *s = malloc(sizeof *s);
    float *data = s ? cache_take(rounded) : NULL;
    if (s && !data) data = system_alloc(rounded);
    if (s && !data && bn_mem_cached() > 0) { /* the cache holds memory the system now lacks */
        bn_mem_cache_clear();
        data = system_alloc(rounded);
    }
    if (!data) {
        free(s);
        return bn_fail_null(BN_ENOMEM, "tensor: out of memory allocating %lld bytes",
                            (long long)rounded);
    }
    s->data = data;
    s->numel = numel;
    s->refcount = 1;
    s->borrowed = false;
    mem_account(rounded);
    return s;
}

static void storage_release(bn_storage *s)
{
    if (!s || --s->refcount > 0) return;
    if (!s->borrowed) {
        int64_t rounded = storage_bytes(s->numel);
        cache_give(s->data, rounded);
        mem_account(-rounded);
    }
    free(s);
}

/* ---- creation ----------------------------------------------------------- */

static void set_contiguous_strides(bn_tensor *t)
{
    int64_t st = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        t->stride[d] = st;
        st *= t->shape[d] > 0 ? t->shape[d] : 1;
    }
}

static bn_status check_shape(const char *op, int ndim, const int64_t *shape, int64_t *numel)
{
    if (ndim < 0 || ndim > BN_MAX_DIMS)
        return bn_fail(BN_EARG, "%s: expected 0 to %d dimensions, got %d", op, BN_MAX_DIMS, ndim);
    /* Bound the product of the non-zero sizes too: a zero elsewhere must not
     * hide sizes whose product overflows when strides are computed. */
    int64_t n = 1, nonzero = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0)
            return bn_fail(BN_EARG, "%s: size of dim %d expected >= 0, got %lld", op, d,
                           (long long)shape[d]);
        if (shape[d] > 0 && nonzero > BN_MAX_NUMEL / shape[d])
            return bn_fail(BN_ENOMEM, "%s: shape %s has too many elements", op,
                           bn_dims_str(ndim, shape));
        if (shape[d] > 0) nonzero *= shape[d];
        n *= shape[d];
    }
    *numel = n;
    return BN_OK;
}

/* A tensor struct over `s` (takes the caller's reference to s). */
static bn_tensor *tensor_over(bn_storage *s, int ndim, const int64_t *shape)
{
    bn_tensor *t = calloc(1, sizeof *t);
    if (!t) {
        storage_release(s);
        return bn_fail_null(BN_ENOMEM, "tensor: out of memory");
    }
    t->refcount = 1;
    t->ndim = ndim;
    if (ndim > 0) memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    set_contiguous_strides(t);
    t->storage = s;
    return t;
}

bn_tensor *bn_tensor_empty(int ndim, const int64_t *shape)
{
    int64_t numel = 0;
    if (check_shape("empty", ndim, shape, &numel) != BN_OK) return NULL;
    bn_storage *s = storage_new(numel);
    if (!s) return NULL;
    return tensor_over(s, ndim, shape);
}

bn_tensor *bn_tensor_full(int ndim, const int64_t *shape, float value)
{
    bn_tensor *t = bn_tensor_empty(ndim, shape);
    if (!t) return NULL;
    float *p = bn_tensor_data(t);
    int64_t n = bn_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) p[i] = value;
    return t;
}

bn_tensor *bn_tensor_zeros(int ndim, const int64_t *shape)
{
    bn_tensor *t = bn_tensor_empty(ndim, shape);
    if (t) memset(bn_tensor_data(t), 0, (size_t)bn_tensor_numel(t) * sizeof(float));
    return t;
}

bn_tensor *bn_tensor_ones(int ndim, const int64_t *shape) { return bn_tensor_full(ndim, shape, 1.0f); }

bn_tensor *bn_tensor_from_array(int ndim, const int64_t *shape, const float *data)
{
    bn_tensor *t = bn_tensor_empty(ndim, shape);
    if (t && bn_tensor_numel(t) > 0)
        memcpy(bn_tensor_data(t), data, (size_t)bn_tensor_numel(t) * sizeof(float));
    return t;
}

bn_tensor *bn_tensor_scalar(float value) { return bn_tensor_full(0, NULL, value); }

bn_tensor *bn_tensor_empty_like(const bn_tensor *t) { return bn_tensor_empty(t->ndim, t->shape); }
bn_tensor *bn_tensor_zeros_like(const bn_tensor *t) { return bn_tensor_zeros(t->ndim, t->shape); }

bn_tensor *bn_tensor_arange(double start, double end, double step)
{
    if (!isfinite(start) || !isfinite(end) || !isfinite(step))
        return bn_fail_null(BN_EARG, "arange: start, end and step expected finite, got %g, %g, %g",
                            start, end, step);
    if (step == 0) return bn_fail_null(BN_EARG, "arange: step expected non-zero, got 0");
    if ((end - start) * step < 0)
        return bn_fail_null(BN_EARG,
                            "arange: step %g goes away from end (start %g, end %g)", step, start, end);
    double count = ceil((end - start) / step);
    if (count > (double)BN_MAX_NUMEL)
        return bn_fail_null(BN_ENOMEM, "arange: %g elements is too many", count);
    int64_t n = (int64_t)count;
    bn_tensor *t = bn_tensor_empty(1, &n);
    if (!t) return NULL;
    float *p = bn_tensor_data(t);
    for (int64_t i = 0; i < n; i++) p[i] = (float)(start + (double)i * step);
    return t;
}

bn_tensor *bn_tensor_linspace(double start, double end, int64_t steps)
{
    if (steps < 0) return bn_fail_null(BN_EARG, "linspace: steps expected >= 0, got %lld", (long long)steps);
    if (!isfinite(start) || !isfinite(end))
        return bn_fail_null(BN_EARG, "linspace: start and end expected finite, got %g, %g", start, end);
    bn_tensor *t = bn_tensor_empty(1, &steps);
    if (!t) return NULL;
    float *p = bn_tensor_data(t);
    double h = steps > 1 ? (end - start) / (double)(steps - 1) : 0.0;
    for (int64_t i = 0; i < steps; i++) p[i] = (float)(i == steps - 1 && steps > 1 ? end : start + h * (double)i);
    return t;
}

bn_tensor *bn_tensor_logspace(double start, double end, int64_t steps, double base)
{
    if (!(base > 0)) return bn_fail_null(BN_EARG, "logspace: base expected > 0, got %g", base);
    bn_tensor *t = bn_tensor_linspace(start, end, steps);
    if (!t) return NULL;
    float *p = bn_tensor_data(t);
    double h = steps > 1 ? (end - start) / (double)(steps - 1) : 0.0;
    for (int64_t i = 0; i < steps; i++) p[i] = (float)pow(base, start + h * (double)i);
    return t;
}

bn_tensor *bn_tensor_eye(int64_t n, int64_t m)
{
    int64_t shape[2] = {n, m};
    bn_tensor *t = bn_tensor_zeros(2, shape);
    if (!t) return NULL;
    float *p = bn_tensor_data(t);
    for (int64_t i = 0; i < n && i < m; i++) p[i * m + i] = 1.0f;
    return t;
}

/* ---- references --------------------------------------------------------- */

bn_tensor *bn_tensor_retain(bn_tensor *t)
{
    if (t) t->refcount++;
    return t;
}

void bn_tensor_release(bn_tensor *t)
{
    if (!t || --t->refcount > 0) return;
    if (t->grad_fn) {
        if (t->grad_fn->retain == t) t->grad_fn->retain = NULL;
        bn_node_release(t->grad_fn);
    }
    bn_tensor_release(t->grad);
    bn_hook_list_free(t->hooks);
    storage_release(t->storage);
    free(t->name);
    free(t);
}

/* ---- facts -------------------------------------------------------------- */

int64_t bn_tensor_numel(const bn_tensor *t)
{
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

bool bn_tensor_is_contiguous(const bn_tensor *t)
{
    if (bn_tensor_numel(t) == 0) return true; /* no element is out of place */
    int64_t st = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->stride[d] != st) return false;
        st *= t->shape[d];
    }
    return true;
}

bool bn_shape_equal(const bn_tensor *a, const bn_tensor *b)
{
    if (a->ndim != b->ndim) return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return false;
    return true;
}

const char *bn_dims_str(int ndim, const int64_t *shape)
{
    static _Thread_local char ring[8][160];
    static _Thread_local int next = 0;
    char *buf = ring[next];
    next = (next + 1) % 8;
    size_t len = 0;
    buf[len++] = '[';
    for (int d = 0; d < ndim && len < 140; d++)
        len += (size_t)snprintf(buf + len, 160 - len, d ? " x %lld" : "%lld", (long long)shape[d]);
    snprintf(buf + len, 160 - len, "]");
    return buf;
}

const char *bn_shape_str(const bn_tensor *t) { return bn_dims_str(t->ndim, t->shape); }

int bn_dim_wrap(const char *op, int dim, int ndim)
{
    int n = ndim > 0 ? ndim : 1;
    if (dim < -n || dim >= n) {
        bn_fail(BN_EARG, "%s: dim expected in [%d, %d], got %d", op, -n, n - 1, dim);
        return -1;
    }
    return dim < 0 ? dim + n : dim;
}

float bn_tensor_get(const bn_tensor *t, const int64_t *index)
{
    int64_t off = t->offset;
    for (int d = 0; d < t->ndim; d++) off += index[d] * t->stride[d];
    return t->storage->data[off];
}

float bn_tensor_get_flat(const bn_tensor *t, int64_t i)
{
    int64_t off = t->offset;
    for (int d = t->ndim - 1; d >= 0; d--) {
        off += (i % t->shape[d]) * t->stride[d];
        i /= t->shape[d];
    }
    return t->storage->data[off];
}

void bn_tensor_read(const bn_tensor *t, float *out)
{
    if (bn_tensor_is_contiguous(t)) {
        memcpy(out, bn_tensor_data(t), (size_t)bn_tensor_numel(t) * sizeof(float));
        return;
    }
    const float *base = t->storage->data;
    int64_t i = 0;
    FOR_EACH_OFFSET(t, off, out[i++] = base[off]);
}

/* ---- data movement ------------------------------------------------------ */

static bn_status check_writable(const char *op, const bn_tensor *t)
{
    if (bn_grad_enabled() && (t->grad_fn || t->requires_grad))
        return bn_fail(BN_ESTATE,
                       "%s: cannot write in place into a tensor that is part of a gradient "
                       "graph (detach it, or use no_grad)", op);
    return BN_OK;
}

static bn_status bn_tensor_fill_unprofiled(bn_tensor *t, float value)
{
    if (check_writable("fill", t) != BN_OK) return bn_last_status();
    float *base = t->storage->data;
    FOR_EACH_OFFSET(t, off, base[off] = value);
    return BN_OK;
}

bn_status bn_tensor_fill(bn_tensor *t, float value)
{
    BN_PROFILE_BEGIN("fill", false);
    bn_status st = bn_tensor_fill_unprofiled(t, value);
    BN_PROFILE_END();
    return st;
}

static bn_status bn_tensor_copy_unprofiled(bn_tensor *dst, const bn_tensor *src)
{
    if (check_writable("copy", dst) != BN_OK) return bn_last_status();
    /* Broadcast src to dst's shape by giving it zero strides. */
    if (src->ndim > dst->ndim)
        return bn_fail(BN_ESHAPE, "copy: source %s does not broadcast to destination %s",
                       bn_shape_str(src), bn_shape_str(dst));
    bn_tensor view = *src;
    view.ndim = dst->ndim;
    int lead = dst->ndim - src->ndim;
    for (int d = 0; d < dst->ndim; d++) {
        int64_t size = d < lead ? 1 : src->shape[d - lead];
        int64_t st = d < lead ? 0 : src->stride[d - lead];
        if (size != dst->shape[d] && size != 1)
            return bn_fail(BN_ESHAPE, "copy: source %s does not broadcast to destination %s",
                           bn_shape_str(src), bn_shape_str(dst));
        view.shape[d] = dst->shape[d];
        view.stride[d] = size == 1 ? 0 : st;
    }
    if (bn_tensor_is_contiguous(dst) && bn_tensor_is_contiguous(&view) && bn_shape_equal(dst, src) &&
        dst->storage != src->storage) {
        memcpy(bn_tensor_data(dst), bn_tensor_data(src), (size_t)bn_tensor_numel(dst) * sizeof(float));
        return BN_OK;
    }
    /* Read first so that overlapping src/dst behave like a copy of src. */
    int64_t n = bn_tensor_numel(dst);
    float *tmp = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (!tmp) return bn_fail(BN_ENOMEM, "copy: out of memory");
    bn_tensor_read(&view, tmp);
    float *base = dst->storage->data;
    int64_t i = 0;
    FOR_EACH_OFFSET(dst, off, base[off] = tmp[i++]);
    free(tmp);
    return BN_OK;
}

bn_status bn_tensor_copy(bn_tensor *dst, const bn_tensor *src)
{
    BN_PROFILE_BEGIN("copy", false);
    bn_status st = bn_tensor_copy_unprofiled(dst, src);
    BN_PROFILE_END();
    return st;
}

bn_tensor *bn_tensor_detach(bn_tensor *t)
{
    bn_tensor *v = calloc(1, sizeof *v);
    if (!v) return bn_fail_null(BN_ENOMEM, "detach: out of memory");
    v->refcount = 1;
    v->ndim = t->ndim;
    memcpy(v->shape, t->shape, sizeof v->shape);
    memcpy(v->stride, t->stride, sizeof v->stride);
    v->offset = t->offset;
    v->storage = t->storage;
    t->storage->refcount++;
    return v;
}


bn_tensor *bn_tensor_dense(bn_tensor *t)
{
    if (bn_tensor_is_contiguous(t)) return bn_tensor_retain(t);
    bn_tensor *c = bn_tensor_empty(t->ndim, t->shape);
    if (c) bn_tensor_read(t, bn_tensor_data(c));
    return c;
}

static bn_tensor *bn_tensor_clone_unprofiled(bn_tensor *t)
{
    /* A differentiable copy: the identity op on a fresh buffer. */
    bn_tensor *c = bn_tensor_empty(t->ndim, t->shape);
    if (!c) return NULL;
    bn_tensor_read(t, bn_tensor_data(c));
    return bn_record_identity(c, t, "clone");
}

bn_tensor *bn_tensor_clone(bn_tensor *t)
{
    BN_PROFILE_BEGIN("clone", false);
    bn_tensor *out = bn_tensor_clone_unprofiled(t);
    BN_PROFILE_END();
    return out;
}

/* ---- printing ----------------------------------------------------------- */

bn_status bn_tensor_summary(const bn_tensor *t, char *buf, size_t size)
{
    int64_t n = bn_tensor_numel(t);
    size_t len = (size_t)snprintf(buf, size, "tensor %s", bn_shape_str(t));
    if (n == 0 || len >= size) return BN_OK;
    double sum = 0, sq = 0, lo = INFINITY, hi = -INFINITY;
    int64_t nonfinite = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = bn_tensor_get_flat(t, i);
        if (!isfinite(v)) {
            nonfinite++;
            continue;
        }
        sum += v;
        sq += v * v;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
    }
    int64_t m = n - nonfinite;
    if (m > 0) {
        double mean = sum / (double)m;
        double var = sq / (double)m - mean * mean;
        len += (size_t)snprintf(buf + len, size - len, "  min %.4g  max %.4g  mean %.4g  std %.4g", lo,
                                hi, mean, sqrt(var > 0 ? var : 0));
    }
    if (nonfinite && len < size)
        len += (size_t)snprintf(buf + len, size - len, "  (%lld NaN/Inf)", (long long)nonfinite);
    if (len >= size) return BN_OK;
    len += (size_t)snprintf(buf + len, size - len, "\n  [");
    int64_t show = n <= 8 ? n : 6;
    for (int64_t i = 0; i < show && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, i ? ", %.4g" : "%.4g", bn_tensor_get_flat(t, i));
    if (n > show && len < size)
        len += (size_t)snprintf(buf + len, size - len, ", ..., %.4g, %.4g", bn_tensor_get_flat(t, n - 2),
                                bn_tensor_get_flat(t, n - 1));
    if (len < size) snprintf(buf + len, size - len, "]");
    return BN_OK;
}

void bn_tensor_print(const bn_tensor *t, FILE *f)
{
    char buf[512];
    bn_tensor_summary(t, buf, sizeof buf);
    fprintf(f, "%s\n", buf);
}

bn_status bn_tensor_set_name(bn_tensor *t, const char *name)
{
    char *copy = strdup(name);
    if (!copy) return bn_fail(BN_ENOMEM, "set_name: out of memory");
    free(t->name);
    t->name = copy;
    return bn_hooks_fire_named(t);
}
