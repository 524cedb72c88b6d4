/* safetensors reader/writer: round trips (shapes, special values, strided
 * tensors, metadata with every kind of character), byte-for-byte agreement
 * with the reference writer's own test vectors, every dtype from
 * hand-built bytes, atomic saving, and each kind of damaged or hostile
 * file, which must fail with a message naming the file (and the tensor),
 * never crash, and never allocate what the file cannot back. */
#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/safetensors.h"

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) fail_msg("cannot read %s", path);
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* A safetensors file from a header text and data bytes. */
static size_t build_st(unsigned char *out, const char *header, size_t hlen, const void *data, size_t dlen)
{
    for (int k = 0; k < 8; k++)
        out[k] = (unsigned char)((uint64_t)hlen >> (8 * k));
    memcpy(out + 8, header, hlen);
    if (dlen) memcpy(out + 8 + hlen, data, dlen);
    return 8 + hlen + dlen;
}

static const char *st_file_n(const char *name, const char *header, size_t hlen, const void *data, size_t dlen)
{
    unsigned char *buf = malloc(16 + hlen + dlen);
    size_t n = build_st(buf, header, hlen, data, dlen);
    const char *p = tu_tmp_path(name);
    tu_write_file(p, buf, n);
    free(buf);
    return p;
}

static const char *st_file(const char *name, const char *header, const void *data, size_t dlen)
{
    return st_file_n(name, header, strlen(header), data, dlen);
}

static void assert_same_floats(const float *got, const float *want, int64_t n, const char *what)
{
    for (int64_t i = 0; i < n; i++) {
        if (isnan(want[i]) && isnan(got[i])) continue;
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0)
            fail_msg("%s: element %lld is %.9g, expected %.9g", what, (long long)i, got[i], want[i]);
    }
}

/* Loading fails with `st`, a message naming the file and containing
 * `needle`, *out NULL and no tensor memory left behind. */
static void expect_fail(const char *p, bn_status st, const char *needle)
{
    int64_t before = bn_mem_in_use();
    bn_safetensors *f = (bn_safetensors *)1;
    bn_clear_error();
    bn_status got = bn_safetensors_load(p, &f);
    if (got == BN_OK) fail_msg("%s: expected failure (%s), got %d tensors", p, needle, bn_safetensors_count(f));
    assert_null(f);
    if (got != st || bn_last_status() != st)
        fail_msg("%s: status %s, expected %s (%s)", p, bn_status_name(got), bn_status_name(st), bn_last_error());
    if (!strstr(bn_last_error(), needle)) fail_msg("message '%s' lacks '%s'", bn_last_error(), needle);
    if (!strstr(bn_last_error(), p)) fail_msg("message '%s' does not name the file", bn_last_error());
    if (strncmp(bn_last_error(), "safetensors: ", 13) != 0) fail_msg("message '%s' lacks the prefix", bn_last_error());
    assert_int_equal(bn_mem_in_use(), before);
}

static bn_safetensors *load_ok(const char *p)
{
    bn_safetensors *f = NULL;
    TU_ST(bn_safetensors_load(p, &f));
    return f;
}

/* ---- round trips -------------------------------------------------------- */

