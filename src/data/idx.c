/* IDX reader (MNIST, Fashion-MNIST). The format is Yann LeCun's: a magic
 * 00 00 <dtype> <ndim>, ndim big-endian uint32 sizes, then the elements.
 * zlib's gzread reads gzip files and passes anything else through
 * unchanged, so one code path serves .gz and raw files. */
#include "data/idx.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define IDX_UBYTE 0x08
#define IDX_MAGIC_IMAGES 0x00000803u
#define IDX_MAGIC_LABELS 0x00000801u
#define IDX_HINT "install Debian's dataset-fashion-mnist, or pass --data DIR / set BNLAB_DATA"
/* Deflate never expands more than 1032:1 (zlib FAQ), so a gzip file of S
 * bytes holds at most 1032*S bytes: a header promising more is a lie we can
 * reject before decompressing anything. */
#define GZ_MAX_RATIO 1032
/* The data buffer starts this small and doubles, so a lying header costs at
 * most about twice what the file really holds. */
#define IDX_FIRST_CHUNK (1 << 20)
/* gzread takes an unsigned int length. */
#define IDX_MAX_READ (1 << 30)

/* Every message starts "idx: <path>: " so the user knows which file. */
static bn_status idx_fail(bn_status s, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bn_status idx_fail(bn_status s, const char *path, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return bn_fail(s, "idx: %s: %s", path, msg);
}

typedef struct idx_file {
    const char *path;
    gzFile gz;
    int64_t file_size; /* bytes on disk (compressed size for gzip) */
    bool gzip;
    bool cut_short; /* the gzip stream ended before its end marker */
} idx_file;

/* What the caller wants: images (3 dims) or labels (1 dim). */
typedef struct idx_kind {
    const char *what; /* "images" / "labels", for messages */
    uint32_t magic;
    int ndim;
} idx_kind;

static const idx_kind KIND_IMAGES = {"images", IDX_MAGIC_IMAGES, 3};
static const idx_kind KIND_LABELS = {"labels", IDX_MAGIC_LABELS, 1};

static bn_status idx_open(idx_file *f, const char *path)
{
    memset(f, 0, sizeof *f);
    f->path = path;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        /* A missing data file is the common first-run problem: say how to get it. */
        if (e == ENOENT) return idx_fail(BN_EIO, path, "%s (%s)", strerror(e), IDX_HINT);
        return idx_fail(BN_EIO, path, "cannot open: %s", strerror(e));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return idx_fail(BN_EIO, path, "cannot stat: %s", strerror(e));
    }
    /* The size checks need a real length (not a pipe or a directory). */
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return idx_fail(BN_EIO, path, "not a regular file");
    }
    f->file_size = (int64_t)sb.st_size;
    f->gz = gzdopen(fd, "rb");
    if (!f->gz) {
        close(fd);
        return idx_fail(BN_ENOMEM, path, "out of memory opening the file");
    }
    gzbuffer(f->gz, 1 << 17); /* fewer, larger reads: decompression dominates load time */
    f->gzip = !gzdirect(f->gz);
    return BN_OK;
}

static void idx_close(idx_file *f)
{
    if (f->gz) gzclose_r(f->gz);
    f->gz = NULL;
}

/* Reads up to n bytes; *got < n means the data ended. Fails only on a read
 * error or corrupt gzip data. A gzip stream cut short is not an error here
 * (the caller reports it with the byte counts) but sets f->cut_short. */
static bn_status idx_read(idx_file *f, void *buf, int64_t n, int64_t *got)
{
    *got = 0;
    while (*got < n) {
        int64_t want = n - *got < IDX_MAX_READ ? n - *got : IDX_MAX_READ;
        int r = gzread(f->gz, (char *)buf + *got, (unsigned)want);
        int err = Z_OK;
        const char *msg = gzerror(f->gz, &err);
        if (r < 0 || (err != Z_OK && err != Z_BUF_ERROR)) {
            if (err == Z_ERRNO) return idx_fail(BN_EIO, f->path, "read failed: %s", strerror(errno));
            if (err == Z_MEM_ERROR) return idx_fail(BN_ENOMEM, f->path, "out of memory decompressing");
            /* zlib prefixes its message with "<fd:N>: " for gzdopen'd files. */
            if (msg && strncmp(msg, "<fd:", 4) == 0 && strstr(msg, ": ")) msg = strstr(msg, ": ") + 2;
            return idx_fail(BN_EFORMAT, f->path, "corrupt gzip data: %s", msg ? msg : "unknown zlib error");
        }
        if (err == Z_BUF_ERROR) f->cut_short = true;
        *got += r;
        if (r < want) break;
    }
    return BN_OK;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static const char *dtype_name(int code)
{
    switch (code) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    }
    return "unknown";
}

