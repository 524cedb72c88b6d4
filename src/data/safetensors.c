/* safetensors reader and writer (see safetensors.h for the format and the
 * rules). The JSON parser is hand-written and knows only what the format
 * needs: one top-level object whose values are tensor entries (objects of
 * dtype / shape / data_offsets) or "__metadata__" (an object of strings, or
 * null). Strings may use every JSON escape. Anything else is an error: a
 * general JSON library would accept files the format forbids. */
#include "data/safetensors.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/atomic_file.h"
#include "strided.h"

#define ST_META_KEY "__metadata__"
/* Data is read and converted this many bytes at a time. */
#define ST_CHUNK (1 << 16)

/* ---- errors ------------------------------------------------------------- */

/* Every message starts "safetensors: <path>: " so the user knows which file. */
static bn_status st_fail(bn_status s, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bn_status st_fail(bn_status s, const char *path, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return bn_fail(s, "safetensors: %s: %s", path, msg);
}

/* A name from a file or a caller, fit for a message: printable ASCII kept,
 * other bytes as \xNN, long names cut. A ring of buffers so one message can
 * show two names. */
static const char *show(const char *s)
{
    static _Thread_local char ring[4][100];
    static _Thread_local int next;
    char *out = ring[next];
    next = (next + 1) % 4;
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (n + 8 >= sizeof ring[0]) {
            memcpy(out + n, "...", 4);
            return out;
        }
        if (*p >= 32 && *p < 127)
            out[n++] = (char)*p;
        else
            n += (size_t)snprintf(out + n, sizeof ring[0] - n, "\\x%02x", *p);
    }
    out[n] = '\0';
    return out;
}

/* ---- UTF-8 -------------------------------------------------------------- */

/* Length of the valid UTF-8 prefix of s[0..n): n when all of it is valid.
 * Strict (RFC 3629): no overlong forms, no surrogates, nothing past U+10FFFF,
 * as the reference reader requires of the header. */
static size_t utf8_valid_prefix(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c >= 0xC2 && c <= 0xDF)
            len = 2;
        else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0; /* overlong */
            if (c == 0xED) hi = 0x9F; /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90; /* overlong */
            if (c == 0xF4) hi = 0x8F; /* past U+10FFFF */
        } else
            return i;
        if (n - i < len || s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80) return i;
        i += len;
    }
    return n;
}

static bool utf8_valid(const char *s)
{
    size_t n = strlen(s);
    return utf8_valid_prefix((const unsigned char *)s, n) == n;
}

/* ---- dtypes ------------------------------------------------------------- */

typedef enum { K_FLOAT, K_BFLOAT, K_INT, K_UINT, K_BOOL, K_UNSUPPORTED } st_kind;

typedef struct st_dtype {
    const char *name;
    int size;
    st_kind kind;
} st_dtype;

static const st_dtype DTYPES[] = {
    {"F32", 4, K_FLOAT},
    {"F64", 8, K_FLOAT},
    {"F16", 2, K_FLOAT},
    {"BF16", 2, K_BFLOAT},
    {"I64", 8, K_INT},
    {"I32", 4, K_INT},
    {"I16", 2, K_INT},
    {"I8", 1, K_INT},
    {"U64", 8, K_UINT},
    {"U32", 4, K_UINT},
    {"U16", 2, K_UINT},
    {"U8", 1, K_UINT},
    {"BOOL", 1, K_BOOL},
    {"F8_E5M2", 1, K_UNSUPPORTED},
    {"F8_E4M3", 1, K_UNSUPPORTED},
};
#define SUPPORTED_LIST "F16 BF16 F32 F64 I8 I16 I32 I64 U8 U16 U32 U64 BOOL"

static const st_dtype *find_dtype(const char *s)
{
    for (size_t i = 0; i < sizeof DTYPES / sizeof DTYPES[0]; i++)
        if (strcmp(DTYPES[i].name, s) == 0) return &DTYPES[i];
    return NULL;
}

