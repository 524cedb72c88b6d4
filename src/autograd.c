#include "autograd.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "profile.h"

static _Thread_local bool grad_mode_off = false;
static _Atomic uint64_t next_seq = 1;
static _Atomic uint64_t next_visit = 1;
static _Atomic int64_t nodes_alive = 0;

bool bn_grad_enabled(void) { return !grad_mode_off; }

bool bn_set_grad_enabled(bool on)
{
    bool was = !grad_mode_off;
    grad_mode_off = !on;
    return was;
}

int64_t bn_nodes_alive(void) { return atomic_load(&nodes_alive); }

/* ---- hooks -------------------------------------------------------------- */

typedef struct pattern_hook {
    int id;
    char *pattern;
    bn_fwd_hook_fn fwd;
    bn_grad_hook_fn bwd;
    void *ud;
    void (*free_ud)(void *);
    struct pattern_hook *next;
} pattern_hook;

static pattern_hook *registry = NULL;
static int next_hook_id = 1;

static pattern_hook *registry_find(int id)
{
    for (pattern_hook *h = registry; h; h = h->next)
        if (h->id == id) return h;
    return NULL;
}

bool bn_glob_match(const char *p, const char *s)
{
    /* Iterative glob with single-star backtracking: linear, no recursion. */
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*p == '?' || (*p && *p != '*' && *p == *s)) {
            p++;
            s++;
        } else if (*p == '*') {
            star = p++;
            resume = s;
        } else if (star) {
            p = star + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*p == '*') p++;
    return *p == '\0';
}

int bn_hooks_add(const char *pattern, bn_fwd_hook_fn fwd, bn_grad_hook_fn bwd, void *ud,
                 void (*free_ud)(void *))
{
    if (!pattern) {
        bn_fail(BN_EARG, "hooks_add: pattern expected a string, got NULL");
        return -1;
    }
    pattern_hook *h = calloc(1, sizeof *h);
    char *copy = strdup(pattern);
    if (!h || !copy) {
        free(h);
        free(copy);
        bn_fail(BN_ENOMEM, "hooks_add: out of memory");
        return -1;
    }
    h->id = next_hook_id++;
    h->pattern = copy;
    h->fwd = fwd;
    h->bwd = bwd;
    h->ud = ud;
    h->free_ud = free_ud;
    h->next = registry;
    registry = h;
    return h->id;
}

bn_status bn_hooks_remove(int id)
{
    for (pattern_hook **pp = &registry; *pp; pp = &(*pp)->next) {
        if ((*pp)->id != id) continue;
        pattern_hook *h = *pp;
        *pp = h->next;
        if (h->free_ud) h->free_ud(h->ud);
        free(h->pattern);
        free(h);
        return BN_OK;
    }
    return bn_fail(BN_EARG, "hooks_remove: no hook with id %d", id);
}


void bn_hook_list_free(bn_hook *h)
{
    while (h) {
        bn_hook *next = h->next;
        if (h->registry_id == 0 && h->free_ud) h->free_ud(h->ud);
        free(h->name);
        free(h);
        h = next;
    }
}

static bn_hook **hook_list_of(bn_tensor *t)
{
    return t->grad_fn ? &t->grad_fn->hooks : &t->hooks;
}

static bn_status hook_append(bn_hook **list, bn_grad_hook_fn fn, void *ud, void (*free_ud)(void *),
                             int registry_id, const char *name)
{
    bn_hook *h = calloc(1, sizeof *h);
    char *copy = name ? strdup(name) : NULL;
    if (!h || (name && !copy)) {
        free(h);
        free(copy);
        return bn_fail(BN_ENOMEM, "register_hook: out of memory");
    }
    h->fn = fn;
    h->ud = ud;
    h->free_ud = free_ud;
    h->registry_id = registry_id;
    h->name = copy;
    while (*list) list = &(*list)->next; /* keep registration order */
    *list = h;
    return BN_OK;
}

