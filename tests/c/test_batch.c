/* Batch gathering (src/data/batch.c): plain gathers and pad + crop + flip
 * against a naive reference that builds the padded image explicitly; the
 * draws' distribution; results independent of the thread count and of how
 * an epoch is cut into batches; per-channel stats and normalization against
 * double-precision references; every error leaves `out` untouched. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "data/batch.h"
#include "testutil.h"

static int64_t mem_before;

static int setup(void **state)
{
    (void)state;
    mem_before = bn_mem_in_use();
    bn_clear_error();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    bn_mem_set_limit(0);
    if (bn_mem_in_use() != mem_before) {
        print_error("leak: %lld bytes still alive after the test\n", (long long)(bn_mem_in_use() - mem_before));
        return -1;
    }
    return 0;
}

/* Random indices in [0, N), repeats allowed. */
static int64_t *random_indices(uint64_t seed, int64_t n, int64_t N)
{
    int64_t *idx = malloc((size_t)(n > 0 ? n : 1) * sizeof *idx);
    for (int64_t j = 0; j < n; j++) {
        uint32_t w[4];
        bn_philox((uint64_t)j, 7, seed, w);
        idx[j] = (int64_t)(w[0] % (uint32_t)N);
    }
    return idx;
}

/* The reference: materialize the zero-padded image [C x (H+2p) x (W+2p)]
 * filled with fill[c], crop the H x W window at (p + dy, p + dx), then
 * mirror the crop. */
static void naive_augment(float *dst, const float *img, int64_t C, int64_t H, int64_t W, int p, const float *fill,
                          bn_augment_draw d)
{
    const int64_t PH = H + 2 * p, PW = W + 2 * p;
    float *pad = malloc((size_t)(C * PH * PW) * sizeof *pad);
    for (int64_t c = 0; c < C; c++)
        for (int64_t y = 0; y < PH; y++)
            for (int64_t x = 0; x < PW; x++) {
                int64_t sy = y - p, sx = x - p;
                bool inside = sy >= 0 && sy < H && sx >= 0 && sx < W;
                pad[(c * PH + y) * PW + x] = inside ? img[(c * H + sy) * W + sx] : (fill ? fill[c] : 0.0f);
            }
    for (int64_t c = 0; c < C; c++)
        for (int64_t y = 0; y < H; y++)
            for (int64_t x = 0; x < W; x++) {
                int64_t cx = d.flip ? W - 1 - x : x;
                dst[(c * H + y) * W + x] = pad[(c * PH + (y + p + d.dy)) * PW + (cx + p + d.dx)];
            }
    free(pad);
}

static void test_plain_gather(void **state)
{
    (void)state;
    /* 1-D (labels), 2-D (vectors), 4-D (images), repeats and reversed order. */
    bn_tensor *lab = bn_tensor_arange(0, 50, 1);
    bn_tensor *vec = TU_RANDN(1, 50, 7);
    bn_tensor *img = TU_RANDN(2, 50, 3, 5, 4);
    int64_t idx[] = {49, 0, 0, 17, 3, 49, 25};
    const int64_t n = 7;
    bn_tensor *srcs[] = {lab, vec, img};
    for (int k = 0; k < 3; k++) {
        bn_tensor *s = srcs[k];
        int64_t shape[BN_MAX_DIMS];
        memcpy(shape, s->shape, sizeof shape);
        shape[0] = n;
        bn_tensor *out = bn_tensor_empty(s->ndim, shape);
        TU_ST(bn_gather_batch(out, s, idx, n, NULL, NULL));
        int64_t row = bn_tensor_numel(s) / 50;
        for (int64_t j = 0; j < n; j++)
            assert_memory_equal(bn_tensor_data(out) + j * row, bn_tensor_data(s) + idx[j] * row,
                                (size_t)row * sizeof(float));
        /* An inactive augmentation (pad 0, no flip) is a plain gather, rng unused. */
        bn_tensor *out2 = bn_tensor_zeros(s->ndim, shape);
        bn_augment none = {0, false, NULL};
        TU_ST(bn_gather_batch(out2, s, idx, n, &none, NULL));
        assert_memory_equal(bn_tensor_data(out), bn_tensor_data(out2), (size_t)(n * row) * sizeof(float));
        bn_tensor_release(out);
        bn_tensor_release(out2);
    }
    /* n = 0 is fine, with NULL indices. */
    bn_tensor *none = bn_tensor_empty(4, TU_SHAPE(0, 3, 5, 4));
    TU_ST(bn_gather_batch(none, img, NULL, 0, NULL, NULL));
    bn_tensor_release(none);
    bn_tensor_release(lab);
    bn_tensor_release(vec);
    bn_tensor_release(img);
}

