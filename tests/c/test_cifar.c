/* CIFAR binary reader, on tiny synthetic files: layout (label bytes, CHW
 * pixels), CIFAR-10 and CIFAR-100 labels, several files as one set, and each
 * kind of bad file (sizes, label ranges, the wrong label_bytes). */
#include "testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/cifar.h"

#define REC10 (1 + BN_CIFAR_PIXELS)
#define REC100 (2 + BN_CIFAR_PIXELS)

/* The pixel byte of record r (of file `seed`), channel c, row y, column x:
 * a function of all four, so any layout mistake shows. */
static unsigned char pixel(int seed, int r, int c, int y, int x)
{
    return (unsigned char)(seed * 101 + r * 37 + c * 71 + y * 7 + x * 3 + (x * y) % 5);
}

/* Builds `n` records with the given label bytes (coarse, fine for CIFAR-100). */
static unsigned char *build(int seed, int n, int label_bytes, const unsigned char *labels, size_t *len)
{
    const int rec = label_bytes + BN_CIFAR_PIXELS;
    unsigned char *b = malloc((size_t)n * rec + 1);
    for (int r = 0; r < n; r++) {
        unsigned char *p = b + (size_t)r * rec;
        memcpy(p, labels + r * label_bytes, (size_t)label_bytes);
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 32; y++)
                for (int x = 0; x < 32; x++)
                    p[label_bytes + c * 1024 + y * 32 + x] = pixel(seed, r, c, y, x);
    }
    *len = (size_t)n * rec;
    return b;
}

static const char *cifar_file(const char *name, int seed, int n, int label_bytes, const unsigned char *labels)
{
    size_t len;
    unsigned char *b = build(seed, n, label_bytes, labels, &len);
    const char *p = tu_tmp_path(name);
    tu_write_file(p, b, len);
    free(b);
    return p;
}

static void check_pixels(const bn_tensor *x, int64_t at, int seed, int n)
{
    for (int r = 0; r < n; r++)
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < 32; y++)
                for (int xx = 0; xx < 32; xx++) {
                    float got = bn_tensor_get(x, (const int64_t[]){at + r, c, y, xx});
                    float want = (float)pixel(seed, r, c, y, xx) / 255.0f;
                    if (got != want) fail_msg("record %d [%d,%d,%d]: %.9g, expected %.9g", r, c, y, xx, got, want);
                }
}

/* Loading fails with `st`, a message containing `needle` (and the file, when
 * `file` is given), NULL outputs and no memory left behind. */
static void expect_fail(int n_files, const char *const *paths, int label_bytes, bn_status st, const char *needle,
                        const char *file)
{
    int64_t before = bn_mem_in_use();
    bn_tensor *x = (bn_tensor *)1;
    int64_t *y = (int64_t *)1, *coarse = (int64_t *)1, n = -1;
    bn_clear_error();
    bn_status got = bn_cifar_load_files(n_files, paths, label_bytes, &x, &y, &coarse, &n);
    if (got == BN_OK) fail_msg("expected failure (%s), got %lld records", needle, (long long)n);
    assert_null(x);
    assert_null(y);
    assert_null(coarse);
    assert_int_equal(n, 0);
    if (got != st || bn_last_status() != st)
        fail_msg("status %s, expected %s (%s)", bn_status_name(got), bn_status_name(st), bn_last_error());
    if (!strstr(bn_last_error(), needle)) fail_msg("message '%s' lacks '%s'", bn_last_error(), needle);
    if (file && !strstr(bn_last_error(), file)) fail_msg("message '%s' does not name %s", bn_last_error(), file);
    assert_int_equal(bn_mem_in_use(), before);
}

static void expect_fail1(const char *path, int label_bytes, bn_status st, const char *needle)
{
    expect_fail(1, &path, label_bytes, st, needle, path);
}

/* ---- good files --------------------------------------------------------- */

static void test_cifar10(void **state)
{
    (void)state;
    const unsigned char labels[10] = {3, 0, 9, 1, 8, 2, 7, 3, 6, 4};
    const char *p = cifar_file("data_batch_1.bin", 1, 10, 1, labels);
    bn_tensor *x = NULL;
    int64_t *y = NULL, n = 0;
    TU_ST(bn_cifar_load(p, 1, &x, &y, &n));
    assert_int_equal(n, 10);
    assert_int_equal(x->ndim, 4);
    assert_int_equal(x->shape[0], 10);
    assert_int_equal(x->shape[1], 3);
    assert_int_equal(x->shape[2], 32);
    assert_int_equal(x->shape[3], 32);
    assert_true(bn_tensor_is_contiguous(x));
    for (int i = 0; i < 10; i++)
        assert_int_equal(y[i], labels[i]);
    check_pixels(x, 0, 1, 10);
    bn_tensor_release(x);
    free(y);
}