/* Reads and validates the header; dims[] gets the kind's ndim sizes. */
static bn_status read_header(idx_file *f, const idx_kind *k, int64_t *dims)
{
    unsigned char h[16];
    const int64_t hlen = 4 + 4 * (int64_t)k->ndim;
    int64_t got = 0;
    if (idx_read(f, h, 4, &got) != BN_OK) return bn_last_status();
    if (got < 4)
        return idx_fail(BN_EFORMAT, f->path, "truncated: the file ends inside the %lld-byte IDX header (%lld bytes)",
                        (long long)hlen, (long long)got);
    uint32_t magic = be32(h);
    if (h[0] != 0 || h[1] != 0)
        return idx_fail(BN_EFORMAT, f->path,
                        "not an IDX file: magic is 0x%08x, expected 0x%08x (IDX %s: unsigned bytes, %d dimension%s)",
                        magic, k->magic, k->what, k->ndim, k->ndim == 1 ? "" : "s");
    if (h[2] != IDX_UBYTE)
        return idx_fail(BN_EFORMAT, f->path,
                        "magic 0x%08x: element type 0x%02x (%s) is not supported, expected 0x08 (unsigned byte)", magic,
                        h[2], dtype_name(h[2]));
    if (h[3] != k->ndim) {
        const char *looks = h[3] == 1   ? " (this looks like a labels file)"
                            : h[3] == 3 ? " (this looks like an images file)"
                                        : "";
        return idx_fail(BN_EFORMAT, f->path, "magic 0x%08x: %d dimension%s, expected 0x%08x (IDX %s, %d dimension%s)%s",
                        magic, h[3], h[3] == 1 ? "" : "s", k->magic, k->what, k->ndim, k->ndim == 1 ? "" : "s", looks);
    }
    if (idx_read(f, h + 4, hlen - 4, &got) != BN_OK) return bn_last_status();
    if (got < hlen - 4)
        return idx_fail(BN_EFORMAT, f->path, "truncated: the file ends inside the %lld-byte IDX header (%lld bytes)",
                        (long long)hlen, (long long)(4 + got));
    for (int d = 0; d < k->ndim; d++)
        dims[d] = be32(h + 4 + 4 * d);
    if (dims[0] > BN_IDX_MAX_ITEMS)
        return idx_fail(BN_EFORMAT, f->path, "header declares %lld %s, more than the limit of %d", (long long)dims[0],
                        k->what, BN_IDX_MAX_ITEMS);
    for (int d = 1; d < k->ndim; d++)
        if (dims[d] < 1 || dims[d] > BN_IDX_MAX_SIDE)
            return idx_fail(BN_EFORMAT, f->path, "header declares images of %lld x %lld pixels; sides must be 1 to %d",
                            (long long)dims[1], (long long)dims[2], BN_IDX_MAX_SIDE);
    return BN_OK;
}

/* "60000 images of 28 x 28 (47040000 data bytes)" */
static const char *describe(const idx_kind *k, const int64_t *dims, int64_t bytes)
{
    static _Thread_local char buf[160];
    if (k->ndim == 3)
        snprintf(buf, sizeof buf, "%lld images of %lld x %lld (%lld data bytes)", (long long)dims[0],
                 (long long)dims[1], (long long)dims[2], (long long)bytes);
    else
        snprintf(buf, sizeof buf, "%lld labels (%lld data bytes)", (long long)dims[0], (long long)bytes);
    return buf;
}

/* Reads exactly `expected` data bytes into a new malloc'd buffer, checking
 * the file holds no more and no less. */
static bn_status read_data(idx_file *f, const idx_kind *k, const int64_t *dims, int64_t expected, unsigned char **out)
{
    *out = NULL;
    const int64_t hlen = 4 + 4 * (int64_t)k->ndim;
    /* Cheap checks first, so a lying header fails before any decompression. */
    if (!f->gzip) {
        int64_t avail = f->file_size - hlen;
        if (avail < expected)
            return idx_fail(BN_EFORMAT, f->path, "truncated: header declares %s, the file has %lld data bytes",
                            describe(k, dims, expected), (long long)avail);
        if (avail > expected)
            return idx_fail(BN_EFORMAT, f->path, "header declares %s, the file has %lld data bytes (%lld too many)",
                            describe(k, dims, expected), (long long)avail, (long long)(avail - expected));
    } else if (expected / GZ_MAX_RATIO > f->file_size) {
        return idx_fail(BN_EFORMAT, f->path,
                        "header declares %s, more than a %lld-byte gzip file can hold (deflate expands at most %d:1)",
                        describe(k, dims, expected), (long long)f->file_size, GZ_MAX_RATIO);
    }

    unsigned char *buf = NULL;
    int64_t have = 0, cap = 0;
    while (have < expected) {
        if (have == cap) {
            int64_t next = cap ? cap * 2 : IDX_FIRST_CHUNK;
            if (next > expected) next = expected;
            unsigned char *nb = realloc(buf, (size_t)next);
            if (!nb) {
                free(buf);
                return idx_fail(BN_ENOMEM, f->path, "out of memory reading %s", describe(k, dims, expected));
            }
            buf = nb;
            cap = next;
        }
        int64_t want = cap - have, got = 0;
        if (idx_read(f, buf + have, want, &got) != BN_OK) {
            free(buf);
            return bn_last_status();
        }
        have += got;
        if (got < want) break; /* end of data */
    }
    if (have < expected) {
        free(buf);
        return idx_fail(BN_EFORMAT, f->path, "truncated: header declares %s, the file has %lld data bytes%s",
                        describe(k, dims, expected), (long long)have,
                        f->cut_short ? " (the gzip stream is cut short)" : "");
    }
    /* One more byte: detects trailing data, and makes zlib check the gzip
     * trailer (CRC and length) of a stream we have read to its end. */
    unsigned char extra;
    int64_t got = 0;
    if (idx_read(f, &extra, 1, &got) != BN_OK) {
        free(buf);
        return bn_last_status();
    }
    if (got > 0) {
        free(buf);
        return idx_fail(BN_EFORMAT, f->path, "header declares %s, but the file has more data after them",
                        describe(k, dims, expected));
    }
    if (f->cut_short) {
        free(buf);
        return idx_fail(BN_EFORMAT, f->path, "truncated: the gzip stream is cut short after all %s",
                        describe(k, dims, expected));
    }
    *out = buf;
    return BN_OK;
}

