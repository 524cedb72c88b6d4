#include "profile.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blas.h"

#define MAX_ROWS 256

_Atomic bool bn_profile_on = false;

static bn_profile_row table[MAX_ROWS];
static int n_rows;
static int64_t dropped_calls; /* calls of ops past MAX_ROWS distinct names */
static double wall_start, wall_stop;
static _Atomic int64_t flops_total;

/* The recording thread is the one whose recorder_tag is at recorder. */
static _Thread_local char recorder_tag;
static _Atomic(const char *) recorder;
/* The outermost region in progress (recording thread only). */
static int depth;
static const char *region_name;
static bool region_backward;
static double region_t0;
static int64_t region_flops0;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void bn_profile_start(void)
{
    memset(table, 0, sizeof table);
    n_rows = 0;
    dropped_calls = 0;
    wall_start = now();
    wall_stop = 0;
    atomic_store(&flops_total, 0);
    atomic_store(&recorder, (const char *)&recorder_tag);
    /* A region already open (start called from a hook inside an op) is
     * clipped to begin now. */
    if (depth > 0) {
        region_t0 = wall_start;
        region_flops0 = 0;
    }
    bn_profile_on = true;
}

void bn_profile_stop(void)
{
    if (!bn_profile_on) return;
    bn_profile_on = false;
    wall_stop = now();
}

bool bn_profile_enter(const char *name, bool backward)
{
    if (atomic_load_explicit(&recorder, memory_order_relaxed) != &recorder_tag) return false;
    if (depth++ == 0) {
        region_name = name;
        region_backward = backward;
        region_flops0 = atomic_load(&flops_total);
        region_t0 = now();
    }
    return true;
}

static bn_profile_row *row_for(const char *name, bool backward)
{
    for (int i = 0; i < n_rows; i++) /* the same literal: the common case */
        if (table[i].name == name && table[i].backward == backward) return &table[i];
    for (int i = 0; i < n_rows; i++) /* the same name from another file */
        if (table[i].backward == backward && strcmp(table[i].name, name) == 0) return &table[i];
    if (n_rows == MAX_ROWS) return NULL;
    bn_profile_row *r = &table[n_rows++];
    r->name = name;
    r->backward = backward;
    return r;
}

void bn_profile_leave(void)
{
    if (depth <= 0) return;
    if (--depth > 0) return;
    double t = now();
    if (!bn_profile_on) return; /* stopped inside the region */
    bn_profile_row *r = row_for(region_name, region_backward);
    if (!r) {
        dropped_calls++;
        return;
    }
    r->calls++;
    r->seconds += t - region_t0;
    r->flops += (double)(atomic_load(&flops_total) - region_flops0);
}

void bn_profile_add_flops(int64_t flops) { atomic_fetch_add_explicit(&flops_total, flops, memory_order_relaxed); }

static int by_time_desc(const void *a, const void *b)
{
    double x = ((const bn_profile_row *)a)->seconds, y = ((const bn_profile_row *)b)->seconds;
    return x < y ? 1 : x > y ? -1 : 0;
}

int bn_profile_rows(bn_profile_row *rows, int max, double *wall)
{
    if (wall) *wall = wall_start == 0 ? 0 : (bn_profile_on ? now() : wall_stop) - wall_start;
    bn_profile_row sorted[MAX_ROWS];
    memcpy(sorted, table, (size_t)n_rows * sizeof *sorted);
    qsort(sorted, (size_t)n_rows, sizeof *sorted, by_time_desc);
    for (int i = 0; i < n_rows && i < max; i++) rows[i] = sorted[i];
    return n_rows;
}

/* A growing string. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool failed;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
            return;
        }
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap : 1024;
        while (cap <= b->len + (size_t)n) cap *= 2;
        char *grown = realloc(b->p, cap);
        if (!grown) {
            b->failed = true;
            return;
        }
        b->p = grown;
        b->cap = cap;
    }
}

char *bn_profile_report(void)
{
    bn_profile_row rows[MAX_ROWS];
    double wall;
    int n = bn_profile_rows(rows, MAX_ROWS, &wall);
    double inside = 0;
    int64_t calls = dropped_calls;
    for (int i = 0; i < n; i++) {
        inside += rows[i].seconds;
        calls += rows[i].calls;
    }
    double pct_base = wall > 0 ? wall : 1;
    sbuf b = {0};
    int threads = bn_get_num_threads();
    sb_printf(&b, "profile: %.3f s of wall time, %.3f s (%.1f%%) inside %lld op calls; %d thread%s\n\n", wall,
              inside, 100 * inside / pct_base, (long long)calls, threads, threads == 1 ? "" : "s");
    sb_printf(&b, "| op | calls | total ms | %% of wall | ms per call | GFLOP/s |\n");
    sb_printf(&b, "|---|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < n; i++) {
        const bn_profile_row *r = &rows[i];
        char gflops[32] = "";
        if (r->flops > 0 && r->seconds > 0) snprintf(gflops, sizeof gflops, "%.1f", r->flops / r->seconds * 1e-9);
        sb_printf(&b, "| %s%s | %lld | %.1f | %.1f | %.3f | %s |\n", r->name, r->backward ? " backward" : "",
                  (long long)r->calls, 1e3 * r->seconds, 100 * r->seconds / pct_base,
                  1e3 * r->seconds / (double)r->calls, gflops);
    }
    if (dropped_calls > 0)
        sb_printf(&b, "| (more than %d distinct ops: not timed) | %lld | | | | |\n", MAX_ROWS,
                  (long long)dropped_calls);
    double outside = wall - inside;
    if (outside < 0) outside = 0;
    sb_printf(&b, "| (outside ops: Lua, allocation, garbage collection) | | %.1f | %.1f | | |\n", 1e3 * outside,
              100 * outside / pct_base);
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    if (!b.p) return calloc(1, 1);
    return b.p;
}
