/* IDX reader: the real Fashion-MNIST files (installed by `make deps` from
 * Debian's dataset-fashion-mnist), tiny synthetic raw and gzip files, and
 * each kind of damaged or lying file, which must fail with a message naming
 * the file and the problem, never crash, and never allocate what the file
 * cannot back. */
#include "testutil.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "data/idx.h"

#define FMNIST "/usr/share/datasets/fashion-mnist/"

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

static void write_gz(const char *path, const void *buf, size_t len)
{
    unlink(path);
    gzFile g = gzopen(path, "wb1"); /* fastest level: the tests need gzip, not small files */
    if (!g) fail_msg("cannot create %s", path);
    if (len && gzwrite(g, buf, (unsigned)len) != (int)len) fail_msg("cannot write %s", path);
    gzclose(g);
}

/* An IDX file in memory: magic, sizes, then `n` data bytes. */
static size_t build_idx(unsigned char *out, uint32_t magic, int ndim, const uint32_t *dims, const unsigned char *data,
                        size_t n)
{
    size_t k = 0;
    for (int b = 3; b >= 0; b--)
        out[k++] = (unsigned char)(magic >> (8 * b));
    for (int d = 0; d < ndim; d++)
        for (int b = 3; b >= 0; b--)
            out[k++] = (unsigned char)(dims[d] >> (8 * b));
    if (n) memcpy(out + k, data, n);
    return k + n;
}

/* Writes an IDX file, raw or gzip-compressed; returns its path. */
static const char *idx_file(const char *name, bool gz, uint32_t magic, int ndim, const uint32_t *dims,
                            const unsigned char *data, size_t n)
{
    unsigned char *buf = malloc(64 + n);
    size_t len = build_idx(buf, magic, ndim, dims, data, n);
    const char *p = tu_tmp_path(name);
    if (gz)
        write_gz(p, buf, len);
    else
        tu_write_file(p, buf, len);
    free(buf);
    return p;
}

/* Loading `p` as images (or labels) fails with `st` and a message naming the
 * file and containing `needle`; no tensor memory is left behind. */
static void expect_fail_kind(bool images, const char *p, bn_status st, const char *needle)
{
    int64_t before = bn_mem_in_use();
    bn_clear_error();
    if (images) {
        bn_tensor *t = bn_idx_load_images(p);
        if (t) fail_msg("%s: expected failure (%s), got a tensor %s", p, needle, bn_shape_str(t));
    } else {
        int64_t *lab = (int64_t *)1, n = -1;
        if (bn_idx_load_labels(p, &lab, &n) == BN_OK) fail_msg("%s: expected failure (%s), got labels", p, needle);
        assert_null(lab);
        assert_int_equal(n, 0);
    }
    if (bn_last_status() != st)
        fail_msg("%s: status %s, expected %s (%s)", p, bn_status_name(bn_last_status()), bn_status_name(st),
                 bn_last_error());
    if (!strstr(bn_last_error(), needle)) fail_msg("message '%s' lacks '%s'", bn_last_error(), needle);
    if (!strstr(bn_last_error(), p)) fail_msg("message '%s' does not name the file", bn_last_error());
    if (strncmp(bn_last_error(), "idx: ", 5) != 0)
        fail_msg("message '%s' does not start with 'idx: '", bn_last_error());
    assert_int_equal(bn_mem_in_use(), before);
}
#define expect_fail_images(p, st, needle) expect_fail_kind(true, p, st, needle)
#define expect_fail_labels(p, st, needle) expect_fail_kind(false, p, st, needle)

/* ---- the real data set -------------------------------------------------- */

/* Reference numbers computed independently (Python's gzip module over the
 * same files): pixel byte sums, first labels, one row of the first image. */
typedef struct split_facts {
    const char *name;
    int64_t n, per_class;
    long long pixel_sum, first_image_sum;
    int first_labels[10];
    unsigned char row14[28];
} split_facts;

