/* .npy reader/writer: round trips, every dtype and byte order from
 * hand-built bytes, Fortran order, and each kind of damaged file (which must
 * fail with a message, never crash or allocate what the file cannot back). */
#include "testutil.h"

#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/npy.h"

/* Reads a whole file into a malloc'd buffer. */
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

/* Builds an .npy image by hand: magic, version, header length for that
 * version, the dict padded to 64 with spaces and '\n', then `data`. Returns
 * the total length written into out. */
static size_t build_npy(unsigned char *out, int major, const char *dict, const void *data, size_t dlen)
{
    size_t pre = major == 1 ? 10 : 12, dl = strlen(dict), total = pre + dl + 1;
    size_t pad = (64 - total % 64) % 64, hlen = dl + pad + 1;
    memcpy(out, "\x93NUMPY", 6);
    out[6] = (unsigned char)major;
    out[7] = 0;
    for (size_t i = 0; i < pre - 8; i++) out[8 + i] = (unsigned char)(hlen >> (8 * i));
    memcpy(out + pre, dict, dl);
    memset(out + pre + dl, ' ', pad);
    out[pre + dl + pad] = '\n';
    if (dlen) memcpy(out + pre + hlen, data, dlen);
    return pre + hlen + dlen;
}

static const char *write_npy(const char *name, int major, const char *dict, const void *data, size_t dlen)
{
    unsigned char *buf = malloc(1024 + dlen);
    size_t n = build_npy(buf, major, dict, data, dlen);
    const char *p = tu_tmp_path(name);
    tu_write_file(p, buf, n);
    free(buf);
    return p;
}

/* Same bits, or both NaN: exact comparison for conversions. */
static void assert_same_floats(const float *got, const float *want, int64_t n, const char *what)
{
    for (int64_t i = 0; i < n; i++) {
        if (isnan(want[i]) && isnan(got[i])) continue;
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0)
            fail_msg("%s: element %lld is %.9g, expected %.9g", what, (long long)i, got[i], want[i]);
    }
}

/* ---- round trips -------------------------------------------------------- */

static void round_trip(int ndim, const int64_t *shape)
{
    bn_tensor *t = tu_uniform(11 + (uint64_t)ndim, -3.0f, 3.0f, ndim, shape);
    int64_t n = bn_tensor_numel(t);
    float *v = bn_tensor_data(t);
    if (n >= 4) { /* the special values must survive */
        v[0] = NAN;
        v[1] = -INFINITY;
        v[2] = -0.0f;
        v[3] = 1e-45f;
    }
    const char *p = tu_tmp_path("rt.npy");
    TU_ST(bn_npy_save(t, p));
    bn_tensor *u = bn_npy_load(p);
    TU_OK(u);
    assert_int_equal(u->ndim, ndim);
    for (int d = 0; d < ndim; d++) assert_int_equal(u->shape[d], shape[d]);
    if (n > 0) assert_true(bn_tensor_is_contiguous(u)); /* core's contiguity test is unreliable for empty tensors */
    assert_same_floats(bn_tensor_data(u), v, n, "round trip");
    bn_tensor_release(t);
    bn_tensor_release(u);
}

static void test_round_trip_shapes(void **state)
{
    (void)state;
    round_trip(0, NULL);
    round_trip(1, TU_SHAPE(5));
    round_trip(1, TU_SHAPE(0));
    round_trip(2, TU_SHAPE(3, 4));
    round_trip(3, TU_SHAPE(2, 0, 3));
    round_trip(4, TU_SHAPE(2, 3, 5, 7));
    round_trip(8, TU_SHAPE(2, 1, 2, 3, 1, 2, 2, 3));
    round_trip(2, TU_SHAPE(300, 257)); /* more than one write buffer */
}

