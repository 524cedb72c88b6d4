/* NumPy .npy reader and writer. The format (numpy/lib/format.py,
 * NEP 1): magic "\x93NUMPY", a version byte pair, a little-endian header
 * length (2 bytes in 1.0, 4 bytes in 2.0/3.0), a Python dict literal
 * {'descr': ..., 'fortran_order': ..., 'shape': (...)} padded with spaces and
 * a newline, then the raw array bytes. */
#include "data/npy.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/atomic_file.h"
#include "strided.h"

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
/* numpy writes headers of a few hundred bytes; the cap bounds what a hostile
 * header length can make us allocate even when the file is that long. */
#define NPY_MAX_HEADER (1 << 20)
/* Data is read and converted this many bytes at a time, so converting a
 * float64 file never needs a second full-size buffer. */
#define NPY_CHUNK (1 << 16)

/* ---- errors ------------------------------------------------------------- */

/* Every message starts "npy: <path>: " so the user knows which file. */
static bn_status npy_fail(bn_status s, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bn_status npy_fail(bn_status s, const char *path, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return bn_fail(s, "npy: %s: %s", path, msg);
}

/* ---- dtypes ------------------------------------------------------------- */

typedef enum { NPY_FLOAT, NPY_INT, NPY_UINT, NPY_BOOL } npy_kind;

typedef struct npy_dtype {
    npy_kind kind;
    int size;        /* bytes per element */
    bool big_endian; /* byte order of the file's elements */
    const char *name;
} npy_dtype;

static bool host_big_endian(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 0;
}

static const char *dtype_name(npy_kind k, int size)
{
    switch (k) {
    case NPY_FLOAT: return size == 2 ? "float16" : size == 4 ? "float32" : "float64";
    case NPY_INT: return size == 1 ? "int8" : size == 2 ? "int16" : size == 4 ? "int32" : "int64";
    case NPY_UINT: return size == 1 ? "uint8" : size == 2 ? "uint16" : size == 4 ? "uint32" : "uint64";
    case NPY_BOOL: return "bool";
    }
    return "?";
}

/* Parses a descr such as '<f4', '>i8', '|u1', '|b1'. */
static bn_status parse_descr(const char *path, const char *s, size_t len, npy_dtype *dt)
{
    const char *p = s, *end = s + len;
    bool big = host_big_endian();
    /* '|' (what numpy writes for one-byte types) and '=' mean native, as in numpy. */
    if (p < end && (*p == '<' || *p == '>' || *p == '|' || *p == '=')) {
        if (*p != '|' && *p != '=') big = *p == '>';
        p++;
    }
    npy_kind kind;
    int size = -1;
    if (p < end && *p == '?' && p + 1 == end) {
        kind = NPY_BOOL;
        size = 1;
    } else if (p < end && (*p == 'f' || *p == 'i' || *p == 'u' || *p == 'b') && end - p == 2 &&
               p[1] >= '1' && p[1] <= '8') {
        kind = *p == 'f' ? NPY_FLOAT : *p == 'i' ? NPY_INT : *p == 'u' ? NPY_UINT : NPY_BOOL;
        size = p[1] - '0';
        bool ok = kind == NPY_FLOAT  ? (size == 2 || size == 4 || size == 8)
                  : kind == NPY_BOOL ? size == 1
                                     : (size == 1 || size == 2 || size == 4 || size == 8);
        if (!ok) size = -1;
    }
    if (size < 0)
        return npy_fail(BN_EFORMAT, path,
                        "unsupported dtype '%.*s' (bnlab reads f2 f4 f8 i1 i2 i4 i8 u1 u2 u4 u8 b1)",
                        (int)(len > 32 ? 32 : len), s);
    dt->kind = kind;
    dt->size = size;
    dt->big_endian = big;
    dt->name = dtype_name(kind, size);
    return BN_OK;
}

/* ---- header dict -------------------------------------------------------- */

typedef struct npy_header {
    npy_dtype dt;
    bool fortran;
    int ndim;
    int64_t shape[BN_MAX_DIMS];
} npy_header;

typedef struct parser {
    const char *path;
    const char *start, *p, *end;
} parser;

static bn_status parse_error(parser *ps, const char *what)
{
    /* Quote the header around the failure, with non-printables as '?'. */
    char near[41];
    size_t n = 0;
    for (const char *q = ps->p; q < ps->end && n < sizeof near - 1; q++)
        near[n++] = (*q >= 32 && *q < 127) ? *q : '?';
    near[n] = '\0';
    return npy_fail(BN_EFORMAT, ps->path, "cannot parse header dict at byte %ld: %s (near \"%s\")",
                    (long)(ps->p - ps->start), what, near);
}

static void skip_ws(parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static bool eat(parser *ps, char c)
{
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == c) {
        ps->p++;
        return true;
    }
    return false;
}

static bool eat_word(parser *ps, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(ps->end - ps->p) >= n && memcmp(ps->p, w, n) == 0) {
        ps->p += n;
        return true;
    }
    return false;
}