static void test_round_trip(void **state)
{
    (void)state;
    bn_tensor *a = TU_RANDN(1, 2, 3, 4, 5);
    float *av = bn_tensor_data(a);
    av[0] = NAN;
    av[1] = -INFINITY;
    av[2] = -0.0f;
    av[3] = 1e-45f;
    av[4] = 3.4028235e38f;
    bn_tensor *s = bn_tensor_scalar(-7.25f);
    bn_tensor *e = bn_tensor_zeros(2, TU_SHAPE(0, 3));
    bn_tensor *m = TU_RANDN(2, 3, 4);
    bn_tensor *tr = bn_transpose(m, 0, 1); /* strided: written in logical order */
    bn_tensor *big = TU_RANDN(3, 70000);   /* larger than one write chunk */
    bn_tensor *d8 = TU_RANDN(4, 1, 2, 1, 2, 1, 2, 1, 2);
    const char *names[] = {"stage1.block2.conv1.weight",
                           "scalar",
                           "empty",
                           "transposed",
                           "big",
                           "quote\"back\\slash\nnew\ttab\001ctl/é✓",
                           "eight.dims"};
    bn_tensor *const ts[] = {a, s, e, tr, big, bn_tensor_retain(m), d8};
    const char *keys[] = {"epoch", "rng.seed", "rng.offset", "lr", "note", "", "neg"};
    const char *vals[] = {
        "12",        "18446744073709551615", "1234567890123", "0.10000000000000001", "línea 1\nline \"2\"\\ \x1f 😀",
        "empty key", "-9223372036854775808"};
    const char *p = tu_tmp_path("rt.safetensors");
    TU_ST(bn_safetensors_save(p, 7, names, ts, 7, keys, vals));

    bn_safetensors *f = load_ok(p);
    assert_int_equal(bn_safetensors_count(f), 7);
    for (int i = 0; i < 7; i++) {
        assert_string_equal(bn_safetensors_name(f, i), names[i]); /* saved order is kept */
        assert_string_equal(bn_safetensors_dtype(f, i), "F32");
        assert_int_equal(bn_safetensors_index(f, names[i]), i);
        bn_tensor *u = bn_safetensors_tensor(f, i);
        TU_OK(u);
        assert_int_equal(u->ndim, ts[i]->ndim);
        for (int d = 0; d < u->ndim; d++)
            assert_int_equal(u->shape[d], ts[i]->shape[d]);
        float *want = malloc((size_t)bn_tensor_numel(u) * sizeof(float) + 4);
        bn_tensor_read(ts[i], want);
        assert_same_floats(bn_tensor_data(u), want, bn_tensor_numel(u), names[i]);
        free(want);
        bn_tensor *v = bn_safetensors_find(f, names[i]);
        assert_ptr_equal(u, v); /* the same tensor, one more reference */
        bn_tensor_release(v);
        bn_tensor_release(u);
    }
    /* A tensor outlives the file object that loaded it. */
    bn_tensor *keep = bn_safetensors_find(f, "big");

    assert_int_equal(bn_safetensors_meta_count(f), 7);
    for (int i = 0; i < 7; i++) {
        assert_string_equal(bn_safetensors_meta_key(f, i), keys[i]);
        assert_string_equal(bn_safetensors_meta_value(f, i), vals[i]);
        assert_string_equal(bn_safetensors_meta(f, keys[i]), vals[i]);
    }
    int64_t epoch = 0, neg = 0;
    uint64_t seed = 0, off = 0;
    double lr = 0;
    TU_ST(bn_safetensors_meta_int(f, "epoch", &epoch));
    TU_ST(bn_safetensors_meta_int(f, "neg", &neg));
    TU_ST(bn_safetensors_meta_uint(f, "rng.seed", &seed));
    TU_ST(bn_safetensors_meta_uint(f, "rng.offset", &off));
    TU_ST(bn_safetensors_meta_double(f, "lr", &lr));
    assert_int_equal(epoch, 12);
    assert_true(neg == INT64_MIN);
    assert_true(seed == UINT64_MAX);
    assert_true(off == 1234567890123ULL);
    assert_true(lr == 0.1);
    bn_safetensors_free(f);

    float k0 = bn_tensor_get_flat(keep, 0), k1 = bn_tensor_get_flat(big, 0);
    assert_true(k0 == k1);
    bn_tensor_release(keep);
    for (int i = 0; i < 7; i++)
        bn_tensor_release(ts[i]);
    bn_tensor_release(m);

    /* Nothing at all, and metadata alone. */
    TU_ST(bn_safetensors_save(p, 0, NULL, NULL, 0, NULL, NULL));
    f = load_ok(p);
    assert_int_equal(bn_safetensors_count(f), 0);
    assert_int_equal(bn_safetensors_meta_count(f), 0);
    bn_safetensors_free(f);
    TU_ST(bn_safetensors_save(p, 0, NULL, NULL, 1, keys, vals));
    f = load_ok(p);
    assert_string_equal(bn_safetensors_meta(f, "epoch"), "12");
    bn_safetensors_free(f);
}

/* Many names: lookup by name goes through a sorted index. */
static void test_many_tensors(void **state)
{
    (void)state;
    enum { N = 300 };
    char namebuf[N][32];
    const char *names[N];
    bn_tensor *ts[N];
    for (int i = 0; i < N; i++) {
        snprintf(namebuf[i], sizeof namebuf[i], "layer%03d.%s", (i * 7919) % N, i % 2 ? "weight" : "bias");
        names[i] = namebuf[i];
        ts[i] = bn_tensor_full(1, TU_SHAPE(1 + i % 5), (float)i);
    }
    const char *p = tu_tmp_path("many.safetensors");
    TU_ST(bn_safetensors_save(p, N, names, ts, 0, NULL, NULL));
    bn_safetensors *f = load_ok(p);
    assert_int_equal(bn_safetensors_count(f), N);
    for (int i = 0; i < N; i++) {
        bn_tensor *t = bn_safetensors_find(f, names[i]);
        TU_OK(t);
        assert_int_equal(t->shape[0], 1 + i % 5);
        assert_true(bn_tensor_get_flat(t, 0) == (float)i);
        bn_tensor_release(t);
        bn_tensor_release(ts[i]);
    }
    assert_int_equal(bn_safetensors_index(f, "layer999.weight"), -1);
    assert_int_equal(bn_safetensors_index(f, ""), -1);
    bn_safetensors_free(f);
}

/* ---- agreement with the reference implementation ------------------------ */

/* The byte arrays are the reference writer's own test vectors
 * (safetensors/src/tensor.rs: test_serialization, test_empty,
 * test_serialization_forced_alignement): our writer must produce them. */
static void expect_bytes(const char *p, const unsigned char *want, size_t n, const char *what)
{
    size_t len;
    unsigned char *got = read_file(p, &len);
    if (len != n) fail_msg("%s: %zu bytes, expected %zu", what, len, n);
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i]) fail_msg("%s: byte %zu is %d, expected %d", what, i, got[i], want[i]);
    free(got);
}