/* The writer's bytes match what numpy.save writes for float32 [3 x 4]. */
static void test_save_bytes_match_numpy(void **state)
{
    (void)state;
    bn_tensor *t = bn_tensor_arange(0, 12, 1);
    bn_tensor *m = bn_view(t, 2, TU_SHAPE(3, 4));
    TU_OK(m);
    const char *p = tu_tmp_path("numpy_like.npy");
    TU_ST(bn_npy_save(m, p));
    size_t len;
    unsigned char *b = read_file(p, &len);
    assert_int_equal(len, 128 + 48);
    assert_memory_equal(b, "\x93NUMPY\x01\x00\x76\x00", 10);
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }";
    assert_memory_equal(b + 10, dict, strlen(dict));
    for (size_t i = 10 + strlen(dict); i < 127; i++) assert_int_equal(b[i], ' ');
    assert_int_equal(b[127], '\n');
    /* 1.0f little-endian is 00 00 80 3f */
    assert_memory_equal(b + 128 + 4, "\x00\x00\x80\x3f", 4);
    free(b);

    /* 1-d shapes are written as a one-element tuple "(5,)", 0-d as "()". */
    bn_tensor *s = bn_tensor_scalar(2.5f), *o = bn_tensor_ones(1, TU_SHAPE(5));
    TU_ST(bn_npy_save(s, p));
    b = read_file(p, &len);
    assert_non_null(memmem(b, len, "'shape': (), }", 14));
    free(b);
    TU_ST(bn_npy_save(o, p));
    b = read_file(p, &len);
    assert_non_null(memmem(b, len, "'shape': (5,), }", 16));
    assert_int_equal(len % 64, 20 % 64); /* header ends on a 64-byte boundary; 5 floats follow */
    free(b);
    bn_tensor_release(s);
    bn_tensor_release(o);
    bn_tensor_release(m);
    bn_tensor_release(t);
}