/* Checks bn_gather_batch with aug against the naive reference for a batch
 * of n random images; also that rng->offset advanced by n. */
static void check_augment(int64_t N, int64_t C, int64_t H, int64_t W, int64_t n, const bn_augment *aug, uint64_t seed)
{
    bn_tensor *img = TU_RANDN(seed, N, C, H, W);
    int64_t *idx = random_indices(seed, n, N);
    bn_tensor *out = bn_tensor_empty(4, TU_SHAPE(n, C, H, W));
    bn_rng rng = {seed * 31 + 5, 1000};
    const bn_rng start = rng;
    TU_ST(bn_gather_batch(out, img, idx, n, aug, &rng));
    assert_int_equal(rng.offset, start.offset + (uint64_t)n);
    assert_int_equal(rng.seed, start.seed);
    float *want = malloc((size_t)(C * H * W) * sizeof *want);
    for (int64_t j = 0; j < n; j++) {
        bn_augment_draw d = bn_augment_draw_at(aug, &start, j);
        naive_augment(want, bn_tensor_data(img) + idx[j] * C * H * W, C, H, W, aug->pad, aug->fill, d);
        if (memcmp(bn_tensor_data(out) + j * C * H * W, want, (size_t)(C * H * W) * sizeof *want) != 0)
            fail_msg("image %lld (index %lld, dy %d, dx %d, flip %d, pad %d, %lldx%lldx%lld) differs from the "
                     "reference",
                     (long long)j, (long long)idx[j], d.dy, d.dx, d.flip, aug->pad, (long long)C, (long long)H,
                     (long long)W);
    }
    free(want);
    free(idx);
    bn_tensor_release(out);
    bn_tensor_release(img);
}

static void test_augment_matches_reference(void **state)
{
    (void)state;
    const float fill3[] = {-1.5f, 0.25f, 7.0f};
    const bn_augment standard = {4, true, NULL};
    check_augment(20, 1, 28, 28, 64, &standard, 1);              /* Fashion-MNIST shape */
    check_augment(20, 3, 32, 32, 64, &standard, 2);              /* CIFAR shape */
    const bn_augment filled = {4, true, fill3};
    check_augment(10, 3, 8, 6, 64, &filled, 3);                  /* per-channel fill, non-square */
    const bn_augment crop_only = {2, false, NULL};
    check_augment(10, 2, 5, 7, 64, &crop_only, 4);
    const bn_augment flip_only = {0, true, NULL};
    check_augment(10, 2, 5, 7, 64, &flip_only, 5);
    /* Pads as large as and larger than the image: whole rows and columns of fill. */
    const bn_augment huge = {9, true, fill3};
    check_augment(6, 3, 4, 5, 200, &huge, 6);
    const bn_augment one = {1, true, NULL};
    check_augment(6, 1, 1, 1, 50, &one, 7);                       /* 1 x 1 images */
}