static void test_reference_bytes(void **state)
{
    (void)state;
    static const unsigned char ser[] = {
        64,  0,  0,   0,  0,   0,  0,   0,   123, 34,  97,  116, 116, 110, 46,  48, 34, 58, 123, 34, 100, 116, 121, 112,
        101, 34, 58,  34, 70,  51, 50,  34,  44,  34,  115, 104, 97,  112, 101, 34, 58, 91, 49,  44, 50,  44,  51,  93,
        44,  34, 100, 97, 116, 97, 95,  111, 102, 102, 115, 101, 116, 115, 34,  58, 91, 48, 44,  50, 52,  93,  125, 125,
        0,   0,  0,   0,  0,   0,  128, 63,  0,   0,   0,   64,  0,   0,   64,  64, 0,  0,  128, 64, 0,   0,   160, 64};
    static const unsigned char aligned[] = {
        72,  0,   0,   0,  0,  0,  0,  0,  123, 34,  97, 116, 116, 110, 48,  34,  58,  123, 34,  100, 116,
        121, 112, 101, 34, 58, 34, 70, 51, 50,  34,  44, 34,  115, 104, 97,  112, 101, 34,  58,  91,  49,
        44,  49,  44,  50, 44, 51, 93, 44, 34,  100, 97, 116, 97,  95,  111, 102, 102, 115, 101, 116, 115,
        34,  58,  91,  48, 44, 50, 52, 93, 125, 125, 32, 32,  32,  32,  32,  32,  32,  0,   0,   0,   0,
        0,   0,   128, 63, 0,  0,  0,  64, 0,   0,   64, 64,  0,   0,   128, 64,  0,   0,   160, 64};
    static const unsigned char empty[] = {8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32};
    static const unsigned char meta[] = {40,  0,   0,   0,  0,  0,  0,   0,   123, 34,  95,  95,  109, 101, 116, 97,
                                         100, 97,  116, 97, 95, 95, 34,  58,  123, 34,  102, 114, 97,  109, 101, 119,
                                         111, 114, 107, 34, 58, 34, 112, 116, 34,  125, 125, 32,  32,  32,  32,  32};
    const float v[6] = {0, 1, 2, 3, 4, 5};
    const char *p = tu_tmp_path("ref.safetensors");

    bn_tensor *t = bn_tensor_from_array(3, TU_SHAPE(1, 2, 3), v);
    const char *n1[] = {"attn.0"};
    TU_ST(bn_safetensors_save(p, 1, n1, &t, 0, NULL, NULL));
    expect_bytes(p, ser, sizeof ser, "test_serialization");
    bn_tensor_release(t);

    t = bn_tensor_from_array(4, TU_SHAPE(1, 1, 2, 3), v);
    const char *n2[] = {"attn0"};
    TU_ST(bn_safetensors_save(p, 1, n2, &t, 0, NULL, NULL));
    expect_bytes(p, aligned, sizeof aligned, "test_serialization_forced_alignement");
    bn_tensor_release(t);

    TU_ST(bn_safetensors_save(p, 0, NULL, NULL, 0, NULL, NULL));
    expect_bytes(p, empty, sizeof empty, "test_empty");
    const char *k[] = {"framework"}, *val[] = {"pt"};
    TU_ST(bn_safetensors_save(p, 0, NULL, NULL, 1, k, val));
    expect_bytes(p, meta, sizeof meta, "test_empty with metadata");

    /* And the reference's documentation example reads back: an I32 2x2. */
    static const int32_t i32[4] = {1, -2, 3, 2147483647};
    p = st_file("doc.safetensors", "{\"test\":{\"dtype\":\"I32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", i32, 16);
    bn_safetensors *f = load_ok(p);
    assert_string_equal(bn_safetensors_dtype(f, 0), "I32");
    bn_tensor *u = bn_safetensors_find(f, "test");
    TU_OK(u);
    const float want[4] = {1, -2, 3, 2147483648.0f};
    assert_same_floats(bn_tensor_data(u), want, 4, "I32 example");
    bn_tensor_release(u);
    bn_safetensors_free(f);
}

/* ---- dtypes ------------------------------------------------------------- */

typedef struct elem {
    uint64_t bits;
    float want;
} elem;

typedef struct dtype_case {
    const char *dtype;
    int size, n;
    elem v[6];
} dtype_case;

static const dtype_case dtype_cases[] = {
    {"F16", 2, 6,
     {{0x3c00, 1.0f}, {0xc000, -2.0f}, {0x7bff, 65504.0f}, {0x0001, 5.9604645e-8f}, {0xfc00, -INFINITY},
      {0x7e00, NAN}}},
    {"BF16", 2, 5, {{0x3f80, 1.0f}, {0xc049, -3.140625f}, {0x7f80, INFINITY}, {0x0001, 9.18355e-41f}, {0x8000, -0.0f}}},
    {"F32", 4, 3, {{0x3fc00000, 1.5f}, {0x00000001, 1e-45f}, {0x7fc00000, NAN}}},
    {"F64", 8, 4, /* 1e300 overflows float */
     {{0x3ff8000000000000, 1.5f}, {0x3fb999999999999a, 0.1f}, {0x7e37e43c8800759c, INFINITY},
      {0x8000000000000000, -0.0f}}},
    {"I8", 1, 3, {{0xff, -1.0f}, {0x80, -128.0f}, {0x7f, 127.0f}}},
    {"I16", 2, 2, {{0x8000, -32768.0f}, {0x0102, 258.0f}}},
    {"I32", 4, 2, {{0xfffffffd, -3.0f}, {0x01000001, 16777216.0f}}}, /* 2^24+1 rounds to even */
    {"I64", 8, 3,
     {{0x8000000000000000, -9.223372e18f}, {0xfffffffffffffffb, -5.0f}, {0x0000000100000000, 4294967296.0f}}},
    {"U8", 1, 2, {{0xff, 255.0f}, {0, 0.0f}}},
    {"U16", 2, 1, {{0xffff, 65535.0f}}},
    {"U32", 4, 1, {{0xffffffff, 4294967296.0f}}},
    {"U64", 8, 2, {{0xffffffffffffffff, 1.8446744e19f}, {7, 7.0f}}},
    {"BOOL", 1, 3, {{0, 0.0f}, {1, 1.0f}, {2, 1.0f}}}, /* any non-zero byte is true */
};