static const split_facts TRAIN = {
    "train", 60000, 6000, 3431114169LL, 76247, {9, 0, 0, 3, 0, 2, 7, 2, 5, 5}, {0,   0,   1,   4,   6,   7,   2,
                                                                                0,   0,   0,   0,   0,   237, 226,
                                                                                217, 223, 222, 219, 222, 221, 216,
                                                                                223, 229, 215, 218, 255, 77,  0}};
static const split_facts T10K = {
    "t10k", 10000, 1000, 573469082LL, 33456, {9, 2, 1, 1, 6, 1, 4, 6, 5, 7}, {0,   0,   0,   0,   0,   0,   2,
                                                                              4,   1,   0,   0,   0,   98,  136,
                                                                              110, 109, 110, 162, 135, 144, 149,
                                                                              159, 167, 144, 158, 169, 119, 0}};

static void check_split(const split_facts *s)
{
    char ip[256], lp[256];
    snprintf(ip, sizeof ip, FMNIST "%s-images-idx3-ubyte.gz", s->name);
    snprintf(lp, sizeof lp, FMNIST "%s-labels-idx1-ubyte.gz", s->name);
    bn_tensor *x = NULL;
    int64_t *y = NULL, n = 0;
    TU_ST(bn_idx_load_pair(ip, lp, &x, &y, &n));
    assert_int_equal(n, s->n);
    assert_int_equal(x->ndim, 4);
    assert_int_equal(x->shape[0], s->n);
    assert_int_equal(x->shape[1], 1);
    assert_int_equal(x->shape[2], 28);
    assert_int_equal(x->shape[3], 28);
    assert_true(bn_tensor_is_contiguous(x));

    int64_t counts[10] = {0};
    for (int64_t i = 0; i < n; i++) {
        if (y[i] < 0 || y[i] > 9) fail_msg("%s label %lld is %lld", s->name, (long long)i, (long long)y[i]);
        counts[y[i]]++;
    }
    for (int c = 0; c < 10; c++)
        assert_int_equal(counts[c], s->per_class);
    for (int i = 0; i < 10; i++)
        assert_int_equal(y[i], s->first_labels[i]);

    /* Every value is exactly byte/255 for some byte: recover the bytes. */
    const float *v = bn_tensor_data(x);
    const int64_t numel = bn_tensor_numel(x);
    long long sum = 0, first = 0;
    for (int64_t i = 0; i < numel; i++) {
        long b = lrintf(v[i] * 255.0f);
        if (b < 0 || b > 255 || v[i] != (float)b / 255.0f)
            fail_msg("%s element %lld = %.9g is not a byte/255", s->name, (long long)i, v[i]);
        sum += b;
        if (i < 784) first += b;
    }
    assert_true(sum == s->pixel_sum);
    assert_true(first == s->first_image_sum);
    for (int c = 0; c < 28; c++)
        assert_true(v[14 * 28 + c] == (float)s->row14[c] / 255.0f);
    assert_true(v[0] == 0.0f);
    bn_tensor_release(x);
    free(y);
}

static void test_fashion_mnist_train(void **state)
{
    (void)state;
    check_split(&TRAIN);
}

static void test_fashion_mnist_t10k(void **state)
{
    (void)state;
    check_split(&T10K);
    /* Pairing a split's images with the other split's labels is caught. */
    bn_tensor *x = (bn_tensor *)1;
    int64_t *y = (int64_t *)1, n = -1;
    bn_clear_error();
    assert_int_equal(
        bn_idx_load_pair(FMNIST "t10k-images-idx3-ubyte.gz", FMNIST "train-labels-idx1-ubyte.gz", &x, &y, &n),
        BN_EFORMAT);
    assert_null(x);
    assert_null(y);
    assert_int_equal(n, 0);
    assert_non_null(strstr(bn_last_error(), "has 10000 images but"));
    assert_non_null(strstr(bn_last_error(), "has 60000 labels"));
}

/* ---- synthetic files ---------------------------------------------------- */