static void test_cifar100(void **state)
{
    (void)state;
    const unsigned char labels[6] = {19, 99, 0, 0, 11, 42}; /* coarse, fine */
    const char *p = cifar_file("train.bin", 2, 3, 2, labels);
    bn_tensor *x = NULL;
    int64_t *y = NULL, *coarse = NULL, n = 0;
    TU_ST(bn_cifar_load(p, 2, &x, &y, &n));
    assert_int_equal(n, 3);
    assert_int_equal(y[0], 99);
    assert_int_equal(y[1], 0);
    assert_int_equal(y[2], 42);
    check_pixels(x, 0, 2, 3);
    bn_tensor_release(x);
    free(y);

    TU_ST(bn_cifar_load_files(1, &p, 2, &x, &y, &coarse, &n));
    assert_int_equal(coarse[0], 19);
    assert_int_equal(coarse[1], 0);
    assert_int_equal(coarse[2], 11);
    assert_int_equal(y[2], 42);
    bn_tensor_release(x);
    free(y);
    free(coarse);

    /* CIFAR-10 has no coarse labels: the pointer comes back NULL. */
    const unsigned char l10[1] = {5};
    const char *q = cifar_file("test_batch.bin", 3, 1, 1, l10);
    coarse = (int64_t *)1;
    TU_ST(bn_cifar_load_files(1, &q, 1, &x, &y, &coarse, &n));
    assert_null(coarse);
    bn_tensor_release(x);
    free(y);
}

static void test_several_files(void **state)
{
    (void)state;
    const unsigned char la[2] = {1, 2}, lb[3] = {7, 8, 9};
    const char *paths[2];
    paths[0] = cifar_file("data_batch_1.bin", 4, 2, 1, la);
    paths[1] = cifar_file("data_batch_2.bin", 5, 3, 1, lb);
    bn_tensor *x = NULL;
    int64_t *y = NULL, n = 0;
    TU_ST(bn_cifar_load_files(2, paths, 1, &x, &y, NULL, &n));
    assert_int_equal(n, 5);
    assert_int_equal(x->shape[0], 5);
    const int64_t want[5] = {1, 2, 7, 8, 9};
    for (int i = 0; i < 5; i++)
        assert_int_equal(y[i], want[i]);
    check_pixels(x, 0, 4, 2);
    check_pixels(x, 2, 5, 3);
    bn_tensor_release(x);
    free(y);

    /* One bad file among good ones fails the whole load, naming that file. */
    const char *bad = tu_tmp_path("data_batch_3.bin");
    tu_write_file(bad, "x", 1);
    const char *three[3] = {paths[0], bad, paths[1]};
    expect_fail(3, three, 1, BN_EFORMAT, "file size 1 is not a multiple", bad);
}

/* ---- bad files and arguments -------------------------------------------- */

static void test_bad_arguments(void **state)
{
    (void)state;
    const unsigned char l[1] = {1};
    const char *p = cifar_file("ok.bin", 6, 1, 1, l);
    expect_fail(1, &p, 0, BN_EARG, "label_bytes expected 1 (CIFAR-10) or 2 (CIFAR-100), got 0", NULL);
    expect_fail(1, &p, 3, BN_EARG, "got 3", NULL);
    expect_fail(0, &p, 1, BN_EARG, "expected at least one file, got 0", NULL);
    const char *nulls[2] = {p, NULL};
    expect_fail(2, nulls, 1, BN_EARG, "path #2 is NULL", NULL);
    bn_tensor *x;
    int64_t *y, n;
    bn_clear_error();
    assert_int_equal(bn_cifar_load(NULL, 1, &x, &y, &n), BN_EARG);
    assert_null(x);
    assert_int_equal(bn_cifar_load(p, 1, NULL, &y, &n), BN_EARG);
    assert_int_equal(bn_cifar_load(p, 1, &x, NULL, &n), BN_EARG);
    assert_int_equal(bn_cifar_load(p, 1, &x, &y, NULL), BN_EARG);
}