/* One file holding every case, tiling the buffer in order. */
static void test_every_dtype(void **state)
{
    (void)state;
    const int nc = (int)(sizeof dtype_cases / sizeof dtype_cases[0]);
    char header[4096];
    unsigned char data[1024];
    size_t h = 0, d = 0;
    h += (size_t)snprintf(header + h, sizeof header - h, "{");
    for (int c = 0; c < nc; c++) {
        const dtype_case *dc = &dtype_cases[c];
        size_t begin = d;
        for (int i = 0; i < dc->n; i++)
            for (int k = 0; k < dc->size; k++)
                data[d++] = (unsigned char)(dc->v[i].bits >> (8 * k));
        /* Whitespace between tokens, as a pretty-printing writer would put it. */
        h += (size_t)snprintf(header + h, sizeof header - h,
                              "%s\n  \"t_%s\" : { \"shape\" : [ %d ], \"data_offsets\": [%zu,%zu], \"dtype\":\"%s\" }",
                              c ? "," : "", dc->dtype, dc->n, begin, d, dc->dtype);
    }
    h += (size_t)snprintf(header + h, sizeof header - h, "\n}\n");
    const char *p = st_file("dtypes.safetensors", header, data, d);
    bn_safetensors *f = load_ok(p);
    assert_int_equal(bn_safetensors_count(f), nc);
    for (int c = 0; c < nc; c++) {
        const dtype_case *dc = &dtype_cases[c];
        char name[32];
        snprintf(name, sizeof name, "t_%s", dc->dtype);
        int i = bn_safetensors_index(f, name);
        assert_int_equal(i, c);
        assert_string_equal(bn_safetensors_dtype(f, i), dc->dtype);
        bn_tensor *t = bn_safetensors_tensor(f, i);
        float want[6];
        for (int k = 0; k < dc->n; k++)
            want[k] = dc->v[k].want;
        assert_same_floats(bn_tensor_data(t), want, dc->n, dc->dtype);
        bn_tensor_release(t);
    }
    bn_safetensors_free(f);
}

/* Offsets, not header order, decide the order of tensors; __metadata__ may
 * come anywhere and may be null; escapes in names are decoded. */
static void test_header_variants(void **state)
{
    (void)state;
    const float v[3] = {1, 2, 3};
    const char *p = st_file("order.safetensors",
                            "{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]},"
                            "\"__metadata__\":{\"k\\u00e9\\ud83d\\ude00\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"},"
                            "\"\\u0061\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
                            "\"z\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[12,12]}}",
                            v, 12);
    bn_safetensors *f = load_ok(p);
    assert_int_equal(bn_safetensors_count(f), 3);
    assert_string_equal(bn_safetensors_name(f, 0), "a");
    assert_string_equal(bn_safetensors_name(f, 1), "b");
    assert_string_equal(bn_safetensors_name(f, 2), "z");
    bn_tensor *a = bn_safetensors_tensor(f, 0), *b = bn_safetensors_tensor(f, 1), *z = bn_safetensors_tensor(f, 2);
    assert_int_equal(a->ndim, 0);
    assert_true(bn_tensor_get_flat(a, 0) == 1.0f);
    assert_true(bn_tensor_get_flat(b, 1) == 3.0f);
    assert_int_equal(bn_tensor_numel(z), 0);
    assert_int_equal(z->shape[1], 5);
    bn_tensor_release(a);
    bn_tensor_release(b);
    bn_tensor_release(z);
    assert_string_equal(bn_safetensors_meta(f, "k\xc3\xa9\xf0\x9f\x98\x80"), "\"\\/\b\f\n\r\t");
    bn_safetensors_free(f);

    p = st_file("nullmeta.safetensors", "{\"__metadata__\":null}   ", NULL, 0);
    f = load_ok(p);
    assert_int_equal(bn_safetensors_meta_count(f), 0);
    assert_null(bn_safetensors_meta(f, "x"));
    bn_safetensors_free(f);
}

/* ---- accessors ---------------------------------------------------------- */

