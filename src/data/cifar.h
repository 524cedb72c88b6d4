/* CIFAR-10 and CIFAR-100, "binary version" (data_batch_1.bin .. data_batch_5.bin
 * and test_batch.bin; CIFAR-100's train.bin and test.bin).
 *
 * A file is a plain sequence of records: the label byte(s), then 3072 pixel
 * bytes, channel-major (1024 red, 1024 green, 1024 blue, each 32 rows of 32).
 * CIFAR-10 records have 1 label byte (class 0..9), CIFAR-100 records 2: the
 * coarse class (0..19), then the fine class (0..99).
 *
 * There is no header, so the file size is all there is to check: it must be
 * a non-zero multiple of the record size. Labels out of range fail too
 * (they mean the wrong label_bytes, or a damaged file). Errors are BN_EARG
 * (bad arguments), BN_EIO (cannot read) or BN_EFORMAT, with a message
 * "cifar: <path>: <what is wrong>". */
#ifndef BN_DATA_CIFAR_H
#define BN_DATA_CIFAR_H

#include "tensor.h"

#define BN_CIFAR_SIDE 32
#define BN_CIFAR_PIXELS (3 * BN_CIFAR_SIDE * BN_CIFAR_SIDE) /* bytes of one image */

/* Loads one file. label_bytes is 1 (CIFAR-10) or 2 (CIFAR-100, whose fine
 * label is returned). *images gets a new float32 tensor [N x 3 x 32 x 32]
 * with values byte/255 in [0, 1] (+1); *labels a malloc'd array of N class
 * indices the caller frees. On failure the outputs are NULL and *n is 0. */
bn_status bn_cifar_load(const char *path, int label_bytes, bn_tensor **images, int64_t **labels, int64_t *n);

/* Loads several files as one set, in order (the five CIFAR-10 training
 * batches), into a single tensor. coarse_labels may be NULL; with
 * label_bytes 2 it receives CIFAR-100's coarse classes, with 1 it is set to
 * NULL. Every file is checked before anything large is allocated. */
bn_status bn_cifar_load_files(int n_files, const char *const *paths, int label_bytes, bn_tensor **images,
                              int64_t **labels, int64_t **coarse_labels, int64_t *n);

#endif