/* A transposed (non-contiguous) view is written in its logical order. */
static void test_save_strided_view(void **state)
{
    (void)state;
    bn_tensor *t = bn_tensor_arange(0, 6, 1);
    bn_tensor *m = bn_view(t, 2, TU_SHAPE(2, 3));
    bn_tensor *tr = bn_transpose(m, 0, 1);
    TU_OK(tr);
    assert_false(bn_tensor_is_contiguous(tr));
    const char *p = tu_tmp_path("strided.npy");
    TU_ST(bn_npy_save(tr, p));
    bn_tensor *u = bn_npy_load(p);
    TU_OK(u);
    assert_int_equal(u->shape[0], 3);
    assert_int_equal(u->shape[1], 2);
    const float want[6] = {0, 3, 1, 4, 2, 5};
    assert_same_floats(bn_tensor_data(u), want, 6, "transposed save");
    bn_tensor_release(u);
    bn_tensor_release(tr);
    bn_tensor_release(m);
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

/* Saving replaces the file whole; failures leave no temporary behind and
 * the old contents intact. */
static void test_save_atomic(void **state)
{
    (void)state;
    const char *p = tu_tmp_path("atomic.npy");
    bn_tensor *a = bn_tensor_full(1, TU_SHAPE(4), 1.0f), *b = bn_tensor_full(2, TU_SHAPE(2, 3), 2.0f);
    TU_ST(bn_npy_save(a, p));
    TU_ST(bn_npy_save(b, p));
    bn_tensor *u = bn_npy_load(p);
    TU_OK(u);
    assert_int_equal(u->ndim, 2);
    assert_true(bn_tensor_get_flat(u, 5) == 2.0f);
    bn_tensor_release(u);
    assert_false(dir_has_temp_files());

    /* Directory missing: cannot even create the temporary. */
    bn_clear_error();
    assert_int_equal(bn_npy_save(a, tu_tmp_path("no/such/dir.npy")), BN_EIO);
    assert_non_null(strstr(bn_last_error(), "no/such/dir.npy"));

    /* Rename onto a directory fails after the data was written. */
    const char *dirp = tu_tmp_path("a_directory");
    assert_int_equal(mkdir(dirp, 0700), 0);
    bn_clear_error();
    assert_int_equal(bn_npy_save(a, dirp), BN_EIO);
    assert_non_null(strstr(bn_last_error(), "rename"));
    assert_false(dir_has_temp_files());
    rmdir(dirp);

    /* A write that runs out of space (a file-size limit makes the write fail
     * with EFBIG) keeps the old file and removes the temporary. */
    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {4096, old.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    bn_tensor *big = bn_tensor_zeros(1, TU_SHAPE(100000));
    bn_clear_error();
    bn_status st = bn_npy_save(big, p);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    assert_int_equal(st, BN_EIO);
    assert_non_null(strstr(bn_last_error(), "atomic.npy"));
    assert_false(dir_has_temp_files());
    u = bn_npy_load(p);
    TU_OK(u);
    assert_int_equal(bn_tensor_numel(u), 6);
    bn_tensor_release(u);

    bn_clear_error();
    assert_int_equal(bn_npy_save(NULL, p), BN_EARG);
    assert_int_equal(bn_npy_save(a, NULL), BN_EARG);
    bn_tensor_release(big);
    bn_tensor_release(a);
    bn_tensor_release(b);
}

/* ---- dtypes ------------------------------------------------------------- */

typedef struct elem {
    uint64_t bits; /* the element's value as an unsigned integer of its size */
    float want;
} elem;

typedef struct dtype_case {
    char kind; /* f i u b */
    int size;
    int n;
    elem v[8];
} dtype_case;

static const dtype_case dtype_cases[] = {
    {'f', 2, 8, {{0x0000, 0.0f}, {0x3c00, 1.0f}, {0xc000, -2.0f}, {0x3800, 0.5f}, {0x7bff, 65504.0f},
                 {0x0001, 5.9604645e-8f}, {0xfc00, -INFINITY}, {0x7e00, NAN}}},
    {'f', 4, 7, {{0x00000000, 0.0f}, {0x3fc00000, 1.5f}, {0xc0100000, -2.25f}, {0x7f7fffff, 3.4028235e38f},
                 {0x00000001, 1e-45f}, {0x7f800000, INFINITY}, {0x7fc00000, NAN}}},
    {'f', 8, 6, {{0x3ff8000000000000, 1.5f}, {0xc002000000000000, -2.25f}, {0x3fb999999999999a, 0.1f},
                 {0x7e37e43c8800759c, INFINITY}, /* 1e300 overflows float */
                 {0x0000000000000001, 0.0f},     /* 2^-1074 underflows */
                 {0x8000000000000000, -0.0f}}},
    {'i', 1, 5, {{0, 0.0f}, {1, 1.0f}, {0xff, -1.0f}, {0x7f, 127.0f}, {0x80, -128.0f}}},
    {'i', 2, 4, {{0x7fff, 32767.0f}, {0x8000, -32768.0f}, {0xfffe, -2.0f}, {0x0102, 258.0f}}},
    {'i', 4, 4, {{0x7fffffff, 2147483648.0f}, {0x80000000, -2147483648.0f}, {0xfffffffd, -3.0f},
                 {0x01000001, 16777216.0f}}}, /* 2^24+1 rounds to even */
    {'i', 8, 4, {{0x7fffffffffffffff, 9.223372e18f}, {0x8000000000000000, -9.223372e18f},
                 {0xfffffffffffffffb, -5.0f}, {0x0000000100000000, 4294967296.0f}}},
    {'u', 1, 3, {{0, 0.0f}, {0x80, 128.0f}, {0xff, 255.0f}}},
    {'u', 2, 3, {{0xffff, 65535.0f}, {0x8000, 32768.0f}, {0x0102, 258.0f}}},
    {'u', 4, 2, {{0xffffffff, 4294967296.0f}, {0x80000000, 2147483648.0f}}},
    {'u', 8, 2, {{0xffffffffffffffff, 1.8446744e19f}, {7, 7.0f}}},
    {'b', 1, 3, {{0, 0.0f}, {1, 1.0f}, {2, 1.0f}}}, /* any non-zero byte is true */
};

/* Writes the case's elements in the given byte order and loads them. */
static void check_dtype(const dtype_case *c, char order, int major)
{
    unsigned char data[64];
    for (int i = 0; i < c->n; i++)
        for (int k = 0; k < c->size; k++) {
            unsigned char byte = (unsigned char)(c->v[i].bits >> (8 * k));
            data[i * c->size + (order == '>' ? c->size - 1 - k : k)] = byte;
        }
    char dict[128], what[64];
    snprintf(dict, sizeof dict, "{'descr': '%c%c%d', 'fortran_order': False, 'shape': (%d,), }", order,
             c->kind, c->size, c->n);
    snprintf(what, sizeof what, "%c%c%d v%d.0", order, c->kind, c->size, major);
    const char *p = write_npy("dtype.npy", major, dict, data, (size_t)(c->n * c->size));
    bn_tensor *t = bn_npy_load(p);
    if (!t) fail_msg("%s: %s", what, bn_last_error());
    assert_int_equal(t->ndim, 1);
    assert_int_equal(t->shape[0], c->n);
    float want[8];
    for (int i = 0; i < c->n; i++) want[i] = c->v[i].want;
    assert_same_floats(bn_tensor_data(t), want, c->n, what);
    bn_tensor_release(t);
}

static void test_every_dtype_both_orders(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof dtype_cases / sizeof *dtype_cases; i++) {
        const dtype_case *c = &dtype_cases[i];
        check_dtype(c, '<', 1);
        check_dtype(c, '>', 1);
        check_dtype(c, c->size == 1 ? '|' : '<', 2);
        check_dtype(c, '>', 3);
    }
}

/* A few literal files, byte for byte, so the test does not only agree with
 * its own encoder. */
static void test_literal_bytes(void **state)
{
    (void)state;
    static const unsigned char be_i2[] = {0xff, 0xfe, 0x01, 0x00};        /* -2, 256 */
    static const unsigned char le_f8[] = {0, 0, 0, 0, 0, 0, 0xf0, 0x3f}; /* 1.0 */
    static const unsigned char b1[] = {1, 0, 1};
    const char *p = write_npy("lit1.npy", 1, "{'descr': '>i2', 'fortran_order': False, 'shape': (2,), }", be_i2, 4);
    bn_tensor *t = bn_npy_load(p);
    TU_OK(t);
    assert_true(bn_tensor_get_flat(t, 0) == -2.0f && bn_tensor_get_flat(t, 1) == 256.0f);
    bn_tensor_release(t);
    p = write_npy("lit2.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }", le_f8, 8);
    t = bn_npy_load(p);
    TU_OK(t);
    assert_int_equal(t->ndim, 0);
    assert_true(bn_tensor_get_flat(t, 0) == 1.0f);
    bn_tensor_release(t);
    /* Key order, double quotes, no trailing comma, Python 2 'L' sizes and the
     * '?' spelling of bool are all valid Python dict literals numpy accepts. */
    p = write_npy("lit3.npy", 1, "{\"shape\": (3L,) ,\"fortran_order\":False,\"descr\":\"?\"}", b1, 3);
    t = bn_npy_load(p);
    TU_OK(t);
    const float want[3] = {1, 0, 1};
    assert_same_floats(bn_tensor_data(t), want, 3, "bool");
    bn_tensor_release(t);
}

static void test_fortran_order(void **state)
{
    (void)state;
    /* [2 x 3] with a[i][j] = 10 i + j, stored column by column. */
    const float f2[6] = {0, 10, 1, 11, 2, 12};
    const char *p = write_npy("f2.npy", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", f2, 24);
    bn_tensor *t = bn_npy_load(p);
    TU_OK(t);
    const float want2[6] = {0, 1, 2, 10, 11, 12};
    assert_same_floats(bn_tensor_data(t), want2, 6, "fortran 2-d");
    bn_tensor_release(t);

    /* [2 x 3 x 4] big-endian int16, a[i][j][k] = 100 i + 10 j + k; Fortran
     * order puts i fastest, then j, then k. */
    unsigned char d3[48];
    int pos = 0;
    for (int k = 0; k < 4; k++)
        for (int j = 0; j < 3; j++)
            for (int i = 0; i < 2; i++) {
                int v = 100 * i + 10 * j + k;
                d3[pos++] = (unsigned char)(v >> 8);
                d3[pos++] = (unsigned char)v;
            }
    p = write_npy("f3.npy", 2, "{'descr': '>i2', 'fortran_order': True, 'shape': (2, 3, 4), }", d3, 48);
    t = bn_npy_load(p);
    TU_OK(t);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 4; k++)
                assert_true(bn_tensor_get(t, TU_SHAPE(i, j, k)) == (float)(100 * i + 10 * j + k));
    bn_tensor_release(t);

    /* Fortran order of a 1-d or 0-d array is the same bytes as C order. */
    const float f1[3] = {1, 2, 3};
    p = write_npy("f1.npy", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (3,), }", f1, 12);
    t = bn_npy_load(p);
    TU_OK(t);
    assert_same_floats(bn_tensor_data(t), f1, 3, "fortran 1-d");
    bn_tensor_release(t);
}

static void test_dims_0_to_8(void **state)
{
    (void)state;
    float data[256];
    for (int i = 0; i < 256; i++) data[i] = (float)i;
    const char *p = write_npy("d8.npy", 1,
                              "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 2, 2, 2, 2, 2, 2), }",
                              data, sizeof data);
    bn_tensor *t = bn_npy_load(p);
    TU_OK(t);
    assert_int_equal(t->ndim, 8);
    assert_true(bn_tensor_get(t, TU_SHAPE(1, 0, 0, 0, 0, 0, 0, 1)) == 129.0f);
    bn_tensor_release(t);
    /* Fortran 8-d: index (1,0,...,0,1) is at file position 1 + 128. */
    p = write_npy("d8f.npy", 1,
                  "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2, 2, 2, 2, 2, 2, 2), }", data,
                  sizeof data);
    t = bn_npy_load(p);
    TU_OK(t);
    assert_true(bn_tensor_get(t, TU_SHAPE(1, 0, 0, 0, 0, 0, 0, 1)) == 129.0f);
    assert_true(bn_tensor_get(t, TU_SHAPE(0, 1, 0, 0, 0, 0, 0, 0)) == 2.0f);
    bn_tensor_release(t);
    /* Zero-size arrays need no data. */
    p = write_npy("empty.npy", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 5), }", NULL, 0);
    t = bn_npy_load(p);
    TU_OK(t);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(bn_tensor_numel(t), 0);
    bn_tensor_release(t);
}