static void test_accessors(void **state)
{
    (void)state;
    bn_tensor *t = bn_tensor_ones(1, TU_SHAPE(2));
    const char *names[] = {"w"};
    const char *keys[] = {"epoch", "lr", "word", "big", "space", "neg", "inf", "frac"};
    const char *vals[] = {"3", "1e-3", "abc", "99999999999999999999", " 4", "-1", "inf", "2.5"};
    const char *p = tu_tmp_path("acc.safetensors");
    TU_ST(bn_safetensors_save(p, 1, names, &t, 8, keys, vals));
    bn_tensor_release(t);
    bn_safetensors *f = load_ok(p);

    assert_null(bn_safetensors_name(f, 1));
    assert_null(bn_safetensors_name(f, -1));
    assert_null(bn_safetensors_dtype(f, 5));
    assert_null(bn_safetensors_meta_key(f, 8));
    assert_null(bn_safetensors_meta_value(f, -1));
    assert_null(bn_safetensors_meta(f, "missing"));
    TU_FAILS(bn_safetensors_tensor(f, 1), BN_EARG, "tensor index 1 out of range 0..0");
    TU_FAILS(bn_safetensors_tensor(NULL, 0), BN_EARG, "file expected");
    TU_FAILS(bn_safetensors_find(f, "v"), BN_EFORMAT, "has no tensor 'v' (it has 1)");
    TU_FAILS(bn_safetensors_find(f, NULL), BN_EARG, "name expected");
    assert_int_equal(bn_safetensors_count(NULL), 0);
    assert_int_equal(bn_safetensors_meta_count(NULL), 0);
    assert_int_equal(bn_safetensors_index(NULL, "w"), -1);

    int64_t i = 77;
    uint64_t u = 77;
    double d = 77;
    TU_ST(bn_safetensors_meta_int(f, "epoch", &i));
    assert_int_equal(i, 3);
    TU_ST(bn_safetensors_meta_double(f, "lr", &d));
    assert_true(d == 1e-3);
    TU_ST(bn_safetensors_meta_double(f, "inf", &d));
    assert_true(isinf(d));
    TU_ST(bn_safetensors_meta_double(f, "epoch", &d));
    assert_true(d == 3.0);
    struct {
        int kind; /* 0 int, 1 uint, 2 double */
        const char *key, *needle;
    } bad[] = {
        {0, "missing", "no metadata 'missing'"},
        {0, "word", "metadata 'word' is 'abc', expected an integer"},
        {0, "big", "metadata 'big' is '99999999999999999999', expected an integer in int64 range"},
        {0, "space", "metadata 'space' is ' 4', expected an integer"},
        {0, "frac", "metadata 'frac' is '2.5', expected an integer"},
        {1, "neg", "metadata 'neg' is '-1', expected a non-negative integer"},
        {1, "big", "expected a non-negative integer in uint64 range"},
        {2, "word", "metadata 'word' is 'abc', expected a number"},
        {2, "space", "metadata 'space' is ' 4', expected a number"},
        {2, "missing", "no metadata 'missing'"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        bn_clear_error();
        bn_status st = bad[k].kind == 0   ? bn_safetensors_meta_int(f, bad[k].key, &i)
                       : bad[k].kind == 1 ? bn_safetensors_meta_uint(f, bad[k].key, &u)
                                          : bn_safetensors_meta_double(f, bad[k].key, &d);
        assert_int_equal(st, BN_EFORMAT);
        if (!strstr(bn_last_error(), bad[k].needle)) fail_msg("'%s' lacks '%s'", bn_last_error(), bad[k].needle);
        assert_non_null(strstr(bn_last_error(), p));
    }
    assert_int_equal(i, 3); /* untouched by the failures */
    assert_true(u == 77);
    assert_int_equal(bn_safetensors_meta_int(f, "epoch", NULL), BN_EARG);
    assert_int_equal(bn_safetensors_meta_int(NULL, "epoch", &i), BN_EARG);
    bn_safetensors_free(f);
    bn_safetensors_free(NULL);
}

/* ---- saving: arguments and atomicity ------------------------------------ */

static void expect_save_fails(const char *p, int n, const char *const *names, bn_tensor *const *ts, int nm,
                              const char *const *k, const char *const *v, const char *needle)
{
    bn_clear_error();
    bn_status st = bn_safetensors_save(p, n, names, ts, nm, k, v);
    assert_int_equal(st, BN_EARG);
    if (!strstr(bn_last_error(), needle)) fail_msg("'%s' lacks '%s'", bn_last_error(), needle);
    assert_int_equal(access(p, F_OK), -1); /* nothing written */
}

static void test_save_arguments(void **state)
{
    (void)state;
    bn_tensor *t = bn_tensor_ones(1, TU_SHAPE(2));
    bn_tensor *const two[] = {t, t};
    const char *p = tu_tmp_path("never.safetensors");
    const char *dup[] = {"a", "a"}, *ok2[] = {"a", "b"}, *empty[] = {""}, *meta[] = {"__metadata__"},
               *bad_utf8[] = {"caf\xe9"}, *nul1[] = {NULL};
    bn_tensor *const nul_t[] = {NULL};
    bn_clear_error();
    assert_int_equal(bn_safetensors_save(NULL, 0, NULL, NULL, 0, NULL, NULL), BN_EARG);
    assert_int_equal(bn_safetensors_save("", 0, NULL, NULL, 0, NULL, NULL), BN_EARG);
    expect_save_fails(p, -1, NULL, NULL, 0, NULL, NULL, "counts expected >= 0, got -1 tensors");
    expect_save_fails(p, 1, NULL, two, 0, NULL, NULL, "names and tensors expected");
    expect_save_fails(p, 0, NULL, NULL, 1, NULL, NULL, "metadata keys and values expected");
    expect_save_fails(p, 2, dup, two, 0, NULL, NULL, "tensor name 'a' appears twice");
    expect_save_fails(p, 1, empty, two, 0, NULL, NULL, "tensor name #1 is empty");
    expect_save_fails(p, 1, nul1, two, 0, NULL, NULL, "tensor name #1 is NULL");
    expect_save_fails(p, 1, meta, two, 0, NULL, NULL, "'__metadata__' is reserved");
    expect_save_fails(p, 1, bad_utf8, two, 0, NULL, NULL, "tensor name #1 'caf\\xe9' is not valid UTF-8");
    expect_save_fails(p, 1, ok2, nul_t, 0, NULL, NULL, "tensor 'a' is NULL");
    expect_save_fails(p, 2, ok2, two, 2, dup, ok2, "metadata key 'a' appears twice");
    expect_save_fails(p, 2, ok2, two, 1, ok2, nul1, "metadata value of 'a' is NULL");
    expect_save_fails(p, 2, ok2, two, 1, ok2, bad_utf8, "metadata value of 'a' is not valid UTF-8");
    /* The same tensor under two names is fine. */
    TU_ST(bn_safetensors_save(p, 2, ok2, two, 0, NULL, NULL));
    bn_tensor_release(t);
}

static bool dir_has_temp_files(void)
{
    DIR *d = opendir(tu_tmpdir);
    bool found = false;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) found = true;
    if (d) closedir(d);
    return found;
}