bn_status bn_tensor_register_hook(bn_tensor *t, bn_grad_hook_fn fn, void *ud, void (*free_ud)(void *))
{
    if (!t->requires_grad)
        return bn_fail(BN_ESTATE, "register_hook: tensor %s does not require grad", bn_shape_str(t));
    return hook_append(hook_list_of(t), fn, ud, free_ud, 0, t->name);
}

bn_status bn_hooks_fire_named(bn_tensor *t)
{
    /* A forward hook may add or remove hooks (itself included): walk a
     * snapshot of the ids and look each one up again before calling it. */
    int ids[64], n = 0;
    for (pattern_hook *h = registry; h && n < 64; h = h->next)
        if (bn_glob_match(h->pattern, t->name)) ids[n++] = h->id;
    for (int k = 0; k < n; k++) {
        pattern_hook *h = registry_find(ids[k]);
        if (!h) continue;
        bn_grad_hook_fn bwd = h->bwd;
        void *ud = h->ud;
        if (h->fwd) {
            bn_status st = h->fwd(h->ud, t->name, t);
            if (st != BN_OK) return st;
            if (!registry_find(ids[k])) continue; /* removed itself */
        }
        if (bwd && t->requires_grad && bn_grad_enabled()) {
            bn_status st = hook_append(hook_list_of(t), bwd, ud, NULL, ids[k], t->name);
            if (st != BN_OK) return st;
        }
    }
    return BN_OK;
}

static bn_status run_hooks(bn_hook *h, bn_tensor *grad)
{
    for (; h; h = h->next) {
        if (h->registry_id > 0 && !registry_find(h->registry_id)) continue; /* removed since */
        bn_status st = h->fn(h->ud, h->name ? h->name : "", grad);
        if (st != BN_OK) return st;
    }
    return BN_OK;
}

/* ---- nodes -------------------------------------------------------------- */

bool bn_grad_needed(int n, bn_tensor *const *inputs)
{
    if (grad_mode_off) return false;
    for (int i = 0; i < n; i++)
        if (inputs[i] && inputs[i]->requires_grad) return true;
    return false;
}

bn_node *bn_node_new(const char *op, bn_backward_fn fn, int n, bn_tensor *const *inputs)
{
    if (n > BN_NODE_MAX_IN) return bn_fail_null(BN_EARG, "%s: too many inputs for a node (%d)", op, n);
    bn_node *node = calloc(1, sizeof *node);
    if (!node) return bn_fail_null(BN_ENOMEM, "%s: out of memory recording the graph", op);
    node->refcount = 1;
    node->seq = atomic_fetch_add(&next_seq, 1);
    node->op = op;
    node->backward = fn;
    node->n_in = n;
    for (int i = 0; i < n; i++) {
        bn_tensor *t = inputs[i];
        if (!t) continue;
        node->in_ndim[i] = t->ndim;
        memcpy(node->in_shape[i], t->shape, sizeof t->shape);
        if (!t->requires_grad) continue;
        node->needs[i] = true;
        if (t->grad_fn) {
            node->next[i] = t->grad_fn;
            t->grad_fn->refcount++;
        } else {
            node->leaf[i] = bn_tensor_retain(t);
        }
    }
    atomic_fetch_add(&nodes_alive, 1);
    return node;
}

bn_status bn_node_save(bn_node *n, int slot, bn_tensor *t)
{
    if (slot < 0 || slot >= BN_NODE_MAX_SAVED) return bn_fail(BN_EARG, "%s: bad save slot %d", n->op, slot);
    if (!t) return BN_OK;
    /* A detached alias: saving the output itself would make a cycle
     * (output -> node -> output). */
    bn_tensor *alias = bn_tensor_detach(t);
    if (!alias) return bn_last_status();
    bn_tensor_release(n->saved[slot]);
    n->saved[slot] = alias;
    return BN_OK;
}

void bn_node_attach(bn_node *n, bn_tensor *out)
{
    out->grad_fn = n;
    out->requires_grad = true;
    out->retains_grad = false;
    n->out_ndim = out->ndim;
    memcpy(n->out_shape, out->shape, sizeof out->shape);
}

