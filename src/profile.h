/* Where the time goes: per-op wall-clock timing for `bnlab --profile` and
 * bn.profile_start/stop/report (docs/performance.md).
 *
 * Off by default. Every instrumented entry point (each op's forward, each
 * autograd node's backward, the SGD step, the batch kernel, gradient
 * accumulation) tests one global flag, bn_profile_on, and does nothing else
 * when it is false. When on, each call is timed with CLOCK_MONOTONIC and
 * added to a row keyed by the op's name, or "<name> backward" for a node's
 * backward; bn_sgemm adds 2*m*n*k to a flop counter, so rows whose work is
 * GEMMs (conv2d, linear, matmul and their backwards) get a GFLOP/s.
 *
 * Only the outermost region is timed: an op called inside another op's
 * region (linear's matmul, the elementwise ops of a backward) counts as part
 * of it, so a row's calls are the calls the program made, and the rows add
 * up to the time spent inside ops. Only the thread that called
 * bn_profile_start records (the ops are called from one thread; OpenMP
 * workers inside a kernel add flops only). */
#ifndef BN_PROFILE_H
#define BN_PROFILE_H

#include <stdbool.h>
#include <stdint.h>

/* The switch. Read by every instrumented entry point; set by start/stop. */
extern _Atomic bool bn_profile_on;

/* Starts (or restarts) profiling: clears the table, starts the wall clock,
 * and makes the calling thread the one that records. */
void bn_profile_start(void);
/* Stops recording; the table and the wall time up to now are kept. */
void bn_profile_stop(void);

/* Brackets an op's work:
 *     BN_PROFILE_BEGIN("conv2d", false);
 *     ... the work, without returning in between ...
 *     BN_PROFILE_END();
 * `name` must outlive the profile (a string literal, a node's op). */
#define BN_PROFILE_BEGIN(name, backward) \
    const bool bn_profiled_ = bn_profile_on && bn_profile_enter((name), (backward))
#define BN_PROFILE_END()                      \
    do {                                      \
        if (bn_profiled_) bn_profile_leave(); \
    } while (0)

/* For the macros: true when the region must be left with bn_profile_leave. */
bool bn_profile_enter(const char *name, bool backward);
void bn_profile_leave(void);
/* Adds floating-point operations to the region running now (any thread). */
void bn_profile_add_flops(int64_t flops);

typedef struct bn_profile_row {
    const char *name; /* the op */
    bool backward;    /* the row is "<name> backward" */
    int64_t calls;
    double seconds;   /* wall time inside the op's outermost calls */
    double flops;     /* GEMM flops counted inside them (0: none) */
} bn_profile_row;

/* Up to `max` rows, most time first; returns how many there are in all.
 * *wall (may be NULL): seconds from start to stop (or to now, if running). */
int bn_profile_rows(bn_profile_row *rows, int max, double *wall);
/* The table as Markdown with a one-line summary above it (malloc'd, the
 * caller frees; NULL when out of memory). */
char *bn_profile_report(void);

#endif