static bool host_little_endian(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static float half_to_float(uint16_t h)
{
    int exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    float v = exp == 0    ? ldexpf((float)man, -24) /* zero and subnormals */
              : exp == 31 ? (man ? NAN : INFINITY)
                          : ldexpf((float)(man | 0x400), exp - 25); /* 1.man * 2^(exp-15) */
    return (h & 0x8000) ? -v : v;
}

/* One little-endian element to float. */
static float convert(const unsigned char *p, const st_dtype *dt)
{
    uint64_t b = 0;
    for (int i = dt->size - 1; i >= 0; i--)
        b = b << 8 | p[i];
    switch (dt->kind) {
    case K_FLOAT:
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
    case K_BFLOAT: { /* the top half of a float32 */
        uint32_t u = (uint32_t)b << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    case K_INT:
        switch (dt->size) {
        case 1: return (float)(int8_t)(uint8_t)b;
        case 2: return (float)(int16_t)(uint16_t)b;
        case 4: return (float)(int32_t)(uint32_t)b;
        default: return (float)(int64_t)b;
        }
    case K_UINT: return (float)b;
    case K_BOOL: return b ? 1.0f : 0.0f;
    case K_UNSUPPORTED: break;
    }
    return 0.0f;
}

/* ---- the loaded file ---------------------------------------------------- */

typedef struct st_entry {
    char *name;
    const st_dtype *dt;
    int ndim;
    int64_t shape[BN_MAX_DIMS];
    uint64_t begin, end;
    int order; /* position in the header, to keep sorting stable */
    bn_tensor *t;
} st_entry;

struct bn_safetensors {
    char *path;
    st_entry *e; /* by data offset */
    int n, cap;
    char **names; /* names[i] is e[i].name (not owned), for lookup */
    int *by_name; /* indices of e sorted by name */
    char **mk, **mv;
    int nm, mcap;
    int *meta_by_key;
};

void bn_safetensors_free(bn_safetensors *st)
{
    if (!st) return;
    for (int i = 0; i < st->n; i++) {
        free(st->e[i].name);
        bn_tensor_release(st->e[i].t);
    }
    for (int i = 0; i < st->nm; i++) {
        free(st->mk[i]);
        free(st->mv[i]);
    }
    free(st->e);
    free(st->names);
    free(st->by_name);
    free(st->mk);
    free(st->mv);
    free(st->meta_by_key);
    free(st->path);
    free(st);
}

/* ---- JSON header parser ------------------------------------------------- */

typedef struct jp {
    const char *path;
    const char *start, *p, *end;
    const char *ctx; /* the tensor being parsed (for messages), or NULL */
    bn_safetensors *st;
} jp;

static bn_status jerr(jp *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bn_status jerr(jp *j, const char *fmt, ...)
{
    char what[256], near[41];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    size_t n = 0;
    for (const char *q = j->p; q < j->end && n < sizeof near - 1; q++)
        near[n++] = (*q >= 32 && *q < 127) ? *q : '?';
    near[n] = '\0';
    char where[64];
    if (n)
        snprintf(where, sizeof where, "near \"%s\"", near);
    else
        snprintf(where, sizeof where, "at the end of the header");
    if (j->ctx)
        return st_fail(BN_EFORMAT, j->path, "tensor '%s': bad JSON header at byte %ld: %s (%s)", show(j->ctx),
                       (long)(j->p - j->start), what, where);
    return st_fail(BN_EFORMAT, j->path, "bad JSON header at byte %ld: %s (%s)", (long)(j->p - j->start), what, where);
}

static void ws(jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static bool eat(jp *j, char c)
{
    ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return true;
    }
    return false;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static bool hex4(jp *j, unsigned *out)
{
    if (j->end - j->p < 4) return false;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(j->p[i]);
        if (h < 0) return false;
        v = v << 4 | (unsigned)h;
    }
    j->p += 4;
    *out = v;
    return true;
}

/* A JSON string, escapes decoded, as a new NUL-terminated string. The
 * decoded text is never longer than the quoted one. */
static bn_status jstring(jp *j, char **out)
{
    *out = NULL;
    ws(j);
    if (j->p >= j->end || *j->p != '"') return jerr(j, "expected a string");
    j->p++;
    const char *b = j->p;
    while (j->p < j->end && *j->p != '"')
        j->p += *j->p == '\\' && j->p + 1 < j->end ? 2 : 1;
    if (j->p >= j->end) {
        j->p = b - 1;
        return jerr(j, "unterminated string");
    }
    const char *e = j->p;
    char *s = malloc((size_t)(e - b) + 1);
    if (!s) return st_fail(BN_ENOMEM, j->path, "out of memory parsing the header");
    size_t n = 0;
    j->p = b;
    while (j->p < e) {
        unsigned char c = (unsigned char)*j->p;
        if (c < 0x20) {
            free(s);
            return jerr(j, "control character 0x%02x in a string (JSON needs it escaped)", c);
        }
        if (c != '\\') {
            s[n++] = (char)c;
            j->p++;
            continue;
        }
        const char *esc = j->p++;
        char k = *j->p++;
        unsigned cp;
        switch (k) {
        case '"': s[n++] = '"'; continue;
        case '\\': s[n++] = '\\'; continue;
        case '/': s[n++] = '/'; continue;
        case 'b': s[n++] = '\b'; continue;
        case 'f': s[n++] = '\f'; continue;
        case 'n': s[n++] = '\n'; continue;
        case 'r': s[n++] = '\r'; continue;
        case 't': s[n++] = '\t'; continue;
        case 'u':
            if (!hex4(j, &cp)) {
                j->p = esc;
                free(s);
                return jerr(j, "bad \\u escape (expected 4 hex digits)");
            }
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                j->p = esc;
                free(s);
                return jerr(j, "lone low surrogate \\u%04x", cp);
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) { /* must pair with a low surrogate */
                unsigned lo;
                if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u' || (j->p += 2, !hex4(j, &lo)) ||
                    lo < 0xDC00 || lo > 0xDFFF) {
                    j->p = esc;
                    free(s);
                    return jerr(j, "high surrogate \\u%04x without a low surrogate after it", cp);
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (cp == 0) {
                j->p = esc;
                free(s);
                return jerr(j, "\\u0000 in a string (names cannot hold NUL)");
            }
            /* 6 quoted bytes (12 for a pair) always cover the 1..4 encoded ones. */
            if (cp < 0x80)
                s[n++] = (char)cp;
            else if (cp < 0x800) {
                s[n++] = (char)(0xC0 | cp >> 6);
                s[n++] = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                s[n++] = (char)(0xE0 | cp >> 12);
                s[n++] = (char)(0x80 | (cp >> 6 & 0x3F));
                s[n++] = (char)(0x80 | (cp & 0x3F));
            } else {
                s[n++] = (char)(0xF0 | cp >> 18);
                s[n++] = (char)(0x80 | (cp >> 12 & 0x3F));
                s[n++] = (char)(0x80 | (cp >> 6 & 0x3F));
                s[n++] = (char)(0x80 | (cp & 0x3F));
            }
            continue;
        default:
            j->p = esc;
            free(s);
            return jerr(j, "unknown escape '\\%c'", k >= 32 && k < 127 ? k : '?');
        }
    }
    s[n] = '\0';
    j->p = e + 1;
    *out = s;
    return BN_OK;
}

/* A non-negative JSON integer (no sign, fraction, exponent or leading zero). */
static bn_status juint(jp *j, uint64_t *out, const char *what)
{
    ws(j);
    const char *b = j->p;
    if (j->p < j->end && *j->p == '-') return jerr(j, "%s: negative number", what);
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') return jerr(j, "%s: expected an integer", what);
    uint64_t v = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        unsigned d = (unsigned)(*j->p - '0');
        if (v > (UINT64_MAX - d) / 10) {
            j->p = b;
            return jerr(j, "%s: integer too large", what);
        }
        v = v * 10 + d;
        j->p++;
    }
    if (j->p - b > 1 && *b == '0') {
        j->p = b;
        return jerr(j, "%s: leading zero in a number", what);
    }
    if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E')) {
        j->p = b;
        return jerr(j, "%s: expected an integer, got a fraction or exponent", what);
    }
    *out = v;
    return BN_OK;
}

/* [a, b, ...] of non-negative integers; stores at most `max`, counts all. */
static bn_status juint_array(jp *j, uint64_t *vals, int max, int *count, const char *what)
{
    *count = 0;
    if (!eat(j, '[')) return jerr(j, "%s: expected an array of integers", what);
    if (eat(j, ']')) return BN_OK;
    for (;;) {
        uint64_t v = 0;
        if (juint(j, &v, what) != BN_OK) return bn_last_status();
        if (*count < max) vals[*count] = v;
        if (*count < INT32_MAX) (*count)++;
        if (eat(j, ']')) return BN_OK;
        if (!eat(j, ',')) return jerr(j, "%s: expected ',' or ']'", what);
    }
}

static bool eat_literal(jp *j, const char *w)
{
    ws(j);
    size_t n = strlen(w);
    if ((size_t)(j->end - j->p) >= n && memcmp(j->p, w, n) == 0) {
        j->p += n;
        return true;
    }
    return false;
}

/* "__metadata__": {"k": "v", ...} or null. */
static bn_status jmeta(jp *j)
{
    bn_safetensors *st = j->st;
    if (eat_literal(j, "null")) return BN_OK;
    if (!eat(j, '{')) return jerr(j, "\"" ST_META_KEY "\" expected an object of strings");
    if (eat(j, '}')) return BN_OK;
    for (;;) {
        if (st->nm == st->mcap) {
            int cap = st->mcap ? st->mcap * 2 : 8;
            char **k = realloc(st->mk, (size_t)cap * sizeof *k);
            if (k) st->mk = k;
            char **v = k ? realloc(st->mv, (size_t)cap * sizeof *v) : NULL;
            if (v) st->mv = v;
            if (!k || !v) return st_fail(BN_ENOMEM, j->path, "out of memory parsing the header");
            st->mcap = cap;
        }
        char *key = NULL, *val = NULL;
        if (jstring(j, &key) != BN_OK) return bn_last_status();
        if (!eat(j, ':')) {
            free(key);
            return jerr(j, "expected ':' after a metadata key");
        }
        ws(j);
        if (j->p < j->end && *j->p != '"') {
            bn_status s = jerr(j, "metadata '%s': value must be a string", show(key));
            free(key);
            return s;
        }
        if (jstring(j, &val) != BN_OK) {
            free(key);
            return bn_last_status();
        }
        st->mk[st->nm] = key;
        st->mv[st->nm] = val;
        st->nm++;
        if (eat(j, '}')) return BN_OK;
        if (!eat(j, ',')) return jerr(j, "expected ',' or '}' in \"" ST_META_KEY "\"");
    }
}

/* {"dtype": "F32", "shape": [..], "data_offsets": [b, e]} for tensor e. */
static bn_status jtensor(jp *j, st_entry *e)
{
    bool have_dtype = false, have_shape = false, have_offsets = false;
    if (!eat(j, '{')) return jerr(j, "expected an object {\"dtype\", \"shape\", \"data_offsets\"}");
    if (!eat(j, '}'))
        for (;;) {
            char *key = NULL;
            ws(j);
            const char *at_key = j->p; /* errors about the key point at it */
            if (jstring(j, &key) != BN_OK) return bn_last_status();
            if (!eat(j, ':')) {
                free(key);
                return jerr(j, "expected ':' after a key");
            }
            bool *seen = strcmp(key, "dtype") == 0          ? &have_dtype
                         : strcmp(key, "shape") == 0        ? &have_shape
                         : strcmp(key, "data_offsets") == 0 ? &have_offsets
                                                            : NULL;
            if (!seen || *seen) j->p = at_key;
            if (!seen) {
                bn_status s = jerr(j, "unexpected key '%s' (a tensor has dtype, shape, data_offsets)", show(key));
                free(key);
                return s;
            }
            if (*seen) {
                bn_status s = jerr(j, "duplicate key '%s'", key);
                free(key);
                return s;
            }
            *seen = true;
            if (seen == &have_dtype) {
                free(key);
                char *d = NULL;
                if (jstring(j, &d) != BN_OK) return bn_last_status();
                e->dt = find_dtype(d);
                bn_status s = BN_OK;
                if (!e->dt)
                    s = st_fail(BN_EFORMAT, j->path, "tensor '%s': unknown dtype '%s'", show(e->name), show(d));
                else if (e->dt->kind == K_UNSUPPORTED)
                    s = st_fail(BN_EFORMAT, j->path, "tensor '%s': dtype %s is not supported (bnlab reads %s)",
                                show(e->name), d, SUPPORTED_LIST);
                free(d);
                if (s != BN_OK) return s;
            } else if (seen == &have_shape) {
                free(key);
                uint64_t dims[BN_MAX_DIMS];
                int nd = 0;
                if (juint_array(j, dims, BN_MAX_DIMS, &nd, "shape") != BN_OK) return bn_last_status();
                if (nd > BN_MAX_DIMS)
                    return st_fail(BN_EFORMAT, j->path,
                                   "tensor '%s': shape has %d dimensions, bnlab supports at most %d", show(e->name), nd,
                                   BN_MAX_DIMS);
                for (int d = 0; d < nd; d++) {
                    if (dims[d] > (uint64_t)INT64_MAX)
                        return st_fail(BN_EFORMAT, j->path, "tensor '%s': shape size %llu is too large", show(e->name),
                                       (unsigned long long)dims[d]);
                    e->shape[d] = (int64_t)dims[d];
                }
                e->ndim = nd;
            } else {
                free(key);
                uint64_t off[2] = {0, 0};
                int no = 0;
                if (juint_array(j, off, 2, &no, "data_offsets") != BN_OK) return bn_last_status();
                if (no != 2)
                    return st_fail(BN_EFORMAT, j->path,
                                   "tensor '%s': data_offsets has %d number%s, expected 2 [begin, end]", show(e->name),
                                   no, no == 1 ? "" : "s");
                e->begin = off[0];
                e->end = off[1];
            }
            if (eat(j, '}')) break;
            if (!eat(j, ',')) return jerr(j, "expected ',' or '}'");
        }
    if (!have_dtype || !have_shape || !have_offsets)
        return st_fail(BN_EFORMAT, j->path, "tensor '%s': entry lacks \"%s\"", show(e->name),
                       !have_dtype   ? "dtype"
                       : !have_shape ? "shape"
                                     : "data_offsets");
    return BN_OK;
}

static bn_status parse_header(jp *j)
{
    bn_safetensors *st = j->st;
    bool have_meta = false;
    /* The reference reader insists on '{' as the very first byte, so do we. */
    if (j->p >= j->end || *j->p != '{') return jerr(j, "the header must be a JSON object starting with '{'");
    j->p++;
    if (!eat(j, '}'))
        for (;;) {
            char *key = NULL;
            if (jstring(j, &key) != BN_OK) return bn_last_status();
            if (!eat(j, ':')) {
                bn_status s = jerr(j, "expected ':' after '%s'", show(key));
                free(key);
                return s;
            }
            if (strcmp(key, ST_META_KEY) == 0) {
                free(key);
                if (have_meta) return jerr(j, "duplicate \"" ST_META_KEY "\"");
                have_meta = true;
                if (jmeta(j) != BN_OK) return bn_last_status();
            } else {
                if (st->n == st->cap) {
                    int cap = st->cap ? st->cap * 2 : 16;
                    st_entry *ne = realloc(st->e, (size_t)cap * sizeof *ne);
                    if (!ne) {
                        free(key);
                        return st_fail(BN_ENOMEM, j->path, "out of memory parsing the header");
                    }
                    st->e = ne;
                    st->cap = cap;
                }
                st_entry *e = &st->e[st->n];
                memset(e, 0, sizeof *e);
                e->name = key; /* owned by st from here on */
                e->order = st->n;
                st->n++;
                j->ctx = key;
                if (jtensor(j, e) != BN_OK) return bn_last_status();
                j->ctx = NULL;
            }
            if (eat(j, '}')) break;
            if (!eat(j, ',')) return jerr(j, "expected ',' or '}' after an entry");
        }
    ws(j); /* writers pad the header with spaces */
    if (j->p != j->end) return jerr(j, "unexpected text after the header object");
    return BN_OK;
}

/* ---- validation --------------------------------------------------------- */

static int cmp_offsets(const void *a, const void *b)
{
    const st_entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->order - y->order;
}

/* Sorting by name through index arrays: the names live in the struct, so
 * the comparator gets them through a thread-local pointer. */
static _Thread_local const char *const *sort_names;
static int cmp_by_name(const void *a, const void *b)
{
    return strcmp(sort_names[*(const int *)a], sort_names[*(const int *)b]);
}

/* Indices 0..n-1 sorted by names[i]; *dup gets the index of a duplicated
 * name (or -1). NULL on allocation failure. */
static int *sorted_index(const char *const *names, int n, int *dup)
{
    int *idx = malloc((size_t)(n > 0 ? n : 1) * sizeof *idx);
    *dup = -1;
    if (!idx) return NULL;
    for (int i = 0; i < n; i++)
        idx[i] = i;
    sort_names = names;
    if (n > 1) qsort(idx, (size_t)n, sizeof *idx, cmp_by_name);
    sort_names = NULL;
    for (int i = 1; i < n && *dup < 0; i++)
        if (strcmp(names[idx[i - 1]], names[idx[i]]) == 0) *dup = idx[i];
    return idx;
}

/* Checks names, sizes and the tiling of the buffer; sorts entries by offset
 * and builds the lookup indices. */
static bn_status validate(bn_safetensors *st, const char *path, uint64_t data_len)
{
    /* Sort by offset first: the lookup index refers to final positions. */
    if (st->n > 1) qsort(st->e, (size_t)st->n, sizeof *st->e, cmp_offsets); /* e is NULL when empty */
    st->names = malloc((size_t)(st->n > 0 ? st->n : 1) * sizeof *st->names);
    if (!st->names) return st_fail(BN_ENOMEM, path, "out of memory");
    for (int i = 0; i < st->n; i++) st->names[i] = st->e[i].name;
    int dup;
    st->by_name = sorted_index((const char *const *)st->names, st->n, &dup);
    if (!st->by_name) return st_fail(BN_ENOMEM, path, "out of memory");
    if (dup >= 0) return st_fail(BN_EFORMAT, path, "tensor '%s' appears twice in the header", show(st->e[dup].name));
    st->meta_by_key = sorted_index((const char *const *)st->mk, st->nm, &dup);
    if (!st->meta_by_key) return st_fail(BN_ENOMEM, path, "out of memory");
    if (dup >= 0) return st_fail(BN_EFORMAT, path, "metadata key '%s' appears twice", show(st->mk[dup]));

    for (int i = 0; i < st->n; i++) {
        st_entry *e = &st->e[i];
        /* Elements and bytes with overflow checks: the limit keeps numel*8 in range. */
        uint64_t numel = 1;
        bool zero = false, overflow = false;
        for (int d = 0; d < e->ndim; d++) {
            if (e->shape[d] == 0)
                zero = true;
            else if (numel > (UINT64_MAX / 16) / (uint64_t)e->shape[d])
                overflow = true;
            else
                numel *= (uint64_t)e->shape[d];
        }
        if (zero)
            numel = 0;
        else if (overflow)
            return st_fail(BN_EFORMAT, path, "tensor '%s': shape %s has too many elements", show(e->name),
                           bn_dims_str(e->ndim, e->shape));
        uint64_t bytes = numel * (uint64_t)e->dt->size;
        if (e->end < e->begin)
            return st_fail(BN_EFORMAT, path, "tensor '%s': data_offsets [%llu, %llu] end before they begin",
                           show(e->name), (unsigned long long)e->begin, (unsigned long long)e->end);
        if (e->end - e->begin != bytes)
            return st_fail(BN_EFORMAT, path,
                           "tensor '%s': data_offsets [%llu, %llu] hold %llu bytes, shape %s %s needs %llu",
                           show(e->name), (unsigned long long)e->begin, (unsigned long long)e->end,
                           (unsigned long long)(e->end - e->begin), bn_dims_str(e->ndim, e->shape), e->dt->name,
                           (unsigned long long)bytes);
        if (e->end > data_len)
            return st_fail(
                BN_EFORMAT, path,
                "tensor '%s': data_offsets [%llu, %llu] go past the end of the data (%llu bytes after the header)",
                show(e->name), (unsigned long long)e->begin, (unsigned long long)e->end, (unsigned long long)data_len);
    }
    /* The tensors must tile the buffer: no overlap (two tensors sharing bytes),
     * no gap and nothing after the last (bytes no tensor accounts for). */
    uint64_t at = 0;
    for (int i = 0; i < st->n; i++) {
        const st_entry *e = &st->e[i];
        if (e->begin < at)
            return st_fail(
                BN_EFORMAT, path, "tensors '%s' and '%s' overlap: data_offsets [%llu, %llu] and [%llu, %llu]",
                show(st->e[i - 1].name), show(e->name), (unsigned long long)st->e[i - 1].begin,
                (unsigned long long)st->e[i - 1].end, (unsigned long long)e->begin, (unsigned long long)e->end);
        if (e->begin > at)
            return st_fail(BN_EFORMAT, path, "data bytes [%llu, %llu) belong to no tensor (gap before tensor '%s')",
                           (unsigned long long)at, (unsigned long long)e->begin, show(e->name));
        at = e->end;
    }
    if (at != data_len)
        return st_fail(BN_EFORMAT, path, "data bytes [%llu, %llu) belong to no tensor (the file has %llu extra bytes)",
                       (unsigned long long)at, (unsigned long long)data_len, (unsigned long long)(data_len - at));
    return BN_OK;
}

/* ---- loading ------------------------------------------------------------ */

/* Reads tensor e's bytes (the stream is at its begin) into a new tensor. */
static bn_status read_tensor(FILE *f, const char *path, st_entry *e, unsigned char *buf)
{
    e->t = bn_tensor_empty(e->ndim, e->shape);
    if (!e->t) {
        bn_error_prefix("safetensors: %s: tensor '%s': ", path, show(e->name));
        return bn_last_status();
    }
    float *dst = bn_tensor_data(e->t);
    const int64_t numel = bn_tensor_numel(e->t);
    const int size = e->dt->size;
    if (e->dt->kind == K_FLOAT && size == 4 && host_little_endian()) { /* the common case: straight in */
        size_t got = numel > 0 ? fread(dst, 4, (size_t)numel, f) : 0;
        if ((int64_t)got != numel)
            return st_fail(BN_EIO, path, "tensor '%s': read failed after %lld of %lld bytes: %s", show(e->name),
                           (long long)got * 4, (long long)numel * 4,
                           ferror(f) ? strerror(errno) : "unexpected end of file");
        return BN_OK;
    }
    const int64_t per_chunk = ST_CHUNK / size;
    for (int64_t done = 0; done < numel;) {
        int64_t n = numel - done < per_chunk ? numel - done : per_chunk;
        size_t got = fread(buf, (size_t)size, (size_t)n, f);
        if ((int64_t)got != n)
            return st_fail(BN_EIO, path, "tensor '%s': read failed after %lld of %lld bytes: %s", show(e->name),
                           (long long)(done + (int64_t)got) * size, (long long)numel * size,
                           ferror(f) ? strerror(errno) : "unexpected end of file");
        for (int64_t i = 0; i < n; i++)
            dst[done + i] = convert(buf + i * size, e->dt);
        done += n;
    }
    return BN_OK;
}

static bn_status load(FILE *f, const char *path, bn_safetensors *st)
{
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) return st_fail(BN_EIO, path, "cannot stat: %s", strerror(errno));
    if (!S_ISREG(sb.st_mode)) return st_fail(BN_EIO, path, "not a regular file");
    const uint64_t size = (uint64_t)sb.st_size;
    unsigned char len8[8];
    if (size < 8)
        return st_fail(BN_EFORMAT, path, "truncated: file is %llu bytes, shorter than the 8-byte header length",
                       (unsigned long long)size);
    if (fread(len8, 1, 8, f) != 8)
        return st_fail(BN_EIO, path, "read failed: %s", ferror(f) ? strerror(errno) : "unexpected end of file");
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | len8[i];
    if (hlen > size - 8)
        return st_fail(BN_EFORMAT, path, "header length %llu goes past the end of the file (%llu bytes)",
                       (unsigned long long)hlen, (unsigned long long)size);
    if (hlen > BN_SAFETENSORS_MAX_HEADER)
        return st_fail(BN_EFORMAT, path, "header length %llu is over the %d-byte limit", (unsigned long long)hlen,
                       BN_SAFETENSORS_MAX_HEADER);
    char *text = malloc((size_t)hlen + 1);
    if (!text) return st_fail(BN_ENOMEM, path, "out of memory for a %llu-byte header", (unsigned long long)hlen);
    if (fread(text, 1, (size_t)hlen, f) != (size_t)hlen) {
        bn_status s = st_fail(BN_EIO, path, "read of the header failed: %s",
                              ferror(f) ? strerror(errno) : "unexpected end of file");
        free(text);
        return s;
    }
    text[hlen] = '\0';
    size_t ok = utf8_valid_prefix((unsigned char *)text, (size_t)hlen);
    if (ok != hlen) {
        free(text);
        return st_fail(BN_EFORMAT, path, "header is not valid UTF-8 (bad byte at %zu)", ok);
    }
    jp j = {path, text, text, text + hlen, NULL, st};
    bn_status s = parse_header(&j);
    free(text);
    if (s != BN_OK) return s;
    if ((s = validate(st, path, size - 8 - hlen)) != BN_OK) return s;

    /* The tensors tile the buffer in offset order, so one sequential pass reads them all. */
    unsigned char *buf = malloc(ST_CHUNK);
    if (!buf) return st_fail(BN_ENOMEM, path, "out of memory for the read buffer");
    for (int i = 0; i < st->n && s == BN_OK; i++)
        s = read_tensor(f, path, &st->e[i], buf);
    free(buf);
    return s;
}