/* ---- damaged files ------------------------------------------------------ */

/* Loading `p` fails with `st` and a message naming the file and `needle`. */
static void expect_fail(const char *p, bn_status st, const char *needle)
{
    int64_t before = bn_mem_in_use();
    bn_clear_error();
    bn_tensor *t = bn_npy_load(p);
    if (t) fail_msg("%s: expected failure (%s), got a tensor %s", p, needle, bn_shape_str(t));
    if (bn_last_status() != st)
        fail_msg("%s: status %s, expected %s (%s)", p, bn_status_name(bn_last_status()), bn_status_name(st),
                 bn_last_error());
    if (!strstr(bn_last_error(), needle)) fail_msg("message '%s' lacks '%s'", bn_last_error(), needle);
    if (!strstr(bn_last_error(), p)) fail_msg("message '%s' does not name the file", bn_last_error());
    assert_int_equal(bn_mem_in_use(), before);
}

static const char *dict_file(const char *name, const char *dict, size_t dlen)
{
    static unsigned char zeros[4096];
    return write_npy(name, 1, dict, zeros, dlen);
}

static void test_bad_files(void **state)
{
    (void)state;
    expect_fail(tu_tmp_path("missing.npy"), BN_EIO, "cannot open");
    expect_fail(tu_tmpdir, BN_EIO, "not a regular file");
    bn_clear_error();
    assert_null(bn_npy_load(NULL));
    assert_int_equal(bn_last_status(), BN_EARG);

    const char *p = tu_tmp_path("empty.npy");
    tu_write_file(p, "", 0);
    expect_fail(p, BN_EFORMAT, "truncated");
    p = tu_tmp_path("magic.npy");
    tu_write_file(p, "PK\x03\x04 this is a zip file", 24);
    expect_fail(p, BN_EFORMAT, "bad magic");
    p = tu_tmp_path("short.npy");
    tu_write_file(p, "\x93NUMPY\x01\x00", 8);
    expect_fail(p, BN_EFORMAT, "truncated");
    p = tu_tmp_path("short2.npy");
    tu_write_file(p, "\x93NUMPY\x02\x00\x10\x00", 10); /* v2 needs a 4-byte length */
    expect_fail(p, BN_EFORMAT, "truncated");
    p = tu_tmp_path("version.npy");
    tu_write_file(p, "\x93NUMPY\x04\x00\x10\x00{}", 12);
    expect_fail(p, BN_EFORMAT, "version 4.0");

    /* Header length pointing past the end of the file. */
    unsigned char buf[256];
    size_t n = build_npy(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", "\0\0\0\0", 4);
    buf[8] = 0xff;
    buf[9] = 0x7f;
    p = tu_tmp_path("hlen.npy");
    tu_write_file(p, buf, n);
    expect_fail(p, BN_EFORMAT, "header length 32767 goes past the end");
    n = build_npy(buf, 2, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", "\0\0\0\0", 4);
    buf[11] = 0xff;
    p = tu_tmp_path("hlen2.npy");
    tu_write_file(p, buf, n);
    expect_fail(p, BN_EFORMAT, "goes past the end");

    /* A header length the file does back, but far beyond any real header
     * (a sparse 3 MB file): refused before allocating it. */
    p = tu_tmp_path("hugeheader.npy");
    tu_write_file(p, "\x93NUMPY\x02\x00\x00\x00\x20\x00", 12); /* 2 MiB header */
    assert_int_equal(truncate(p, 3 << 20), 0);
    expect_fail(p, BN_EFORMAT, "implausibly large");
    remove(p);

    /* Unparsable dicts. */
    expect_fail(dict_file("d1.npy", "not a dict", 0), BN_EFORMAT, "cannot parse header dict");
    expect_fail(dict_file("d2.npy", "{'descr' '<f4', 'fortran_order': False, 'shape': (1,), }", 4),
                BN_EFORMAT, "expected ':'");
    expect_fail(dict_file("d3.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'sh}", 4), BN_EFORMAT,
                "unterminated string");
    expect_fail(dict_file("d4.npy", "{'descr': '<f4', 'fortran_order': False}", 4), BN_EFORMAT,
                "lacks 'shape'");
    expect_fail(dict_file("d5.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", 4),
                BN_EFORMAT, "unexpected key 'x'");
    expect_fail(dict_file("d6.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3), }", 12), BN_EFORMAT,
                "not a tuple");
    expect_fail(dict_file("d7.npy", "{'descr': '<f4', 'fortran_order': 0, 'shape': (1,), }", 4), BN_EFORMAT,
                "fortran_order expected True or False");
    expect_fail(dict_file("d8.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2 3), }", 24),
                BN_EFORMAT, "expected ',' or ')'");
    expect_fail(dict_file("d9.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), } junk", 4),
                BN_EFORMAT, "unexpected text after the dict");
    expect_fail(dict_file("d10.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': [1], }", 4), BN_EFORMAT,
                "shape expected a tuple");
    expect_fail(dict_file("d11.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)", 4), BN_EFORMAT,
                "cannot parse");
    /* A NUL byte inside the header (it is not a C string). */
    n = build_npy(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), @}", "\0\0\0\0", 4);
    *(unsigned char *)memchr(buf, '@', n) = 0;
    p = tu_tmp_path("d12.npy");
    tu_write_file(p, buf, n);
    expect_fail(p, BN_EFORMAT, "cannot parse");

    /* Bad shapes. */
    expect_fail(dict_file("s1.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, -4), }", 48), BN_EFORMAT,
                "negative size -4");
    expect_fail(dict_file("s2.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", 4),
                BN_EFORMAT, "overflows int64");
    expect_fail(dict_file("s3.npy",
                          "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", 4),
                BN_EFORMAT, "too many elements");
    expect_fail(dict_file("s4.npy",
                          "{'descr': '<f8', 'fortran_order': False, 'shape': (1152921504606846976,), }", 4),
                BN_EFORMAT, "too many elements"); /* 2^60 elements x 8 bytes overflows */
    expect_fail(dict_file("s5.npy",
                          "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", 4),
                BN_EFORMAT, "9 dimensions");
    /* Data shorter than the shape says: the exact message, and nothing
     * allocated even when the shape claims terabytes. */
    p = dict_file("x.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }", 40);
    expect_fail(p, BN_EFORMAT, "data is 40 bytes, shape [3 x 4] float32 needs 48");
    char want[600];
    snprintf(want, sizeof want, "npy: %s: data is 40 bytes, shape [3 x 4] float32 needs 48", p);
    assert_string_equal(bn_last_error(), want);
    bn_mem_reset_peak();
    int64_t peak = bn_mem_peak();
    expect_fail(dict_file("tb.npy", "{'descr': '<u2', 'fortran_order': False, 'shape': (1000000, 1000000), }", 16),
                BN_EFORMAT, "data is 16 bytes, shape [1000000 x 1000000] uint16 needs 2000000000000");
    assert_int_equal(bn_mem_peak(), peak);

    /* A valid file that would pass the memory limit: ENOMEM, file named. */
    p = dict_file("mem.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (100,), }", 400);
    bn_mem_set_limit(bn_mem_in_use() + 64);
    expect_fail(p, BN_ENOMEM, "out of memory");
    bn_mem_set_limit(0);

    /* Unsupported dtypes. */
    expect_fail(dict_file("c8.npy", "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", 8), BN_EFORMAT,
                "unsupported dtype '<c8'");
    expect_fail(dict_file("o.npy", "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", 8), BN_EFORMAT,
                "unsupported dtype '|O'");
    expect_fail(dict_file("u.npy", "{'descr': '<U10', 'fortran_order': False, 'shape': (1,), }", 40), BN_EFORMAT,
                "unsupported dtype '<U10'");
    expect_fail(dict_file("i3.npy", "{'descr': '<i3', 'fortran_order': False, 'shape': (1,), }", 8), BN_EFORMAT,
                "unsupported dtype");
    expect_fail(dict_file("b2.npy", "{'descr': '<b2', 'fortran_order': False, 'shape': (1,), }", 8), BN_EFORMAT,
                "unsupported dtype");
    expect_fail(dict_file("st.npy", "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", 8),
                BN_EFORMAT, "structured");
}

/* Every truncation of a valid file fails cleanly, and random byte damage
 * never crashes (under ASan this is the check that matters). */
static void test_truncations_and_damage(void **state)
{
    (void)state;
    unsigned char good[512], bad[512];
    float data[6] = {1, 2, 3, 4, 5, 6};
    size_t n = build_npy(good, 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", data, 24);
    const char *p = tu_tmp_path("cut.npy");
    for (size_t len = 0; len < n; len++) {
        tu_write_file(p, good, len);
        bn_clear_error();
        bn_tensor *t = bn_npy_load(p);
        if (t) fail_msg("truncated to %zu of %zu bytes, still loaded", len, n);
        assert_int_equal(bn_last_status(), BN_EFORMAT);
    }
    bn_rng g;
    bn_rng_init(&g, 99);
    for (int trial = 0; trial < 2000; trial++) {
        memcpy(bad, good, n);
        uint32_t w[4];
        bn_philox(g.offset++, 0, g.seed, w);
        int hits = 1 + (int)(w[0] % 3);
        for (int h = 0; h < hits; h++) bad[w[1 + h] % (n - 24)] = (unsigned char)(w[1 + h] >> 16);
        tu_write_file(p, bad, n);
        bn_clear_error();
        bn_tensor *t = bn_npy_load(p);
        if (t)
            bn_tensor_release(t);
        else
            assert_true(bn_last_status() == BN_EFORMAT || bn_last_status() == BN_EIO);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_shapes),
        cmocka_unit_test(test_save_bytes_match_numpy),
        cmocka_unit_test(test_save_strided_view),
        cmocka_unit_test(test_save_atomic),
        cmocka_unit_test(test_every_dtype_both_orders),
        cmocka_unit_test(test_literal_bytes),
        cmocka_unit_test(test_fortran_order),
        cmocka_unit_test(test_dims_0_to_8),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_truncations_and_damage),
    };
    return cmocka_run_group_tests_name("npy", tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
