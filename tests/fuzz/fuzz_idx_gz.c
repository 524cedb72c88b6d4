/* libFuzzer target: the IDX reader through gzip. Each input is the
 * *decompressed* content: it is gzip-compressed here (sometimes cut short,
 * as a truncated download would be) before the reader sees it, so mutations
 * explore the parser and the growing-buffer logic behind gzread, not zlib's
 * checksums. */
#include <zlib.h>

#include "data/idx.h"
#include "fuzz_file.h"

static uint8_t *gzip_bytes(const uint8_t *data, size_t size, size_t *out_size)
{
    z_stream s;
    memset(&s, 0, sizeof s);
    if (deflateInit2(&s, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) abort();
    uLong cap = deflateBound(&s, (uLong)size) + 64;
    uint8_t *out = malloc(cap);
    if (!out) abort();
    s.next_in = (Bytef *)data;
    s.avail_in = (uInt)size;
    s.next_out = out;
    s.avail_out = (uInt)cap;
    if (deflate(&s, Z_FINISH) != Z_STREAM_END) abort();
    *out_size = cap - s.avail_out;
    deflateEnd(&s);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    /* The first byte decides how much of the compressed stream survives:
     * 0..223 all of it, else a cut (the gzip trailer or more goes missing). */
    uint8_t cut = data[0];
    size_t gz_size;
    uint8_t *gz = gzip_bytes(data + 1, size - 1, &gz_size);
    if (cut >= 224) {
        size_t drop = (size_t)(cut - 223);
        gz_size = gz_size > drop ? gz_size - drop : 0;
    }
    const char *path = fuzz_file_write(gz, gz_size);
    free(gz);

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
        for (int64_t i = 0; i < n; i++) sink += labels[i];
        (void)sink;
        free(labels);
    } else {
        if (labels || n) abort();
        fuzz_check_error("idx");
    }
    return 0;
}