/* A quoted string without escapes (the only kind numpy writes). */
static bn_status parse_string(parser *ps, const char **s, size_t *len)
{
    skip_ws(ps);
    if (ps->p >= ps->end || (*ps->p != '\'' && *ps->p != '"')) return parse_error(ps, "expected a string");
    char q = *ps->p++;
    const char *b = ps->p;
    while (ps->p < ps->end && *ps->p != q) {
        if (*ps->p == '\n') break; /* a Python string literal cannot span lines */
        if (*ps->p == '\\') return parse_error(ps, "escape sequences in strings are not supported");
        ps->p++;
    }
    if (ps->p >= ps->end || *ps->p != q) return parse_error(ps, "unterminated string");
    *s = b;
    *len = (size_t)(ps->p - b);
    ps->p++;
    return BN_OK;
}

/* A non-negative integer, with Python 2's optional 'L' suffix. */
static bn_status parse_size(parser *ps, int64_t *out)
{
    skip_ws(ps);
    const char *b = ps->p;
    if (ps->p < ps->end && *ps->p == '-') {
        ps->p++;
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
        return npy_fail(BN_EFORMAT, ps->path, "shape has a negative size %.*s",
                        (int)(ps->p - b > 24 ? 24 : ps->p - b), b);
    }
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') return parse_error(ps, "expected a size");
    int64_t v = 0;
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
        int d = *ps->p - '0';
        if (v > (INT64_MAX - d) / 10) {
            while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
            return npy_fail(BN_EFORMAT, ps->path, "shape size %.*s%s overflows int64",
                            (int)(ps->p - b > 24 ? 24 : ps->p - b), b, ps->p - b > 24 ? "..." : "");
        }
        v = v * 10 + d;
        ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == 'L' || *ps->p == 'l')) ps->p++;
    *out = v;
    return BN_OK;
}

/* A tuple of sizes: (), (n,), (a, b), (a, b,). */
static bn_status parse_shape(parser *ps, npy_header *h)
{
    if (!eat(ps, '(')) return parse_error(ps, "shape expected a tuple");
    int n = 0;
    bool comma = false;
    while (!eat(ps, ')')) {
        if (n > 0 && !comma) return parse_error(ps, "expected ',' or ')' in shape");
        int64_t v = 0;
        if (parse_size(ps, &v) != BN_OK) return bn_last_status();
        if (n < BN_MAX_DIMS) h->shape[n] = v;
        n++;
        comma = eat(ps, ',');
    }
    if (n == 1 && !comma) return parse_error(ps, "shape (n) is not a tuple, expected (n,)");
    if (n > BN_MAX_DIMS)
        return npy_fail(BN_EFORMAT, ps->path, "shape has %d dimensions, bnlab supports at most %d", n,
                        BN_MAX_DIMS);
    h->ndim = n;
    return BN_OK;
}

static bn_status parse_header(const char *path, const char *text, size_t len, npy_header *h)
{
    parser ps = {path, text, text, text + len};
    bool have_descr = false, have_order = false, have_shape = false;
    if (!eat(&ps, '{')) return parse_error(&ps, "expected '{'");
    while (!eat(&ps, '}')) {
        const char *key;
        size_t klen;
        if (parse_string(&ps, &key, &klen) != BN_OK) return bn_last_status();
        if (!eat(&ps, ':')) return parse_error(&ps, "expected ':'");
        skip_ws(&ps);
        if (klen == 5 && memcmp(key, "descr", 5) == 0) {
            if (ps.p < ps.end && (*ps.p == '[' || *ps.p == '('))
                return npy_fail(BN_EFORMAT, path, "unsupported dtype: structured arrays are not supported");
            const char *d;
            size_t dlen;
            if (parse_string(&ps, &d, &dlen) != BN_OK) return bn_last_status();
            if (parse_descr(path, d, dlen, &h->dt) != BN_OK) return bn_last_status();
            have_descr = true;
        } else if (klen == 13 && memcmp(key, "fortran_order", 13) == 0) {
            if (eat_word(&ps, "True"))
                h->fortran = true;
            else if (eat_word(&ps, "False"))
                h->fortran = false;
            else
                return parse_error(&ps, "fortran_order expected True or False");
            have_order = true;
        } else if (klen == 5 && memcmp(key, "shape", 5) == 0) {
            if (parse_shape(&ps, h) != BN_OK) return bn_last_status();
            have_shape = true;
        } else {
            return npy_fail(BN_EFORMAT, path, "unexpected key '%.*s' in header", (int)(klen > 32 ? 32 : klen),
                            key);
        }
        if (!eat(&ps, ',')) {
            if (!eat(&ps, '}')) return parse_error(&ps, "expected ',' or '}'");
            break;
        }
    }
    skip_ws(&ps);
    if (ps.p != ps.end) return parse_error(&ps, "unexpected text after the dict");
    if (!have_descr || !have_order || !have_shape)
        return npy_fail(BN_EFORMAT, path, "header lacks '%s'",
                        !have_descr ? "descr" : !have_order ? "fortran_order" : "shape");
    return BN_OK;
}

