#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>

#include "data/npy.h"

bn_tensor *tu_randn(uint64_t seed, int ndim, const int64_t *shape)
{
    bn_rng g;
    bn_rng_init(&g, seed);
    bn_tensor *t = bn_tensor_empty(ndim, shape);
    TU_OK(t);
    TU_ST(bn_rng_normal(&g, t, 0.0f, 1.0f));
    return t;
}

bn_tensor *tu_uniform(uint64_t seed, float lo, float hi, int ndim, const int64_t *shape)
{
    bn_rng g;
    bn_rng_init(&g, seed);
    bn_tensor *t = bn_tensor_empty(ndim, shape);
    TU_OK(t);
    TU_ST(bn_rng_uniform(&g, t, lo, hi));
    return t;
}

void tu_assert_close_array(const float *got, const float *want, int64_t n, double rtol, double atol,
                           const char *what)
{
    int64_t worst = -1;
    double worst_excess = 0;
    for (int64_t i = 0; i < n; i++) {
        double g = got[i], w = want[i];
        if (isnan(w) && isnan(g)) continue;
        if (isinf(w) && g == w) continue;
        double err = fabs(g - w), tol = atol + rtol * fabs(w);
        if (!(err <= tol) && (worst < 0 || err - tol > worst_excess)) {
            worst = i;
            worst_excess = err - tol;
        }
    }
    if (worst >= 0)
        fail_msg("%s: element %lld is %.9g, expected %.9g (rtol %g, atol %g)", what, (long long)worst,
                 got[worst], want[worst], rtol, atol);
}

void tu_assert_close(const bn_tensor *got, const bn_tensor *want, double rtol, double atol, const char *what)
{
    if (!bn_shape_equal(got, want))
        fail_msg("%s: shape %s, expected %s", what, bn_shape_str(got), bn_shape_str(want));
    int64_t n = bn_tensor_numel(got);
    float *a = malloc((size_t)(n + 1) * sizeof(float)), *b = malloc((size_t)(n + 1) * sizeof(float));
    bn_tensor_read(got, a);
    bn_tensor_read(want, b);
    tu_assert_close_array(a, b, n, rtol, atol, what);
    free(a);
    free(b);
}

/* L = sum(out * R) in double. */
static double weighted_sum(bn_tensor *out, const float *r)
{
    int64_t n = bn_tensor_numel(out);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)bn_tensor_get_flat(out, i) * (double)r[i];
    return s;
}

static double eval_loss(tu_fn fn, bn_tensor **inputs, void *ctx, const float *r)
{
    bool was = bn_set_grad_enabled(false);
    bn_tensor *out = fn(inputs, ctx);
    bn_set_grad_enabled(was);
    if (!out) fail_msg("gradcheck: function failed: %s", bn_last_error());
    double l = weighted_sum(out, r);
    bn_tensor_release(out);
    return l;
}

