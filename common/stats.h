/* stats.h - the statistics behind monitoring: trend slopes with their
 * significance, distribution drift (PSI, two-sample Kolmogorov-Smirnov on
 * an effective sample size), and paired tests for A/B comparisons
 * (Wilcoxon signed-rank, Diebold-Mariano).
 *
 * Pure functions over arrays: no database, no allocation visible to the
 * caller, NaN inputs skipped where a function says so. Distributions come
 * from GSL. Each returns ENMS_OK or ENMS_EINVAL (too few values, bad
 * arguments) with a sentence in err. */
#ifndef ENMS_COMMON_STATS_H
#define ENMS_COMMON_STATS_H

#include <stddef.h>

/* Least-squares line y = intercept + slope * x over the pairs where both
 * are finite. p_value is the two-sided t-test of slope = 0 with n - 2
 * degrees of freedom (1 when the residuals are all zero and the slope is
 * 0; 0 when they are zero and the slope is not). Residuals and slopes at
 * rounding-error level count as zero; then slope_se is 0 and t_stat is 0
 * (flat y, r_squared 0) or +-DBL_MAX (exact line, r_squared 1), never
 * infinite. n is the number of pairs used. Needs n >= 3 pairs and x not
 * constant. */
struct stats_trend {
    size_t n;
    double slope, intercept;
    double slope_se;
    double t_stat;
    double p_value;
    double r_squared;
};
int stats_trend(const double *x, const double *y, size_t n, struct stats_trend *out, char *err,
                size_t errlen);

/* Lag-1 autocorrelation of the finite values of x taken in order (NaN
 * skipped, the neighbours either side then count as adjacent), with R's
 * acf() estimator: sum (x_t - m)(x_t+1 - m) / sum (x_t - m)^2. In [-1, 1]
 * (0 when fewer than 3 values or x is constant). */
double stats_lag1_autocorr(const double *x, size_t n);

/* Effective sample size of n autocorrelated values with lag-1
 * autocorrelation rho: n (1 - rho) / (1 + rho) for rho > 0, else n (also
 * for NaN rho; rho above 1 counts as 1); at least 2 when n >= 2. */
double stats_effective_n(size_t n, double rho);

/* Two-sample comparison of a reference sample and a recent one (finite
 * values only; NaN and infinities skipped; each needs >= 5 values).
 * - psi: population stability index sum (p_rec - p_ref) ln(p_rec / p_ref)
 *   over `bins` (0: 10; otherwise 2..1000) bins whose edges are the
 *   reference's type-7 quantiles k / bins; bin k is (e_k-1, e_k], the
 *   first open below and the last open above; equal edges (tied reference
 *   values) are merged into one. Empty bins get a share of 0.5 / n (n of
 *   that sample, shares not renormalised) so the index stays finite.
 * - ks_d: Kolmogorov-Smirnov statistic sup |F_ref - F_recent| (ties
 *   handled as R's ks.test).
 * - ks_p: its asymptotic p-value Q_KS(lambda) = 2 sum_j>=1 (-1)^(j-1)
 *   exp(-2 j^2 lambda^2) with Stephens' small-sample correction as in
 *   Numerical Recipes' kstwo: lambda = (sqrt(ne) + 0.12 + 0.11 / sqrt(ne))
 *   D, ne = n1 n2 / (n1 + n2), computed on the effective sizes
 *   n_eff_ref, n_eff_recent (pass the raw sizes for independent values;
 *   values above the finite counts are capped to them) rather than the raw
 *   counts, because hourly readings are autocorrelated and raw KS p-values
 *   fire on every series. (R's ks.test(exact = FALSE) uses lambda =
 *   sqrt(ne) D, slightly smaller p for small ne.) Effective sizes must be
 *   finite and > 0.
 * - mean_shift: (mean_recent - mean_ref) / sd_ref, sd with n - 1 (0 when
 *   sd_ref is 0).
 * - median_ref, median_recent.
 * Allocates scratch internally: ENMS_ENOMEM when that fails. */
struct stats_drift {
    size_t n_ref, n_recent;
    double psi;
    double ks_d;
    double ks_p;
    double mean_shift;
    double median_ref, median_recent;
};
int stats_drift(const double *ref, size_t n_ref, const double *recent, size_t n_recent,
                double n_eff_ref, double n_eff_recent, int bins, struct stats_drift *out, char *err,
                size_t errlen);

/* Wilcoxon signed-rank test of paired differences d = a - b (pairs with
 * a non-finite a, b or d skipped; zeros dropped, as R's wilcox.test does;
 * ties of |d| (exact equality) get average ranks). Exact two-sided
 * p-value when fewer than 50 non-zero differences and no ties, otherwise
 * the normal approximation with tie and continuity corrections (R's
 * formulas, correct = TRUE). One deliberate difference from R: R also
 * switches to the normal approximation when zeros were dropped; here the
 * exact distribution of the remaining n_used ranks is used, which equals
 * R's wilcox.test(d[d != 0], exact = TRUE). statistic is V, the sum of the
 * ranks of the positive differences (R's V). median_diff and mean_diff
 * are over all finite pairs, zeros included. Needs >= 1 non-zero
 * difference; n_used is their count. Allocates scratch internally. */
struct stats_paired {
    size_t n_used;
    double statistic;
    double p_value;
    double median_diff;
    double mean_diff;
};
int stats_wilcoxon_signed_rank(const double *a, const double *b, size_t n, struct stats_paired *out,
                               char *err, size_t errlen);

/* Diebold-Mariano test that two forecasts are equally accurate, on their
 * loss series (for example squared or absolute errors) of length n, for
 * h-step forecasts: d = loss_a - loss_b, long-run variance with h - 1
 * autocovariances, Harvey-Leybourne-Newbold small-sample correction, p
 * from Student's t with n - 1 degrees of freedom (as R's
 * forecast::dm.test 8.20, two-sided, varestimator "acf"; dm.test(e_a,
 * e_b, h = h, power = 1) on non-negative losses gives the same numbers).
 * Like dm.test, when h > 1 gives a variance <= 0 it falls back to h = 1.
 * statistic is the corrected DM value; mean_diff the mean loss difference
 * (negative: a is more accurate); median_diff the median of d; n_used n.
 * The series are paired in time, so every loss must be finite (no
 * skipping: ENMS_EINVAL). Needs n >= 3, 1 <= h <= n with a positive HLN
 * factor (n + 1 - 2h + h(h - 1)/n > 0) and a positive variance. */
int stats_diebold_mariano(const double *loss_a, const double *loss_b, size_t n, int h,
                          struct stats_paired *out, char *err, size_t errlen);

/* The q-quantile (0..1) of the finite values of x, type 7 as R's default;
 * NaN when there are none, q is outside [0, 1] or NaN, or x or scratch is
 * NULL. scratch must hold n doubles (its contents are overwritten). */
double stats_quantile(const double *x, size_t n, double q, double *scratch);

#endif