/* ---- element conversion ------------------------------------------------- */

static float half_to_float(uint16_t h)
{
    int exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    float v = exp == 0    ? ldexpf((float)man, -24)                 /* zero and subnormals */
              : exp == 31 ? (man ? NAN : INFINITY)
                          : ldexpf((float)(man | 0x400), exp - 25); /* 1.man * 2^(exp-15) */
    return (h & 0x8000) ? -v : v;
}

/* Assembles an element's bits from bytes in the file's byte order, so the
 * same code serves either host. */
static uint64_t load_bits(const unsigned char *p, int size, bool big)
{
    uint64_t v = 0;
    if (big)
        for (int i = 0; i < size; i++) v = v << 8 | p[i];
    else
        for (int i = size - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static float convert(const unsigned char *p, const npy_dtype *dt)
{
    uint64_t b = load_bits(p, dt->size, dt->big_endian);
    switch (dt->kind) {
    case NPY_FLOAT:
        if (dt->size == 2) return half_to_float((uint16_t)b);
        if (dt->size == 4) {
            uint32_t u = (uint32_t)b;
            float f;
            memcpy(&f, &u, 4);
            return f;
        } else {
            double d;
            memcpy(&d, &b, 8);
            return (float)d;
        }
    case NPY_INT: /* sign-extend the low `size` bytes */
        switch (dt->size) {
        case 1: return (float)(int8_t)(uint8_t)b;
        case 2: return (float)(int16_t)(uint16_t)b;
        case 4: return (float)(int32_t)(uint32_t)b;
        default: return (float)(int64_t)b;
        }
    case NPY_UINT: return (float)b;
    case NPY_BOOL: return b ? 1.0f : 0.0f;
    }
    return 0.0f;
}

/* ---- loading ------------------------------------------------------------ */

/* Reads and converts `numel` elements into t's data, placing them in C order
 * (Fortran files have the first index varying fastest). */
static bn_status read_data(FILE *f, const char *path, const npy_header *h, bn_tensor *t, int64_t numel)
{
    float *dst = bn_tensor_data(t);
    const int64_t total = numel * h->dt.size;
    /* Fast path: the common '<f4' C-order file goes straight into the tensor. */
    if (h->dt.kind == NPY_FLOAT && h->dt.size == 4 && h->dt.big_endian == host_big_endian() &&
        (!h->fortran || h->ndim <= 1)) {
        size_t got = numel > 0 ? fread(dst, 4, (size_t)numel, f) : 0;
        if ((int64_t)got != numel)
            return npy_fail(BN_EIO, path, "read failed after %lld of %lld data bytes: %s",
                            (long long)got * 4, (long long)total,
                            ferror(f) ? strerror(errno) : "unexpected end of file");
        return BN_OK;
    }
    unsigned char *buf = malloc(NPY_CHUNK);
    if (!buf) return npy_fail(BN_ENOMEM, path, "out of memory for the read buffer");
    int64_t cstride[BN_MAX_DIMS], idx[BN_MAX_DIMS] = {0}, off = 0, done = 0, s = 1;
    for (int d = h->ndim - 1; d >= 0; d--) {
        cstride[d] = s;
        s *= h->shape[d];
    }
    const int64_t per_chunk = NPY_CHUNK / h->dt.size;
    bool fortran = h->fortran && h->ndim > 1;
    while (done < numel) {
        int64_t n = numel - done < per_chunk ? numel - done : per_chunk;
        size_t got = fread(buf, (size_t)h->dt.size, (size_t)n, f);
        if ((int64_t)got != n) {
            int64_t bytes = (done + (int64_t)got) * h->dt.size;
            bn_status st = npy_fail(BN_EIO, path, "read failed after %lld of %lld data bytes: %s",
                                    (long long)bytes, (long long)total,
                                    ferror(f) ? strerror(errno) : "unexpected end of file");
            free(buf);
            return st;
        }
        for (int64_t i = 0; i < n; i++) {
            float v = convert(buf + i * h->dt.size, &h->dt);
            if (!fortran) {
                dst[done + i] = v;
                continue;
            }
            dst[off] = v;
            /* Next position with dim 0 fastest, tracked as a C-order offset. */
            for (int d = 0; d < h->ndim; d++) {
                off += cstride[d];
                if (++idx[d] < h->shape[d]) break;
                off -= idx[d] * cstride[d];
                idx[d] = 0;
            }
        }
        done += n;
    }
    free(buf);
    return BN_OK;
}

/* Reads the preamble and header; on success the stream is at the data. */
static bn_status read_header(FILE *f, const char *path, int64_t file_size, npy_header *h, int64_t *data_off)
{
    unsigned char pre[12];
    size_t have = file_size < 12 ? (size_t)file_size : 12;
    if (fread(pre, 1, have, f) != have)
        return npy_fail(BN_EIO, path, "read failed: %s", ferror(f) ? strerror(errno) : "unexpected end of file");
    size_t cmp = have < NPY_MAGIC_LEN ? have : NPY_MAGIC_LEN;
    if (memcmp(pre, NPY_MAGIC, cmp) != 0) return npy_fail(BN_EFORMAT, path, "not a .npy file (bad magic)");
    if (have < 10)
        return npy_fail(BN_EFORMAT, path, "truncated: file is %lld bytes, shorter than the npy preamble",
                        (long long)file_size);
    int major = pre[6], minor = pre[7];
    if (major < 1 || major > 3 || minor != 0)
        return npy_fail(BN_EFORMAT, path, "unsupported format version %d.%d (bnlab reads 1.0, 2.0, 3.0)", major,
                        minor);
    int64_t pre_len = major == 1 ? 10 : 12;
    if (file_size < pre_len)
        return npy_fail(BN_EFORMAT, path, "truncated: file is %lld bytes, shorter than the npy %d.0 preamble",
                        (long long)file_size, major);
    int64_t hlen = major == 1 ? (int64_t)load_bits(pre + 8, 2, false) : (int64_t)load_bits(pre + 8, 4, false);
    if (pre_len + hlen > file_size)
        return npy_fail(BN_EFORMAT, path, "header length %lld goes past the end of the file (%lld bytes)",
                        (long long)hlen, (long long)file_size);
    if (hlen > NPY_MAX_HEADER)
        return npy_fail(BN_EFORMAT, path, "header length %lld is implausibly large (limit %d)", (long long)hlen,
                        NPY_MAX_HEADER);
    /* The stream sits after the 12 bytes read; version 1.0 headers start at 10. */
    if (fseeko(f, (off_t)pre_len, SEEK_SET) != 0)
        return npy_fail(BN_EIO, path, "seek failed: %s", strerror(errno));
    char *text = malloc((size_t)hlen + 1);
    if (!text) return npy_fail(BN_ENOMEM, path, "out of memory for a %lld-byte header", (long long)hlen);
    if (fread(text, 1, (size_t)hlen, f) != (size_t)hlen) {
        bn_status st = npy_fail(BN_EIO, path, "read of the header failed: %s",
                                ferror(f) ? strerror(errno) : "unexpected end of file");
        free(text);
        return st;
    }
    text[hlen] = '\0';
    bn_status st = parse_header(path, text, (size_t)hlen, h);
    free(text);
    *data_off = pre_len + hlen;
    return st;
}

bn_tensor *bn_npy_load(const char *path)
{
    if (!path) return bn_fail_null(BN_EARG, "npy: load: path expected, got NULL");
    FILE *f = fopen(path, "rb");
    if (!f) {
        npy_fail(BN_EIO, path, "cannot open: %s", strerror(errno));
        return NULL;
    }
    bn_tensor *t = NULL;
    struct stat sb;
    npy_header h;
    memset(&h, 0, sizeof h);
    int64_t data_off = 0;
    if (fstat(fileno(f), &sb) != 0) {
        npy_fail(BN_EIO, path, "cannot stat: %s", strerror(errno));
        goto done;
    }
    /* The size check below needs a real length (not a pipe or a directory). */
    if (!S_ISREG(sb.st_mode)) {
        npy_fail(BN_EIO, path, "not a regular file");
        goto done;
    }
    int64_t file_size = (int64_t)sb.st_size;
    if (read_header(f, path, file_size, &h, &data_off) != BN_OK) goto done;

    /* Element and byte counts, checked against overflow and against the bytes
     * actually present, before anything is allocated. */
    int64_t numel = 1;
    bool overflow = false;
    for (int d = 0; d < h.ndim; d++) {
        if (h.shape[d] == 0) {
            numel = 0;
            overflow = false;
            break;
        }
        if (!overflow && numel > INT64_MAX / h.shape[d]) overflow = true;
        if (!overflow) numel *= h.shape[d];
    }
    if (overflow || numel > INT64_MAX / h.dt.size) {
        npy_fail(BN_EFORMAT, path, "shape %s of %s has too many elements", bn_dims_str(h.ndim, h.shape),
                 h.dt.name);
        goto done;
    }
    int64_t need = numel * h.dt.size, avail = file_size - data_off;
    if (avail < need) {
        npy_fail(BN_EFORMAT, path, "data is %lld bytes, shape %s %s needs %lld", (long long)avail,
                 bn_dims_str(h.ndim, h.shape), h.dt.name, (long long)need);
        goto done;
    }
    /* Extra bytes after the data are ignored, as numpy.load does. */
    t = bn_tensor_empty(h.ndim, h.shape);
    if (!t) {
        bn_error_prefix("npy: %s: ", path);
        goto done;
    }
    if (read_data(f, path, &h, t, numel) != BN_OK) {
        bn_tensor_release(t);
        t = NULL;
    }
done:
    fclose(f);
    return t;
}

/* ---- saving ------------------------------------------------------------- */

/* Converts floats to little-endian bytes in a buffer, whatever the host
 * order, and hands full buffers to the atomic file (whose failures are
 * sticky and reported at commit). */
typedef struct npy_writer {
    bn_atomic_file *af;
    size_t n;
    unsigned char buf[16384];
} npy_writer;

static void writer_flush(npy_writer *w)
{
    bn_atomic_file_write(w->af, w->buf, w->n);
    w->n = 0;
}

static void writer_put(npy_writer *w, float v)
{
    if (w->n + 4 > sizeof w->buf) writer_flush(w);
    uint32_t u;
    memcpy(&u, &v, 4);
    for (int i = 0; i < 4; i++) w->buf[w->n++] = (unsigned char)(u >> (8 * i));
}

bn_status bn_npy_save(const bn_tensor *t, const char *path)
{
    if (!t) return bn_fail(BN_EARG, "npy: save: tensor expected, got NULL");
    if (!path || !*path) return bn_fail(BN_EARG, "npy: save: path expected");
    if (t->ndim < 0 || t->ndim > BN_MAX_DIMS)
        return npy_fail(BN_EARG, path, "cannot save a tensor of %d dimensions", t->ndim);

    /* Header padded with spaces so the data starts at a multiple of 64, as
     * numpy does (lets readers memory-map it aligned). At most 8 sizes of 19
     * digits: always well under 512 bytes and a 2-byte length. */
    unsigned char head[512];
    char *dict = (char *)head + 10;
    size_t cap = sizeof head - 10;
    int len = snprintf(dict, cap, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (int d = 0; d < t->ndim; d++)
        len += snprintf(dict + len, cap - (size_t)len, d ? ", %lld" : "%lld", (long long)t->shape[d]);
    len += snprintf(dict + len, cap - (size_t)len, "%s), }", t->ndim == 1 ? "," : "");
    while ((10 + len + 1) % 64 != 0) dict[len++] = ' ';
    dict[len++] = '\n';
    memcpy(head, NPY_MAGIC, NPY_MAGIC_LEN);
    head[6] = 1; /* version 1.0 */
    head[7] = 0;
    head[8] = (unsigned char)(len & 0xff);
    head[9] = (unsigned char)(len >> 8);

    /* Atomic: a crash or a full disk never leaves a half-written .npy. */
    bn_atomic_file *af = bn_atomic_file_open("npy", path);
    if (!af) return bn_last_status();
    npy_writer *w = malloc(sizeof *w);
    if (!w) {
        bn_atomic_file_abort(af);
        return npy_fail(BN_ENOMEM, path, "out of memory");
    }
    w->af = af;
    w->n = 0;
    bn_atomic_file_write(af, head, (size_t)(10 + len));
    const float *base = t->storage->data;
    FOR_EACH_OFFSET(t, off, writer_put(w, base[off]));
    writer_flush(w);
    free(w);
    return bn_atomic_file_commit(af);
}
