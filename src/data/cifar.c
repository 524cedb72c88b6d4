/* CIFAR binary reader. Files are raw records without a header, so the
 * checks are the file size (a whole number of records) and the label range. */
#include "data/cifar.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CIFAR_HINT                                                                                                     \
    "get the binary version from https://www.cs.toronto.edu/~kriz/cifar.html, or pass --data DIR / set BNLAB_DATA"
/* Records converted per read: ~200 KB of input, a small fixed buffer. */
#define CIFAR_BATCH 64

static bn_status cifar_fail(bn_status s, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bn_status cifar_fail(bn_status s, const char *path, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return bn_fail(s, "cifar: %s: %s", path, msg);
}

static const char *set_name(int label_bytes) { return label_bytes == 1 ? "CIFAR-10" : "CIFAR-100"; }

/* Opens one file and counts its records; the size must be a non-zero
 * multiple of the record size. */
static bn_status open_file(const char *path, int label_bytes, FILE **out, int64_t *records)
{
    *out = NULL;
    const int64_t rec = label_bytes + BN_CIFAR_PIXELS;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        if (e == ENOENT) return cifar_fail(BN_EIO, path, "%s (%s)", strerror(e), CIFAR_HINT);
        return cifar_fail(BN_EIO, path, "cannot open: %s", strerror(e));
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        int e = errno;
        fclose(f);
        return cifar_fail(BN_EIO, path, "cannot stat: %s", strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        fclose(f);
        return cifar_fail(BN_EIO, path, "not a regular file");
    }
    int64_t size = (int64_t)sb.st_size;
    if (size == 0) {
        fclose(f);
        return cifar_fail(BN_EFORMAT, path, "empty file, expected %s records of %lld bytes", set_name(label_bytes),
                          (long long)rec);
    }
    if (size % rec != 0) {
        /* The usual cause is the other data set's label_bytes: say so. */
        const int64_t other = (3 - label_bytes) + BN_CIFAR_PIXELS;
        char hint[128] = "";
        if (size % other == 0)
            snprintf(hint, sizeof hint, "; the size fits %lld %s records (label_bytes %d)", (long long)(size / other),
                     set_name(3 - label_bytes), 3 - label_bytes);
        fclose(f);
        return cifar_fail(BN_EFORMAT, path,
                          "file size %lld is not a multiple of the %lld-byte %s record (%d label byte%s + %d pixels): "
                          "%lld record%s and %lld byte%s left over%s",
                          (long long)size, (long long)rec, set_name(label_bytes), label_bytes,
                          label_bytes == 1 ? "" : "s", BN_CIFAR_PIXELS, (long long)(size / rec),
                          size / rec == 1 ? "" : "s", (long long)(size % rec), size % rec == 1 ? "" : "s", hint);
    }
    *out = f;
    *records = size / rec;
    return BN_OK;
}

/* Reads `records` records of f into images/labels starting at item `at`. */
static bn_status read_file(FILE *f, const char *path, int label_bytes, int64_t records, float *images, int64_t *fine,
                           int64_t *coarse, int64_t at, unsigned char *buf, const float *scale)
{
    const int64_t rec = label_bytes + BN_CIFAR_PIXELS;
    for (int64_t r0 = 0; r0 < records; r0 += CIFAR_BATCH) {
        int64_t nr = records - r0 < CIFAR_BATCH ? records - r0 : CIFAR_BATCH;
        size_t got = fread(buf, (size_t)rec, (size_t)nr, f);
        if ((int64_t)got != nr)
            /* The size was checked, so this is a read error or a file that
             * shrank while we read it. */
            return cifar_fail(BN_EIO, path, "read failed at record %lld of %lld: %s", (long long)(r0 + (int64_t)got),
                              (long long)records, ferror(f) ? strerror(errno) : "unexpected end of file");
        for (int64_t r = 0; r < nr; r++) {
            const unsigned char *p = buf + r * rec;
            int64_t i = at + r0 + r;
            int lf = p[label_bytes - 1];
            int limit = label_bytes == 1 ? 10 : 100;
            if (lf >= limit)
                return cifar_fail(BN_EFORMAT, path, "record %lld: %slabel %d out of range 0..%d (%s)",
                                  (long long)(r0 + r), label_bytes == 2 ? "fine " : "", lf, limit - 1,
                                  set_name(label_bytes));
            if (label_bytes == 2 && p[0] >= 20)
                return cifar_fail(BN_EFORMAT, path, "record %lld: coarse label %d out of range 0..19 (CIFAR-100)",
                                  (long long)(r0 + r), p[0]);
            fine[i] = lf;
            if (coarse) coarse[i] = p[0];
            float *dst = images + i * BN_CIFAR_PIXELS;
            const unsigned char *px = p + label_bytes;
            for (int k = 0; k < BN_CIFAR_PIXELS; k++)
                dst[k] = scale[px[k]];
        }
    }
    return BN_OK;
}

bn_status bn_cifar_load_files(int n_files, const char *const *paths, int label_bytes, bn_tensor **images,
                              int64_t **labels, int64_t **coarse_labels, int64_t *n)
{
    if (images) *images = NULL;
    if (labels) *labels = NULL;
    if (coarse_labels) *coarse_labels = NULL;
    if (n) *n = 0;
    if (!images || !labels || !n) return bn_fail(BN_EARG, "cifar: load: images, labels and n expected, got NULL");
    if (label_bytes != 1 && label_bytes != 2)
        return bn_fail(BN_EARG, "cifar: load: label_bytes expected 1 (CIFAR-10) or 2 (CIFAR-100), got %d", label_bytes);
    if (n_files < 1 || !paths) return bn_fail(BN_EARG, "cifar: load: expected at least one file, got %d", n_files);
    for (int i = 0; i < n_files; i++)
        if (!paths[i]) return bn_fail(BN_EARG, "cifar: load: path #%d is NULL", i + 1);

    FILE **fs = calloc((size_t)n_files, sizeof *fs);
    int64_t *counts = calloc((size_t)n_files, sizeof *counts);
    unsigned char *buf = malloc((size_t)CIFAR_BATCH * (size_t)(label_bytes + BN_CIFAR_PIXELS));
    bn_tensor *x = NULL;
    int64_t *fine = NULL, *coarse = NULL, total = 0;
    bn_status st = BN_OK;
    if (!fs || !counts || !buf) {
        st = bn_fail(BN_ENOMEM, "cifar: load: out of memory");
        goto done;
    }
    /* Every file's size is checked before the big allocation, so a bad
     * fifth batch fails in milliseconds, not after reading four. */
    for (int i = 0; i < n_files; i++) {
        if ((st = open_file(paths[i], label_bytes, &fs[i], &counts[i])) != BN_OK) goto done;
        total += counts[i];
    }
    x = bn_tensor_empty(4, (const int64_t[]){total, 3, BN_CIFAR_SIDE, BN_CIFAR_SIDE});
    if (!x) {
        st = bn_last_status();
        bn_error_prefix("cifar: %s: ", paths[0]);
        goto done;
    }
    fine = malloc((size_t)total * sizeof *fine);
    if (label_bytes == 2 && coarse_labels) coarse = malloc((size_t)total * sizeof *coarse);
    if (!fine || (label_bytes == 2 && coarse_labels && !coarse)) {
        st = bn_fail(BN_ENOMEM, "cifar: load: out of memory for %lld labels", (long long)total);
        goto done;
    }
    float scale[256]; /* the float of b/255 for each byte */
    for (int b = 0; b < 256; b++)
        scale[b] = (float)b / 255.0f;
    int64_t at = 0;
    for (int i = 0; i < n_files; i++) {
        st = read_file(fs[i], paths[i], label_bytes, counts[i], bn_tensor_data(x), fine, coarse, at, buf, scale);
        if (st != BN_OK) goto done;
        at += counts[i];
    }

done:
    if (fs)
        for (int i = 0; i < n_files; i++)
            if (fs[i]) fclose(fs[i]);
    free(fs);
    free(counts);
    free(buf);
    if (st != BN_OK) {
        bn_tensor_release(x);
        free(fine);
        free(coarse);
        return st;
    }
    *images = x;
    *labels = fine;
    if (coarse_labels) *coarse_labels = coarse;
    *n = total;
    return BN_OK;
}

bn_status bn_cifar_load(const char *path, int label_bytes, bn_tensor **images, int64_t **labels, int64_t *n)
{
    if (!path) {
        if (images) *images = NULL;
        if (labels) *labels = NULL;
        if (n) *n = 0;
        return bn_fail(BN_EARG, "cifar: load: path expected, got NULL");
    }
    return bn_cifar_load_files(1, &path, label_bytes, images, labels, NULL, n);
}
