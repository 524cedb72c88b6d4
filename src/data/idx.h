/* IDX files: the format of MNIST and Fashion-MNIST
 * (train-images-idx3-ubyte, train-labels-idx1-ubyte, ...).
 *
 * A big-endian header: two zero bytes, a dtype byte (0x08 = unsigned byte,
 * the only one these data sets use), the number of dimensions, then one
 * 32-bit size per dimension; then the elements in C order. Images are
 * 0x00000803 (N x H x W), labels 0x00000801 (N).
 *
 * Files may be gzip-compressed (as distributed, and as Debian's
 * dataset-fashion-mnist installs them in /usr/share/datasets/fashion-mnist)
 * or raw; both are read the same way. A damaged or hostile file fails with
 * BN_EFORMAT (its contents are wrong) or BN_EIO (it could not be read), with
 * a message "idx: <path>: <what is wrong>". Sizes are checked before
 * anything is allocated: N <= 10^8, H and W <= 10^4, and the data must be
 * exactly as long as the header says. A gzip file's length is unknown until
 * it is decompressed, so its data is read into a buffer that grows only as
 * bytes arrive, never past the size the header declares. */
#ifndef BN_DATA_IDX_H
#define BN_DATA_IDX_H

#include "tensor.h"

/* Limits on the header's sizes: far above MNIST's, far below what would
 * make a hostile header costly. */
#define BN_IDX_MAX_ITEMS 100000000 /* N */
#define BN_IDX_MAX_SIDE 10000      /* H, W */

/* Images as a new float32 tensor [N x 1 x H x W] with values byte/255 in
 * [0, 1] (+1), or NULL. */
bn_tensor *bn_idx_load_images(const char *path);

/* Labels as a malloc'd array of N class indices (the file's bytes, 0..255;
 * the caller frees it). On failure *labels is NULL and *n is 0. */
bn_status bn_idx_load_labels(const char *path, int64_t **labels, int64_t *n);

/* Both files of a split, checking that they hold the same number of items
 * (an images file paired with the other split's labels fails here). On
 * failure *images and *labels are NULL and *n is 0. */
bn_status bn_idx_load_pair(const char *images_path, const char *labels_path, bn_tensor **images, int64_t **labels,
                           int64_t *n);

#endif