/* Opens, validates and reads a whole file of kind k. */
static bn_status load(const char *path, const idx_kind *k, int64_t *dims, unsigned char **data)
{
    *data = NULL;
    idx_file f;
    if (idx_open(&f, path) != BN_OK) return bn_last_status();
    bn_status st = read_header(&f, k, dims);
    if (st == BN_OK) {
        /* Bounded by the limits above (10^8 * 10^4 * 10^4 = 10^16 < 2^63):
         * the product cannot overflow. */
        int64_t expected = 1;
        for (int d = 0; d < k->ndim; d++)
            expected *= dims[d];
        st = read_data(&f, k, dims, expected, data);
    }
    idx_close(&f);
    return st;
}

bn_tensor *bn_idx_load_images(const char *path)
{
    if (!path) return bn_fail_null(BN_EARG, "idx: load_images: path expected, got NULL");
    int64_t dims[3];
    unsigned char *data;
    if (load(path, &KIND_IMAGES, dims, &data) != BN_OK) return NULL;
    const int64_t shape[4] = {dims[0], 1, dims[1], dims[2]};
    bn_tensor *t = bn_tensor_empty(4, shape);
    if (!t) {
        free(data);
        bn_error_prefix("idx: %s: ", path);
        return NULL;
    }
    /* A table: the exact float of b/255 for each byte, computed once. */
    float scale[256];
    for (int b = 0; b < 256; b++)
        scale[b] = (float)b / 255.0f;
    float *dst = bn_tensor_data(t);
    const int64_t n = bn_tensor_numel(t);
    for (int64_t i = 0; i < n; i++)
        dst[i] = scale[data[i]];
    free(data);
    return t;
}

bn_status bn_idx_load_labels(const char *path, int64_t **labels, int64_t *n)
{
    if (labels) *labels = NULL;
    if (n) *n = 0;
    if (!path || !labels || !n) return bn_fail(BN_EARG, "idx: load_labels: path, labels and n expected, got NULL");
    int64_t dims[1];
    unsigned char *data;
    if (load(path, &KIND_LABELS, dims, &data) != BN_OK) return bn_last_status();
    /* IDX labels are bytes, so every value is a class 0..255 already; the
     * number of classes is the caller's to check. */
    int64_t *out = malloc((size_t)(dims[0] > 0 ? dims[0] : 1) * sizeof *out);
    if (!out) {
        free(data);
        return idx_fail(BN_ENOMEM, path, "out of memory for %lld labels", (long long)dims[0]);
    }
    for (int64_t i = 0; i < dims[0]; i++)
        out[i] = data[i];
    free(data);
    *labels = out;
    *n = dims[0];
    return BN_OK;
}

bn_status bn_idx_load_pair(const char *images_path, const char *labels_path, bn_tensor **images, int64_t **labels,
                           int64_t *n)
{
    if (images) *images = NULL;
    if (labels) *labels = NULL;
    if (n) *n = 0;
    if (!images_path || !labels_path || !images || !labels || !n)
        return bn_fail(BN_EARG, "idx: load_pair: paths, images, labels and n expected, got NULL");
    bn_tensor *x = bn_idx_load_images(images_path);
    if (!x) return bn_last_status();
    int64_t *y = NULL, ny = 0;
    if (bn_idx_load_labels(labels_path, &y, &ny) != BN_OK) {
        bn_tensor_release(x);
        return bn_last_status();
    }
    if (ny != x->shape[0]) {
        bn_status st = bn_fail(BN_EFORMAT, "idx: %s has %lld images but %s has %lld labels", images_path,
                               (long long)x->shape[0], labels_path, (long long)ny);
        bn_tensor_release(x);
        free(y);
        return st;
    }
    *images = x;
    *labels = y;
    *n = ny;
    return BN_OK;
}