bn_status bn_safetensors_load(const char *path, bn_safetensors **out)
{
    if (out) *out = NULL;
    if (!path || !out) return bn_fail(BN_EARG, "safetensors: load: path and out expected, got NULL");
    FILE *f = fopen(path, "rb");
    if (!f) return st_fail(BN_EIO, path, "cannot open: %s", strerror(errno));
    bn_safetensors *st = calloc(1, sizeof *st);
    size_t plen = strlen(path) + 1;
    char *pcopy = malloc(plen);
    if (!st || !pcopy) {
        free(st);
        free(pcopy);
        fclose(f);
        return st_fail(BN_ENOMEM, path, "out of memory");
    }
    memcpy(pcopy, path, plen);
    st->path = pcopy;
    bn_status s = load(f, path, st);
    fclose(f);
    if (s != BN_OK) {
        bn_safetensors_free(st);
        return s;
    }
    *out = st;
    return BN_OK;
}

/* ---- accessors ---------------------------------------------------------- */

int bn_safetensors_count(const bn_safetensors *st) { return st ? st->n : 0; }

const char *bn_safetensors_name(const bn_safetensors *st, int i)
{
    return st && i >= 0 && i < st->n ? st->e[i].name : NULL;
}

const char *bn_safetensors_dtype(const bn_safetensors *st, int i)
{
    return st && i >= 0 && i < st->n ? st->e[i].dt->name : NULL;
}