static void check_synthetic(bool gz)
{
    /* 3 images of 2 x 4 with every kind of byte, and their labels. */
    unsigned char px[24];
    for (int i = 0; i < 24; i++)
        px[i] = (unsigned char)(i * 11 + (i == 23 ? 2 : 0)); /* 0 .. 255 */
    const uint32_t dims[3] = {3, 2, 4};
    const char *ip = idx_file(gz ? "syn-images.gz" : "syn-images", gz, 0x803, 3, dims, px, 24);
    bn_tensor *x = bn_idx_load_images(ip);
    TU_OK(x);
    assert_int_equal(x->ndim, 4);
    assert_int_equal(x->shape[0], 3);
    assert_int_equal(x->shape[1], 1);
    assert_int_equal(x->shape[2], 2);
    assert_int_equal(x->shape[3], 4);
    for (int i = 0; i < 24; i++)
        assert_true(bn_tensor_get_flat(x, i) == (float)px[i] / 255.0f);
    assert_true(bn_tensor_get_flat(x, 0) == 0.0f);
    assert_true(bn_tensor_get_flat(x, 23) == 1.0f);
    bn_tensor_release(x);

    const unsigned char lab[5] = {0, 9, 255, 3, 128};
    const uint32_t ln[1] = {5};
    const char *lp = idx_file(gz ? "syn-labels.gz" : "syn-labels", gz, 0x801, 1, ln, lab, 5);
    int64_t *y = NULL, n = 0;
    TU_ST(bn_idx_load_labels(lp, &y, &n));
    assert_int_equal(n, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(y[i], lab[i]);
    free(y);

    /* An empty set is a valid file. */
    const uint32_t zero[3] = {0, 28, 28};
    ip = idx_file(gz ? "empty-images.gz" : "empty-images", gz, 0x803, 3, zero, NULL, 0);
    x = bn_idx_load_images(ip);
    TU_OK(x);
    assert_int_equal(x->shape[0], 0);
    assert_int_equal(x->shape[2], 28);
    bn_tensor_release(x);
    const uint32_t zl[1] = {0};
    lp = idx_file(gz ? "empty-labels.gz" : "empty-labels", gz, 0x801, 1, zl, NULL, 0);
    y = (int64_t *)1;
    n = -1;
    TU_ST(bn_idx_load_labels(lp, &y, &n));
    assert_int_equal(n, 0);
    free(y);
}

static void test_synthetic_raw(void **state)
{
    (void)state;
    check_synthetic(false);
}

static void test_synthetic_gz(void **state)
{
    (void)state;
    check_synthetic(true);
}

/* Reading a large file through the growing buffer (several doublings, not
 * a multiple of the chunk size) gives every byte in place. */
static void test_large_synthetic_gz(void **state)
{
    (void)state;
    const uint32_t dims[3] = {5000, 27, 29}; /* 3.9 MB */
    const size_t n = 5000 * 27 * 29;
    unsigned char *px = malloc(n);
    for (size_t i = 0; i < n; i++)
        px[i] = (unsigned char)((i * 2654435761u) >> 13);
    const char *p = idx_file("big.gz", true, 0x803, 3, dims, px, n);
    bn_tensor *x = bn_idx_load_images(p);
    TU_OK(x);
    const float *v = bn_tensor_data(x);
    for (size_t i = 0; i < n; i++)
        if (v[i] != (float)px[i] / 255.0f) fail_msg("element %zu is %.9g, expected %d/255", i, v[i], px[i]);
    bn_tensor_release(x);
    free(px);
}

/* ---- damaged files ------------------------------------------------------ */

static void test_missing_and_arguments(void **state)
{
    (void)state;
    const char *p = tu_tmp_path("train-images-idx3-ubyte.gz");
    expect_fail_images(p, BN_EIO, "No such file");
    expect_fail_images(p, BN_EIO, "install Debian's dataset-fashion-mnist, or pass --data DIR / set BNLAB_DATA");
    expect_fail_labels(tu_tmp_path("train-labels-idx1-ubyte.gz"), BN_EIO, "dataset-fashion-mnist");
    expect_fail_images(tu_tmpdir, BN_EIO, "not a regular file");

    bn_clear_error();
    assert_null(bn_idx_load_images(NULL));
    assert_int_equal(bn_last_status(), BN_EARG);
    int64_t *y, n;
    assert_int_equal(bn_idx_load_labels(NULL, &y, &n), BN_EARG);
    assert_int_equal(bn_idx_load_labels(p, NULL, &n), BN_EARG);
    assert_int_equal(bn_idx_load_labels(p, &y, NULL), BN_EARG);
    bn_tensor *x;
    assert_int_equal(bn_idx_load_pair(NULL, p, &x, &y, &n), BN_EARG);
}

static void test_bad_headers(void **state)
{
    (void)state;
    const unsigned char px[24] = {0};
    for (int gz = 0; gz <= 1; gz++) {
        const char *p = tu_tmp_path("empty");
        if (gz)
            write_gz(p, "", 0);
        else
            tu_write_file(p, "", 0);
        expect_fail_images(p, BN_EFORMAT, "truncated: the file ends inside the 16-byte IDX header (0 bytes)");
        expect_fail_labels(p, BN_EFORMAT, "ends inside the 8-byte IDX header");

        const uint32_t d3[3] = {3, 2, 4}, d1[1] = {24};
        p = idx_file("magic", gz, 0x12345678, 3, d3, px, 24);
        expect_fail_images(p, BN_EFORMAT, "not an IDX file: magic is 0x12345678, expected 0x00000803");
        p = idx_file("png", gz, 0x89504e47, 3, d3, px, 24);
        expect_fail_labels(p, BN_EFORMAT, "magic is 0x89504e47, expected 0x00000801");

        p = idx_file("labels-as-images", gz, 0x801, 1, d1, px, 24);
        expect_fail_images(p, BN_EFORMAT, "magic 0x00000801: 1 dimension, expected 0x00000803");
        expect_fail_images(p, BN_EFORMAT, "(this looks like a labels file)");
        p = idx_file("images-as-labels", gz, 0x803, 3, d3, px, 24);
        expect_fail_labels(p, BN_EFORMAT, "(this looks like an images file)");

        p = idx_file("float", gz, 0x0d03, 3, d3, px, 24);
        expect_fail_images(p, BN_EFORMAT, "element type 0x0d (float32) is not supported, expected 0x08");

        p = idx_file("short-header", gz, 0x803, 2, d3, NULL, 0); /* magic says 3 dims, only 2 sizes present */
        expect_fail_images(p, BN_EFORMAT, "ends inside the 16-byte IDX header (12 bytes)");

        const uint32_t huge_n[3] = {0xFFFFFFFFu, 28, 28};
        p = idx_file("huge-n", gz, 0x803, 3, huge_n, px, 24);
        expect_fail_images(p, BN_EFORMAT, "header declares 4294967295 images, more than the limit of 100000000");
        const uint32_t huge_l[1] = {100000001};
        p = idx_file("huge-labels", gz, 0x801, 1, huge_l, px, 24);
        expect_fail_labels(p, BN_EFORMAT, "header declares 100000001 labels, more than the limit");
        const uint32_t zero_h[3] = {3, 0, 4};
        p = idx_file("zero-side", gz, 0x803, 3, zero_h, px, 24);
        expect_fail_images(p, BN_EFORMAT, "header declares images of 0 x 4 pixels; sides must be 1 to 10000");
        const uint32_t wide[3] = {1, 1, 10001};
        p = idx_file("wide", gz, 0x803, 3, wide, px, 24);
        expect_fail_images(p, BN_EFORMAT, "images of 1 x 10001 pixels");
        /* Within every limit, but 10^16 bytes: the header is not believed. */
        const uint32_t max_all[3] = {100000000, 10000, 10000};
        p = idx_file("max-all", gz, 0x803, 3, max_all, px, 24);
        expect_fail_images(p, BN_EFORMAT, "(10000000000000000 data bytes)");
    }
}

static void test_lying_sizes(void **state)
{
    (void)state;
    unsigned char px[40];
    for (int i = 0; i < 40; i++)
        px[i] = (unsigned char)i;
    const uint32_t d3[3] = {3, 2, 4};
    /* Raw: the file size is known up front. */
    const char *p = idx_file("short-raw", false, 0x803, 3, d3, px, 20);
    expect_fail_images(p, BN_EFORMAT, "truncated: header declares 3 images of 2 x 4 (24 data bytes), the file has 20");
    p = idx_file("long-raw", false, 0x803, 3, d3, px, 30);
    expect_fail_images(p, BN_EFORMAT,
                       "header declares 3 images of 2 x 4 (24 data bytes), the file has 30 data bytes (6 too many)");
    const uint32_t d1[1] = {10};
    p = idx_file("short-labels", false, 0x801, 1, d1, px, 7);
    expect_fail_labels(p, BN_EFORMAT, "truncated: header declares 10 labels (10 data bytes), the file has 7");

    /* Gzip: found while decompressing. */
    p = idx_file("short.gz", true, 0x803, 3, d3, px, 20);
    expect_fail_images(p, BN_EFORMAT, "truncated: header declares 3 images of 2 x 4 (24 data bytes), the file has 20");
    p = idx_file("long.gz", true, 0x803, 3, d3, px, 30);
    expect_fail_images(p, BN_EFORMAT, "but the file has more data after them");
    p = idx_file("short-labels.gz", true, 0x801, 1, d1, px, 7);
    expect_fail_labels(p, BN_EFORMAT, "truncated: header declares 10 labels (10 data bytes), the file has 7");

    /* A small gzip file cannot hold what a large header promises. */
    const uint32_t big[3] = {60000, 28, 28};
    p = idx_file("bomb.gz", true, 0x803, 3, big, px, 24);
    expect_fail_images(p, BN_EFORMAT, "more than a ");
    expect_fail_images(p, BN_EFORMAT, "gzip file can hold (deflate expands at most 1032:1)");

    /* A header that a 1 MB gzip file could back (1.0 GB) but whose data is
     * 1 MB: the tensor is never allocated, and the data buffer grows only
     * with the bytes that really arrive. */
    const size_t n = 1 << 20;
    unsigned char *rnd = malloc(n);
    for (size_t i = 0; i < n; i += 16) { /* incompressible, so the 1032:1 check passes */
        uint32_t w[4];
        bn_philox(i, 0, 12345, w);
        memcpy(rnd + i, w, 16);
    }
    const uint32_t claim[3] = {1000000, 30, 33};
    p = idx_file("liar.gz", true, 0x803, 3, claim, rnd, n);
    free(rnd);
    bn_mem_reset_peak();
    int64_t before = bn_mem_in_use();
    expect_fail_images(
        p, BN_EFORMAT,
        "truncated: header declares 1000000 images of 30 x 33 (990000000 data bytes), the file has 1048576");
    assert_true(bn_mem_peak() == before);
}

/* Damage inside the compressed stream: the gzip CRC, the deflate data, and
 * a stream cut short (at every length). */
static void test_gzip_damage(void **state)
{
    (void)state;
    unsigned char px[300];
    for (int i = 0; i < 300; i++)
        px[i] = (unsigned char)(i * 7);
    const uint32_t d3[3] = {3, 10, 10};
    const char *p = idx_file("good.gz", true, 0x803, 3, d3, px, 300);
    size_t len;
    unsigned char *good = read_file(p, &len);
    unsigned char *bad = malloc(len);

    memcpy(bad, good, len);
    bad[len - 6] ^= 0x55; /* inside the CRC-32 of the trailer */
    p = tu_tmp_path("crc.gz");
    tu_write_file(p, bad, len);
    expect_fail_images(p, BN_EFORMAT, "corrupt gzip data: incorrect data check");

    memcpy(bad, good, len);
    bad[len - 2] ^= 0x01; /* the length of the trailer */
    tu_write_file(p, bad, len);
    expect_fail_images(p, BN_EFORMAT, "corrupt gzip data: incorrect length check");

    memcpy(bad, good, len);
    bad[10] = 0xff; /* first byte of the deflate data: an invalid block type */
    tu_write_file(p, bad, len);
    expect_fail_images(p, BN_EFORMAT, "corrupt gzip data");

    /* Cut anywhere: inside the gzip header, the deflate data, the trailer. */
    p = tu_tmp_path("cut.gz");
    for (size_t cut = 0; cut < len; cut++) {
        tu_write_file(p, good, cut);
        bn_clear_error();
        bn_tensor *t = bn_idx_load_images(p);
        if (t) fail_msg("gzip cut to %zu of %zu bytes, still loaded", cut, len);
        if (bn_last_status() != BN_EFORMAT)
            fail_msg("cut to %zu: status %s (%s)", cut, bn_status_name(bn_last_status()), bn_last_error());
    }
    tu_write_file(p, good, len - 4); /* all data present, only the length field of the trailer missing */
    expect_fail_images(p, BN_EFORMAT, "truncated: the gzip stream is cut short after all 3 images");
    free(good);
    free(bad);
}

/* Every truncation of a raw file fails cleanly, and random damage to raw and
 * gzip files never crashes (under ASan this is the check that matters). */
static void test_truncations_and_fuzz(void **state)
{
    (void)state;
    unsigned char px[48], good[128], bad[128];
    for (int i = 0; i < 48; i++)
        px[i] = (unsigned char)(i * 5);
    const uint32_t d3[3] = {2, 4, 6};
    size_t n = build_idx(good, 0x803, 3, d3, px, 48);
    const char *p = tu_tmp_path("cut");
    for (size_t len = 0; len < n; len++) {
        tu_write_file(p, good, len);
        bn_clear_error();
        bn_tensor *t = bn_idx_load_images(p);
        if (t) fail_msg("truncated to %zu of %zu bytes, still loaded", len, n);
        assert_int_equal(bn_last_status(), BN_EFORMAT);
    }
    bn_rng g;
    bn_rng_init(&g, 7);
    const char *pz = tu_tmp_path("fuzz.gz");
    for (int trial = 0; trial < 1500; trial++) {
        memcpy(bad, good, n);
        uint32_t w[4];
        bn_philox(g.offset++, 0, g.seed, w);
        int hits = 1 + (int)(w[0] % 3);
        for (int h = 0; h < hits; h++)
            bad[w[1 + h] % 16] = (unsigned char)(w[1 + h] >> 16); /* the header */
        bool gz = trial % 2;
        if (gz)
            write_gz(pz, bad, n);
        else
            tu_write_file(p, bad, n);
        bn_clear_error();
        bn_tensor *t = bn_idx_load_images(gz ? pz : p);
        if (t)
            bn_tensor_release(t);
        else
            assert_true(bn_last_status() == BN_EFORMAT || bn_last_status() == BN_EIO);
    }
    /* Damage to the compressed bytes themselves. */
    write_gz(pz, good, n);
    size_t zlen;
    unsigned char *z = read_file(pz, &zlen);
    unsigned char *zb = malloc(zlen);
    for (int trial = 0; trial < 1500; trial++) {
        memcpy(zb, z, zlen);
        uint32_t w[4];
        bn_philox(g.offset++, 0, g.seed, w);
        zb[w[1] % zlen] ^= (unsigned char)(1 + w[2] % 255);
        tu_write_file(pz, zb, zlen);
        bn_clear_error();
        bn_tensor *t = bn_idx_load_images(pz);
        if (t)
            bn_tensor_release(t);
        else
            assert_true(bn_last_status() == BN_EFORMAT || bn_last_status() == BN_EIO);
    }
    free(z);
    free(zb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fashion_mnist_train), cmocka_unit_test(test_fashion_mnist_t10k),
        cmocka_unit_test(test_synthetic_raw),       cmocka_unit_test(test_synthetic_gz),
        cmocka_unit_test(test_large_synthetic_gz),  cmocka_unit_test(test_missing_and_arguments),
        cmocka_unit_test(test_bad_headers),         cmocka_unit_test(test_lying_sizes),
        cmocka_unit_test(test_gzip_damage),         cmocka_unit_test(test_truncations_and_fuzz),
    };
    return cmocka_run_group_tests_name("idx", tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