static void test_save_atomic(void **state)
{
    (void)state;
    const char *p = tu_tmp_path("ckpt.safetensors");
    bn_tensor *a = bn_tensor_full(1, TU_SHAPE(4), 1.0f), *b = bn_tensor_full(2, TU_SHAPE(2, 3), 2.0f);
    const char *na[] = {"a"}, *nb[] = {"b"};
    TU_ST(bn_safetensors_save(p, 1, na, &a, 0, NULL, NULL));
    TU_ST(bn_safetensors_save(p, 1, nb, &b, 0, NULL, NULL));
    bn_safetensors *f = load_ok(p);
    assert_string_equal(bn_safetensors_name(f, 0), "b");
    bn_safetensors_free(f);
    assert_false(dir_has_temp_files());

    bn_clear_error();
    assert_int_equal(bn_safetensors_save(tu_tmp_path("no/such/dir.safetensors"), 1, na, &a, 0, NULL, NULL), BN_EIO);
    assert_non_null(strstr(bn_last_error(), "no/such/dir.safetensors: cannot create"));

    /* Rename onto a directory fails after the data was written. */
    const char *dirp = tu_tmp_path("a_directory");
    assert_int_equal(mkdir(dirp, 0700), 0);
    bn_clear_error();
    assert_int_equal(bn_safetensors_save(dirp, 1, na, &a, 0, NULL, NULL), BN_EIO);
    assert_non_null(strstr(bn_last_error(), "rename of "));
    assert_false(dir_has_temp_files());
    rmdir(dirp);

    /* A write that runs out of space (a file-size limit makes it fail with
     * EFBIG) keeps the old file and removes the temporary. */
    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {4096, old.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    bn_tensor *big = bn_tensor_zeros(1, TU_SHAPE(100000));
    const char *ng[] = {"big"};
    bn_clear_error();
    bn_status st = bn_safetensors_save(p, 1, ng, &big, 0, NULL, NULL);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    assert_int_equal(st, BN_EIO);
    assert_non_null(strstr(bn_last_error(), "ckpt.safetensors"));
    assert_non_null(strstr(bn_last_error(), "File too large"));
    assert_false(dir_has_temp_files());
    f = load_ok(p);
    assert_string_equal(bn_safetensors_name(f, 0), "b");
    bn_safetensors_free(f);
    bn_tensor_release(big);
    bn_tensor_release(a);
    bn_tensor_release(b);
}

/* ---- hostile files ------------------------------------------------------ */

static void test_bad_lengths(void **state)
{
    (void)state;
    expect_fail(tu_tmp_path("missing.safetensors"), BN_EIO, "cannot open: No such file or directory");
    expect_fail(tu_tmpdir, BN_EIO, "not a regular file");
    bn_safetensors *f = (bn_safetensors *)1;
    bn_clear_error();
    assert_int_equal(bn_safetensors_load(NULL, &f), BN_EARG);
    assert_null(f);
    assert_int_equal(bn_safetensors_load("x", NULL), BN_EARG);

    const char *p = tu_tmp_path("short");
    tu_write_file(p, "\x02\0\0", 3);
    expect_fail(p, BN_EFORMAT, "truncated: file is 3 bytes, shorter than the 8-byte header length");
    p = st_file_n("past-end", "{}", 2, NULL, 0);
    unsigned char buf[16] = {0xe8, 0x03, 0, 0, 0, 0, 0, 0, '{', '}'}; /* says 1000 */
    tu_write_file(p, buf, 10);
    expect_fail(p, BN_EFORMAT, "header length 1000 goes past the end of the file (10 bytes)");
    memset(buf, 0xff, 8);
    tu_write_file(p, buf, 10);
    expect_fail(p, BN_EFORMAT, "header length 18446744073709551615 goes past the end of the file");

    /* A header over 100 MB in a file that really is that long (sparse, so it
     * costs no disk): refused before allocating it. */
    p = tu_tmp_path("huge-header");
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    const uint64_t h = 100000001;
    for (int k = 0; k < 8; k++)
        buf[k] = (unsigned char)(h >> (8 * k));
    buf[8] = '{';
    assert_int_equal(write(fd, buf, 9), 9);
    assert_int_equal(ftruncate(fd, (off_t)(8 + h + 16)), 0);
    close(fd);
    expect_fail(p, BN_EFORMAT, "header length 100000001 is over the 100000000-byte limit");
    unlink(p);
}

typedef struct bad_header {
    const char *header;
    size_t dlen;
    const char *needle;
} bad_header;

#define W(off) "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":" off

static const bad_header bad_headers[] = {
    /* not JSON, or not the JSON the format allows */
    {"", 0, "the header must be a JSON object starting with '{'"},
    {" {}", 0, "bad JSON header at byte 0: the header must be a JSON object starting with '{' (near \" {}\")"},
    {"[]", 0, "must be a JSON object"},
    {"{", 0, "bad JSON header at byte 1: expected a string (at the end of the header)"},
    {"{\"a\"}", 0, "expected ':' after 'a'"},
    {"{\"a\":{" W("[0,8]") "},}", 8, "bad JSON header at byte 54: expected a string"},
    {"{\"a\":{" W("[0,8]") "}} x", 8, "unexpected text after the header object (near \"x\")"},
    {"{\"a\":{" W("[0,8]") "} \"b\":1}", 8, "expected ',' or '}' after an entry"},
    {"{\"unterminated:{}}", 0, "unterminated string"},
    {"{\"bad\\xescape\":{}}", 0, "unknown escape '\\x'"},
    {"{\"bad\\u12g4\":{}}", 0, "bad \\u escape (expected 4 hex digits)"},
    {"{\"\\udc00\":{}}", 0, "lone low surrogate \\udc00"},
    {"{\"\\ud800x\":{}}", 0, "high surrogate \\ud800 without a low surrogate after it"},
    {"{\"\\ud800\\u0041\":{}}", 0, "high surrogate \\ud800 without a low surrogate"},
    {"{\"nul\\u0000\":{}}", 0, "\\u0000 in a string (names cannot hold NUL)"},
    {"{\"tab\there\":{}}", 0, "control character 0x09 in a string"},
    {"{\"a\":[1]}", 0,
     "tensor 'a': bad JSON header at byte 5: expected an object {\"dtype\", \"shape\", \"data_offsets\"}"},
    {"{\"a\":null}", 0, "tensor 'a': bad JSON header"},
    {"{\"a\":{\"dtype\":\"F32\" \"shape\":[]}}", 0,
     "tensor 'a': bad JSON header at byte 20: expected ',' or '}' (near \"\"shape\":[]}}\")"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"foo\":1}}", 8,
     "tensor 'a': bad JSON header at byte 53: unexpected key 'foo' (a tensor has dtype, shape, data_offsets)"},
    {"{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\"}}", 0,
     "tensor 'a': bad JSON header at byte 20: duplicate key 'dtype'"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 0, "tensor 'a': entry lacks \"data_offsets\""},
    {"{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "tensor 'a': entry lacks \"dtype\""},
    {"{\"a\":{\"dtype\":7}}", 0, "tensor 'a': bad JSON header at byte 14: expected a string"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":3}}", 0, "shape: expected an array of integers"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2,]}}", 0, "shape: expected an integer"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2 2]}}", 0, "shape: expected ',' or ']'"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[[2]]}}", 0, "shape: expected an integer"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2]}}", 0, "shape: negative number"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0]}}", 0, "shape: expected an integer, got a fraction or exponent"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2e3]}}", 0, "shape: expected an integer, got a fraction or exponent"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[02]}}", 0, "shape: leading zero in a number"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[18446744073709551616]}}", 0, "shape: integer too large"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[9223372036854775808]}}", 0,
     "tensor 'a': shape size 9223372036854775808 is too large"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1]}}", 0,
     "tensor 'a': shape has 9 dimensions, bnlab supports at most 8"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 0,
     "tensor 'a': data_offsets has 1 number, expected 2 [begin, end]"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", 8, "data_offsets has 3 numbers"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":{}}}", 8, "data_offsets: expected an array of integers"},
    {"{\"__metadata__\":[]}", 0, "\"__metadata__\" expected an object of strings"},
    {"{\"__metadata__\":{\"epoch\":12}}", 0, "metadata 'epoch': value must be a string"},
    {"{\"__metadata__\":{\"k\":{}}}", 0, "metadata 'k': value must be a string"},
    {"{\"__metadata__\":{\"k\" \"v\"}}", 0, "expected ':' after a metadata key"},
    {"{\"__metadata__\":{\"k\":\"v\" \"j\":\"w\"}}", 0, "expected ',' or '}' in \"__metadata__\""},
    {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate \"__metadata__\""},
    {"{\"__metadata__\":{\"k\":\"v\",\"k\":\"w\"}}", 0, "metadata key 'k' appears twice"},
    /* dtypes */
    {"{\"a\":{\"dtype\":\"F128\",\"shape\":[2],\"data_offsets\":[0,32]}}", 32, "tensor 'a': unknown dtype 'F128'"},
    {"{\"a\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unknown dtype 'f32'"},
    {"{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2,
     "tensor 'a': dtype F8_E4M3 is not supported (bnlab reads F16 BF16 F32 F64 I8 I16 I32 I64 U8 U16 U32 U64 BOOL)"},
    /* names, sizes and offsets */
    {"{\"a\":{" W("[0,8]") "},\"a\":{" W("[8,16]") "}}", 16, "tensor 'a' appears twice in the header"},
    {"{\"\\u0001x\":{" W("[0,4]") "}}", 8, "tensor '\\x01x': data_offsets [0, 4] hold 4 bytes, shape [2] F32 needs 8"},
    {"{\"a\":{\"dtype\":\"F64\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 16,
     "tensor 'a': data_offsets [0, 16] hold 16 bytes, shape [2 x 2] F64 needs 32"},
    {"{\"a\":{" W("[8,0]") "}}", 8, "tensor 'a': data_offsets [8, 0] end before they begin"},
    {"{\"a\":{" W("[0,8]") "}}", 4,
     "tensor 'a': data_offsets [0, 8] go past the end of the data (4 bytes after the header)"},
    {"{\"a\":{" W("[18446744073709551608,0]") "}}", 8, "end before they begin"},
    {"{\"a\":{" W("[18446744073709551608,18446744073709551615]") "}}", 8, "hold 7 bytes, shape [2] F32 needs 8"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}", 8,
     "tensor 'a': shape [4294967296 x 4294967296 x 4294967296] has too many elements"},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,0]}}", 0, "has too many elements"},
    {"{\"a\":{" W("[0,8]") "},\"b\":{" W("[4,12]") "}}", 12,
     "tensors 'a' and 'b' overlap: data_offsets [0, 8] and [4, 12]"},
    {"{\"a\":{" W("[0,8]") "},\"b\":{" W("[0,8]") "}}", 8, "tensors 'a' and 'b' overlap"},
    {"{\"a\":{" W("[0,8]") "},\"b\":{" W("[16,24]") "}}", 24,
     "data bytes [8, 16) belong to no tensor (gap before tensor 'b')"},
    {"{\"b\":{" W("[8,16]") "}}", 16, "data bytes [0, 8) belong to no tensor (gap before tensor 'b')"},
    {"{\"a\":{" W("[0,8]") "}}", 16, "data bytes [8, 16) belong to no tensor (the file has 8 extra bytes)"},
    {"{}", 4, "data bytes [0, 4) belong to no tensor (the file has 4 extra bytes)"},
};