static void test_bad_files(void **state)
{
    (void)state;
    expect_fail1(tu_tmp_path("data_batch_1.bin.missing"), 1, BN_EIO,
                 "No such file or directory (get the binary version from");
    expect_fail1(tu_tmp_path("missing"), 1, BN_EIO, "or pass --data DIR / set BNLAB_DATA");
    expect_fail1(tu_tmpdir, 1, BN_EIO, "not a regular file");

    const char *p = tu_tmp_path("empty.bin");
    tu_write_file(p, "", 0);
    expect_fail1(p, 1, BN_EFORMAT, "empty file, expected CIFAR-10 records of 3073 bytes");
    expect_fail1(p, 2, BN_EFORMAT, "empty file, expected CIFAR-100 records of 3074 bytes");

    /* Two records and a stray byte. */
    const unsigned char l2[2] = {1, 2};
    size_t len;
    unsigned char *b = build(7, 2, 1, l2, &len);
    b[len] = 0;
    p = tu_tmp_path("odd.bin");
    tu_write_file(p, b, len + 1);
    free(b);
    expect_fail1(p, 1, BN_EFORMAT,
                 "file size 6147 is not a multiple of the 3073-byte CIFAR-10 record (1 label byte + 3072 pixels): "
                 "2 records and 1 byte left over");
    /* A truncated last record. */
    b = build(7, 2, 1, l2, &len);
    tu_write_file(p, b, len - 100);
    free(b);
    expect_fail1(p, 1, BN_EFORMAT, "1 record and 2973 bytes left over");

    /* The other data set's label_bytes: the size says which it is. */
    const unsigned char l100[4] = {1, 10, 2, 20};
    p = cifar_file("cifar100.bin", 8, 2, 2, l100);
    expect_fail1(p, 1, BN_EFORMAT, "file size 6148 is not a multiple of the 3073-byte CIFAR-10 record");
    expect_fail1(p, 1, BN_EFORMAT, "; the size fits 2 CIFAR-100 records (label_bytes 2)");
    const unsigned char l10[3] = {1, 2, 3};
    p = cifar_file("cifar10.bin", 9, 3, 1, l10);
    expect_fail1(p, 2, BN_EFORMAT, "(2 label bytes + 3072 pixels)");
    expect_fail1(p, 2, BN_EFORMAT, "; the size fits 3 CIFAR-10 records (label_bytes 1)");
}

static void test_bad_labels(void **state)
{
    (void)state;
    const unsigned char l10[3] = {9, 10, 0};
    const char *p = cifar_file("label10.bin", 10, 3, 1, l10);
    expect_fail1(p, 1, BN_EFORMAT, "record 1: label 10 out of range 0..9 (CIFAR-10)");
    const unsigned char l255[1] = {255};
    p = cifar_file("label255.bin", 10, 1, 1, l255);
    expect_fail1(p, 1, BN_EFORMAT, "record 0: label 255 out of range 0..9");

    const unsigned char fine[4] = {0, 99, 1, 100};
    p = cifar_file("fine.bin", 11, 2, 2, fine);
    expect_fail1(p, 2, BN_EFORMAT, "record 1: fine label 100 out of range 0..99 (CIFAR-100)");
    const unsigned char coarse[4] = {19, 5, 20, 5};
    p = cifar_file("coarse.bin", 12, 2, 2, coarse);
    expect_fail1(p, 2, BN_EFORMAT, "record 1: coarse label 20 out of range 0..19 (CIFAR-100)");

    /* Past the first read batch of records, the record number is still right. */
    unsigned char many[100];
    memset(many, 4, sizeof many);
    many[77] = 12;
    p = cifar_file("many.bin", 13, 100, 1, many);
    expect_fail1(p, 1, BN_EFORMAT, "record 77: label 12");
}

/* The memory limit turns the big allocation into a clean BN_ENOMEM. */
static void test_out_of_memory(void **state)
{
    (void)state;
    const unsigned char l[4] = {1, 2, 3, 4};
    const char *p = cifar_file("oom.bin", 14, 4, 1, l);
    bn_mem_set_limit(bn_mem_in_use() + 1000);
    expect_fail1(p, 1, BN_ENOMEM, "out of memory");
    bn_mem_set_limit(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cifar10),       cmocka_unit_test(test_cifar100),  cmocka_unit_test(test_several_files),
        cmocka_unit_test(test_bad_arguments), cmocka_unit_test(test_bad_files), cmocka_unit_test(test_bad_labels),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests_name("cifar", tests, tu_tmpdir_setup, tu_tmpdir_teardown);
}