static void node_free_saved(bn_node *n)
{
    for (int s = 0; s < BN_NODE_MAX_SAVED; s++) {
        bn_tensor_release(n->saved[s]);
        n->saved[s] = NULL;
    }
    n->freed = true;
}

void bn_node_release(bn_node *n)
{
    /* Iterative: a 1000-layer chain must not recurse 1000 deep. */
    bn_node *stack[64];
    int top = 0;
    bn_node **heap = NULL;
    int heap_cap = 0;
    while (n) {
        bn_node *next_n = NULL;
        if (--n->refcount == 0) {
            node_free_saved(n);
            for (int i = 0; i < n->n_in; i++) bn_tensor_release(n->leaf[i]);
            bn_tensor_release(n->grad);
            bn_hook_list_free(n->hooks);
            for (int i = 0; i < n->n_in; i++) {
                if (!n->next[i]) continue;
                if (top < 64) {
                    stack[top++] = n->next[i];
                } else {
                    if (top - 64 >= heap_cap) {
                        int cap = heap_cap ? heap_cap * 2 : 256;
                        bn_node **grown = realloc(heap, (size_t)cap * sizeof *grown);
                        if (!grown) { /* cannot defer: fall back to recursion */
                            bn_node_release(n->next[i]);
                            continue;
                        }
                        heap = grown;
                        heap_cap = cap;
                    }
                    heap[top++ - 64] = n->next[i];
                }
            }
            free(n);
            atomic_fetch_sub(&nodes_alive, 1);
        }
        if (top > 64) next_n = heap[--top - 64];
        else if (top > 0) next_n = stack[--top];
        n = next_n;
    }
    free(heap);
}

bn_tensor *bn_record(bn_tensor *out, const char *op, bn_backward_fn fn, int n_in,
                     bn_tensor *const *inputs, int n_saved, bn_tensor *const *saved, const double *f,
                     int nf, const int64_t *iv, int ni)
{
    if (!out || !bn_grad_needed(n_in, inputs)) return out;
    bn_node *n = bn_node_new(op, fn, n_in, inputs);
    if (!n) goto fail;
    for (int s = 0; s < n_saved; s++)
        if (bn_node_save(n, s, saved[s]) != BN_OK) goto fail;
    for (int k = 0; k < nf && k < 8; k++) n->f[k] = f[k];
    for (int k = 0; k < ni && k < 8; k++) n->i[k] = iv[k];
    bn_node_attach(n, out);
    return out;
fail:
    if (n) bn_node_release(n);
    bn_tensor_release(out);
    return NULL;
}

static bn_status identity_backward(bn_node *n, bn_tensor *gout, bn_tensor **gin)
{
    gin[0] = bn_reshape(gout, n->in_ndim[0], n->in_shape[0]);
    return gin[0] ? BN_OK : bn_last_status();
}

bn_tensor *bn_record_identity(bn_tensor *out, bn_tensor *in, const char *op)
{
    return bn_record(out, op, identity_backward, 1, &in, 0, NULL, NULL, 0, NULL, 0);
}

/* ---- user-facing -------------------------------------------------------- */

bn_status bn_tensor_set_requires_grad(bn_tensor *t, bool on)
{
    if (t->grad_fn && !on)
        return bn_fail(BN_ESTATE, "requires_grad: tensor %s is the result of an op; use detach() instead",
                       bn_shape_str(t));
    if (t->grad_fn) return BN_OK;
    t->requires_grad = on;
    return BN_OK;
}

bn_status bn_tensor_retain_grad(bn_tensor *t)
{
    if (!t->requires_grad)
        return bn_fail(BN_ESTATE, "retain_grad: tensor %s does not require grad", bn_shape_str(t));
    if (t->grad_fn) {
        t->retains_grad = true;
        t->grad_fn->retain = t;
    }
    return BN_OK;
}

bn_status bn_tensor_zero_grad(bn_tensor *t)
{
    bn_tensor_release(t->grad);
    t->grad = NULL;
    return BN_OK;
}