void tu_gradcheck(tu_fn fn, int n_inputs, bn_tensor **inputs, void *ctx, const tu_gradcheck_opts *opts,
                  const char *what)
{
    tu_gradcheck_opts o = {1e-3, 2e-2, 2e-3, 64, 0.25};
    if (opts) {
        if (opts->eps > 0) o.eps = opts->eps;
        if (opts->rtol > 0) o.rtol = opts->rtol;
        if (opts->atol > 0) o.atol = opts->atol;
        if (opts->max_checks > 0) o.max_checks = opts->max_checks;
        if (opts->max_skip > 0) o.max_skip = opts->max_skip;
    }
    for (int i = 0; i < n_inputs; i++)
        if (inputs[i]) bn_tensor_zero_grad(inputs[i]);
    bn_tensor *out = fn(inputs, ctx);
    if (!out) fail_msg("%s: function failed: %s", what, bn_last_error());
    if (!out->requires_grad) fail_msg("%s: output does not require grad", what);
    bn_tensor *r = tu_uniform(777, -1.0f, 1.0f, out->ndim, out->shape);
    float *rv = bn_tensor_data(r);
    if (bn_backward(out, r, false) != BN_OK) fail_msg("%s: backward failed: %s", what, bn_last_error());
    bn_tensor_release(out);

    bn_rng pick;
    bn_rng_init(&pick, 4242);
    for (int i = 0; i < n_inputs; i++) {
        bn_tensor *x = inputs[i];
        if (!x || !x->requires_grad) continue;
        if (!bn_tensor_is_contiguous(x)) fail_msg("%s: gradcheck needs contiguous inputs", what);
        if (!x->grad) fail_msg("%s: input %d got no gradient", what, i);
        int64_t n = bn_tensor_numel(x);
        int checks = n < o.max_checks ? (int)n : o.max_checks, skipped = 0;
        float *xv = bn_tensor_data(x);
        for (int c = 0; c < checks; c++) {
            int64_t k = c;
            if (n > o.max_checks) {
                uint32_t w[4];
                bn_philox(pick.offset++, 9, pick.seed, w);
                k = (int64_t)(w[0] % (uint32_t)n);
            }
            float x0 = xv[k];
            double h = o.eps * (fabs(x0) > 1 ? fabs(x0) : 1.0);
            float xp = (float)(x0 + h), xm = (float)(x0 - h);
            double l0 = eval_loss(fn, inputs, ctx, rv);
            xv[k] = xp;
            double lp = eval_loss(fn, inputs, ctx, rv);
            xv[k] = xm;
            double lm = eval_loss(fn, inputs, ctx, rv);
            xv[k] = x0;
            double hp = (double)xp - x0, hm = x0 - (double)xm; /* the steps actually taken in float */
            double right = (lp - l0) / hp, left = (l0 - lm) / hm, central = (lp - lm) / (hp + hm);
            double analytic = bn_tensor_get_flat(x->grad, k);
            double scale = fabs(central) > fabs(analytic) ? fabs(central) : fabs(analytic);
            if (fabs(right - left) > o.atol * 10 + o.rtol * 10 * scale) {
                skipped++;
                continue;
            }
            if (!(fabs(analytic - central) <= o.atol + o.rtol * scale))
                fail_msg("%s: d/d input%d[%lld]: autograd %.7g, finite difference %.7g (left %.7g, right %.7g)",
                         what, i, (long long)k, analytic, central, left, right);
        }
        if (checks > 0 && skipped > o.max_skip * checks)
            fail_msg("%s: input %d: %d of %d elements skipped as kinks", what, i, skipped, checks);
    }
    bn_tensor_release(r);
}

const char *tu_fixture_dir(void)
{
    const char *d = getenv("BNLAB_FIXTURES");
    return d ? d : "tests/fixtures";
}

bn_tensor *tu_fixture(const char *name)
{
    char path[1024];
    if ((size_t)snprintf(path, sizeof path, "%s/%s.npy", tu_fixture_dir(), name) >= sizeof path)
        fail_msg("fixture %s: path too long", name);
    bn_tensor *t = bn_npy_load(path);
    if (!t)
        fail_msg("fixture %s: %s (regenerate with /usr/bin/python3 tests/fixtures/make_fixtures.py)", name,
                 bn_last_error());
    return t;
}

char tu_tmpdir[256];

const char *tu_tmp_path(const char *name)
{
    static char ring[4][512];
    static int next = 0;
    char *p = ring[next];
    next = (next + 1) % 4;
    snprintf(p, sizeof ring[0], "%s/%s", tu_tmpdir, name);
    return p;
}

int tu_tmpdir_setup(void **state)
{
    (void)state;
    const char *base = getenv("TMPDIR");
    snprintf(tu_tmpdir, sizeof tu_tmpdir, "%s/bnlab-test-XXXXXX", base && *base ? base : "/tmp");
    return mkdtemp(tu_tmpdir) ? 0 : -1;
}

int tu_tmpdir_teardown(void **state)
{
    (void)state;
    DIR *d = opendir(tu_tmpdir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                char p[600];
                snprintf(p, sizeof p, "%s/%s", tu_tmpdir, e->d_name);
                if (remove(p) != 0) rmdir(p);
            }
        closedir(d);
    }
    rmdir(tu_tmpdir);
    return 0;
}

void tu_write_file(const char *path, const void *buf, size_t len)
{
    unlink(path);
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot create %s", path);
    if (len && fwrite(buf, 1, len, f) != len) fail_msg("cannot write %s", path);
    fclose(f);
}