static void test_draw_distribution(void **state)
{
    (void)state;
    const int pad = 4, span = 2 * pad + 1;
    const bn_augment aug = {pad, true, NULL};
    const bn_rng rng = {42, 0};
    const int64_t n = 90000;
    int64_t cy[9] = {0}, cx[9] = {0}, flips = 0;
    for (int64_t j = 0; j < n; j++) {
        bn_augment_draw d = bn_augment_draw_at(&aug, &rng, j);
        assert_true(d.dy >= -pad && d.dy <= pad && d.dx >= -pad && d.dx <= pad);
        cy[d.dy + pad]++;
        cx[d.dx + pad]++;
        flips += d.flip;
    }
    /* Each offset 1/9 (10000 expected, sd ~94), flips 1/2 (45000, sd 150): 6 sd slack. */
    for (int k = 0; k < span; k++) {
        if (llabs(cy[k] - n / span) > 600 || llabs(cx[k] - n / span) > 600)
            fail_msg("offset %d drawn %lld (dy) / %lld (dx) times, expected about %lld", k - pad, (long long)cy[k],
                     (long long)cx[k], (long long)(n / span));
    }
    if (llabs(flips - n / 2) > 900) fail_msg("%lld flips in %lld draws", (long long)flips, (long long)n);
    /* Flip off: never flips; pad 0: never moves. */
    const bn_augment crop_only = {pad, false, NULL}, flip_only = {0, true, NULL};
    int64_t moved = 0;
    for (int64_t j = 0; j < 1000; j++) {
        assert_false(bn_augment_draw_at(&crop_only, &rng, j).flip);
        bn_augment_draw d = bn_augment_draw_at(&flip_only, &rng, j);
        assert_int_equal(d.dy, 0);
        assert_int_equal(d.dx, 0);
        moved += bn_augment_draw_at(&crop_only, &rng, j).dx != 0;
    }
    assert_true(moved > 800);
    /* Another seed, another stream. */
    const bn_rng other = {43, 0};
    int same = 0;
    for (int64_t j = 0; j < 100; j++) {
        bn_augment_draw a = bn_augment_draw_at(&aug, &rng, j), b = bn_augment_draw_at(&aug, &other, j);
        same += a.dy == b.dy && a.dx == b.dx && a.flip == b.flip;
    }
    assert_true(same < 10);
}

static void test_any_thread_count(void **state)
{
    (void)state;
    /* Big enough for the parallel loop (over 2^20 output floats). */
    const int64_t N = 300, n = 400;
    bn_tensor *img = TU_RANDN(8, N, 3, 32, 32);
    int64_t *idx = random_indices(8, n, N);
    const bn_augment aug = {4, true, NULL};
    bn_tensor *a = bn_tensor_empty(4, TU_SHAPE(n, 3, 32, 32)), *b = bn_tensor_empty(4, TU_SHAPE(n, 3, 32, 32));
    int was = bn_get_num_threads();
    bn_set_num_threads(1);
    bn_rng r1 = {77, 0};
    TU_ST(bn_gather_batch(a, img, idx, n, &aug, &r1));
    bn_set_num_threads(4);
    bn_rng r2 = {77, 0};
    TU_ST(bn_gather_batch(b, img, idx, n, &aug, &r2));
    bn_set_num_threads(was);
    assert_memory_equal(bn_tensor_data(a), bn_tensor_data(b), (size_t)bn_tensor_numel(a) * sizeof(float));
    free(idx);
    bn_tensor_release(img);
    bn_tensor_release(a);
    bn_tensor_release(b);
}

static void test_batch_size_independent(void **state)
{
    (void)state;
    /* An epoch gathered as one batch or as batches of 7 (the generator's
     * offset carrying over) gives the same images. */
    const int64_t N = 40, n = 40;
    bn_tensor *img = TU_RANDN(9, N, 2, 6, 6);
    int64_t *idx = random_indices(9, n, N);
    const bn_augment aug = {3, true, NULL};
    bn_tensor *whole = bn_tensor_empty(4, TU_SHAPE(n, 2, 6, 6));
    bn_rng r = {5, 0};
    TU_ST(bn_gather_batch(whole, img, idx, n, &aug, &r));
    bn_rng r2 = {5, 0};
    for (int64_t s = 0; s < n; s += 7) {
        int64_t len = n - s < 7 ? n - s : 7;
        bn_tensor *part = bn_tensor_empty(4, TU_SHAPE(len, 2, 6, 6));
        TU_ST(bn_gather_batch(part, img, idx + s, len, &aug, &r2));
        assert_memory_equal(bn_tensor_data(part), bn_tensor_data(whole) + s * 72, (size_t)(len * 72) * sizeof(float));
        bn_tensor_release(part);
    }
    assert_int_equal(r2.offset, r.offset);
    free(idx);
    bn_tensor_release(img);
    bn_tensor_release(whole);
}