/* Nobody else sees t's buffer: no other reference to the tensor or to its
 * storage (a view, a hook that kept it, another gradient slot). */
static bool exclusive(const bn_tensor *t)
{
    return t->refcount == 1 && t->storage->refcount == 1 && !t->storage->borrowed;
}

/* slot += g; takes ownership of g.
 *
 * A leaf's slot (its .grad, which users and optimizers may write into)
 * always gets its own contiguous buffer: g is adopted only when nobody else
 * sees it, else copied. A node's slot is internal: it may share g (add and
 * sub pass their output gradient to both inputs, views pass it through) and
 * is copied on write: a later gradient is added in place only into an
 * exclusive buffer, otherwise into a new one (slot + g, the same sums). */
static bn_status accumulate_grad(bn_tensor **slot, bn_tensor *g, bool leaf)
{
    if (!*slot) {
        bn_tensor *own;
        bool dense = bn_tensor_is_contiguous(g) && (g->offset == 0 || !leaf);
        if (dense && !g->grad_fn && (exclusive(g) || !leaf)) {
            own = g; /* nobody else writes into this buffer: keep it */
        } else {
            own = bn_tensor_empty(g->ndim, g->shape);
            if (!own) {
                bn_tensor_release(g);
                return bn_last_status();
            }
            bn_tensor_read(g, bn_tensor_data(own));
            bn_tensor_release(g);
        }
        *slot = own;
        return BN_OK;
    }
    bn_status st;
    if (exclusive(*slot)) {
        st = bn_add_into(*slot, g);
    } else {
        bn_tensor *sum = bn_add_new(*slot, g);
        if (sum) {
            bn_tensor_release(*slot);
            *slot = sum;
        }
        st = sum ? BN_OK : bn_last_status();
    }
    bn_tensor_release(g);
    return st;
}

static bn_status accumulate(bn_tensor **slot, bn_tensor *g, bool leaf)
{
    BN_PROFILE_BEGIN("autograd accumulate", false);
    bn_status st = accumulate_grad(slot, g, leaf);
    BN_PROFILE_END();
    return st;
}

static int by_seq_desc(const void *a, const void *b)
{
    uint64_t x = (*(bn_node *const *)a)->seq, y = (*(bn_node *const *)b)->seq;
    return x < y ? 1 : x > y ? -1 : 0;
}

