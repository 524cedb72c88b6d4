/* The optimizer's hot loop: one SGD update over a list of parameters, the
 * same rule as PyTorch's torch.optim.SGD (1.13, including its first-step
 * special case), computed in float32 in PyTorch's order of operations. The
 * Lua optimizer (lua/bnlab/optim/) owns the state and calls this once per
 * parameter group. */
#ifndef BN_OPTIM_H
#define BN_OPTIM_H

#include <stdbool.h>

#include "tensor.h"

typedef struct bn_sgd_opts {
    double lr;           /* >= 0, finite */
    double momentum;     /* >= 0, finite; 0 = no momentum buffers */
    double dampening;    /* finite; PyTorch does not bound it */
    double weight_decay; /* >= 0, finite (L2 added to the gradient) */
    bool nesterov;       /* needs momentum > 0 and dampening == 0 */
    bool maximize;       /* ascend: the gradient's sign is flipped first */
} bn_sgd_opts;

/* For each i with params[i]->grad set (others are skipped and their buffer
 * left alone), with g = grad (-grad when maximize):
 *     g   = g + weight_decay * p                      (if weight_decay != 0)
 *     buf = g                                         (momentum, no buffer yet)
 *     buf = momentum * buf + (1 - dampening) * g      (momentum, later steps)
 *     g   = nesterov ? g + momentum * buf : buf       (momentum)
 *     p   = p - lr * g
 * momentum_bufs[i] == NULL means "no buffer yet" (the first step, where
 * dampening does not apply): a contiguous buffer is created and stored there
 * as a new reference the caller owns. momentum_bufs itself may be NULL when
 * momentum == 0. Params may be any non-overlapping strided views of leaves;
 * no two written tensors (params with a grad, buffers in use) may share
 * memory. Everything is checked and every buffer allocated before any value
 * changes: on failure nothing was modified and no new buffer is kept.
 * Elementwise, so the result does not depend on the thread count. Grad mode
 * is irrelevant (this is a raw write, like torch.no_grad()). Messages index
 * params as C does, from 0. */
bn_status bn_sgd_step(int n, bn_tensor *const *params, bn_tensor **momentum_bufs, const bn_sgd_opts *o);

/* Only the option checks of bn_sgd_step ("sgd_step: lr expected ..."). */
bn_status bn_sgd_check_opts(const bn_sgd_opts *o);

#endif