static void test_bad_headers(void **state)
{
    (void)state;
    static const unsigned char zeros[64];
    const char *p = tu_tmp_path("bad.safetensors");
    for (size_t i = 0; i < sizeof bad_headers / sizeof bad_headers[0]; i++) {
        const bad_header *b = &bad_headers[i];
        st_file_n("bad.safetensors", b->header, strlen(b->header), zeros, b->dlen);
        expect_fail(p, BN_EFORMAT, b->needle);
    }
    /* NUL padding is not JSON whitespace. */
    const char nul[] = "{}\0";
    p = st_file_n("nul.safetensors", nul, 3, NULL, 0);
    expect_fail(p, BN_EFORMAT, "unexpected text after the header object (near \"?\")");
    /* Not UTF-8, and an overlong encoding of '"'. */
    p = st_file("utf8.safetensors", "{\"caf\xe9\":{}}", NULL, 0);
    expect_fail(p, BN_EFORMAT, "header is not valid UTF-8 (bad byte at 5)");
    p = st_file("overlong.safetensors", "{\"a\xc0\xa2\":{}}", NULL, 0);
    expect_fail(p, BN_EFORMAT, "header is not valid UTF-8 (bad byte at 3)");
    p = st_file("surrogate.safetensors", "{\"a\xed\xa0\x80\":{}}", NULL, 0);
    expect_fail(p, BN_EFORMAT, "not valid UTF-8");
}