static void test_gather_errors(void **state)
{
    (void)state;
    bn_tensor *img = TU_RANDN(10, 5, 2, 4, 4);
    bn_tensor *out = bn_tensor_full(4, TU_SHAPE(3, 2, 4, 4), 9.0f);
    int64_t idx[] = {0, 4, 1}, bad[] = {0, 5, 1}, neg[] = {-1, 0, 0};
    const bn_augment aug = {2, true, NULL}, negpad = {-1, false, NULL}, bigpad = {BN_AUG_MAX_PAD + 1, false, NULL};
    bn_rng rng = {1, 0};
#define FAILS(expr, st, needle)                                                                   \
    do {                                                                                          \
        bn_clear_error();                                                                         \
        assert_int_equal((expr), (st));                                                           \
        if (!strstr(bn_last_error(), (needle)))                                                   \
            fail_msg("%s: message '%s' lacks '%s'", #expr, bn_last_error(), (needle));            \
    } while (0)
    FAILS(bn_gather_batch(out, img, bad, 3, &aug, &rng), BN_EARG,
          "gather_batch: indices[1] = 5 is out of range [0, 5)");
    FAILS(bn_gather_batch(out, img, neg, 3, NULL, NULL), BN_EARG, "indices[0] = -1 is out of range");
    FAILS(bn_gather_batch(out, img, idx, 2, NULL, NULL), BN_ESHAPE,
          "gather_batch: out expected [2 x 2 x 4 x 4], got [3 x 2 x 4 x 4]");
    FAILS(bn_gather_batch(out, img, idx, -1, NULL, NULL), BN_EARG, "n expected >= 0, got -1");
    FAILS(bn_gather_batch(out, img, NULL, 3, NULL, NULL), BN_EARG, "indices expected");
    FAILS(bn_gather_batch(NULL, img, idx, 3, NULL, NULL), BN_EARG, "out and images expected");
    FAILS(bn_gather_batch(out, img, idx, 3, &aug, NULL), BN_EARG, "augmentation needs a generator");
    FAILS(bn_gather_batch(out, img, idx, 3, &negpad, &rng), BN_EARG, "pad expected in [0, 4096], got -1");
    FAILS(bn_gather_batch(out, img, idx, 3, &bigpad, &rng), BN_EARG, "got 4097");
    /* Augmenting needs NCHW. */
    bn_tensor *flat = TU_RANDN(11, 5, 32), *flat_out = bn_tensor_empty(2, TU_SHAPE(3, 32));
    FAILS(bn_gather_batch(flat_out, flat, idx, 3, &aug, &rng), BN_ESHAPE,
          "augmentation expects images [N x C x H x W], got [5 x 32]");
    /* Strided inputs and outputs are refused, not misread. */
    bn_tensor *t = bn_transpose(img, 2, 3);
    FAILS(bn_gather_batch(out, t, idx, 3, NULL, NULL), BN_EARG, "images expected contiguous");
    bn_tensor *wide = bn_tensor_empty(4, TU_SHAPE(3, 2, 4, 8));
    bn_tensor *strided_out = bn_narrow(wide, 3, 0, 4);
    FAILS(bn_gather_batch(strided_out, img, idx, 3, NULL, NULL), BN_EARG, "out expected contiguous");
    /* Nothing was written, and the generator did not move. */
    for (int64_t i = 0; i < bn_tensor_numel(out); i++) assert_true(bn_tensor_data(out)[i] == 9.0f);
    assert_int_equal(rng.offset, 0);
    bn_tensor *release[] = {img, out, flat, flat_out, t, wide, strided_out};
    for (int i = 0; i < 7; i++) bn_tensor_release(release[i]);
}

static void test_channel_stats(void **state)
{
    (void)state;
    /* Values far from zero mean test the two-pass variance; 200 images
     * cross several fixed chunks, 3x17x19 per image is big enough to run
     * in parallel. */
    bn_tensor *x = tu_uniform(12, 1000.0f, 1001.0f, 4, TU_SHAPE(200, 3, 17, 19));
    double mean[3], std[3], mean1[3], std1[3];
    int was = bn_get_num_threads();
    bn_set_num_threads(1);
    TU_ST(bn_channel_stats(x, mean1, std1));
    bn_set_num_threads(4);
    TU_ST(bn_channel_stats(x, mean, std));
    bn_set_num_threads(was);
    assert_memory_equal(mean, mean1, sizeof mean);
    assert_memory_equal(std, std1, sizeof std);
    const float *p = bn_tensor_data(x);
    for (int c = 0; c < 3; c++) {
        long double s = 0, ss = 0;
        for (int64_t i = 0; i < 200; i++)
            for (int64_t e = 0; e < 17 * 19; e++) s += p[(i * 3 + c) * 17 * 19 + e];
        long double m = s / (200 * 17 * 19);
        for (int64_t i = 0; i < 200; i++)
            for (int64_t e = 0; e < 17 * 19; e++) {
                long double d = p[(i * 3 + c) * 17 * 19 + e] - m;
                ss += d * d;
            }
        long double sd = sqrtl(ss / (200 * 17 * 19));
        assert_true(fabs(mean[c] - (double)m) < 1e-9);
        assert_true(fabs(std[c] - (double)sd) < 1e-9);
        assert_true(fabs(std[c] - 1 / sqrt(12.0)) < 0.01); /* U[0,1) has std 1/sqrt(12) */
    }
    /* Normalizing with them gives mean 0, std 1 per channel. */
    TU_ST(bn_channel_normalize(x, mean, std));
    double m2[3], s2[3];
    TU_ST(bn_channel_stats(x, m2, s2));
    for (int c = 0; c < 3; c++) {
        assert_true(fabs(m2[c]) < 1e-3);
        assert_true(fabs(s2[c] - 1) < 1e-3);
    }
    /* 2-D [N x C] works too; a strided input is read through a copy. */
    bn_tensor *v = tu_uniform(13, -1.0f, 1.0f, 2, TU_SHAPE(4, 300));
    bn_tensor *vt = bn_transpose(v, 0, 1); /* [300 x 4] */
    double mv[4], sv[4];
    TU_ST(bn_channel_stats(vt, mv, sv));
    for (int c = 0; c < 4; c++) {
        double s = 0;
        for (int i = 0; i < 300; i++) s += bn_tensor_data(v)[c * 300 + i];
        assert_true(fabs(mv[c] - s / 300) < 1e-9);
    }
    bn_tensor_release(vt);
    bn_tensor_release(v);
    bn_tensor_release(x);
}

static void test_channel_errors(void **state)
{
    (void)state;
    bn_tensor *x = bn_tensor_ones(4, TU_SHAPE(2, 2, 3, 3));
    double mean[2] = {0, 0}, std[2] = {1, 0}, nanm[2] = {NAN, 0}, ones[2] = {1, 1};
    assert_int_equal(bn_channel_normalize(x, mean, std), BN_EARG);
    assert_non_null(
        strstr(bn_last_error(), "channel_normalize: std[2] expected finite and > 0, got 0 (a constant channel)"));
    assert_int_equal(bn_channel_normalize(x, nanm, ones), BN_EARG);
    assert_non_null(strstr(bn_last_error(), "mean[1] expected finite, got nan"));
    for (int64_t i = 0; i < 36; i++) assert_true(bn_tensor_data(x)[i] == 1.0f); /* untouched */
    bn_tensor *e = bn_tensor_empty(4, TU_SHAPE(0, 2, 3, 3)), *v = bn_tensor_ones(1, TU_SHAPE(5));
    assert_int_equal(bn_channel_stats(e, mean, std), BN_ESHAPE);
    assert_non_null(strstr(bn_last_error(), "at least one value per channel, got [0 x 2 x 3 x 3]"));
    assert_int_equal(bn_channel_stats(v, mean, std), BN_ESHAPE);
    assert_non_null(strstr(bn_last_error(), "images expected [N x C x ...] (at least 2-D), got [5]"));
    bn_tensor *t = bn_transpose(x, 2, 3);
    assert_int_equal(bn_channel_normalize(t, ones, ones), BN_EARG);
    assert_non_null(strstr(bn_last_error(), "images expected contiguous"));
    bn_tensor_release(t);
    bn_tensor_release(e);
    bn_tensor_release(v);
    bn_tensor_release(x);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_plain_gather),           T(test_augment_matches_reference), T(test_draw_distribution),
        T(test_any_thread_count),       T(test_batch_size_independent),    T(test_gather_errors),
        T(test_channel_stats),          T(test_channel_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
