/* Shared helpers for the cmocka tests: random inputs, closeness checks,
 * finite-difference gradient checks and the .npy fixtures. */
#ifndef BN_TESTUTIL_H
#define BN_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the above first */
#include <cmocka.h>

#include "autograd.h"
#include "ops.h"
#include "rng.h"
#include "tensor.h"

/* A tensor of N(0,1) (or U[lo,hi)) values from a private generator seeded by
 * `seed`, independent of the library's global generator. */
bn_tensor *tu_randn(uint64_t seed, int ndim, const int64_t *shape);
bn_tensor *tu_uniform(uint64_t seed, float lo, float hi, int ndim, const int64_t *shape);
#define TU_SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define TU_NDIM(...) ((int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))
#define TU_RANDN(seed, ...) tu_randn(seed, TU_NDIM(__VA_ARGS__), TU_SHAPE(__VA_ARGS__))

/* Fails the test (with `what`, the worst index and both values) unless
 * |got - want| <= atol + rtol * |want| everywhere. */
void tu_assert_close_array(const float *got, const float *want, int64_t n, double rtol, double atol,
                           const char *what);
/* Same for tensors (any layout); shapes must match. */
void tu_assert_close(const bn_tensor *got, const bn_tensor *want, double rtol, double atol, const char *what);

/* Asserts that `t` is non-NULL, else fails printing bn_last_error(). */
#define TU_OK(t)                                                                        \
    do {                                                                                \
        if (!(t)) fail_msg("unexpected failure: %s", bn_last_error());                  \
    } while (0)
#define TU_ST(expr)                                                                     \
    do {                                                                                \
        bn_status st_ = (expr);                                                         \
        if (st_ != BN_OK) fail_msg("%s failed: %s", #expr, bn_last_error());            \
    } while (0)
/* Asserts that an expression returning a pointer failed with status `st` and
 * that the message contains `needle`. */
#define TU_FAILS(expr, st, needle)                                                      \
    do {                                                                                \
        bn_clear_error();                                                               \
        void *p_ = (void *)(expr);                                                      \
        if (p_) fail_msg("%s: expected failure, got a result", #expr);                  \
        assert_int_equal(bn_last_status(), (st));                                       \
        if (!strstr(bn_last_error(), (needle)))                                         \
            fail_msg("%s: message '%s' lacks '%s'", #expr, bn_last_error(), (needle));  \
    } while (0)

/* ---- gradient checks ---------------------------------------------------- */
/* The function under test: builds an output from the inputs (must not keep
 * references to them). */
typedef bn_tensor *(*tu_fn)(bn_tensor **inputs, void *ctx);

typedef struct tu_gradcheck_opts {
    double eps;        /* perturbation (default 1e-3), scaled by max(1, |x|) */
    double rtol, atol; /* defaults 2e-2, 2e-3 */
    int max_checks;    /* elements checked per input (default 64; sampled) */
    double max_skip;   /* fraction of kink-skipped elements allowed (default 0.25) */
} tu_gradcheck_opts;

/* Compares autograd's gradient of L = sum(fn(inputs) * R) (R a fixed random
 * tensor) with central differences, perturbing inputs in float and
 * accumulating L in double. Elements whose left and right one-sided
 * differences disagree (a kink: relu at 0, max ties) are skipped. Inputs
 * must have requires_grad set for those to check. */
void tu_gradcheck(tu_fn fn, int n_inputs, bn_tensor **inputs, void *ctx, const tu_gradcheck_opts *opts,
                  const char *what);

/* ---- temporary files ---------------------------------------------------- */
/* A private directory for one test binary: pass tu_tmpdir_setup /
 * tu_tmpdir_teardown to cmocka_run_group_tests; teardown removes it and its
 * files. tu_tmp_path gives a path inside it (a ring of 4 buffers, so a test
 * can hold a few at once). */
extern char tu_tmpdir[256];
int tu_tmpdir_setup(void **state);
int tu_tmpdir_teardown(void **state);
const char *tu_tmp_path(const char *name);
/* Replaces `path` with `len` bytes (unlinked first: rewriting in place makes
 * ext4 flush on close, which made suites slow). Fails the test on error. */
void tu_write_file(const char *path, const void *buf, size_t len);

/* ---- fixtures ----------------------------------------------------------- */
/* Loads tests/fixtures/<name>.npy (float32/float64/int64 converted to
 * float32); fails the test if missing. */
bn_tensor *tu_fixture(const char *name);
/* Path of the fixture directory (BNLAB_FIXTURES or tests/fixtures). */
const char *tu_fixture_dir(void);

#endif