/* The memory limit turns a tensor allocation into a clean BN_ENOMEM that
 * names the tensor, with the tensors already loaded freed. */
static void test_out_of_memory(void **state)
{
    (void)state;
    bn_tensor *a = bn_tensor_ones(1, TU_SHAPE(16)), *b = bn_tensor_ones(1, TU_SHAPE(100000));
    const char *names[] = {"small", "large"};
    bn_tensor *const ts[] = {a, b};
    const char *p = tu_tmp_path("oom.safetensors");
    TU_ST(bn_safetensors_save(p, 2, names, ts, 0, NULL, NULL));
    bn_mem_set_limit(bn_mem_in_use() + 4096);
    expect_fail(p, BN_ENOMEM, "tensor 'large': tensor: out of memory");
    bn_mem_set_limit(0);
    bn_tensor_release(a);
    bn_tensor_release(b);
}

/* Every truncation of a valid file fails cleanly, and random damage to the
 * header never crashes (under ASan this is the check that matters). */
static void test_truncations_and_fuzz(void **state)
{
    (void)state;
    bn_tensor *a = TU_RANDN(5, 2, 3), *s = bn_tensor_scalar(1.0f);
    const char *names[] = {"a", "s\\u"};
    bn_tensor *const ts[] = {a, s};
    const char *k[] = {"epoch"}, *v[] = {"1\n"};
    const char *p = tu_tmp_path("good.safetensors");
    TU_ST(bn_safetensors_save(p, 2, names, ts, 1, k, v));
    bn_tensor_release(a);
    bn_tensor_release(s);
    size_t n;
    unsigned char *good = read_file(p, &n);
    unsigned char *bad = malloc(n);
    const char *q = tu_tmp_path("cut.safetensors");
    for (size_t len = 0; len < n; len++) {
        tu_write_file(q, good, len);
        bn_clear_error();
        bn_safetensors *f = NULL;
        if (bn_safetensors_load(q, &f) == BN_OK) fail_msg("truncated to %zu of %zu bytes, still loaded", len, n);
        assert_int_equal(bn_last_status(), BN_EFORMAT);
    }
    bn_rng g;
    bn_rng_init(&g, 4242);
    size_t hend = 0;
    for (int k = 7; k >= 0; k--)
        hend = hend << 8 | good[k];
    hend += 8;
    int loaded = 0;
    for (int trial = 0; trial < 3000; trial++) {
        memcpy(bad, good, n);
        uint32_t w[4];
        bn_philox(g.offset++, 0, g.seed, w);
        int hits = 1 + (int)(w[0] % 3);
        for (int h = 0; h < hits; h++) {
            /* Mostly printable damage inside the JSON, sometimes the length. */
            size_t at = trial % 10 == 0 ? w[1 + h] % 8 : 8 + w[1 + h] % (hend - 8);
            const char alphabet[] = "{}[]\":,0123456789 \\u-eE.aF";
            bad[at] = (w[1 + h] >> 24) % 4 == 0 ? (unsigned char)(w[1 + h] >> 16)
                                                : (unsigned char)alphabet[(w[1 + h] >> 16) % (sizeof alphabet - 1)];
        }
        tu_write_file(q, bad, n);
        bn_clear_error();
        bn_safetensors *f = NULL;
        if (bn_safetensors_load(q, &f) == BN_OK) {
            loaded++;
            bn_safetensors_free(f);
        } else {
            assert_true(bn_last_status() == BN_EFORMAT || bn_last_status() == BN_EIO);
        }
    }
    (void)loaded;
    free(good);
    free(bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),      cmocka_unit_test(test_many_tensors),
        cmocka_unit_test(test_reference_bytes), cmocka_unit_test(test_every_dtype),
        cmocka_unit_test(test_header_variants), cmocka_unit_test(test_accessors),
        cmocka_unit_test(test_save_arguments),  cmocka_unit_test(test_save_atomic),
        cmocka_unit_test(test_bad_lengths),     cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_out_of_memory),   cmocka_unit_test(test_truncations_and_fuzz),
    };
    return cmocka_run_group_tests_name("safetensors", tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