bn_status bn_backward(bn_tensor *root, bn_tensor *grad, bool retain_graph)
{
    if (!root->requires_grad)
        return bn_fail(BN_ESTATE, "backward: tensor %s does not require grad (nothing to differentiate)",
                       bn_shape_str(root));
    if (grad && !bn_shape_equal(grad, root))
        return bn_fail(BN_ESHAPE, "backward: gradient expected shape %s, got %s", bn_shape_str(root),
                       bn_shape_str(grad));
    if (!grad && bn_tensor_numel(root) != 1)
        return bn_fail(BN_ESTATE,
                       "backward: a gradient is needed for non-scalar output %s (or reduce it to a scalar first)",
                       bn_shape_str(root));
    bool was = bn_set_grad_enabled(false); /* backward itself records nothing */
    bn_status st = BN_OK;
    bn_tensor *seed = grad ? bn_tensor_clone(grad) : bn_tensor_ones(root->ndim, root->shape);
    bn_node **order = NULL;
    if (!seed) {
        st = bn_last_status();
        goto done;
    }
    if (!root->grad_fn) { /* a leaf: its gradient is the seed */
        st = run_hooks(root->hooks, seed);
        if (st == BN_OK) st = accumulate(&root->grad, seed, true);
        else bn_tensor_release(seed);
        goto done;
    }

    /* Collect reachable nodes (explicit stack), then order by sequence. */
    uint64_t visit = atomic_fetch_add(&next_visit, 1);
    size_t cap = 256, count = 0, top = 0;
    order = malloc(cap * sizeof *order);
    bn_node **stack = malloc(cap * sizeof *stack);
    size_t stack_cap = cap;
    if (!order || !stack) {
        free(stack);
        bn_tensor_release(seed);
        st = bn_fail(BN_ENOMEM, "backward: out of memory");
        goto done;
    }
    stack[top++] = root->grad_fn;
    root->grad_fn->visit = visit;
    while (top > 0) {
        bn_node *n = stack[--top];
        if (count == cap) {
            cap *= 2;
            bn_node **grown = realloc(order, cap * sizeof *order);
            if (!grown) {
                st = bn_fail(BN_ENOMEM, "backward: out of memory");
                break;
            }
            order = grown;
        }
        order[count++] = n;
        for (int i = 0; i < n->n_in; i++) {
            bn_node *m = n->next[i];
            if (!m || m->visit == visit) continue;
            m->visit = visit;
            if (top == stack_cap) {
                stack_cap *= 2;
                bn_node **grown = realloc(stack, stack_cap * sizeof *stack);
                if (!grown) {
                    st = bn_fail(BN_ENOMEM, "backward: out of memory");
                    top = 0;
                    break;
                }
                stack = grown;
            }
            stack[top++] = m;
        }
    }
    free(stack);
    if (st != BN_OK) {
        bn_tensor_release(seed);
        goto done;
    }
    qsort(order, count, sizeof *order, by_seq_desc);
    /* Hold every node: hooks may release the tensors that own them. */
    for (size_t k = 0; k < count; k++) order[k]->refcount++;

    bn_tensor_release(root->grad_fn->grad);
    root->grad_fn->grad = seed;
    for (size_t k = 0; k < count && st == BN_OK; k++) {
        bn_node *n = order[k];
        bn_tensor *g = n->grad;
        if (!g) continue; /* no gradient reached this node */
        if (n->freed) {
            st = bn_fail(BN_ESTATE,
                         "backward: trying to backward through the graph a second time (op %s); "
                         "pass retain_graph the first time",
                         n->op);
            break;
        }
        n->grad = NULL;
        st = run_hooks(n->hooks, g);
        if (st == BN_OK && n->retain) {
            bn_tensor *copy = bn_tensor_clone(g);
            st = copy ? accumulate(&n->retain->grad, copy, true) : bn_last_status();
        }
        bn_tensor *gin[BN_NODE_MAX_IN] = {NULL};
        if (st == BN_OK) {
            BN_PROFILE_BEGIN(n->op, true);
            st = n->backward(n, g, gin);
            BN_PROFILE_END();
            if (st != BN_OK) bn_error_prefix("backward of %s: ", n->op);
        }
        bn_tensor_release(g);
        for (int i = 0; i < n->n_in; i++) {
            if (!gin[i]) continue;
            if (st != BN_OK || !n->needs[i]) {
                bn_tensor_release(gin[i]);
                continue;
            }
            if (gin[i]->ndim != n->in_ndim[i] ||
                memcmp(gin[i]->shape, n->in_shape[i], (size_t)gin[i]->ndim * sizeof(int64_t)) != 0) {
                st = bn_fail(BN_ESTATE, "backward of %s: gradient %s for input %d expected shape %s", n->op,
                             bn_shape_str(gin[i]), i, bn_dims_str(n->in_ndim[i], n->in_shape[i]));
                bn_tensor_release(gin[i]);
                continue;
            }
            if (n->next[i]) {
                st = accumulate(&n->next[i]->grad, gin[i], false);
            } else if (n->leaf[i]) {
                st = run_hooks(n->leaf[i]->hooks, gin[i]);
                if (st == BN_OK) st = accumulate(&n->leaf[i]->grad, gin[i], true);
                else bn_tensor_release(gin[i]);
            } else {
                bn_tensor_release(gin[i]);
            }
        }
        if (!retain_graph) node_free_saved(n);
    }
    /* On error, drop partial gradients still parked on nodes. */
    for (size_t k = 0; k < count; k++) {
        bn_tensor_release(order[k]->grad);
        order[k]->grad = NULL;
    }
    for (size_t k = 0; k < count; k++) bn_node_release(order[k]);
done:
    free(order);
    bn_set_grad_enabled(was);
    return st;
}
