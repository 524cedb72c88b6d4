/* Reverse-mode autograd, define-by-run.
 *
 * Every differentiable op whose inputs require grad (while grad mode is on)
 * makes a node: it holds references to the nodes of its inputs (or the leaf
 * inputs themselves), the tensors its backward needs, and a sequence number.
 * Sequence numbers are the tape: an op's inputs always exist before it, so
 * walking the nodes reachable from the root in decreasing sequence order is a
 * valid reverse topological order, without recursion. The graph lives exactly
 * as long as the tensors that refer to it (refcounts), so work done outside
 * `no_grad` and never backpropagated is freed with its tensors, not leaked.
 * Saved tensors are dropped as soon as their node's backward ran, unless
 * retain_graph was asked. */
#ifndef BN_AUTOGRAD_H
#define BN_AUTOGRAD_H

#include "tensor.h"

#define BN_NODE_MAX_IN 4
#define BN_NODE_MAX_SAVED 6

typedef struct bn_node bn_node;

/* Given the gradient of the node's output, store the gradient of each input
 * i with n->needs[i] in gin[i] as a new reference (shape = that input's
 * shape). Leave gin[i] NULL for inputs that need none. */
typedef bn_status (*bn_backward_fn)(bn_node *n, bn_tensor *gout, bn_tensor **gin);

/* A gradient hook: sees `grad` (read-only by convention) of the tensor it is
 * attached to. A non-OK status stops the backward pass with that error. */
typedef bn_status (*bn_grad_hook_fn)(void *ud, const char *name, bn_tensor *grad);
/* A forward hook: sees a named tensor's value when it is named. */
typedef bn_status (*bn_fwd_hook_fn)(void *ud, const char *name, bn_tensor *value);

typedef struct bn_hook {
    bn_grad_hook_fn fn;
    void *ud;
    void (*free_ud)(void *ud); /* called once when the hook is dropped; may be NULL */
    int registry_id;           /* >0: a pattern hook owned by the registry (ud not ours) */
    char *name;
    struct bn_hook *next;
} bn_hook;

struct bn_node {
    int refcount;
    uint64_t seq;
    const char *op; /* static string: the op's name in errors and profiles */
    bn_backward_fn backward;
    int n_in;
    bn_node *next[BN_NODE_MAX_IN];   /* grad_fn of input i (retained), or NULL */
    bn_tensor *leaf[BN_NODE_MAX_IN]; /* input i when it is a leaf requiring grad (retained) */
    bool needs[BN_NODE_MAX_IN];      /* does input i want a gradient */
    int in_ndim[BN_NODE_MAX_IN];
    int64_t in_shape[BN_NODE_MAX_IN][BN_MAX_DIMS];
    int out_ndim;
    int64_t out_shape[BN_MAX_DIMS];
    bn_tensor *saved[BN_NODE_MAX_SAVED]; /* released after backward */
    double f[8];                         /* the op's scalar parameters */
    int64_t i[8];                        /* the op's integer parameters */
    bn_tensor *grad;       /* output gradient accumulated during backward */
    bn_tensor *retain;     /* weak: the output tensor that asked for retain_grad */
    bn_hook *hooks;        /* gradient hooks on the output */
    bool freed;            /* saved tensors already released */
    uint64_t visit;        /* backward pass bookkeeping */
};

/* ---- grad mode ---------------------------------------------------------- */
bool bn_grad_enabled(void);
bool bn_set_grad_enabled(bool on); /* returns the previous mode (per thread) */

/* ---- for users ---------------------------------------------------------- */
bn_status bn_tensor_set_requires_grad(bn_tensor *t, bool on); /* leaves only */
bn_status bn_tensor_retain_grad(bn_tensor *t);
bn_status bn_tensor_zero_grad(bn_tensor *t); /* drops .grad */
/* Backward from `root`. `grad` may be NULL when root has one element. */
bn_status bn_backward(bn_tensor *root, bn_tensor *grad, bool retain_graph);
/* Calls fn(ud, name, grad) with this tensor's gradient during backward. */
bn_status bn_tensor_register_hook(bn_tensor *t, bn_grad_hook_fn fn, void *ud, void (*free_ud)(void *));

/* Pattern hooks: `pattern` is a glob ('*' any run, '?' one char) matched
 * against the names given by bn_tensor_set_name. Returns an id > 0, or -1.
 * free_ud runs when the hook is removed. */
int bn_hooks_add(const char *pattern, bn_fwd_hook_fn fwd, bn_grad_hook_fn bwd, void *ud,
                 void (*free_ud)(void *));
bn_status bn_hooks_remove(int id);
bool bn_glob_match(const char *pattern, const char *s);

/* Number of live nodes (for leak tests). */
int64_t bn_nodes_alive(void);

/* ---- for ops ------------------------------------------------------------ */
/* Do these inputs need a node? (grad mode on and any input requires grad) */
bool bn_grad_needed(int n, bn_tensor *const *inputs);
/* A node over `n` inputs (NULL entries allowed), its output not yet known. */
bn_node *bn_node_new(const char *op, bn_backward_fn fn, int n, bn_tensor *const *inputs);
/* Keeps a detached alias of t (same storage, no history) for backward. */
bn_status bn_node_save(bn_node *n, int slot, bn_tensor *t);
/* Makes `out` the node's output: out->grad_fn = n (takes over the caller's
 * reference to n), out->requires_grad = true. */
void bn_node_attach(bn_node *n, bn_tensor *out);
void bn_node_release(bn_node *n);
void bn_hook_list_free(bn_hook *h);

/* The common tail of an op: when grad is needed, make a node, save tensors
 * and attach; on failure release `out` and return NULL. */
bn_tensor *bn_record(bn_tensor *out, const char *op, bn_backward_fn fn, int n_in,
                     bn_tensor *const *inputs, int n_saved, bn_tensor *const *saved,
                     const double *f, int nf, const int64_t *iv, int ni);

/* A node whose backward passes the gradient through unchanged (reshaped to
 * the input's shape): for copies such as clone and contiguous. */
bn_tensor *bn_record_identity(bn_tensor *out, bn_tensor *in, const char *op);
/* Runs the pattern hooks that match t->name (called by bn_tensor_set_name). */
bn_status bn_hooks_fire_named(bn_tensor *t);

#endif
