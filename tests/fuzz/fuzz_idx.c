/* libFuzzer target: the IDX reader (src/data/idx.c) on raw bytes. zlib's
 * gzread passes non-gzip data through and decompresses gzip data, so inputs
 * that start with the gzip magic (some seeds do) exercise the gzip path too;
 * fuzz_idx_gz.c compresses every input to reach it systematically. */
#include "data/idx.h"
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file_write(data, size);

    bn_tensor *images = bn_idx_load_images(path);
    if (images) {
        fuzz_check_tensor(images);
        bn_tensor_release(images);
    } else {
        fuzz_check_error("idx");
    }

    int64_t *labels = NULL, n = 0;
    if (bn_idx_load_labels(path, &labels, &n) == BN_OK) {
        volatile int64_t sink = 0;
        for (int64_t i = 0; i < n; i++) sink += labels[i]; /* every label readable */
        (void)sink;
        free(labels);
    } else {
        if (labels || n) abort(); /* outputs are NULL / 0 on failure */
        fuzz_check_error("idx");
    }

    bn_tensor *x = NULL;
    int64_t *y = NULL;
    if (bn_idx_load_pair(path, path, &x, &y, &n) == BN_OK) { /* an images file is never a labels file */
        fprintf(stderr, "fuzz: one file read as both images and labels\n");
        abort();
    }
    if (x || y || n) abort();
    return 0;
}
