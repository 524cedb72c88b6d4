/* NumPy .npy files: the interchange format a Python user can read with
 * numpy.load and write with numpy.save.
 *
 * Reading accepts format versions 1.0, 2.0 and 3.0, either byte order, C or
 * Fortran order, 0 to BN_MAX_DIMS dimensions, and the dtypes
 *   f2 f4 f8  i1 i2 i4 i8  u1 u2 u4 u8  b1
 * all converted to float32 (integers beyond 2^24 lose precision; booleans
 * become 0 and 1). Anything else (complex, object, structured, strings, ...)
 * fails with BN_EFORMAT. A damaged or hostile file fails with BN_EFORMAT (its
 * contents are wrong) or BN_EIO (it could not be read) and a message naming
 * the file and the problem; the reader never allocates more than the file's
 * size justifies.
 *
 * Writing produces version 1.0, '<f4', C order, and replaces `path`
 * atomically: readers see the old file or the complete new one, never a
 * partial write. */
#ifndef BN_DATA_NPY_H
#define BN_DATA_NPY_H

#include "tensor.h"

/* Loads a .npy file as a new contiguous float32 tensor (+1), or NULL. */
bn_tensor *bn_npy_load(const char *path);

/* Saves `t` (any layout; written in logical row-major order) to `path`. */
bn_status bn_npy_save(const bn_tensor *t, const char *path);

#endif
