/* What a plot needs to know about its numbers before it draws them: the
 * range of the finite values, and histogram counts. Non-finite values are
 * counted, never binned: divergence is data, and a plot says how much of it
 * it could not show. */
#ifndef BN_RENDER_BINNING_H
#define BN_RENDER_BINNING_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

typedef struct bn_value_range {
    double lo, hi;       /* over the values counted in `used`; NaN when none */
    int64_t used;        /* finite (and, when positive_only, > 0) */
    int64_t nan, posinf, neginf;
    int64_t nonpositive; /* finite values <= 0 left out because positive_only */
} bn_value_range;

void bn_value_range_of(const float *v, int64_t n, bool positive_only, bn_value_range *out);

typedef struct bn_hist_info {
    int64_t in_range;    /* values counted in some bin */
    int64_t outside;     /* finite values outside [lo, hi] */
    int64_t nonfinite;   /* NaN and ±Inf */
    int64_t nonpositive; /* finite values <= 0 on log-spaced bins */
} bn_hist_info;

/* Counts values into `bins` equal bins over [lo, hi] (the last bin includes
 * hi), or bins equal in log10 when logbins (then 0 < lo). Fills
 * counts[bins] and edges[bins + 1]. */
bn_status bn_histogram(const float *v, int64_t n, double lo, double hi, int bins, bool logbins, int64_t *counts,
                       double *edges, bn_hist_info *info);

#endif