bn_tensor *bn_safetensors_tensor(bn_safetensors *st, int i)
{
    if (!st) return bn_fail_null(BN_EARG, "safetensors: tensor: file expected, got NULL");
    if (i < 0 || i >= st->n)
        return bn_fail_null(BN_EARG, "safetensors: %s: tensor index %d out of range 0..%d", st->path, i, st->n - 1);
    return bn_tensor_retain(st->e[i].t);
}

/* Binary search of `key` in names[] through the sorted index idx[]. */
static int lookup(char **names, const int *idx, int n, const char *key)
{
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(names[idx[mid]], key);
        if (c == 0) return idx[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

int bn_safetensors_index(const bn_safetensors *st, const char *name)
{
    return st && name ? lookup(st->names, st->by_name, st->n, name) : -1;
}

bn_tensor *bn_safetensors_find(bn_safetensors *st, const char *name)
{
    if (!st || !name) return bn_fail_null(BN_EARG, "safetensors: find: file and name expected, got NULL");
    int i = bn_safetensors_index(st, name);
    if (i < 0) {
        st_fail(BN_EFORMAT, st->path, "has no tensor '%s' (it has %d)", show(name), st->n);
        return NULL;
    }
    return bn_tensor_retain(st->e[i].t);
}

int bn_safetensors_meta_count(const bn_safetensors *st) { return st ? st->nm : 0; }

const char *bn_safetensors_meta_key(const bn_safetensors *st, int i)
{
    return st && i >= 0 && i < st->nm ? st->mk[i] : NULL;
}

const char *bn_safetensors_meta_value(const bn_safetensors *st, int i)
{
    return st && i >= 0 && i < st->nm ? st->mv[i] : NULL;
}

const char *bn_safetensors_meta(const bn_safetensors *st, const char *key)
{
    if (!st || !key) return NULL;
    int i = lookup(st->mk, st->meta_by_key, st->nm, key);
    return i < 0 ? NULL : st->mv[i];
}

/* The value of `key` for a typed read, or NULL with the error set. */
static const char *meta_for(const bn_safetensors *st, const char *key, void *out)
{
    if (!st || !key || !out) return bn_fail_null(BN_EARG, "safetensors: meta: file, key and out expected, got NULL");
    const char *v = bn_safetensors_meta(st, key);
    if (!v) st_fail(BN_EFORMAT, st->path, "no metadata '%s'", show(key));
    return v;
}

/* strto* skip leading spaces and accept a sign; a checkpoint value is
 * written by us, so anything but a bare number means damage. */
static bool number_start(const char *v)
{
    return *v == '-' || *v == '+' || *v == '.' || (*v >= '0' && *v <= '9') || (*v && strchr("iInN", *v));
}

bn_status bn_safetensors_meta_int(const bn_safetensors *st, const char *key, int64_t *out)
{
    const char *v = meta_for(st, key, out);
    if (!v) return bn_last_status();
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!(*v == '-' || (*v >= '0' && *v <= '9')) || *end || errno)
        return st_fail(BN_EFORMAT, st->path, "metadata '%s' is '%s', expected an integer%s", show(key), show(v),
                       errno == ERANGE ? " in int64 range" : "");
    *out = x;
    return BN_OK;
}

bn_status bn_safetensors_meta_uint(const bn_safetensors *st, const char *key, uint64_t *out)
{
    const char *v = meta_for(st, key, out);
    if (!v) return bn_last_status();
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    /* strtoull would wrap "-1" to 2^64-1: only digits are accepted. */
    if (!(*v >= '0' && *v <= '9') || *end || errno)
        return st_fail(BN_EFORMAT, st->path, "metadata '%s' is '%s', expected a non-negative integer%s", show(key),
                       show(v), errno == ERANGE ? " in uint64 range" : "");
    *out = x;
    return BN_OK;
}

bn_status bn_safetensors_meta_double(const bn_safetensors *st, const char *key, double *out)
{
    const char *v = meta_for(st, key, out);
    if (!v) return bn_last_status();
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    /* ERANGE on underflow still gives the nearest value; only overflow is refused. */
    if (!number_start(v) || end == v || *end || (errno == ERANGE && isinf(x)))
        return st_fail(BN_EFORMAT, st->path, "metadata '%s' is '%s', expected a number", show(key), show(v));
    *out = x;
    return BN_OK;
}

/* ---- saving ------------------------------------------------------------- */

/* A growing text buffer; an allocation failure is remembered and reported once. */
typedef struct sbuf {
    char *s;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *ns = realloc(b->s, cap);
        if (!ns) {
            b->oom = true;
            return;
        }
        b->s = ns;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_u64(sbuf *b, uint64_t v)
{
    char t[24];
    int n = snprintf(t, sizeof t, "%llu", (unsigned long long)v);
    sb_put(b, t, (size_t)n);
}

/* A JSON string escaped as serde_json does (the reference writer), so our
 * files match its bytes: quote, backslash and control characters only. */
static void sb_json(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        const char *e = NULL;
        switch (*p) {
        case '"': e = "\\\""; break;
        case '\\': e = "\\\\"; break;
        case '\b': e = "\\b"; break;
        case '\f': e = "\\f"; break;
        case '\n': e = "\\n"; break;
        case '\r': e = "\\r"; break;
        case '\t': e = "\\t"; break;
        default:
            if (*p < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", *p);
                e = esc;
            }
        }
        if (e)
            sb_str(b, e);
        else
            sb_put(b, (const char *)p, 1);
    }
    sb_put(b, "\"", 1);
}

/* Checks the caller's names or keys: present, UTF-8, unique. */
static bn_status check_names(const char *path, const char *what, int n, const char *const *names, bool nonempty)
{
    for (int i = 0; i < n; i++) {
        if (!names[i]) return st_fail(BN_EARG, path, "%s #%d is NULL", what, i + 1);
        if (nonempty && !*names[i]) return st_fail(BN_EARG, path, "%s #%d is empty", what, i + 1);
        if (!utf8_valid(names[i]))
            return st_fail(BN_EARG, path, "%s #%d '%s' is not valid UTF-8", what, i + 1, show(names[i]));
    }
    int dup;
    int *idx = sorted_index(names, n, &dup);
    if (!idx) return st_fail(BN_ENOMEM, path, "out of memory");
    free(idx);
    if (dup >= 0) return st_fail(BN_EARG, path, "%s '%s' appears twice", what, show(names[dup]));
    return BN_OK;
}

typedef struct st_writer {
    bn_atomic_file *af;
    unsigned char *buf; /* ST_CHUNK bytes */
    size_t n;
} st_writer;

/* Appends one float as little-endian bytes, whatever the host order. */
static void put_float(st_writer *w, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    for (int k = 0; k < 4; k++)
        w->buf[w->n++] = (unsigned char)(u >> (8 * k));
    if (w->n == ST_CHUNK) {
        bn_atomic_file_write(w->af, w->buf, w->n);
        w->n = 0;
    }
}

/* Writes t's elements as little-endian float32 in row-major order. */
static void write_tensor(st_writer *w, const bn_tensor *t)
{
    const int64_t numel = bn_tensor_numel(t);
    if (numel == 0) return;
    if (bn_tensor_is_contiguous(t) && host_little_endian()) {
        bn_atomic_file_write(w->af, bn_tensor_data(t), (size_t)numel * 4);
        return;
    }
    const float *base = t->storage->data;
    FOR_EACH_OFFSET(t, off, put_float(w, base[off]));
    bn_atomic_file_write(w->af, w->buf, w->n);
    w->n = 0;
}

bn_status bn_safetensors_save(const char *path, int n, const char *const *names, bn_tensor *const *tensors, int n_meta,
                              const char *const *meta_keys, const char *const *meta_values)
{
    if (!path || !*path) return bn_fail(BN_EARG, "safetensors: save: path expected");
    if (n < 0 || n_meta < 0)
        return st_fail(BN_EARG, path, "counts expected >= 0, got %d tensors and %d metadata entries", n, n_meta);
    if (n > 0 && (!names || !tensors)) return st_fail(BN_EARG, path, "names and tensors expected, got NULL");
    if (n_meta > 0 && (!meta_keys || !meta_values))
        return st_fail(BN_EARG, path, "metadata keys and values expected, got NULL");
    bn_status s;
    if ((s = check_names(path, "tensor name", n, names, true)) != BN_OK) return s;
    if ((s = check_names(path, "metadata key", n_meta, meta_keys, false)) != BN_OK) return s;
    for (int i = 0; i < n_meta; i++) {
        if (!meta_values[i]) return st_fail(BN_EARG, path, "metadata value of '%s' is NULL", show(meta_keys[i]));
        if (!utf8_valid(meta_values[i]))
            return st_fail(BN_EARG, path, "metadata value of '%s' is not valid UTF-8", show(meta_keys[i]));
    }
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i], ST_META_KEY) == 0)
            return st_fail(BN_EARG, path, "'" ST_META_KEY "' is reserved for metadata, not a tensor name");
        if (!tensors[i]) return st_fail(BN_EARG, path, "tensor '%s' is NULL", show(names[i]));
    }

    /* The header, compact and in the reference writer's key order. */
    sbuf h = {0};
    sb_put(&h, "{", 1);
    if (n_meta > 0) {
        sb_str(&h, "\"" ST_META_KEY "\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) sb_put(&h, ",", 1);
            sb_json(&h, meta_keys[i]);
            sb_put(&h, ":", 1);
            sb_json(&h, meta_values[i]);
        }
        sb_put(&h, "}", 1);
    }
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        const bn_tensor *t = tensors[i];
        if (n_meta > 0 || i > 0) sb_put(&h, ",", 1);
        sb_json(&h, names[i]);
        sb_str(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            if (d) sb_put(&h, ",", 1);
            sb_u64(&h, (uint64_t)t->shape[d]);
        }
        sb_str(&h, "],\"data_offsets\":[");
        sb_u64(&h, offset);
        sb_put(&h, ",", 1);
        offset += (uint64_t)bn_tensor_numel(t) * 4;
        sb_u64(&h, offset);
        sb_str(&h, "]}");
    }
    sb_put(&h, "}", 1);
    /* Spaces up to a multiple of 8, so the data starts 8-byte aligned. */
    while (!h.oom && h.n % 8)
        sb_put(&h, " ", 1);
    if (h.oom) {
        free(h.s);
        return st_fail(BN_ENOMEM, path, "out of memory building the header");
    }
    if (h.n > BN_SAFETENSORS_MAX_HEADER) {
        s = st_fail(BN_EARG, path, "header would be %zu bytes, over the %d-byte limit readers accept", h.n,
                    BN_SAFETENSORS_MAX_HEADER);
        free(h.s);
        return s;
    }

    unsigned char *buf = malloc(ST_CHUNK);
    if (!buf) {
        free(h.s);
        return st_fail(BN_ENOMEM, path, "out of memory");
    }
    bn_atomic_file *af = bn_atomic_file_open("safetensors", path);
    if (!af) {
        free(h.s);
        free(buf);
        return bn_last_status();
    }
    unsigned char len8[8];
    for (int k = 0; k < 8; k++)
        len8[k] = (unsigned char)((uint64_t)h.n >> (8 * k));
    bn_atomic_file_write(af, len8, 8);
    bn_atomic_file_write(af, h.s, h.n);
    st_writer w = {af, buf, 0};
    for (int i = 0; i < n; i++)
        write_tensor(&w, tensors[i]);
    free(h.s);
    free(buf);
    return bn_atomic_file_commit(af);
}
