/* Replacing a file atomically: write a temporary sibling, make it durable,
 * rename it over the target, make the rename durable.
 *
 * Readers, and a crash or a full disk at any point, see either the old file
 * or the complete new one, never a partial write. The temporary lives next to
 * the target ("<path>.tmp.<pid>.<n>") because rename is atomic only within
 * one file system. Every writer of the data layer (.npy, safetensors, PNG,
 * CSV) should go through this.
 *
 *   bn_atomic_file *af = bn_atomic_file_open("safetensors", path);
 *   if (!af) return bn_last_status();
 *   bn_atomic_file_write(af, header, len);   // failures are sticky ...
 *   bn_atomic_file_write(af, data, n);
 *   return bn_atomic_file_commit(af);        // ... and reported here
 *
 * Caveats: the new file gets the default permissions (0666 less the umask),
 * not the old file's; a symbolic link at `path` is replaced, not followed. */
#ifndef BN_DATA_ATOMIC_FILE_H
#define BN_DATA_ATOMIC_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "error.h"

typedef struct bn_atomic_file bn_atomic_file;

/* Creates the temporary for replacing `path`. `op` starts every error
 * message ("safetensors: <path>: ..."). NULL on failure (BN_EARG, BN_EIO,
 * BN_ENOMEM), with nothing left on disk. */
bn_atomic_file *bn_atomic_file_open(const char *op, const char *path);

/* Appends n bytes. After the first failure it writes nothing more and
 * returns false; commit then reports that failure, so callers may skip
 * checking each write. */
bool bn_atomic_file_write(bn_atomic_file *af, const void *buf, size_t n);

/* The underlying stream, for code that writes through a FILE* itself (libpng).
 * Errors on it are caught by commit (ferror). */
FILE *bn_atomic_file_stream(bn_atomic_file *af);

/* The temporary's path (for messages and tests). */
const char *bn_atomic_file_temp_path(const bn_atomic_file *af);

/* Flushes, fsyncs, closes, renames over the target and fsyncs the directory.
 * Frees `af` whatever happens. On failure (BN_EIO, message naming the step,
 * the temporary and the system's reason) the temporary is removed and the
 * target is left as it was. */
bn_status bn_atomic_file_commit(bn_atomic_file *af);

/* Gives up: closes and removes the temporary, frees `af`; the target is
 * untouched. Leaves the current error message alone. NULL is fine. */
void bn_atomic_file_abort(bn_atomic_file *af);

#endif
