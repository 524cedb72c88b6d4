/* Value ranges and histogram counts for plots. */
#include "render/binning.h"

#include <math.h>
#include <string.h>

void bn_value_range_of(const float *v, int64_t n, bool positive_only, bn_value_range *out)
{
    double lo = INFINITY, hi = -INFINITY;
    int64_t used = 0, nan = 0, posinf = 0, neginf = 0, nonpositive = 0;
    for (int64_t i = 0; i < n; i++) {
        double x = v[i];
        if (!isfinite(x)) {
            if (isnan(x)) nan++;
            else if (x > 0) posinf++;
            else neginf++;
            continue;
        }
        if (positive_only && !(x > 0.0)) {
            nonpositive++;
            continue;
        }
        used++;
        if (x < lo) lo = x;
        if (x > hi) hi = x;
    }
    out->lo = used ? lo : NAN;
    out->hi = used ? hi : NAN;
    out->used = used;
    out->nan = nan;
    out->posinf = posinf;
    out->neginf = neginf;
    out->nonpositive = nonpositive;
}

bn_status bn_histogram(const float *v, int64_t n, double lo, double hi, int bins, bool logbins, int64_t *counts,
                       double *edges, bn_hist_info *info)
{
    if (bins < 1) return bn_fail(BN_EARG, "histogram: bins expected >= 1, got %d", bins);
    if (!isfinite(lo) || !isfinite(hi) || !(lo < hi))
        return bn_fail(BN_EARG, "histogram: range expected finite lo < hi, got [%g, %g]", lo, hi);
    if (logbins && !(lo > 0.0))
        return bn_fail(BN_EARG, "histogram: log-spaced bins expected lo > 0, got %g", lo);
    double a = logbins ? log10(lo) : lo, b = logbins ? log10(hi) : hi;
    for (int k = 0; k <= bins; k++) {
        double e = a + (b - a) * k / bins;
        edges[k] = logbins ? pow(10.0, e) : e;
    }
    edges[0] = lo;
    edges[bins] = hi;
    memset(counts, 0, sizeof(int64_t) * (size_t)bins);
    memset(info, 0, sizeof *info);
    for (int64_t i = 0; i < n; i++) {
        double x = v[i];
        if (!isfinite(x)) {
            info->nonfinite++;
            continue;
        }
        if (logbins && !(x > 0.0)) {
            info->nonpositive++;
            continue;
        }
        if (x < lo || x > hi) {
            info->outside++;
            continue;
        }
        double t = ((logbins ? log10(x) : x) - a) / (b - a);
        int k = (int)(t * bins);
        if (k < 0) k = 0;
        if (k >= bins) k = bins - 1;
        /* the edges are the truth (they go into the CSV): correct rounding at a boundary */
        while (k > 0 && x < edges[k]) k--;
        while (k < bins - 1 && x >= edges[k + 1]) k++;
        counts[k]++;
        info->in_range++;
    }
    return BN_OK;
}
