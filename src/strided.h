/* Internal: walking strided tensors element by element. */
#ifndef BN_STRIDED_H
#define BN_STRIDED_H

#include "tensor.h"

/* Visits every element of t in row-major order with its storage offset. */
#define FOR_EACH_OFFSET(t, off, body)                                                  \
    do {                                                                               \
        int64_t idx_[BN_MAX_DIMS] = {0};                                               \
        int64_t n_ = bn_tensor_numel(t);                                               \
        int64_t off = (t)->offset;                                                     \
        for (int64_t k_ = 0; k_ < n_; k_++) {                                          \
            body;                                                                      \
            for (int d_ = (t)->ndim - 1; d_ >= 0; d_--) {                              \
                if (++idx_[d_] < (t)->shape[d_]) {                                     \
                    off += (t)->stride[d_];                                            \
                    break;                                                             \
                }                                                                      \
                off -= (idx_[d_] - 1) * (t)->stride[d_];                               \
                idx_[d_] = 0;                                                          \
            }                                                                          \
        }                                                                              \
    } while (0)

#endif
